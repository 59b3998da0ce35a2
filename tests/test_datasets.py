"""Dataset readers: real data (read in place, skipped when absent) and broken inputs.

Nothing from ../shared/data is copied into the repository: tests that need a
real sheet next to fake frames copy it into pytest's tmp_path at run time.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from benchmark.data_check import check, format_text
from benchmark.datasets import DatasetError, read_dataset
from benchmark.datasets import casme2, casme3, megc2019, samm, smic
from benchmark.datasets._frames import index_frames
from benchmark.datasets.flowdirs import flow_index, flow_labels, parse_name

CASME2_MISMATCHES = {
    "casme2/sub02/EP01_11f", "casme2/sub02/EP14_01", "casme2/sub07/EP06_01", "casme2/sub12/EP09_02",
    "casme2/sub12/EP09_06", "casme2/sub20/EP16_01", "casme2/sub23/EP05_24f",  # apex frame missing
    "casme2/sub02/EP11_01", "casme2/sub16/EP01_08",  # folder ends early
}


# ----------------------------------------------------------------- helpers


def write_xlsx(path: Path, header: list, rows: list[list], banner: list[list] | None = None,
               title: str = "Sheet1") -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for line in banner or []:
        ws.append(line)
    ws.append(header)
    for r in rows:
        ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def touch_frames(folder: Path, numbers, pattern: str = "reg_img{}.jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / pattern.format(n)).write_bytes(b"")


CASME2_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]


def kinds(report, key=None) -> Counter:
    return Counter(d.kind for d in report.defects if key is None or d.sample == key)


def by_key(report) -> dict:
    return {s.key: s for s in report.samples}


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_casme2(shared_data):
    return read_dataset("casme2", shared_data / "casme2")


@pytest.fixture(scope="module")
def real_megc(shared_data):
    return read_dataset("megc2019", shared_data / "megc2019")


@pytest.mark.realdata
def test_casme2_real_counts(real_casme2):
    r = real_casme2
    assert len(r.samples) == 255
    assert len(r.subjects) == 26
    assert all(s.subject.startswith("casme2/sub") and len(s.subject) == len("casme2/sub01") for s in r.samples)
    assert Counter(s.emotion for s in r.samples) == {
        "others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25, "sadness": 7, "fear": 2}
    assert {s.fps for s in r.samples} == {200.0}
    assert len({s.key for s in r.samples}) == 255


@pytest.mark.realdata
def test_casme2_real_mismatches_reported_with_fallback(real_casme2):
    r = real_casme2
    frame_defects = [d for d in r.defects if d.kind in {"frame_range_mismatch", "missing_frames", "missing_frame"}]
    assert {d.sample for d in frame_defects} == CASME2_MISMATCHES
    assert len(frame_defects) == 9
    for d in frame_defects:
        assert d.action  # the fallback taken is stated
    samples = by_key(r)
    # the coded apex is outside the folder: nearest frame used and said so
    s = samples["casme2/sub02/EP01_11f"]
    assert (s.onset, s.apex, s.offset) == (46, 91, 96)  # annotation kept as coded
    assert s.frame_path(s.apex)[1] == 66
    d = next(d for d in r.defects if d.sample == s.key)
    assert d.kind == "frame_range_mismatch" and "apex 91 -> 66" in d.detail and "nearest" in d.action
    # onset missing too: onset and apex collapse onto one frame, which the detail says
    d = next(d for d in r.defects if d.sample == "casme2/sub07/EP06_01")
    assert "onset 15 -> 65" in d.detail and "same frame" in d.detail
    # the folder of sub12/EP09_02 is absent: kept without frames, reported
    assert samples["casme2/sub12/EP09_02"].frames == {}
    # clips named like another subject's (EP09_02) are not confused
    assert samples["casme2/sub25/EP09_02"].frames
    # every other sample has its three annotated frames
    for s in r.samples:
        if s.key not in CASME2_MISMATCHES:
            assert {s.onset, s.apex, s.offset} <= set(s.frames), s.key


@pytest.mark.realdata
def test_casme2_real_skip_policy(shared_data):
    r = casme2.read(shared_data / "casme2", frame_fallback="skip")
    assert len(r.samples) == 255 - 9
    assert {d.sample for d in r.defects if d.action == "sample skipped"} == CASME2_MISMATCHES


@pytest.mark.realdata
def test_megc2019_real(real_megc):
    r = real_megc
    assert len(r.samples) == 442
    assert len(r.subjects) == 68
    assert Counter(s.emotion for s in r.samples) == {"negative": 250, "positive": 109, "surprise": 83}
    per_db = {db: Counter(s.emotion for s in r.samples if s.dataset == db) for db in ("smic", "casme2", "samm")}
    assert per_db["smic"] == {"negative": 70, "positive": 51, "surprise": 43}
    assert per_db["casme2"] == {"negative": 88, "positive": 32, "surprise": 25}
    assert per_db["samm"] == {"negative": 92, "positive": 26, "surprise": 15}
    subjects = Counter(sub.split("/")[0] for sub in r.subjects)
    assert subjects == {"smic": 16, "casme2": 24, "samm": 28}
    for s in r.samples:
        assert "flow" in s.extras and s.extras["flow"].is_file(), s.key
        assert "apex_image" in s.extras and s.extras["apex_image"].is_file(), s.key
    smic01 = by_key(r)["smic/s01/s01_ne_01"]
    assert smic01.extras["apex_image"].name == "s01_s1_ne_01.jpg"
    assert smic01.extras["flow"].name == "s01_s01_ne_01 .png"
    # frames joined from ../casme2 by subject AND clip (EP09_02 exists for sub12 and sub25)
    samples = by_key(r)
    assert samples["casme2/sub12/EP09_02"].frames == {}
    assert samples["casme2/sub25/EP09_02"].frames
    assert {d.sample for d in r.defects if d.kind == "missing_frames"} == {"casme2/sub12/EP09_02"}


@pytest.mark.realdata
def test_megc2019_apex_names_without_flow_list(shared_data, tmp_path):
    """SMIC apex crops are named s01_s1_ne_01: found even without the name list."""
    root = tmp_path / "megc2019"
    root.mkdir()
    src = shared_data / "megc2019"
    shutil.copy(src / megc2019.GT_FILE, root / megc2019.GT_FILE)  # copy into tmp only
    (root / megc2019.APEX_DIR).symlink_to(src / megc2019.APEX_DIR)
    (root / megc2019.FLOW_DIR).symlink_to(src / megc2019.FLOW_DIR)
    r = megc2019.read(root, join_frames=False)
    assert len(r.samples) == 442
    assert all("apex_image" in s.extras and "flow" in s.extras for s in r.samples)
    assert not r.defects


@pytest.mark.realdata
def test_samm_real(shared_data):
    r = read_dataset("samm", shared_data / "samm")
    assert len(r.samples) == 159
    assert all(s.grayscale and s.fps == 200 for s in r.samples)
    assert "samm/006" in r.subjects
    order = {d.sample: d for d in r.defects if d.kind == "frame_order"}
    assert set(order) == {"samm/028/028_4_1", "samm/032/032_3_1"}
    assert "apex 1143 > offset 1134" in order["samm/028/028_4_1"].detail
    assert "onset 4896 > apex 1930" in order["samm/032/032_3_1"].detail
    fixed = by_key(r)["samm/032/032_3_1"]
    assert fixed.onset <= fixed.apex <= fixed.offset
    emotions = Counter(s.emotion for s in r.samples)
    assert emotions["anger"] == 57 and emotions["others"] == 26 and "other" not in emotions
    assert kinds(r)["no_frames"] == 1  # annotation-only copy: one note, no per-sample noise
    kept = samm.read(shared_data / "samm", order="keep")
    assert by_key(kept)["samm/032/032_3_1"].apex == 1930
    assert len(samm.read(shared_data / "samm", order="skip").samples) == 157


@pytest.mark.realdata
def test_smic_real(shared_data):
    r = read_dataset("smic", shared_data / "smic")
    assert len(r.samples) == 164
    assert len(r.subjects) == 16
    assert Counter(s.emotion for s in r.samples) == {"negative": 70, "positive": 51, "surprise": 43}
    assert "smic/s01" in r.subjects and "smic/s1" not in r.subjects
    assert "smic/s01/s01_ne_01" in by_key(r)
    assert kinds(r)["apex_estimated"] == 1
    assert kinds(r)["name_normalized"] == 1
    assert all(s.fps == 100 for s in r.samples)
    # the same keys as the MEGC2019 list uses for SMIC
    gt = {f"{db}/{sub}/{clip}" for db, sub, clip, _, _ in megc2019.read_gt(shared_data / "megc2019" / megc2019.GT_FILE)
          if db == "smic"}
    assert gt == set(by_key(r))


@pytest.mark.realdata
def test_casme3_real(shared_data):
    r = read_dataset("casme3", shared_data / "casme3")
    assert len(r.samples) == 860
    assert len(r.subjects) == 94
    assert len({s.key for s in r.samples}) == 860
    assert all(s.fps == 30 for s in r.samples)
    flagged = {d.sample for d in r.defects if d.kind in {"frame_order", "missing_offset"}}
    assert flagged == {"casme3/spNO.149/d_112", "casme3/spNO.216/d_3647",
                       "casme3/spNO.40/e_1812", "casme3/spNO.40/e_2327"}
    assert set(Counter(s.emotion for s in r.samples)) == {
        "anger", "disgust", "fear", "happy", "sad", "surprise", "others"}
    assert not kinds(r)["unknown_emotion"]


@pytest.mark.realdata
def test_data_check_real(shared_data):
    summary = check("megc2019", shared_data / "megc2019")
    json.dumps(summary)
    assert summary["n_samples"] == 442 and summary["n_subjects"] == 68
    assert summary["per_database"]["smic"] == {
        "samples": 164, "subjects": 16, "classes": {"negative": 70, "positive": 51, "surprise": 43}}
    assert summary["per_database"]["casme2"]["subjects"] == 24
    assert summary["per_database"]["samm"]["samples"] == 133
    text = format_text(summary)
    assert "442" in text and "smic" in text and "missing_frames" in text
    summary = check("casme2", shared_data / "casme2")
    assert summary["defect_counts"] == {"frame_range_mismatch": 8, "missing_frames": 1}
    assert summary["emotions"]["others"] == 99
    assert {d["sample"] for d in summary["defects"]} == CASME2_MISMATCHES


# ------------------------------------------- real sheets (copied to tmp) + fake frames


@pytest.mark.realdata
def test_samm_sheet_with_fake_frames(shared_data, tmp_path):
    root = tmp_path / "samm"
    root.mkdir()
    shutil.copy(shared_data / "samm" / "SAMM_Micro_FACS_Codes_v2.xlsx", root)
    # 006_1_2 is onset 5562, apex 5588, offset 5632: leave out the apex frame
    touch_frames(root / "006" / "006_1_2", [n for n in range(5562, 5633) if n != 5588], "006_{:05d}.jpg")
    r = samm.read(root)
    assert len(r.samples) == 159
    s = by_key(r)["samm/006/006_1_2"]
    assert len(s.frames) == 70 and s.frame_path(5588)[1] == 5587
    assert kinds(r, s.key) == {"missing_frame": 1}
    assert kinds(r)["missing_frames"] == 158  # other clips: folder absent, kept, listed
    assert len(samm.read(root, frame_fallback="skip").samples) == 0


@pytest.mark.realdata
def test_smic_sheet_with_fake_frames(shared_data, tmp_path):
    root = tmp_path / "smic"
    root.mkdir()
    shutil.copy(shared_data / "smic" / "smic_apex.xlsx", root)
    # official layout, unpadded subject folder, bmp frames
    touch_frames(root / "HS" / "s1" / "micro" / "negative" / "s1_ne_01", range(559740, 559776), "image{}.bmp")
    # flat variant; this clip has no offset in the sheet
    touch_frames(root / "s01" / "s1_ne_02", range(563854, 563900), "image{}.bmp")
    r = smic.read(root)
    samples = by_key(r)
    assert len(samples["smic/s01/s01_ne_01"].frames) == 36
    s = samples["smic/s01/s01_ne_02"]
    assert s.frames and s.offset == 563899
    d = next(d for d in r.defects if d.sample == s.key and d.kind == "missing_offset")
    assert "563899" in d.action
    assert kinds(r)["missing_frames"] == 162


@pytest.mark.realdata
def test_casme3_sheet_with_fake_frames(shared_data, tmp_path):
    root = tmp_path / "casme3"
    root.mkdir()
    shutil.copy(shared_data / "casme3" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", root)
    touch_frames(root / "part_A" / "spNO.1" / "e" / "color", range(50, 101), "{}.jpg")  # rows e_62 (62..96), e_96
    r = casme3.read(root)
    samples = by_key(r)
    assert samples["casme3/spNO.1/e_62"].frames and samples["casme3/spNO.1/e_96"].frames
    assert samples["casme3/spNO.1/e_62"].frames is samples["casme3/spNO.1/e_96"].frames
    assert kinds(r, "casme3/spNO.1/e_96") == {"frame_range_mismatch": 1}  # offset 106 beyond 100


# ------------------------------------------------------------ broken inputs


def make_casme2(root: Path, rows: list[list], header=CASME2_HEADER, name="CASME2-coding-20140508.xlsx") -> Path:
    return write_xlsx(root / name, header, rows)


def test_wrong_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset("casme2", tmp_path / "nope")
    with pytest.raises(DatasetError, match=r"no annotation sheet.*CASME2-coding"):
        read_dataset("casme2", tmp_path)
    (tmp_path / "casme2").mkdir()
    with pytest.raises(DatasetError, match="did you mean"):
        read_dataset("casme2", tmp_path)  # the data root instead of the database folder
    for name in ("samm", "smic", "casme3"):
        with pytest.raises(DatasetError, match="no annotation sheet"):
            read_dataset(name, tmp_path)


def test_unreadable_sheet(tmp_path):
    (tmp_path / "CASME2-coding-20140508.xlsx").write_text("not a workbook")
    with pytest.raises(DatasetError, match="CASME2-coding-20140508.xlsx.*not a readable"):
        casme2.read(tmp_path)


def test_sheet_missing_column_is_named(tmp_path):
    header = [h for h in CASME2_HEADER if h != "ApexFrame"]
    make_casme2(tmp_path, [["01", "EP01_01", 1, 9, "happiness"]], header=header)
    with pytest.raises(DatasetError) as err:
        casme2.read(tmp_path)
    msg = str(err.value)
    assert "CASME2-coding-20140508.xlsx" in msg and "'ApexFrame'" in msg and "header row 1" in msg


def test_samm_header_found_below_banner(tmp_path):
    banner = [["SAMM Dataset - Master FACS Codes"], [], ["Symbol Key:"], ['"/" = or'], []]
    header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
              "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
    rows = [["006", "006_1_2", 1, 10, 20, 30, 21, "Micro", "4", "Other", 7, None],
            [7, "007_1_1", 1, 10, 20, 30, 21, "Micro", "12", "Happiness", 1, None]]
    write_xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", header, rows, banner=banner, title="MICRO_ONLY")
    r = samm.read(tmp_path)
    assert [(s.subject, s.emotion) for s in r.samples] == [("samm/006", "others"), ("samm/007", "happiness")]
    assert all(s.grayscale for s in r.samples)


def test_onset_after_apex_policies(tmp_path):
    make_casme2(tmp_path, [["01", "EP01_01", 30, 10, 40, "4", "disgust"],   # onset > apex
                           ["01", "EP01_02", 30, 20, 10, "4", "disgust"]])  # onset > offset
    r = casme2.read(tmp_path)
    samples = by_key(r)
    assert samples["casme2/sub01/EP01_01"].apex == 35
    d = next(d for d in r.defects if d.sample == "casme2/sub01/EP01_01")
    assert d.kind == "frame_order" and "onset 30 > apex 10" in d.detail and "row 2" in d.detail
    assert "replaced by 35" in d.action
    assert samples["casme2/sub01/EP01_02"].onset == 30  # cannot be repaired: kept, said so
    assert "kept as annotated" in next(d.action for d in r.defects if d.sample == "casme2/sub01/EP01_02")
    assert by_key(casme2.read(tmp_path, order="keep"))["casme2/sub01/EP01_01"].apex == 10
    assert casme2.read(tmp_path, order="skip").samples == []


def test_missing_frames_nearest_with_defect(tmp_path):
    make_casme2(tmp_path, [["01", "EP01_01", 1, 5, 9, "4", "disgust"],
                           ["01", "EP01_02", 1, 5, 9, "4", "disgust"],
                           ["02", "EP01_01", 1, 5, 9, "4", "disgust"]])
    touch_frames(tmp_path / "Cropped" / "sub01" / "EP01_01", [1, 2, 3, 4, 6, 7, 8, 9])  # apex 5 absent
    touch_frames(tmp_path / "Cropped" / "sub01" / "EP01_02", [1, 2, 3])  # folder ends early
    r = casme2.read(tmp_path)
    s = by_key(r)["casme2/sub01/EP01_01"]
    assert s.apex == 5 and s.frame_path(5)[1] == 4
    d = next(d for d in r.defects if d.sample == s.key)
    assert d.kind == "missing_frame" and "apex 5 -> 4" in d.detail and "nearest" in d.action
    d = next(d for d in r.defects if d.sample == "casme2/sub01/EP01_02")
    assert d.kind == "frame_range_mismatch" and "offset 9 -> 3" in d.detail
    d = next(d for d in r.defects if d.sample == "casme2/sub02/EP01_01")
    assert d.kind == "missing_frames" and "kept without frames" in d.action
    assert len(r.samples) == 3
    skipped = casme2.read(tmp_path, frame_fallback="skip")
    assert [s.key for s in skipped.samples] == []
    assert {d.action for d in skipped.defects} == {"sample skipped"}


def test_raw_frames_option_and_fallback(tmp_path):
    make_casme2(tmp_path, [["01", "EP01_01", 1, 2, 3, "4", "disgust"], ["01", "EP01_02", 1, 2, 3, "4", "fear"]])
    touch_frames(tmp_path / "CASME2_RAW_selected" / "sub01" / "EP01_01", [1, 2, 3], "img{}.jpg")
    touch_frames(tmp_path / "CASME2_RAW_selected" / "sub01" / "EP01_02", [1, 2, 3], "img{}.jpg")
    touch_frames(tmp_path / "Cropped" / "sub01" / "EP01_01", [1, 2, 3])
    r = casme2.read(tmp_path)  # cropped preferred, EP01_02 only in RAW
    samples = by_key(r)
    assert samples["casme2/sub01/EP01_01"].frames[1].name == "reg_img1.jpg"
    assert samples["casme2/sub01/EP01_02"].frames[1].name == "img1.jpg"
    assert kinds(r) == {"frames_source_fallback": 1}
    r = casme2.read(tmp_path, frames="raw")
    assert all(s.frames[1].name == "img1.jpg" for s in r.samples) and not r.defects


def test_duplicate_keys(tmp_path):
    make_casme2(tmp_path, [["01", "EP01_01", 1, 2, 3, "4", "disgust"],
                           ["1", "EP01_01", 1, 2, 3, "4", "happiness"]])
    r = casme2.read(tmp_path)
    assert [s.emotion for s in r.samples] == ["disgust"]
    d = next(d for d in r.defects if d.kind == "duplicate_key")
    assert d.sample == "casme2/sub01/EP01_01" and "row 3 repeats row 2" in d.detail and d.action == "later row skipped"


def test_unknown_emotion_kept_and_reported(tmp_path):
    make_casme2(tmp_path, [["01", "EP01_01", 1, 2, 3, "4", "Contempt "], ["01", "EP01_02", 1, 2, 3, "4", ""]])
    r = casme2.read(tmp_path)
    assert [s.emotion for s in r.samples] == ["contempt"]
    assert kinds(r) == {"unknown_emotion": 1, "missing_value": 1, "no_frames": 1}
    d = next(d for d in r.defects if d.kind == "unknown_emotion")
    assert "'Estimated Emotion' (G)" in d.detail


def test_casme2_2019_variant_and_bad_cells(tmp_path):
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
              "Emotion"]
    rows = [[1, "EP02_01f", None, 46, "/", 86, None, "12", "Happiness"],
            [1, "EP03_02", None, "x", 139, 161, None, "18", "others"],
            ["sub26", "EP18_49", None, 16.0, 54.0, 80.0, None, "4", "disgust"]]
    make_casme2(tmp_path, rows, header=header, name="CASME2-coding-20190701.xlsx")
    r = read_dataset("casme2", tmp_path)
    samples = by_key(r)
    assert set(samples) == {"casme2/sub01/EP02_01f", "casme2/sub26/EP18_49"}
    assert samples["casme2/sub01/EP02_01f"].apex == 66 and samples["casme2/sub01/EP02_01f"].emotion == "happiness"
    assert (samples["casme2/sub26/EP18_49"].onset, samples["casme2/sub26/EP18_49"].apex) == (16, 54)
    apex = next(d for d in r.defects if d.kind == "invalid_apex")
    assert "column 'ApexFrame' (E)" in apex.detail and "middle" in apex.action
    onset = next(d for d in r.defects if d.kind == "invalid_frame_number")
    assert onset.sample == "casme2/sub01/EP03_02" and "row 3" in onset.detail and onset.action == "sample skipped"
    assert kinds(r)["no_frames"] == 1  # no frame folders at all: one note, not one per sample


def test_smic_labels_and_names(tmp_path):
    header = ["data", "subject", "clip", "label", "onset_frame", "apex_frame", "offset_frame"]
    rows = [["smic", 1, "s1_ne_01", 0, 10, 15, 20],
            ["smic", 2, "s2_po_01", 2, 10, 15, 20],   # label says surprise, name says positive
            ["smic", 3, "s3_sur_01", "x", 10, 15, 20],  # bad label: taken from the name
            ["smic", 4, "s4_weird", 7, 10, 15, 20]]   # bad label and name: skipped
    write_xlsx(tmp_path / "smic_apex.xlsx", header, rows)
    r = smic.read(tmp_path)
    samples = by_key(r)
    assert samples["smic/s01/s01_ne_01"].emotion == "negative"
    assert samples["smic/s02/s02_po_01"].emotion == "surprise"
    assert samples["smic/s03/s03_sur_01"].emotion == "surprise"
    assert len(samples) == 3
    assert kinds(r)["label_mismatch"] == 1 and kinds(r)["unknown_emotion"] == 2
    header.remove("label")
    write_xlsx(tmp_path / "smic_apex.xlsx", header, [r[:3] + r[4:] for r in rows])
    with pytest.raises(DatasetError, match="'label'"):
        smic.read(tmp_path)


# ------------------------------------------------------------- helpers, flow folders


def test_index_frames_patterns(tmp_path):
    touch_frames(tmp_path / "a", [1, 2, 10], "reg_img{}.jpg")
    touch_frames(tmp_path / "a", [1, 2], "img{}.jpg")
    assert [p.name for p in index_frames(tmp_path / "a").values()] == ["reg_img1.jpg", "reg_img2.jpg", "reg_img10.jpg"]
    assert [p.name for p in index_frames(tmp_path / "a", ("img",)).values()] == ["img1.jpg", "img2.jpg"]
    touch_frames(tmp_path / "b", [3, 1], "{}.png")
    (tmp_path / "b" / "notes.txt").write_text("x")
    assert list(index_frames(tmp_path / "b")) == [1, 3]
    touch_frames(tmp_path / "c", [5562], "006_{:05d}.JPG")
    assert list(index_frames(tmp_path / "c")) == [5562]
    assert index_frames(tmp_path / "missing") == {}


def test_flow_name_parsing():
    assert parse_name("s01_s1_ne_01") == "smic/s01/s01_ne_01"
    assert parse_name("s01_s01_ne_01 ") == "smic/s01/s01_ne_01"
    assert parse_name("006_006_1_2") == "samm/006/006_1_2"
    assert parse_name("006_1_2", "006") == "samm/006/006_1_2"
    assert parse_name("sub01_EP02_01f") == "casme2/sub01/EP02_01f"
    assert parse_name("EP02_01f", "sub1") == "casme2/sub01/EP02_01f"
    assert parse_name("whatever") is None


def make_per_fold(folder: Path, samples: dict[str, tuple[str, int]]) -> None:
    """HTNet layout: every fold's u_test holds its subject's files, u_train the others."""
    for fold in {sub for sub, _ in samples.values()}:
        for stem, (sub, label) in samples.items():
            split = "u_test" if sub == fold else "u_train"
            d = folder / fold / split / str(label)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{stem}.png").write_bytes(b"")


def test_flow_index_per_fold_and_flat(tmp_path):
    stems = {"sub01_EP02_01f": ("sub01", 1), "006_006_1_2": ("006", 0), "s01_s01_ne_01": ("s01", 0)}
    make_per_fold(tmp_path / "three_norm_u_v_os", stems)
    defects = []
    ix = flow_index(tmp_path / "three_norm_u_v_os", defects)
    assert set(ix) == {"casme2/sub01/EP02_01f", "samm/006/006_1_2", "smic/s01/s01_ne_01"}
    assert all(p.parent.parent.name == "u_test" for p in ix.values())
    assert not defects
    assert flow_labels(tmp_path / "three_norm_u_v_os")["casme2/sub01/EP02_01f"] == 1
    # a test file filed under another subject's fold is reported
    wrong = tmp_path / "three_norm_u_v_os" / "006" / "u_test" / "2"
    wrong.mkdir(parents=True)
    (wrong / "sub02_EP01_01.png").write_bytes(b"")
    flow_index(tmp_path / "three_norm_u_v_os", defects)
    assert [d.kind for d in defects] == ["flow_fold_mismatch"]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "006_006_1_2 .png").write_bytes(b"")
    (flat / "junk.png").write_bytes(b"")
    defects = []
    assert set(flow_index(flat, defects)) == {"samm/006/006_1_2"}
    assert [d.kind for d in defects] == ["unrecognised_flow_name"]


def test_megc2019_per_fold_flows(tmp_path):
    root = tmp_path / "megc2019"
    root.mkdir()
    (root / megc2019.GT_FILE).write_text("casme2,sub01,EP02_01f,1\r\nsamm,6,006_1_2,0\r\nsmic,s1,s1_ne_01,0\r\n")
    make_per_fold(root / "three_norm_u_v_os",
                  {"sub01_EP02_01f": ("sub01", 1), "006_006_1_2": ("006", 0), "s01_s1_ne_01": ("s1", 0)})
    r = megc2019.read(root)
    assert [s.key for s in r.samples] == ["casme2/sub01/EP02_01f", "samm/006/006_1_2", "smic/s01/s01_ne_01"]
    assert all(s.extras["flow"].parent.parent.name == "u_test" for s in r.samples)
    assert [d.kind for d in r.defects] == ["differs_from_official"]  # a 3-sample list


def test_data_check_synthetic(tmp_path):
    make_casme2(tmp_path, [["01", "EP01_01", 1, 2, 3, "4", "disgust"], ["02", "EP01_01", 3, 2, 1, "4", "fear"]])
    summary = check("casme2", tmp_path)
    json.dumps(summary)
    assert summary["n_samples"] == 2 and summary["n_subjects"] == 2
    assert summary["emotions"] == {"disgust": 1, "fear": 1}
    assert summary["defect_counts"] == {"frame_order": 1, "no_frames": 1}
    text = format_text(summary)
    assert "frame_order" in text and "casme2/sub02/EP01_01" in text and "->" in text


def test_several_coding_sheets_noted(tmp_path):
    make_casme2(tmp_path, [["01", "EP01_01", 1, 2, 3, "4", "disgust"]])
    make_casme2(tmp_path, [["01", "EP01_01", 1, 2, 3, "4", "fear"]], name="CASME2-coding-20190701.xlsx")
    r = casme2.read(tmp_path)
    assert [s.emotion for s in r.samples] == ["fear"] and r.files[0].name == "CASME2-coding-20190701.xlsx"
    assert kinds(r)["several_sheets"] == 1
    r = casme2.read(tmp_path, sheet="CASME2-coding-20140508.xlsx")
    assert [s.emotion for s in r.samples] == ["disgust"] and not kinds(r)["several_sheets"]
