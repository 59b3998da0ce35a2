"""The recipe-keyed representation cache: keys, atomic writes, invalidation, resume."""
import os
import zipfile

import numpy as np
import pytest

from benchmark.datasets import read_dataset
from representations import REPRESENTATIONS
from representations._cache import DiskCache, cache_key, parallel_map


@pytest.fixture(scope="module")
def samples(synthetic_tiny):
    return read_dataset("casme2", synthetic_tiny / "casme2").samples[:4]


def _files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------- the store
def test_key_depends_on_every_recipe_field_and_on_the_sources(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"y" * 10)
    base = {"rep": "tvl1", "size": 28, "preprocess": {"mode": "raw", "size": 384}}
    k = cache_key(base, [a])
    assert k == cache_key(dict(reversed(list(base.items()))), [a])  # order-free
    assert k != cache_key({**base, "size": 224}, [a])
    assert k != cache_key({**base, "preprocess": {"mode": "raw", "size": 224}}, [a])
    assert k != cache_key(base, [b]) and k != cache_key(base, [a, b])
    os.utime(a, ns=(1, 1))  # same bytes, new mtime: stat identity changes, content identity does not
    assert k != cache_key(base, [a])
    c = cache_key(base, [a], identity="content")
    os.utime(a, ns=(2, 2))
    assert c == cache_key(base, [a], identity="content")
    a.write_bytes(b"z" * 10)
    assert c != cache_key(base, [a], identity="content")


def test_get_or_compute_computes_once(tmp_path):
    cache, calls = DiskCache(tmp_path), []

    def compute():
        calls.append(1)
        return {"x": np.arange(3.0)}, {"events": ["e"]}

    for _ in range(2):
        arrays, meta = cache.get_or_compute({"r": 1}, [], compute)
        np.testing.assert_array_equal(arrays["x"], [0, 1, 2])
        assert meta == {"events": ["e"]}
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)


def test_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    cache = DiskCache(tmp_path)

    def boom(fh, **arrays):
        fh.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.put("ab" * 32, {"x": np.zeros(3)})
    assert _files(tmp_path) == [] and cache.get("ab" * 32) is None


def test_corrupt_entry_is_a_miss_and_is_rewritten(tmp_path):
    cache = DiskCache(tmp_path)
    key = cache.key({"r": 2})
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(b"not a zip")
    assert cache.get(key) is None and not cache.path(key).exists()
    arrays, _ = cache.get_or_compute({"r": 2}, [], lambda: ({"x": np.ones(2)}, {}))
    assert zipfile.is_zipfile(cache.path(key)) and cache.get(key)[0]["x"].tolist() == [1, 1]


def test_clean_tmp_removes_only_old_leftovers(tmp_path):
    cache = DiskCache(tmp_path)
    (tmp_path / "ab").mkdir()
    old, fresh = tmp_path / "ab" / ".tmp-old.npz", tmp_path / "ab" / ".tmp-new.npz"
    old.write_bytes(b"")
    fresh.write_bytes(b"")
    os.utime(old, (0, 0))
    assert cache.clean_tmp() == 1 and fresh.exists() and not old.exists()


def test_parallel_map_keeps_order():
    assert parallel_map(lambda x: x * x, list(range(20)), n_jobs=3, progress=False) == [x * x for x in range(20)]


# ---------------------------------------------------------------- through a representation
def _count_flows(monkeypatch, cls):
    calls = []
    original = cls.flow
    monkeypatch.setattr(cls, "flow", lambda self, a, b: calls.append(1) or original(self, a, b))
    return calls


def test_changing_any_part_of_the_recipe_recomputes(samples, rep_cache, monkeypatch):
    cls = REPRESENTATIONS.get("farneback")
    calls = _count_flows(monkeypatch, cls)
    X = cls().transform(samples)
    assert len(calls) == 4
    rep = cls()
    np.testing.assert_array_equal(rep.transform(samples), X)  # warm: no flow, same array
    assert len(calls) == 4 and rep.cache_stats_["computed"] == 0
    out56 = cls(size=56)  # new output recipe: output recomputed from the cached flow fields
    assert out56.transform(samples).shape == (4, 3, 56, 56) and len(calls) == 4
    assert out56.cache_stats_["computed"] == 4
    cls(winsize=9).transform(samples)  # new algorithm parameter: flow recomputed
    assert len(calls) == 8
    cls(preprocess="raw").transform(samples)  # new preprocessing: flow recomputed
    assert len(calls) == 12
    cls(n_jobs=2, progress=False).transform(samples)  # runtime options are not in the recipe
    assert len(calls) == 12


def test_recipe_names_the_detector_wherever_it_matters():
    tvl1 = REPRESENTATIONS.get("tvl1")
    assert "detector" not in tvl1().recipe() and "detector" not in tvl1().recipe()["preprocess"]
    assert tvl1(regions="htnet").recipe()["detector"] == "mtcnn"  # landmarks for the regions
    assert tvl1(preprocess="face", detector="mediapipe").recipe()["preprocess"]["detector"] == "mediapipe"
    assert tvl1(n_jobs=3, progress=False).recipe() == tvl1().recipe()


def test_changed_source_frame_recomputes_that_sample_only(samples, rep_cache, monkeypatch):
    cls = REPRESENTATIONS.get("farneback")
    calls = _count_flows(monkeypatch, cls)
    cls().transform(samples)
    s = samples[1]
    st = os.stat(s.frames[s.apex])
    os.utime(s.frames[s.apex], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    try:
        cls().transform(samples)
    finally:
        os.utime(s.frames[s.apex], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert len(calls) == 5


def test_killed_extraction_resumes_without_recomputing(samples, rep_cache, monkeypatch):
    cls = REPRESENTATIONS.get("tvl1")
    original = cls.flow
    calls = []

    def dies_on_the_third(self, a, b):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return original(self, a, b)

    monkeypatch.setattr(cls, "flow", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        cls(n_jobs=1).transform(samples)
    assert not list(rep_cache.rglob(".tmp-*"))  # nothing half-written
    monkeypatch.setattr(cls, "flow", lambda self, a, b: calls.append(1) or original(self, a, b))
    rep = cls(n_jobs=1)
    X = rep.transform(samples)
    assert len(calls) == 5  # 2 finished before the kill, 2 remaining + the one that died
    assert rep.cache_stats_["hits"] >= 2 and X.shape == (4, 3, 28, 28)


def test_parallel_extraction_equals_sequential(samples, rep_cache):
    cls = REPRESENTATIONS.get("tvl1")
    seq = cls(n_jobs=1, size=32).transform(samples)
    for p in rep_cache.rglob("*.npz"):
        p.unlink()
    np.testing.assert_array_equal(cls(n_jobs=2, size=32, progress=False).transform(samples), seq)


def test_throughput_table(synthetic_tiny, rep_cache, capsys):
    from benchmark.perf import extraction_table

    table = extraction_table(synthetic_tiny, n_pairs=2, sizes=(None, 56), algorithms=("farneback",))
    rows = [line for line in table.splitlines() if line.startswith("| farneback")]
    assert len(rows) == 2 and "native (~112x136)" in rows[0] and "56x56" in rows[1]
    assert "warm / cold" in capsys.readouterr().out
    assert not list(rep_cache.rglob("*.npz"))  # timings use a temporary cache, not the user's
