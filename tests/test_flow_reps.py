"""Pixel representations: flow + strain, frame difference, preprocessing, regions,
temporal sampling and apex spotting (synthetic frames; a few real-data checks)."""
from dataclasses import replace

import cv2
import numpy as np
import pytest

from benchmark.datasets import read_dataset
from representations import REPRESENTATIONS
from representations.flow import minmax, optical_strain
from representations.base import RepresentationError
from representations.preprocess import Face, Prep, centre_square, prepare
from representations.regions import crop_regions, region_centres
from representations.sampling import temporal_indices


@pytest.fixture(scope="module")
def casme2(synthetic_tiny):
    return read_dataset("casme2", synthetic_tiny / "casme2").samples[:4]


def _texture(h=96, w=96, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w)).astype(np.uint8), (0, 0), 2.0)


# ---------------------------------------------------------------- strain and flow
def test_strain_of_known_fields():
    y, x = np.mgrid[0:32, 0:32].astype(np.float32)
    zero = np.zeros_like(x)
    assert np.allclose(optical_strain(0.1 * x, zero), 0.1, atol=1e-5)  # stretch: |u_x|
    assert np.allclose(optical_strain(0.2 * y, zero), 0.2 / np.sqrt(2), atol=1e-5)  # shear: sqrt(1/2 u_y^2)
    assert np.allclose(optical_strain(-0.3 * y, 0.3 * x), 0.0, atol=1e-5)  # rotation has no strain
    assert np.allclose(optical_strain(0.1 * x, zero, "forward")[:, :-1], 0.1, atol=1e-5)


@pytest.mark.parametrize("name", ["tvl1", "farneback"])
def test_flow_recovers_a_translation(name):
    img = _texture()
    shifted = cv2.warpAffine(img, np.float32([[1, 0, 1.5], [0, 1, -1.0]]), (96, 96), borderMode=cv2.BORDER_REFLECT)
    f = REPRESENTATIONS.get(name)().flow(img, shifted)
    centre = f[24:72, 24:72]
    assert np.median(centre[..., 0]) == pytest.approx(1.5, abs=0.25)
    assert np.median(centre[..., 1]) == pytest.approx(-1.0, abs=0.25)


def test_minmax_per_channel():
    a = np.stack([np.arange(16.0).reshape(4, 4) - 3, np.full((4, 4), 7.0)])
    out = minmax(a)
    assert out[0].min() == 0 and out[0].max() == 255 and (out[1] == 0).all()


@pytest.mark.parametrize("name", ["tvl1", "farneback"])
def test_flow_representation_shapes_and_options(name, casme2, rep_cache):
    cls = REPRESENTATIONS.get(name)
    X = cls().transform(casme2)
    assert X.shape == (4, 3, 28, 28) and X.dtype == np.float32
    assert (X.min(axis=(2, 3)) == 0).all() and (X.max(axis=(2, 3)) == pytest.approx(255))
    rev = cls(channel_order="cv2", magnitude=True).transform(casme2)
    assert rev.shape == (4, 4, 28, 28)
    np.testing.assert_allclose(rev[:, 1:][:, ::-1], X, atol=1e-3)  # cv2 = (mag, strain, v, u)
    raw = cls(normalize="none", size=56).transform(casme2)
    assert raw.shape == (4, 3, 56, 56) and raw[:, 2].min() >= 0 and np.abs(raw[:, :2]).max() < 10
    assert cls.kind == "flow_image" and "preprocess" in cls().recipe()


def test_expression_moves_more_than_a_neutral_pair(casme2, rep_cache):
    """Onset -> apex flow of a synthetic micro-expression beats onset -> onset+stride."""
    rep = REPRESENTATIONS.get("farneback")(normalize="none")
    expr = np.abs(rep.transform(casme2)[:, :2]).mean()
    still = [replace(s, apex=sorted(s.frames)[1] if sorted(s.frames)[1] < s.apex else s.onset) for s in casme2]
    assert np.abs(rep.transform(still)[:, :2]).mean() < expr


def test_framediff_is_apex_minus_onset(casme2, rep_cache):
    s = casme2[0]
    X = REPRESENTATIONS.get("framediff")(size=28).transform([s])
    rd = lambda i: cv2.resize(cv2.imread(str(s.frames[i]))[:, :, ::-1].astype(np.float32), (28, 28),  # noqa: E731
                              interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(X[0].transpose(1, 2, 0), rd(s.apex) - rd(s.onset), atol=1e-3)
    norm = REPRESENTATIONS.get("framediff")(space="normalized").transform([s])
    np.testing.assert_allclose(norm[0, 0], X[0, 0] / 255 / 0.229, atol=1e-4)
    assert REPRESENTATIONS.get("framediff")(space="standardized", normalize="minmax").transform([s]).max() == 255


# ---------------------------------------------------------------- preprocessing
def test_raw_is_a_centre_crop_in_rgb():
    frame = np.zeros((100, 60, 3), np.uint8)
    frame[20:80, :, 0] = 200  # red band covering exactly the centre square
    out, info = prepare([frame], Prep("raw"))
    assert info["box"] == [0, 20, 60, 80] == list(centre_square(frame.shape))
    assert out[0].shape == (384, 384, 3) and out[0][..., 0].min() == 200


def test_face_mode_expands_the_box_and_records_the_fallback(monkeypatch):
    import representations.preprocess as pp

    frame = np.full((200, 160, 3), 90, np.uint8)
    face = Face((40.0, 50.0, 120.0, 170.0), np.zeros((5, 2), np.float32), 0.99)
    monkeypatch.setattr(pp, "detect_face", lambda rgb, det: face)
    out, info = prepare([frame, frame], Prep("face"))
    assert info["box"] == [20, 30, 140, 190] and not info["events"]
    assert out[0].shape == (224, 224) and len(out) == 2  # grayscale, same box for every frame
    monkeypatch.setattr(pp, "detect_face", lambda rgb, det: None)
    out, info = prepare([frame], Prep("face"), key="db/s/clip")
    assert info["box"] == [0, 20, 160, 180]
    assert info["events"][0]["kind"] == "no_face" and "centre crop" in info["events"][0]["detail"]


@pytest.mark.parametrize("detector", ["mediapipe", "mtcnn"])
def test_detectors_find_the_synthetic_face(detector, casme2):
    pytest.importorskip("facenet_pytorch" if detector == "mtcnn" else "mediapipe")
    from representations.preprocess import detect_face

    s = casme2[0]
    face = detect_face(cv2.imread(str(s.frames[s.onset]))[:, :, ::-1].copy(), detector)
    assert face is not None
    le, re_, nose, lm, rm = face.points
    assert le[0] < re_[0] and lm[0] < rm[0] and le[1] < nose[1] < lm[1]  # (x, y), image left first


def test_face_preprocessing_changes_the_recipe_and_channels(casme2, rep_cache):
    pytest.importorskip("mediapipe")
    rep = REPRESENTATIONS.get("framediff")(preprocess="face", detector="mediapipe")
    X = rep.transform(casme2[:2])
    assert X.shape == (2, 1, 28, 28)
    assert rep.recipe()["preprocess"] == {"mode": "face", "size": 224, "version": 1, "detector": "mediapipe",
                                          "margin": 20, "box_from": "reference frame"}


# ---------------------------------------------------------------- regions
def test_regions_use_x_y_and_the_transposed_variant_swaps_them():
    img = np.arange(28 * 28, dtype=np.float32).reshape(1, 28, 28)
    pts = np.array([[8, 10], [20, 10], [14, 16], [9, 20], [19, 21]], np.float32)  # (x, y)
    centres = region_centres(pts, (28, 28), 28)
    assert centres.tolist() == [[8, 10], [20, 10], [9, 20], [19, 21]]
    out = crop_regions(img, centres, "htnet")
    assert out.shape == (1, 28, 28)
    assert out[0, 7, 7] == img[0, 10, 8]  # centre of the left-eye patch is pixel (row y=10, col x=8)
    assert out[0, 7, 21] == img[0, 10, 20] and out[0, 21, 7] == img[0, 20, 9]
    t = crop_regions(img, centres, "htnet-transposed")
    assert t[0, 7, 7] == img[0, 8, 10]  # public code: row = x


def test_region_centres_scale_and_clamp():
    pts = np.array([[0, 0], [230, 10], [100, 100], [5, 270], [200, 280]], np.float32)
    c = region_centres(pts, (280, 230), 28)
    assert c.min() >= 7 and c.max() <= 21 and c[1, 0] == 21 and c[0, 1] == 7


def test_regions_option_on_a_flow_representation(casme2, rep_cache):
    pytest.importorskip("mediapipe")
    rep = REPRESENTATIONS.get("farneback")(regions="htnet", detector="mediapipe")
    X = rep.transform(casme2[:2])
    assert X.shape == (2, 3, 28, 28)
    assert not np.allclose(X, REPRESENTATIONS.get("farneback")().transform(casme2[:2]))
    with pytest.raises(ValueError, match="regions"):
        REPRESENTATIONS.get("tvl1")(regions="eyes").transform(casme2[:1])


# ---------------------------------------------------------------- sampling and spotting
def test_temporal_sampling_phases():
    assert temporal_indices(10, 30, 60, "AF") == [30]
    assert temporal_indices(10, 30, 60, "KFS") == [10, 30, 60]
    mfs = temporal_indices(10, 30, 60, "MFS")
    assert mfs == [10, 11, 12, 13, 28, 29, 30, 31, 32, 57, 58, 59, 60]
    assert temporal_indices(10, 11, 12, "MFS")[:4] == [10, 11, 12, 12]  # clamped to the clip
    with pytest.raises(ValueError):
        temporal_indices(1, 2, 3, "XYZ")


def test_frames_representation(casme2, rep_cache):
    rep = REPRESENTATIONS.get("frames")(sampling="MFS", size=32)
    X = rep.transform(casme2[:2])
    assert X.shape == (2, 13, 3, 32, 32) and X.dtype == np.uint8
    assert any(e["kind"] == "nearest_frame" for e in rep.report_)  # synthetic frames are strided
    assert REPRESENTATIONS.get("frames")(sampling="KFS", size=32).transform(casme2[:2]).shape == (2, 3, 3, 32, 32)


def test_apex_spotting_on_synthetic_clips(synthetic_tiny):
    from benchmark.analyze.apex import evaluate

    samples = read_dataset("casme2", synthetic_tiny / "casme2").samples
    r = evaluate(samples, "flow")
    assert r["n"] >= 10 and r["median_abs_frames"] <= 4  # written every 4th frame
    assert evaluate(samples, "lbp")["mean_abs_frames"] < 10


def test_missing_apex_is_spotted_and_recorded(casme2, rep_cache):
    s = replace(casme2[0], apex=None)
    rep = REPRESENTATIONS.get("farneback")()
    assert rep.transform([s]).shape == (1, 3, 28, 28)
    assert [e["kind"] for e in rep.report_] == ["apex_spotted"]


def test_nearest_frame_and_missing_frames(casme2, rep_cache):
    s = casme2[0]
    gap = next(i for i in range(s.onset, s.offset) if i not in s.frames)
    rep = REPRESENTATIONS.get("farneback")()
    rep.transform([replace(s, apex=gap)])
    assert rep.report_[0]["kind"] == "nearest_frame" and str(gap) in rep.report_[0]["detail"]
    bare = replace(s, frames={})
    with pytest.raises(RepresentationError, match="no frames.*on_missing=blank"):
        rep.transform([s, bare])
    blank = REPRESENTATIONS.get("farneback")(on_missing="blank")
    X = blank.transform([s, bare])
    assert (X[1] == 0).all() and blank.report_[-1]["kind"] == "no_frames"


def test_runner_writes_the_rep_report(synthetic_tiny, tmp_path, rep_cache):
    import json

    from benchmark.config import resolve
    from benchmark.runner import execute

    cfg = resolve(dict(rep="farneback", model="logreg", protocol="cde", dataset="casme2",
                       data_root=str(synthetic_tiny), out=str(tmp_path / "runs"), n_boot=20,
                       rep_params={"apex": "spotted"}))
    run = execute(cfg, progress=False)
    report = json.loads((run / "rep_report.json").read_text())
    assert report["counts"]["apex_spotted"] == 12 and report["recipe"]["rep"] == "farneback"
    assert (run / "metrics.json").exists()


# ---------------------------------------------------------------- real data
@pytest.mark.realdata
def test_tvl1_matches_the_published_ststnet_flows(shared_data, rep_cache):
    """The suite's tvl1 at 28x28 min-max against STSNet_whole_norm_u_v_os (u and v channels)."""
    report = read_dataset("megc2019", shared_data / "megc2019")
    samples = [s for s in report.samples if s.dataset == "casme2" and s.frames and "flow" in s.extras][:40:10]
    ours = REPRESENTATIONS.get("tvl1")(channel_order="cv2").transform(samples)
    theirs = REPRESENTATIONS.get("precomputed")().transform(samples)
    corr = [np.corrcoef(ours[:, c].ravel(), theirs[:, c].ravel())[0, 1] for c in range(3)]
    assert corr[1] > 0.6 and corr[2] > 0.6, corr  # v, u
