"""The classic baselines (LBP-TOP, MDMO), the chance model and leave-one-database-out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.core.metrics import uar, uf1
from benchmark.core.samples import Sample
from benchmark.datasets import read_dataset
from models import MODELS
from protocols import PROTOCOLS
from protocols.base import ProtocolError
from representations import REPRESENTATIONS
from representations.lbptop import clip_frames, lbp_top, n_bins
from representations.mdmo import direction_bins, main_direction, mdmo

XY, XT, YT = range(3)


# ------------------------------------------------------------------ LBP-TOP
def _only_bin(hist: np.ndarray) -> np.ndarray:
    """The bin holding all the mass of every histogram (asserting there is one)."""
    np.testing.assert_allclose(hist.max(-1), 1.0)
    return hist.argmax(-1)


def test_lbptop_constant_volume_is_all_ones_pattern_everywhere():
    # every neighbour equals the centre: s(g_p - g_c) = 1 for all 8 -> rotation-invariant code 8
    h = lbp_top(np.full((5, 12, 12), 100, np.uint8), points=8, radius=1, blocks=2, method="uniform")
    assert h.shape == (3, 2, 2, 10)
    assert (_only_bin(h) == 8).all()


def test_lbptop_ramps_show_on_the_planes_they_cross():
    """V = 10 x: on XY and XT (columns = x) neighbours with cos >= 0 (angles 0, 45, 90, 270,
    315 degrees) are >= the centre: 5 contiguous ones, uniform code 5; YT (columns = y) is
    constant: 8. V = 20 t: the reverse (XY constant: 8; XT and YT rows = t: 5)."""
    x = np.tile((np.arange(12) * 10).astype(np.uint8), (5, 12, 1))
    assert _only_bin(lbp_top(x, 8, 1, 2, "uniform"))[:, 0, 0].tolist() == [5, 5, 8]
    t = np.broadcast_to((np.arange(6) * 20)[:, None, None], (6, 12, 12)).astype(np.uint8)
    assert _only_bin(lbp_top(t, 8, 1, 2, "uniform"))[:, 1, 1].tolist() == [8, 5, 5]
    y = np.broadcast_to((np.arange(12) * 10)[None, :, None], (5, 12, 12)).astype(np.uint8)
    assert _only_bin(lbp_top(y, 8, 1, 2, "uniform"))[:, 0, 1].tolist() == [5, 8, 5]


def test_lbptop_blocks_are_row_major_over_the_interior():
    """Left half constant, right half an x-ramp above it: blocks (., 0) code 8, (., 1) code 5
    on XY and XT (a left-half pixel next to the ramp sees larger or equal neighbours only)."""
    v = np.full((5, 12, 14), 50, np.uint8)
    v[:, :, 7:] = 60 + 10 * np.arange(7, dtype=np.uint8)
    codes = _only_bin(lbp_top(v, 8, 1, 2, "uniform"))
    for plane in (XY, XT):
        assert codes[plane].tolist() == [[8, 5], [8, 5]]
    assert (codes[YT] == 8).all()
    feat = REPRESENTATIONS.get("lbptop")(blocks=2, method="uniform")._dim()
    assert feat == 3 * 2 * 2 * 10


def _lbp_riu2_reference(img: np.ndarray, P: int = 8, R: float = 1.0) -> np.ndarray:
    """Independent rotation-invariant uniform LBP of the interior pixels (bilinear samples
    on a circle; code = number of ones when at most 2 circular transitions, else P + 1)."""
    img = img.astype(np.float64)
    H, W = img.shape
    r = int(np.ceil(R))
    yy, xx = np.mgrid[r:H - r, r:W - r]
    centre = img[r:H - r, r:W - r]
    bits = []
    for p in range(P):
        a = 2 * np.pi * p / P
        dy, dx = round(-R * np.sin(a), 5), round(R * np.cos(a), 5)
        y, x = yy + dy, xx + dx
        y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
        fy, fx = y - y0, x - x0
        y1, x1 = np.minimum(y0 + 1, H - 1), np.minimum(x0 + 1, W - 1)
        val = (img[y0, x0] * (1 - fy) * (1 - fx) + img[y0, x1] * (1 - fy) * fx
               + img[y1, x0] * fy * (1 - fx) + img[y1, x1] * fy * fx)
        bits.append(val - centre >= 0)
    bits = np.stack(bits).astype(int)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(0)
    return np.where(transitions <= 2, bits.sum(0), P + 1)


def test_lbptop_equals_an_independent_three_plane_histogram():
    rng = np.random.default_rng(0)
    v = rng.integers(0, 256, (7, 10, 11)).astype(np.uint8)
    got = lbp_top(v, 8, 1, blocks=1, method="uniform")[:, 0, 0]
    planes = {XY: [v[t] for t in range(7)], XT: [v[:, y, :] for y in range(10)],
              YT: [v[:, :, x] for x in range(11)]}
    for p, images in planes.items():
        # the interior of the volume: drop the border of each plane image and the border
        # images of the axis the plane is stacked along
        codes = np.concatenate([_lbp_riu2_reference(im).ravel() for im in images[1:-1]])
        want = np.bincount(codes, minlength=10) / codes.size
        np.testing.assert_allclose(got[p], want, atol=1e-6, err_msg=f"plane {p}")


def test_lbptop_bins_and_bad_volumes():
    assert n_bins(8, "nri_uniform") == 59 and n_bins(8, "uniform") == 10
    with pytest.raises(ValueError, match="method"):
        n_bins(8, "ror")
    with pytest.raises(ValueError, match="no voxel"):
        lbp_top(np.zeros((2, 10, 10), np.uint8))


def _sample(numbers, onset=None, offset=None):
    frames = {n: Path(f"/nonexistent/img{n}.jpg") for n in numbers}
    return Sample("casme2", "casme2/sub01", "EP01", "happiness", onset, None, offset, frames=frames)


def test_lbptop_uses_the_frames_that_exist_in_order_and_says_so():
    used, ev = clip_frames(_sample([1, 2, 3, 4, 10, 20, 21, 22, 30, 40], onset=2, offset=30))
    assert used == [2, 3, 4, 10, 20, 21, 22, 30]
    assert [e["kind"] for e in ev] == ["frame_gaps"] and "8 of the 29 frames" in ev[0]["detail"]
    used, ev = clip_frames(_sample(range(5, 15), onset=5, offset=14))
    assert used == list(range(5, 15)) and ev == []  # a full copy: every frame, no event
    used, ev = clip_frames(_sample([10, 11, 50, 60], onset=12, offset=14))  # folder covers other frames
    assert used == [10, 11, 50] and ev[0]["kind"] == "short_clip"
    used, ev = clip_frames(_sample([7]))  # onset/offset unknown, one frame
    assert used == [7, 7, 7] and {e["kind"] for e in ev} == {"no_onset", "no_offset", "short_clip"}


def test_lbptop_recipe_says_which_frames():
    recipe = REPRESENTATIONS.get("lbptop")().recipe()
    assert "gaps kept" in recipe["clip_frames"] and recipe["skimage"]


# ------------------------------------------------------------------ MDMO
def test_mdmo_direction_bins():
    deg = np.deg2rad
    angles = deg(np.array([0, 45, 90, 135, 180, -180, -90, -45, 22.4, 22.6, -22.4, -22.6, 157.6, -157.6]))
    bins = direction_bins(np.cos(angles), np.sin(angles), 8)
    # bin k centred on 45 k degrees, counted from +x towards +y (image rows, downwards)
    assert bins.tolist() == [0, 1, 2, 3, 4, 4, 6, 7, 0, 1, 0, 7, 4, 4]
    assert direction_bins(np.array([1.0]), np.array([1.0]), 4).tolist() == [1]  # 4 bins of 90


def test_mdmo_main_direction_is_the_mean_vector_of_the_fullest_bin():
    u = np.array([2.0, 3.0, 4.0, 0.0, 0.0, 0.0])  # three to the right, two down, one still
    v = np.array([0.1, -0.1, 0.0, 5.0, 7.0, 0.0])
    rho, theta, k = main_direction(u, v)
    assert k == 0 and rho == pytest.approx(3.0) and theta == pytest.approx(0.0)
    # a bin straddling +-pi: the mean vector points left (theta ~ pi), not 0
    a = np.deg2rad([179.0, -179.0, 178.0])
    rho, theta, k = main_direction(np.cos(a), np.sin(a))
    assert k == 4 and abs(abs(theta) - np.pi) < 0.02 and rho == pytest.approx(1.0, abs=1e-3)
    assert main_direction(np.zeros(4), np.zeros(4)) == (0.0, 0.0, -1)


def test_mdmo_grid_layout_and_normalisation():
    uv = np.zeros((2, 10, 10))
    uv[0, :5, :5] = 2.0  # top left moves right, 2 px
    uv[1, :5, 5:] = 1.0  # top right moves down, 1 px; bottom row still
    f = mdmo(uv, grid=2).reshape(4, 2)
    np.testing.assert_allclose(f, [[1.0, 0.0], [0.5, np.pi / 2], [0, 0], [0, 0]], atol=1e-6)
    raw = mdmo(uv, grid=2, normalize="none", output="cartesian").reshape(4, 2)
    np.testing.assert_allclose(raw, [[2.0, 0.0], [0.0, 1.0], [0, 0], [0, 0]], atol=1e-6)


def test_mdmo_reads_the_flow_representations_cached_field(synthetic_tiny, rep_cache):
    sel = PROTOCOLS.get("cde")(dataset="casme2").select(read_dataset("megc2019", synthetic_tiny / "megc2019"))
    samples = sel.samples[:3]
    X = REPRESENTATIONS.get("mdmo")(flow="farneback", grid=4).transform(samples)
    assert X.shape == (3, 32) and np.isfinite(X).all() and X[:, 0::2].max() == pytest.approx(1.0)
    fb = REPRESENTATIONS.get("farneback")()
    fb.transform(samples)
    assert fb.cache_stats_["hits"] == 3  # the onset->apex fields MDMO computed, not recomputed
    assert REPRESENTATIONS.get("mdmo")(flow="tvl1").recipe()["flow_algorithm"]["name"] == "dual_tvl1"
    with pytest.raises(ValueError, match="flow"):
        REPRESENTATIONS.get("mdmo")(flow="hs").transform(samples)


# ------------------------------------------------------------------ dummy
def test_dummy_is_stratified_chance_and_reproducible():
    rng = np.random.default_rng(0)
    y = rng.choice(3, size=3000, p=[0.6, 0.25, 0.15])
    X = np.zeros((len(y), 2, 3, 4, 4), np.uint8)  # any kind: 'frames' here; inputs are ignored
    model = MODELS.get("dummy")(seed=3).fit(X, y, n_classes=4)
    proba = model.predict_proba(X)
    assert proba.shape == (3000, 4) and set(np.unique(proba)) <= {0.0, 1.0} and (proba[:, 3] == 0).all()
    pred = proba.argmax(1)
    np.testing.assert_allclose(np.bincount(pred, minlength=3)[:3] / len(y), [0.6, 0.25, 0.15], atol=0.03)
    assert uf1(y, pred) == pytest.approx(1 / 3, abs=0.03) and uar(y, pred) == pytest.approx(1 / 3, abs=0.03)
    again = MODELS.get("dummy")(seed=3).fit(X, y, n_classes=4).predict_proba(X)
    np.testing.assert_array_equal(proba, again)
    other = MODELS.get("dummy")(seed=4).fit(X, y, n_classes=4).predict_proba(X)
    assert (other != proba).any()
    assert MODELS.get("dummy").accepts == frozenset({"flow_image", "image", "frames", "tokens", "vector"})


# ------------------------------------------------------------------ ldo
@pytest.fixture(scope="module")
def composite(synthetic_tiny):
    protocol = PROTOCOLS.get("ldo")()
    return protocol, protocol.select(read_dataset("megc2019", synthetic_tiny / "megc2019"))


def test_ldo_never_trains_on_the_test_database(composite):
    protocol, sel = composite
    folds = protocol.split(sel)
    dbs = np.array([s.dataset for s in sel.samples])
    assert [f.name for f in folds] == ["casme2", "samm", "smic"]
    for f in folds:
        assert set(dbs[f.test]) == {f.name} and f.name not in set(dbs[f.train])
        assert not set(sel.groups[f.train]) & set(sel.groups[f.test])
        assert len(f.train) + len(f.test) == len(sel.samples)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(sel.samples)))  # every sample once
    d = protocol.describe()
    assert d["bootstrap_unit"] == "sample" and "is ever in training" in d["subjects"]


def test_ldo_needs_every_database(composite, synthetic_tiny):
    protocol, sel = composite
    with pytest.raises(ProtocolError, match="--dataset casme2"):
        one = PROTOCOLS.get("ldo")(dataset="casme2")
        one.split(one.select(read_dataset("megc2019", synthetic_tiny / "megc2019")))
    from protocols.base import LabelledSet

    keep = [i for i, s in enumerate(sel.samples) if s.dataset != "samm"]
    with pytest.raises(ProtocolError, match="none of samm"):
        protocol.split(LabelledSet([sel.samples[i] for i in keep], sel.y[keep], sel.classes))


def test_ldo_run_reports_each_held_out_database(tmp_path):
    from benchmark.config import resolve
    from benchmark.results import load_result
    from benchmark.runner import execute
    from tests.test_runner import write_flow_root

    root = write_flow_root(tmp_path / "data")
    cfg = resolve(dict(rep="precomputed", model="logreg", protocol="ldo", data_root=str(root),
                       out=str(tmp_path / "runs"), n_boot=50))
    result = load_result(execute(cfg, progress=False))
    assert result.bootstrap_unit == "sample"
    assert sorted(result.metrics.per_database) == ["casme2", "samm", "smic"]
    assert result.metrics.overall.n == sum(b.n for b in result.metrics.per_database.values()) == 54
    assert result.metrics.overall.uf1.mean > 0.9  # the class shows in one channel in every database
