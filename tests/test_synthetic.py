"""The embedded synthetic dataset: shape, formats, determinism, readers, face detector."""
from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from benchmark.core import paths
from benchmark.datasets import synthetic as syn

cv2 = pytest.importorskip("cv2")
openpyxl = pytest.importorskip("openpyxl")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return syn.generate(tmp_path_factory.mktemp("syn") / "root", seed=0, scale="tiny")


def _sheet_rows(path: Path, sheet: str | None = None) -> list[tuple]:
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet] if sheet else wb.worksheets[0]
    return [tuple(r) for r in ws.iter_rows(values_only=True)]


def _sample_frames(root: Path, k: int, seed: int = 0) -> list[Path]:
    files = sorted(p for p in root.rglob("*") if p.suffix in {".jpg", ".bmp"} and "megc2019" not in p.parts)
    return random.Random(seed).sample(files, k)


# ---------------------------------------------------------------- shape (no frames written)


def test_default_plan_has_the_cde_shape():
    clips = syn.plan(seed=0, scale="default")
    listed = syn.megc_rows(clips)
    subjects = Counter(p.database for p in {(p.database, p.subject): p for p in listed}.values())
    assert subjects == {"casme2": 24, "samm": 28, "smic": 16}  # 68 subjects
    assert 230 <= len(listed) <= 260
    share = np.bincount([p.label for p in listed], minlength=3) / len(listed)
    assert np.allclose(share, syn.CLASS_SHARE, atol=0.02)
    per_subject = Counter((p.database, p.subject) for p in listed)
    assert 3 <= np.mean(list(per_subject.values())) <= 4 and min(per_subject.values()) >= 2
    # sheets also hold clips outside the MEGC list, as the real ones do
    excluded = Counter((p.database, p.emotion) for p in clips if p.label is None)
    assert set(excluded) == {("casme2", "others"), ("samm", "Other")}
    assert {p.emotion for p in clips if p.database == "casme2"} == {"disgust", "repression", "happiness", "surprise", "others"}
    assert {p.emotion for p in clips if p.database == "samm"} >= {"Anger", "Contempt", "Happiness", "Surprise", "Other"}
    assert len({(p.database, p.subject, p.clip) for p in clips}) == len(clips)


def test_timing_follows_each_databases_frame_rate():
    for p in syn.plan(seed=0, scale="default"):
        rise, total = (p.apex - p.onset) / p.fps, (p.offset - p.onset) / p.fps
        assert 0.05 <= rise <= 0.13 and 0.13 <= total <= 0.31, p
        assert p.frame_numbers[0] == p.onset and p.frame_numbers[-1] == p.offset and p.apex in p.frame_numbers
        assert 14 <= len(p.frame_numbers) <= 32
    assert {syn.FPS[db] for db in ("casme2", "samm")} == {200.0} and syn.FPS["smic"] == 100.0


# ---------------------------------------------------------------- files and formats


def test_layout_and_sheet_formats(tiny):
    casme2 = _sheet_rows(tiny / "casme2" / "CASME2-coding-20140508.xlsx")
    assert casme2[0] == ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                         "Estimated Emotion")
    assert openpyxl.load_workbook(tiny / "casme2" / "CASME2-coding-20140508.xlsx").sheetnames == ["Sheet1", "Sheet2", "Sheet3"]
    sub, clip, onset = casme2[1][0], casme2[1][1], casme2[1][2]
    assert (tiny / "casme2" / "Cropped" / f"sub{sub}" / clip / f"reg_img{onset}.jpg").is_file()

    samm = _sheet_rows(tiny / "samm" / "SAMM_Micro_FACS_Codes_v2.xlsx", "MICRO_ONLY")
    assert samm[13] == tuple(syn.SAMM_HEADER)  # 13 banner rows above the header, as in v2
    sub, clip, onset = samm[14][0], samm[14][1], samm[14][3]
    frame = tiny / "samm" / sub / clip / f"{sub}_{onset:05d}.jpg"
    assert cv2.imread(str(frame), cv2.IMREAD_UNCHANGED).ndim == 2  # grayscale

    smic = _sheet_rows(tiny / "smic" / "smic_apex.xlsx")
    assert smic[0][:7] == ("data", "subject", "clip", "label", "onset_frame", "apex_frame", "offset_frame")
    assert all((tiny / r[8]).is_file() for r in smic[1:])  # apex_frame_path, relative to the data root

    gt = (tiny / "megc2019" / "combined_3class_gt.csv").read_bytes()
    assert gt.count(b"\r\n") == gt.count(b"\n") == 36 and not gt.startswith(b"dataset")
    rows = list(csv.reader(gt.decode().splitlines()))
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), key=["casme2", "smic", "samm"].index)
    assert all(r[1].isdigit() and not r[1].startswith("0") for r in rows if r[0] == "samm")
    flows = sorted((tiny / "megc2019" / "STSNet_whole_norm_u_v_os").iterdir())
    assert len(flows) == 36 and all(f.name.endswith(" .png") for f in flows)
    crop = cv2.imread(str(next((tiny / "megc2019" / "combined_datasets_whole").iterdir())))
    assert crop.shape == (224, 224, 3)


def test_flow_images_are_stststnet_format(tiny):
    """28x28, every channel stretched to 0..255, (strain, v, u) as cv2.imread returns it."""
    p = next(p for p in syn.megc_rows(syn.plan(0, "tiny")) if p.database == "smic")  # lossless frames
    read = lambda n: cv2.imread(str(tiny / p.frame_relpath(n)), cv2.IMREAD_UNCHANGED)  # noqa: E731
    img = cv2.imread(str(tiny / "megc2019" / "STSNet_whole_norm_u_v_os" / syn.flow_name(p)))
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    assert (img.reshape(-1, 3).min(0) == 0).all() and (img.reshape(-1, 3).max(0) == 255).all()
    assert np.array_equal(img, syn.flow_image(read(p.onset), read(p.apex)))


# ---------------------------------------------------------------- determinism, idempotence, atomicity


def test_same_seed_same_data_other_seed_differs(tiny, tmp_path):
    again = syn.generate(tmp_path / "again", seed=0, scale="tiny")
    for rel in ("casme2/CASME2-coding-20140508.xlsx", "samm/SAMM_Micro_FACS_Codes_v2.xlsx", "smic/smic_apex.xlsx",
                "megc2019/combined_3class_gt.csv", "megc2019/combined_3_class2_for_optical_flow.csv", syn.MARKER):
        assert (tiny / rel).read_bytes() == (again / rel).read_bytes(), rel
    for frame in _sample_frames(tiny, 12):
        rel = frame.relative_to(tiny)
        assert np.array_equal(cv2.imread(str(frame), cv2.IMREAD_UNCHANGED),
                              cv2.imread(str(again / rel), cv2.IMREAD_UNCHANGED)), rel
    other = syn.generate(tmp_path / "other", seed=1, scale="tiny")
    assert _sheet_rows(other / "casme2" / "CASME2-coding-20140508.xlsx") != _sheet_rows(
        tiny / "casme2" / "CASME2-coding-20140508.xlsx")
    a = syn.plan(0, "tiny")[0]
    b = syn.plan(1, "tiny")[0]
    fa = next(syn.render_clip(a, syn.subject_base(a)))[1]
    fb = next(syn.render_clip(b, syn.subject_base(b)))[1]
    assert fa.shape != fb.shape or not np.array_equal(fa, fb)


def test_generate_is_idempotent_and_guards_foreign_folders(tiny, tmp_path, monkeypatch):
    stamp = (tiny / syn.MARKER).stat().st_mtime_ns
    monkeypatch.setattr(syn, "_write_all", lambda *a: pytest.fail("regenerated a complete dataset"))
    assert syn.generate(tiny, seed=0, scale="tiny") == tiny
    assert (tiny / syn.MARKER).stat().st_mtime_ns == stamp
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        syn.generate(foreign, scale="tiny")
    with pytest.raises(ValueError):
        syn.plan(scale="huge")


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def boom(root, seed, scale):
        (root / "casme2").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(syn, "_write_all", boom)
    with pytest.raises(KeyboardInterrupt):
        syn.generate(tmp_path / "root", scale="tiny")
    assert list(tmp_path.iterdir()) == []


def test_ensure_synthetic_uses_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(syn, "_write_all", lambda root, seed, scale: {"stub": 1})
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "env-cache"))
    root = syn.ensure_synthetic(seed=3)
    assert root == tmp_path / "env-cache" / f"synthetic-v{syn.VERSION}-seed3"
    assert json.loads((root / syn.MARKER).read_text())["seed"] == 3
    assert syn.ensure_synthetic(tmp_path / "c", seed=0, scale="tiny").name == f"synthetic-v{syn.VERSION}-seed0-tiny"


# ---------------------------------------------------------------- the real readers


def test_readers_read_the_generated_databases(tiny):
    from benchmark.datasets import read_dataset

    expected_notes = {"smic": {"apex_estimated", "name_normalized"}}  # file-level notes SMIC always gets
    for db in ("casme2", "samm", "smic"):
        report = read_dataset(db, tiny / db)
        assert {d.kind for d in report.defects} <= expected_notes.get(db, set()), report.defects
        assert len(report.samples) == sum(p.database == db for p in syn.plan(0, "tiny"))
        assert all(s.frames and s.onset in s.frames and s.apex in s.frames and s.offset in s.frames
                   for s in report.samples)
    megc = read_dataset("megc2019", tiny / "megc2019")
    assert not megc.defects
    assert len(megc.subjects) == 18 and {s.emotion for s in megc.samples} == set(syn.CLASSES)
    assert all(s.frames and {"flow", "apex_image"} <= set(s.extras) for s in megc.samples)
    assert all(s.grayscale == (s.dataset == "samm") for s in megc.samples)


# ---------------------------------------------------------------- face detector


@pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype")
def test_faces_are_found_by_the_face_detector():
    """mediapipe's short-range detector finds >= 95% of 200 frames of the default scale."""
    mp = pytest.importorskip("mediapipe")
    clips = syn.plan(seed=0, scale="default")
    rng = random.Random(0)
    frames = []
    for p in rng.sample(clips, 50):
        rendered = list(syn.render_clip(p, syn.subject_base(p)))
        frames += [img for _, img in rng.sample(rendered, 4)]
    found = 0
    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as detector:
        for img in frames:
            bgr = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            found += bool(detector.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).detections)
    assert found / len(frames) >= 0.95, f"{found}/{len(frames)} frames with a detected face"


def test_two_generation_processes_write_the_same_bytes(tiny, tmp_path):
    """The default scale renders in one process per core: a file must not depend on which
    process wrote it (the tiny scale forced onto two processes here)."""
    parts = syn._subject_parts(syn.plan(0, "tiny"), 2)
    assert len(parts) == 2
    assert not {(p.database, p.subject) for p in parts[0]} & {(p.database, p.subject) for p in parts[1]}
    assert [p for part in parts for p in part] == syn.plan(0, "tiny")  # whole subjects, order kept
    two = tmp_path / "two"
    two.mkdir()
    counts = syn._write_all(two, 0, "tiny", workers=2)
    assert counts == json.loads((tiny / syn.MARKER).read_text())["counts"]
    files = sorted(f.relative_to(tiny) for f in tiny.rglob("*") if f.is_file() and f.name != syn.MARKER)
    assert files == sorted(f.relative_to(two) for f in two.rglob("*") if f.is_file())
    assert all((tiny / f).read_bytes() == (two / f).read_bytes() for f in files)
