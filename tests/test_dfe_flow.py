"""DFE with flow-tracked landmarks (``landmarks=flow``): tracking by a known field, stable-point
Procrustes, the recipe, the unchanged per-frame path, a face missing on the onset."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from representations._dfe_track import (STABLE, sample_field, similarity_on, track, tracked_displacements,
                                        tracked_landmarks)
from representations._landmarks import normalise_shape
from representations.dfe import DFE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(n_frames=3, n_components=10, preset="tiny", steps=5, batch_size=8, n_jobs=1, progress=False)


def _face(rng, n=478) -> np.ndarray:
    """A face-sized point cloud in pixels (x, y inside a 200 x 240 frame, z depth)."""
    return (rng.normal(size=(n, 3)) * [30.0, 40.0, 15.0] + [100.0, 120.0, 0.0]).astype(np.float32)


def _rigid(points: np.ndarray, angle_deg: float, scale: float, shift) -> np.ndarray:
    """In-plane rotation about (100, 120), isotropic scale (depth scaled too), translation."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    out = points.copy()
    out[:, :2] = scale * (points[:, :2] - [100.0, 120.0]) @ rot.T + [100.0, 120.0] + np.asarray(shift)
    out[:, 2] = scale * points[:, 2]
    return out


# --------------------------------------------------------------------------- tracking


def test_tracking_moves_points_by_a_known_translation_field():
    rng = np.random.default_rng(0)
    onset = _face(rng)
    field = np.stack([np.full((240, 200), 2.5), np.full((240, 200), -1.25)]).astype(np.float32)
    out = track(onset, [None, field])
    np.testing.assert_array_equal(out[0], onset)  # the onset itself does not move
    np.testing.assert_allclose(out[1, :, :2], onset[:, :2] + [2.5, -1.25], atol=1e-5)
    np.testing.assert_array_equal(out[1, :, 2], onset[:, 2])  # the flow is 2-D: depth kept


def test_field_is_sampled_bilinearly_at_the_vertices():
    """A linear field is reproduced exactly between pixels (nearest-pixel sampling would not)."""
    yy, xx = np.mgrid[0:50, 0:60].astype(np.float32)
    field = np.stack([0.1 * xx, -0.05 * yy + 0.02 * xx])
    pts = np.array([[10.3, 20.7], [33.5, 4.25], [0.0, 0.0], [58.9, 48.1]], np.float32)
    got = sample_field(field, pts)
    want = np.stack([0.1 * pts[:, 0], -0.05 * pts[:, 1] + 0.02 * pts[:, 0]], axis=1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # outside the frame: the nearest border pixel's flow
    np.testing.assert_allclose(sample_field(field, np.array([[-5.0, 10.0]])), [[0.0, -0.5]], atol=1e-5)


def test_stable_point_procrustes_removes_a_global_rigid_motion_but_keeps_the_expression():
    rng = np.random.default_rng(1)
    canonical = normalise_shape(_face(rng))
    onset = _face(rng)
    moving = [i for i in range(478) if i not in STABLE][:60]  # an "expression" off the stable points
    apex = onset.copy()
    apex[moving, :2] += rng.normal(size=(60, 2)) * 1.5
    still = tracked_displacements(np.stack([onset, apex]), canonical)
    # the same clip with the head rotated 4 degrees, scaled 1.03 and shifted
    moved_apex = _rigid(apex, 4.0, 1.03, [6.0, -3.5])
    moved = tracked_displacements(np.stack([onset, moved_apex]), canonical)
    np.testing.assert_allclose(moved, still, atol=1e-5)
    assert np.abs(still[1, moving]).max() > 1e-3  # the expression is there (canonical units) ...
    assert np.abs(still[1, list(STABLE)]).max() < 1e-6  # ... and the stable points did not move
    # unaligned, the rigid motion dominates: the test can tell
    assert np.abs((moved_apex - onset)[:, :2]).mean() > 3 * np.abs((apex - onset)[:, :2]).mean()
    # all-point alignment would spread the expression over the stable points; stable-point alignment does not
    assert np.abs(similarity_on(apex, onset, range(478)) - onset)[list(STABLE)].max() > 1e-3


def test_tracking_a_rotation_field_then_aligning_gives_zero_displacement():
    """A head turning in the image plane and shifting, seen through the flow (depth is kept)."""
    rng = np.random.default_rng(2)
    onset = _face(rng)
    yy, xx = np.mgrid[0:240, 0:200].astype(np.float64)
    grid = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)], axis=1)
    target = _rigid(grid, -3.0, 1.0, [2.0, 1.0])
    field = (target[:, :2] - grid[:, :2]).T.reshape(2, 240, 200).astype(np.float32)
    inside = onset.copy()
    inside[:, 0] = np.clip(inside[:, 0], 1, 198)
    inside[:, 1] = np.clip(inside[:, 1], 1, 238)
    lm = track(inside, [None, field])
    np.testing.assert_allclose(lm[1], _rigid(inside, -3.0, 1.0, [2.0, 1.0]), atol=1e-3)
    d = tracked_displacements(lm, normalise_shape(inside))
    assert np.abs(d).max() < 1e-5


# --------------------------------------------------------------------------- the representation


def test_recipe_differs_between_the_landmark_options_and_detect_keeps_the_old_one():
    old_keys = {"rep", "version", "batch_size", "lr", "n_components", "n_frames", "preset", "seed", "source",
                "steps", "vectors_dir", "torch"}  # the recipe before landmarks= existed
    assert set(DFE().recipe()) == old_keys
    assert DFE(landmarks="detect").recipe() == DFE().recipe()
    assert DFE(landmarks="detect", flow="tvl1").recipe() == DFE().recipe()  # flow only matters for tracking
    flow = DFE(landmarks="flow").recipe()
    assert flow != DFE().recipe() and flow["landmarks"] == "flow" and flow["flow"] == "farneback"
    assert DFE(landmarks="flow", flow="tvl1").recipe() != flow
    with pytest.raises(ValueError, match="landmarks"):
        DFE(landmarks="nope").fit([])
    with pytest.raises(ValueError, match="flow"):
        DFE(landmarks="flow", flow="nope").fit([])
    with pytest.raises(ValueError, match="source=mesh"):
        DFE(source="vectors", vectors_dir="x", landmarks="flow").fit([])


# tokens and expression vectors of the per-frame path on the tiny synthetic data, recorded with the
# code before landmarks= existed (same samples and settings as test_dfe_on_synthetic_faces_with_the_face_mesh)
DETECT_TOKENS = [[37, 25, 53, 46, 37, 25, 53, 46, 37, 25, 53, 46], [37, 25, 53, 46, 37, 46, 37, 25, 37, 25, 53, 46],
                 [37, 25, 53, 46, 37, 46, 37, 25, 37, 25, 53, 46], [37, 25, 53, 46, 37, 46, 25, 37, 53, 25, 10, 53],
                 [37, 25, 53, 46, 37, 25, 46, 53, 25, 53, 37, 46], [37, 25, 53, 46, 37, 46, 37, 25, 37, 25, 53, 46]]
DETECT_PSI = [[[3.953, -1.6843, -0.4356], [-1.479, 0.2403, -0.3737]],
              [[1.5841, 6.2575, -0.4177], [-0.9175, 0.4266, 1.2522]],
              [[2.1942, -0.3027, 1.3688], [-0.9627, 0.4165, -0.0527]],
              [[4.2083, -1.8417, -0.4198], [-1.9509, -1.6576, -0.5622]],
              [[-0.8633, 1.1185, -0.4246], [-2.1734, -0.4604, -0.3418]],
              [[2.3153, -1.0272, 1.3572], [-1.2354, 0.6881, -0.0439]]]


def _synthetic(root, n=6):
    from benchmark.datasets import read_dataset

    return [s for s in read_dataset("casme2", root / "casme2").samples if s.frames][:n]


def test_detect_output_is_unchanged(synthetic_tiny, rep_cache):
    samples = _synthetic(synthetic_tiny)
    rep = DFE(landmarks="detect", **TINY).fit(samples[:4])
    idx, psi = rep.encode(samples)
    np.testing.assert_array_equal(rep.transform(samples), DETECT_TOKENS)
    np.testing.assert_allclose(psi[:, 1:, :3], DETECT_PSI, atol=2e-3)
    assert rep.state_["canonical"].shape == (468, 3)


def test_flow_landmarks_end_to_end_on_synthetic_faces(synthetic_tiny, rep_cache):
    samples = _synthetic(synthetic_tiny)
    rep = DFE(landmarks="flow", **TINY).fit(samples[:4])
    tokens = rep.transform(samples)
    assert tokens.shape == (6, 12) and tokens.dtype == np.int64
    assert not [e for e in rep.report_ if e["kind"].startswith("no_face")]
    assert rep.state_["canonical"].shape == (478, 3)  # the attention mesh: 468 + 10 iris points
    assert rep.token_displacements().shape == (64, 478, 3)
    raw, _ = rep._raw(samples)
    assert all(r.shape == (3, 478, 3) for r in raw)
    for r in raw:  # detected once: the tracked points start on the onset mesh and move a little
        assert 0 < np.abs(r[1:, :, :2] - r[0, :, :2]).mean() < 5


def test_no_face_on_the_onset_gives_zero_displacement_and_an_event(synthetic_tiny, rep_cache, tmp_path):
    from benchmark.core.samples import Sample

    frames = {}
    for i in range(5):
        path = tmp_path / "blank" / f"img{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), np.full((120, 100, 3), 128, np.uint8))
        frames[i] = path
    blank = Sample("casme2", "casme2/blank", "EP00", "others", onset=0, apex=2, offset=4, frames=frames)
    assert np.isnan(tracked_landmarks(blank, [0, 2, 4], "farneback", __import__(
        "representations._cache", fromlist=["DiskCache"]).DiskCache())).all()
    samples = _synthetic(synthetic_tiny, 4)
    rep = DFE(landmarks="flow", output="expression", **TINY).fit(samples)
    raw, events = rep._raw([blank])
    assert raw == [None]
    assert [e["kind"] for e in events] == ["no_face_onset"] and "onset frame 0" in events[0]["detail"]
    psi = rep.transform([blank])
    zero = ((0 - rep.state_["mean"]) @ rep.state_["components"].T) / float(rep.state_["scale"])
    np.testing.assert_allclose(psi[0], np.repeat(zero[None], 3, axis=0), atol=1e-6)  # zero displacement
    assert any(e["kind"] == "no_face_onset" for e in rep.report_)


@pytest.mark.realdata
def test_flow_tracking_on_casme2(shared_data, rep_cache):
    from benchmark.datasets import read_dataset

    samples = [s for s in read_dataset("casme2", shared_data / "casme2").samples if s.frames][:2]
    raw, events = DFE(landmarks="flow", n_frames=3, n_jobs=1, progress=False)._raw(samples)
    assert all(r is not None and r.shape == (3, 478, 3) for r in raw)
    assert not [e for e in events if e["kind"].startswith("no_face")]
    # the stable points lie inside the official crops
    from representations.base import read_image

    for s, r in zip(samples, raw):
        h, w = read_image(s.frame_path(s.onset)[0]).shape[:2]
        xy = r[0, list(STABLE), :2]
        assert (xy >= 0).all() and (xy[:, 0] < w).all() and (xy[:, 1] < h).all()


def test_jitter_analysis_on_synthetic_faces(synthetic_tiny, rep_cache):
    from benchmark.analyze.dfe import jitter, jitter_table

    r = jitter(_synthetic(synthetic_tiny, 3), progress=False, max_gap=4)  # the generator stores every 4th frame
    assert r["clips"] == 3 and r["per_clip"][0]["frames"][1] - r["per_clip"][0]["frames"][0] == 4
    for name in ("detect", "flow"):
        m = r["summary"][f"{name}_aligned"]
        assert m["neighbour_mean_px"] > 0 and m["apex_mean_px"] > 0
    assert "| flow | aligned |" in jitter_table(r)
    with pytest.raises(ValueError, match="no clip"):
        jitter(_synthetic(synthetic_tiny, 3), progress=False)  # no onset+1 stored
