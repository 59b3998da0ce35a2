"""The ``aligned`` preprocessing (databases' crop framing from raw frames), the CASME II
``frames`` reader option, and the crop / flow agreement on the shared raw sub01 clips."""
from __future__ import annotations

import numpy as np
import pytest

from representations import align
from representations.preprocess import Prep, prepare


def _rot(points, deg, pivot):
    t = np.radians(deg)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # image coords: +deg turns +x towards +y
    return (np.asarray(points, float) - pivot) @ r.T + pivot


FIVE = np.array([[-30.0, 0.0], [30.0, 0.0], [0.0, 30.0], [-22.0, 60.0], [22.0, 60.0]])  # eyes, nose, mouth


# ---------------------------------------------------------------- geometry
def test_five_point_box_levels_the_eyes_and_follows_rotation_scale_and_shift():
    base = align.from_points(FIVE + [300, 200])
    assert base.angle == pytest.approx(0)
    w, h = base.size
    assert w / h == pytest.approx(align.ASPECT)
    r = align.RULES["mtcnn"]
    assert h == pytest.approx(60 * r["height"])  # the eyes are 60 px apart
    assert base.centre == pytest.approx((300 + 60 * r["dx"], 200 + 60 * r["dy"]))
    for deg, scale, shift in ((9.0, 1.0, (0, 0)), (-6.0, 1.5, (40, -25))):
        pts = _rot(FIVE * scale + [300, 200], deg, np.array([300, 200])) + shift
        al = align.from_points(pts)
        assert al.angle == pytest.approx(deg, abs=1e-6)
        assert al.size == pytest.approx((w * scale, h * scale))
        want = _rot(np.array([base.centre]) * 1.0 - [300, 200], deg, np.zeros(2))[0] * scale + [300, 200] + shift
        assert al.centre == pytest.approx(tuple(want), abs=1e-6)


def test_mesh_box_from_the_eye_centres_never_squashed():
    mesh = np.full((468, 2), 300.0)
    mesh[list(align.MESH_EYES[0])] = [[270, 238], [290, 242]]  # centre (280, 240)
    mesh[list(align.MESH_EYES[1])] = [[350, 242], [370, 238]]  # centre (360, 240)
    al = align.from_mesh(mesh)
    r = align.RULES["mediapipe"]
    assert al.angle == pytest.approx(0)
    assert al.size == pytest.approx((align.ASPECT * 80 * r["height"], 80 * r["height"]))
    assert al.centre == pytest.approx((320 + 80 * r["dx"], 240 + 80 * r["dy"]))
    turned = align.from_mesh(_rot(mesh, 7.0, np.array([320, 240])))
    assert turned.angle == pytest.approx(7.0) and turned.size == pytest.approx(al.size)
    w, h = al.out_shape
    assert w / h == pytest.approx(align.ASPECT, abs=0.01)  # the cut-out has the crops' aspect: no squashing


def test_alignment_warp_levels_a_rotated_pattern_and_is_the_same_for_every_frame():
    img = np.zeros((240, 320, 3), np.uint8)
    pts = _rot(FIVE * 1.5 + [160, 100], 10.0, np.array([160, 100]))
    for x, y in pts[:2]:  # two bright "eyes" on a tilted line
        img[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] = 255
    al = align.from_points(pts)
    out = al.apply(img)
    assert out.shape[:2] == (al.out_shape[1], al.out_shape[0])
    ys, xs = np.nonzero(out[..., 0] > 128)
    left, right = ys[xs < out.shape[1] / 2].mean(), ys[xs >= out.shape[1] / 2].mean()
    assert abs(left - right) < 1.0  # eyes level after the warp
    # the corners map back onto the crop's corners
    m = al.matrix()
    c = al.corners()
    back = np.c_[c, np.ones(4)] @ m.T
    w, h = al.out_shape
    np.testing.assert_allclose(back, [[0, 0], [w, 0], [w, h], [0, h]], atol=1e-6)
    assert align.Alignment.from_list(al.to_list()).out_shape == al.out_shape


def test_prepare_aligned_one_transform_per_sample_fallback_and_reuse(monkeypatch):
    import representations.preprocess as pp

    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    al = align.from_points(FIVE + [160, 100])
    calls = []
    monkeypatch.setattr(pp, "find_alignment", lambda rgb, det: calls.append(det) or al)
    out, info = prepare([frame, frame[::-1].copy()], Prep("aligned", detector="mediapipe"))
    assert calls == ["mediapipe"]  # landmarks on the reference frame only
    assert len(out) == 2 and out[0].shape == (al.out_shape[1], al.out_shape[0], 3)  # native scale, RGB
    np.testing.assert_array_equal(out[0], al.apply(frame))
    assert info["align"] == al.to_list() and not info["events"]
    assert info["box"] == [int(round(v)) for v in al.bounds()]
    again, _ = prepare([frame], Prep("aligned"), box=info["align"])  # as apex spotting reuses the onset's box
    np.testing.assert_array_equal(again[0], out[0])
    sized, _ = prepare([frame], Prep("aligned", size=64), box=info["align"])
    assert sized[0].shape == (64, 64, 3)
    monkeypatch.setattr(pp, "find_alignment", lambda rgb, det: None)
    out, info = prepare([frame], Prep("aligned"), key="db/s/clip")
    assert info["events"][0]["kind"] == "no_face" and info["events"][0]["sample"] == "db/s/clip"
    assert out[0].shape[0] == 240 and out[0].shape[1] == round(240 * align.ASPECT)  # centred, official aspect


def test_aligned_is_part_of_the_cache_recipe():
    a, f = Prep("aligned", detector="mediapipe").recipe(), Prep("face", detector="mediapipe").recipe()
    assert a["mode"] == "aligned" and a != f and a["rule"] == align.RULES["mediapipe"] and a["aspect"] == align.ASPECT
    assert Prep("aligned", detector="mtcnn").recipe()["rule"] == align.RULES["mtcnn"]
    with pytest.raises(ValueError, match="detector"):
        Prep("aligned", detector="dlib")
    from representations import REPRESENTATIONS

    tv = lambda **k: REPRESENTATIONS.get("tvl1")(**k).recipe()["preprocess"]  # noqa: E731
    assert tv(preprocess="aligned") != tv(preprocess="face") != tv(preprocess="none")


def test_cli_accepts_preprocess_aligned():
    from benchmark.cli import build_parser, run_settings

    args = build_parser().parse_args(["run", "--rep", "tvl1", "--model", "ststnet", "--protocol", "cde",
                                      "--preprocess", "aligned", "--data-param", "frames=raw"])
    settings = run_settings(args)
    assert settings["rep_params"] == {"preprocess": "aligned"} and settings["data_params"] == {"frames": "raw"}


def test_mediapipe_levels_a_rotated_synthetic_face():
    pytest.importorskip("mediapipe")
    import cv2

    from benchmark.datasets.synthetic import _identity, render_base
    from representations.preprocess import find_alignment

    img, lm = render_base(_identity(np.random.default_rng(3)), (320, 240), supersample=2)
    rgb = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB)
    level = find_alignment(rgb, "mediapipe")
    assert level is not None and abs(level.angle) < 2.5
    cx, cy = lm["center"]
    M = cv2.getRotationMatrix2D((cx, cy), -8.0, 1.0)  # turns the face by +8 degrees (image coordinates)
    turned = find_alignment(cv2.warpAffine(rgb, M, (320, 240), borderMode=cv2.BORDER_REPLICATE), "mediapipe")
    assert turned is not None and turned.angle - level.angle == pytest.approx(8.0, abs=2.0)
    assert turned.size == pytest.approx(level.size, rel=0.1)


# ---------------------------------------------------------------- reader option
def _casme2(tmp_path, raw=(1, 2), cropped=(1,)):
    from tests.test_datasets import make_casme2, touch_frames

    make_casme2(tmp_path, [["01", f"EP01_0{i}", 1, 2, 3, "4", "disgust"] for i in (1, 2)])
    for i in raw:
        touch_frames(tmp_path / "CASME2_RAW_selected" / "sub01" / f"EP01_0{i}", [1, 2, 3], "img{}.jpg")
    for i in cropped:
        touch_frames(tmp_path / "Cropped" / "sub01" / f"EP01_0{i}", [1, 2, 3])
    return tmp_path


def test_casme2_frames_option_chooses_the_folder_and_never_mixes(tmp_path):
    from benchmark.datasets import casme2

    root = _casme2(tmp_path)
    names = lambda r: {s.clip: (s.frames[1].name if s.frames else None) for s in r.samples}  # noqa: E731
    auto = casme2.read(root)
    assert names(auto) == {"EP01_01": "reg_img1.jpg", "EP01_02": "img1.jpg"}
    assert [d.kind for d in auto.defects] == ["frames_source_fallback"]
    assert names(casme2.read(root, frames="raw")) == {"EP01_01": "img1.jpg", "EP01_02": "img1.jpg"}
    strict = casme2.read(root, frames="cropped")
    assert names(strict) == {"EP01_01": "reg_img1.jpg", "EP01_02": None}  # no raw frames mixed in
    assert any(d.kind == "missing_frames" and d.sample.endswith("EP01_02") for d in strict.defects)
    with pytest.raises(ValueError, match="frames must be one of auto, cropped, raw"):
        casme2.read(root, frames="RAW")


def test_casme2_frames_option_missing_folder_and_unknown_option(tmp_path):
    from benchmark.datasets import DatasetError, read_dataset

    root = _casme2(tmp_path, raw=())
    with pytest.raises(DatasetError, match="frames='raw' but .* has no CASME2_RAW_selected"):
        read_dataset("casme2", root, frames="raw")
    with pytest.raises(DatasetError, match=r"casme2: unknown reader option 'frame' \(--data-param; casme2 takes: "
                                           r"frames, "):
        read_dataset("casme2", root, frame="raw")


def test_megc2019_passes_frames_to_its_casme2_sibling(tmp_path):
    from benchmark.datasets import megc2019, read_dataset

    _casme2(tmp_path / "casme2")
    (tmp_path / "megc2019").mkdir()
    (tmp_path / "megc2019" / megc2019.GT_FILE).write_text("casme2,sub01,EP01_01,0\r\ncasme2,sub01,EP01_02,1\r\n")
    get = lambda **k: {s.clip: s.frames[1].name for s in read_dataset("megc2019", tmp_path / "megc2019", **k).samples}  # noqa
    assert get() == {"EP01_01": "reg_img1.jpg", "EP01_02": "img1.jpg"}
    assert get(frames="raw") == {"EP01_01": "img1.jpg", "EP01_02": "img1.jpg"}
    with pytest.raises(ValueError, match="megc2019: frames must be one of"):
        read_dataset("megc2019", tmp_path / "megc2019", frames="bogus")


# ---------------------------------------------------------------- real data
@pytest.mark.realdata
def test_aligned_crops_match_the_official_crops_on_raw_sub01(shared_data):
    """Targets of issue 15 on the shared raw clips: IoU >= 0.8 and tvl1 flow corr. >= 0.8."""
    pytest.importorskip("mediapipe")
    from benchmark.analyze.crops import RAW_DIR, clips, measure_clip, summary

    if not (shared_data / RAW_DIR).is_dir():
        pytest.skip(f"{shared_data / RAW_DIR} (raw CASME II frames) not found")
    pairs = clips(shared_data)
    rows = [measure_clip(raw, off, modes=("aligned/mediapipe",), frames=3, on_cropped=False) for raw, off in pairs]
    assert len(rows) >= 4
    s = summary(rows)["modes"]["aligned/mediapipe"]
    assert s["iou"] >= 0.8, s
    assert s["corr"] >= 0.8, s


@pytest.mark.realdata
def test_the_tvl1_representation_runs_aligned_as_the_analysis_measures_it(shared_data, rep_cache):
    pytest.importorskip("mediapipe")
    from dataclasses import replace

    from benchmark.analyze.crops import RAW_DIR, _rgb, clips, correlation, flow_maps, pairs
    from representations import REPRESENTATIONS

    if not (shared_data / RAW_DIR).is_dir():
        pytest.skip(f"{shared_data / RAW_DIR} (raw CASME II frames) not found")
    raw, off = clips(shared_data)[0]
    on, ap = pairs(raw, off)
    sample = replace(raw, onset=on, apex=ap)
    rep = REPRESENTATIONS.get("tvl1")(preprocess="aligned", detector="mediapipe", progress=False)
    X = rep.transform([sample])
    out, _ = prepare([_rgb(raw.frames[on]), _rgb(raw.frames[ap])], Prep("aligned", detector="mediapipe"))
    assert X.shape == (1, 3, 28, 28) and not rep.report_
    assert correlation(X[0], flow_maps(*out)) > 0.999


def test_detector_auto_takes_the_mesh_for_aligned_and_mtcnn_otherwise():
    """The default detector is the one that met the crop targets for `aligned` (the mesh) and
    the Paradox paper's for `face` (MTCNN); the recipe records the detector actually used, so
    `auto` and its choice share cache entries and older `face` recipes are unchanged."""
    from representations.flow import TVL1

    assert TVL1(preprocess="aligned")._prep().detector == "mediapipe"
    assert TVL1(preprocess="face")._prep().detector == "mtcnn"
    assert TVL1(preprocess="face").recipe() == TVL1(preprocess="face", detector="mtcnn").recipe()
    assert TVL1(preprocess="aligned").recipe() == TVL1(preprocess="aligned", detector="mediapipe").recipe()
    assert TVL1(regions="htnet").recipe()["detector"] == "mtcnn"
