"""DFE: Procrustes features, RVQ-VAE, bag of words, diversity metrics, the representation end to end."""
from pathlib import Path

import numpy as np
import pytest
import torch

from representations._dfe_net import PRESETS, RVQVAE, train
from representations._landmarks import normalise_shape, procrustes_mean, similarity_align
from representations._dfe_features import displacements, fill_missing, frame_plan
from representations.dfe import DFE, activation_matrix, average_nmi, bow_counts, normalized_entropy


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _face(rng, n=468) -> np.ndarray:
    return rng.normal(size=(n, 3)) * [60.0, 80.0, 30.0]


# --------------------------------------------------------------------------- Procrustes


def test_procrustes_makes_features_invariant_to_rotation_and_scale():
    rng = np.random.default_rng(0)
    canonical = normalise_shape(_face(rng))
    onset = _face(rng)
    apex = onset.copy()
    apex[:40] += rng.normal(size=(40, 3)) * 3.0  # a local "expression"
    clip = np.stack([onset, apex])
    ref = displacements(clip, canonical)
    rot, scale, shift = _rotation(rng), 2.7, np.array([40.0, -15.0, 7.0])
    moved = displacements(clip @ rot.T * scale + shift, canonical)
    assert np.abs(ref[1]).max() > 1e-4  # the expression is there (canonical units: face norm 1) ...
    np.testing.assert_allclose(moved, ref, atol=1e-6)  # ... and the pose is gone
    # without alignment the same comparison fails: the test can tell
    raw = (clip @ rot.T * scale + shift) - (clip @ rot.T * scale + shift)[0]
    assert np.abs(raw[1] / np.linalg.norm(clip[0] - clip[0].mean(0)) - ref[1]).max() > 5e-5


def test_similarity_align_recovers_a_known_transform_and_never_reflects():
    rng = np.random.default_rng(1)
    ref = _face(rng)
    rot = _rotation(rng)
    np.testing.assert_allclose(similarity_align(ref @ rot.T * 0.3 + 5.0, ref), ref, atol=1e-3)
    mirrored = ref * [-1, 1, 1]
    assert np.abs(similarity_align(mirrored, ref) - ref).max() > 1.0  # a reflection is not undone


def test_procrustes_mean_is_unit_norm_and_centred():
    rng = np.random.default_rng(2)
    base = _face(rng)
    shapes = np.stack([base @ _rotation(rng).T * s for s in (1.0, 2.0, 0.5)])
    m = procrustes_mean(shapes)
    assert abs(np.linalg.norm(m) - 1) < 1e-5 and np.abs(m.mean(0)).max() < 1e-6


def test_missing_faces_take_the_nearest_frame_and_are_reported():
    lm = np.arange(4 * 2 * 3, dtype=np.float32).reshape(4, 2, 3)
    lm[1] = np.nan
    out, events = fill_missing(lm, "x")
    np.testing.assert_array_equal(out[1], lm[0])
    assert [e["kind"] for e in events] == ["no_face"]
    none, ev = fill_missing(np.full((3, 2, 3), np.nan), "x")
    assert none is None and ev[0]["kind"] == "no_face_clip"


# --------------------------------------------------------------------------- RVQ-VAE


def test_residual_stages_reduce_reconstruction_error():
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(512, 6)) * np.linspace(2, 0.5, 6)) @ rng.normal(size=(6, 50))
    torch.manual_seed(0)
    net = RVQVAE(PRESETS["tiny"])
    train(net, data, steps=150, batch_size=128, lr=3e-3, seed=0)
    x = torch.as_tensor(data[:256], dtype=torch.float32)
    err = [float((x - r).pow(2).sum(1).mean()) for r in net.stage_reconstructions(x)]
    assert len(err) == 4
    assert all(b < a for a, b in zip(err, err[1:])), err
    assert err[-1] < 0.8 * float(x.pow(2).sum(1).mean())
    # the library's quantizer output equals the sum of the shared codebook's selected entries
    idx = net.tokenize(x)
    zq = net.rvq(net.encode(x))[0]
    torch.testing.assert_close(zq, net.codebook[idx].sum(1), atol=1e-5, rtol=1e-5)


def test_codebook_is_shared_across_stages():
    net = RVQVAE(PRESETS["tiny"])
    books = [layer._codebook for layer in net.rvq.layers]
    assert all(b is books[0] for b in books) and net.codebook.shape == (64, 50)


# --------------------------------------------------------------------------- bag of words and diversity


def test_bow_sums_to_the_number_of_tokens():
    tokens = np.random.default_rng(0).integers(0, 64, (5, 9, 4))
    counts = bow_counts(tokens, 64)
    assert counts.shape == (5, 64)
    np.testing.assert_array_equal(counts.sum(1), np.full(5, 36))
    assert counts[0, tokens[0, 0, 0]] >= 1


def test_normalized_entropy_extremes():
    assert normalized_entropy(np.arange(64), 64) == pytest.approx(1.0)
    assert normalized_entropy(np.zeros(100, int), 64) == pytest.approx(0.0)
    assert 0 < normalized_entropy(np.array([0, 0, 1, 2]), 64) < 1


def test_average_nmi_matches_scikit_learn_and_detects_redundancy():
    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(0)
    X = rng.random((400, 5)) < 0.3
    X[:, 3] = X[:, 0]  # a duplicate feature
    got, k = average_nmi(X)
    want = np.mean([normalized_mutual_info_score(X[:, i], X[:, j], average_method="geometric")
                    for i in range(5) for j in range(i + 1, 5)])
    assert k == 5 and got == pytest.approx(want, abs=1e-9)
    independent, _ = average_nmi(rng.random((400, 5)) < 0.3)
    assert got > independent + 0.05
    acts = activation_matrix(np.array([[1, 1, 2], [3, 0, 0]]), 4)
    np.testing.assert_array_equal(acts, [[0, 1, 1, 0], [1, 0, 0, 1]])


# --------------------------------------------------------------------------- representation


def test_frame_plan_spans_onset_to_offset_with_the_apex():
    from benchmark.core.samples import Sample

    s = Sample("d", "d/s1", "c", "x", onset=10, apex=23, offset=50, frames={i: Path("f") for i in range(10, 51)})
    plan = frame_plan(s, 9)
    assert plan[0] == 10 and plan[-1] == 50 and 23 in plan and len(plan) == 9


def _vector_samples(tmp_path, n_subjects=3, clips=4, frames=6, dim=50):
    """Samples with user-supplied per-frame vectors (the ``vectors`` source)."""
    from benchmark.core.samples import Sample

    rng = np.random.default_rng(0)
    out = []
    for s in range(n_subjects):
        for c in range(clips):
            sample = Sample("toy", f"toy/s{s}", f"c{c}", "x", onset=0, apex=3, offset=frames - 1)
            folder = tmp_path / sample.key
            folder.mkdir(parents=True)
            for f in range(frames):
                np.save(folder / f"{f}.npy", (rng.normal(size=dim) * f).astype(np.float32))
            out.append(sample)
    return out


def test_dfe_end_to_end_on_user_vectors(tmp_path, rep_cache):
    samples = _vector_samples(tmp_path)
    rep = DFE(source="vectors", vectors_dir=str(tmp_path), n_frames=5, preset="tiny", steps=10, batch_size=16)
    train = samples[:8]
    rep.fit(train)
    assert rep.training_subjects() == {"toy/s0", "toy/s1"}
    tokens = rep.transform(samples)
    assert tokens.dtype == np.int64 and tokens.shape == (12, 5 * 4) and tokens.max() < 64
    codes = rep.set_params(output="codes").transform(samples)
    assert codes.shape == (12, 20, 50) and codes.dtype == np.float32
    bow = rep.set_params(output="bow").transform(samples)
    np.testing.assert_allclose(bow.sum(1), 1.0, rtol=1e-6)
    expr = rep.set_params(output="expression").transform(samples)
    assert expr.shape == (12, 5, 50)
    rep.set_params(output="tokens")
    # the fitted state is cached: a fresh fit on the same samples reads it back
    again = DFE(source="vectors", vectors_dir=str(tmp_path), n_frames=5, preset="tiny", steps=10,
                batch_size=16).fit(train)
    np.testing.assert_array_equal(again.transform(samples), tokens)


def test_dfe_rejects_bad_settings(tmp_path):
    from representations.base import RepresentationError

    with pytest.raises(ValueError, match="vectors_dir"):
        DFE(source="vectors").fit([])
    with pytest.raises(ValueError, match="output"):
        DFE(output="nope").fit([])
    with pytest.raises(RepresentationError, match="fit"):
        DFE().transform([])


def test_dfe_on_synthetic_faces_with_the_face_mesh(synthetic_tiny, rep_cache, tmp_path):
    """mediapipe's mesh on the generator's faces, per-fold basis, heatmap displacements."""
    from benchmark.datasets import read_dataset

    samples = [s for s in read_dataset("casme2", synthetic_tiny / "casme2").samples if s.frames][:6]
    rep = DFE(n_frames=3, n_components=10, preset="tiny", steps=5, batch_size=8, n_jobs=1, progress=False)
    rep.fit(samples[:4])
    tokens = rep.transform(samples)
    assert tokens.shape == (6, 12)
    assert not any(e["kind"] == "no_face_clip" for e in rep.report_)
    assert rep.token_displacements().shape == (64, 468, 3)
    assert rep.state_["components"].shape == (10, 468 * 3)
    from benchmark.analyze.dfe import diversity, plot_token_heatmaps

    png = plot_token_heatmaps(rep, tmp_path / "tokens.png")
    assert png.stat().st_size > 1000
    d = diversity(rep.encode(samples)[0], 64)
    assert 0 <= d["normalized_entropy"] <= 1 and len(d["normalized_entropy_per_stage"]) == 4


@pytest.mark.realdata
def test_dfe_mesh_finds_casme2_faces(shared_data, rep_cache):
    from benchmark.datasets import read_dataset

    samples = [s for s in read_dataset("casme2", shared_data / "casme2").samples if s.frames][:2]
    raw, events = DFE(n_frames=3, n_jobs=1, progress=False)._raw(samples)
    assert all(r is not None and r.shape == (3, 468, 3) for r in raw)
    assert not [e for e in events if e["kind"].startswith("no_face")]


def test_pretrained_checkpoint_is_frozen_and_records_its_subjects(synthetic_tiny, rep_cache, tmp_path):
    from benchmark.datasets import read_dataset
    from representations.dfe import load_checkpoint, pretrain

    ckpt = tmp_path / "dfe.npz"
    params = dict(n_frames=3, n_components=10, preset="tiny", steps=5, batch_size=8, n_jobs=1, progress=False)
    meta = pretrain(str(synthetic_tiny), ckpt, log=lambda m: None, **params)
    again = pretrain(str(synthetic_tiny), tmp_path / "again.npz", log=lambda m: None, **params)
    assert again["sha256"] == meta["sha256"]  # one command reproduces the file byte for byte
    samples = [s for s in read_dataset("casme2", synthetic_tiny / "casme2").samples if s.frames]
    assert {s.subject for s in samples} <= set(meta["trained_on"]["subjects"])  # real ids: the runner refuses them
    rep = DFE(checkpoint=str(ckpt), **params)
    assert not rep.learned and rep.training_subjects() == set(meta["trained_on"]["subjects"])
    assert rep.recipe()["checkpoint_sha256"] == load_checkpoint(ckpt)[1]["sha256"]
    assert rep.transform(samples[:2]).shape == (2, 12)
    with pytest.raises(ValueError, match="n_frames"):
        DFE(checkpoint=str(ckpt), n_frames=4, n_components=10).fit([])


def test_only_the_mesh_source_needs_frames():
    """Planning drops or blanks samples without frames only for representations that read frames;
    user-supplied vectors never do (before: every DFE was taken to need them)."""
    assert DFE().needs_frames()
    assert not DFE(source="vectors", vectors_dir="anywhere").needs_frames()


def test_the_fitted_state_is_trained_on_one_thread_whatever_the_machine(tmp_path, rep_cache, monkeypatch):
    """Two torch/BLAS threads gave another RVQ-VAE (and UF1 0.519 instead of 0.552) for the same
    recipe: the fit is pinned to one thread, so the cached state depends on the recipe alone."""
    import torch
    from threadpoolctl import threadpool_info

    import representations.dfe as dfe_module

    seen = []
    real = dfe_module.train

    def spy(*args, **kw):
        seen.append((torch.get_num_threads(), {i["num_threads"] for i in threadpool_info()}))
        return real(*args, **kw)

    monkeypatch.setattr(dfe_module, "train", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        DFE(source="vectors", vectors_dir=str(tmp_path), n_frames=5, preset="tiny", steps=5,
            batch_size=16).fit(_vector_samples(tmp_path)[:8])
        assert torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(before)
    assert seen == [(1, {1})]
