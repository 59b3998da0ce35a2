"""CAS(ME)^3 Part A: micro-expression label sheet + (when present) video frames.

Layout (``<data-root>/casme3``):
  cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx   sheet ``label``: Subject (spNO.1),
                                              Filename (task video a..m), Onset,
                                              Apex, Offset, AU, Objective class,
                                              emotion; 860 MEs of 94 subjects
  spNO.X/<Filename>/color/<N>.jpg             frames of the whole task video
                                              (also under one child folder, e.g. part_A/)

One video holds several micro-expressions, so a sample's clip is
``<Filename>_<Onset>`` (``casme3/spNO.1/e_62``); its ``frames`` are the whole
video's (shared between the samples of that video). Emotion words are the
sheet's, lower-cased (``happy``, ``sad``, ``others``...). An offset of 0 means
"unknown" (``missing_offset``, offset left None). 30 fps.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.datasets._frames import FrameTracker, annotated_sample, find_base, index_frames
from benchmark.datasets._sheets import (
    MISSING_VALUE, check_annotation, check_duplicate, check_emotion, locate_sheet, parse_frame, read_sheet,
)
from benchmark.core.samples import DatasetReport, Defect, Sample

NAME = "casme3"
FPS = 30.0
EMOTIONS = ("anger", "disgust", "fear", "happy", "sad", "surprise", "others")
EMOTION_ALIASES = {"other": "others"}
SHEET_PATTERNS = ("cas(me)3_part_A_ME_label*.xlsx", "cas(me)3*part*A*.xlsx", "*part_A*ME*.xlsx", "cas(me)3*.xlsx")
COLUMNS = {
    "subject": ("Subject", "sub"),
    "filename": ("Filename", "File name"),
    "onset": ("Onset", "Onset Frame", "OnsetFrame"),
    "apex": ("Apex", "Apex Frame", "ApexFrame"),
    "offset": ("Offset", "Offset Frame", "OffsetFrame"),
    "emotion": ("emotion", "Estimated Emotion"),
}
OPTIONAL = {"action_units": ("AU", "Action Units"), "objective_class": ("Objective class", "Objective Classes")}


def _video_folder(base: Path, sub: str, name: str) -> Path | None:
    for n in dict.fromkeys([name, name.lower(), name.upper()]):
        clip_dir = base / sub / n
        for folder in (clip_dir / "color", clip_dir):
            if folder.is_dir():
                return folder
    return None


def read(
    root: Path,
    frame_fallback: str = "nearest",
    order: str = "fix",
    sheet: str | Path | None = None,
) -> DatasetReport:
    """Read CAS(ME)^3 Part A micro-expressions from ``root``."""
    root = Path(root)
    defects: list[Defect] = []
    path = locate_sheet(root, sheet, SHEET_PATTERNS, NAME, defects)
    table = read_sheet(path, COLUMNS, OPTIONAL)
    base = find_base(root, "spNO.*")
    tracker = FrameTracker(NAME, root, frame_fallback, "spNO.X/<Filename>/color/<N>.jpg")
    videos: dict[tuple[str, str], tuple[Path | None, dict[int, Path]]] = {}

    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for row in table:
        sub, name = row.text("subject"), row.text("filename")
        if not sub or not name:
            col = "subject" if not sub else "filename"
            defects.append(Defect(row.where(), MISSING_VALUE, f"{row.where(col)}: empty {col}", "sample skipped"))
            continue
        onset = parse_frame(row.get("onset"))
        clip = f"{name}_{onset}" if onset is not None else f"{name}_row{row.number}"
        key = f"{NAME}/{sub}/{clip}"
        if check_duplicate(key, row, seen, defects):
            continue
        emotion = check_emotion(key, row, EMOTIONS, defects, EMOTION_ALIASES)
        if emotion is None:
            continue
        ann = check_annotation(key, row, defects, order=order)
        if ann is None:
            continue
        if (sub, name) not in videos:
            folder = _video_folder(base, sub, name)
            videos[(sub, name)] = (folder, index_frames(folder) if folder else {})
        folder, clip_frames = videos[(sub, name)]
        # One folder holds a whole video with many expressions: an unknown offset stays unknown.
        sample = annotated_sample(key, ann, folder, clip_frames, tracker, defects, frame_fallback,
                                  f"no frames in {base / sub / name / 'color'}", fill_offset_from_folder=False,
                                  dataset=NAME, subject=f"{NAME}/{sub}", clip=clip, emotion=emotion, fps=FPS,
                                  grayscale=False)
        if sample is not None:
            samples.append(sample)
    samples = tracker.finish(samples, defects)
    return DatasetReport(NAME, root, samples, defects, [path])
