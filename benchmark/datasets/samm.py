"""SAMM: official FACS code sheet + (when present) the clip frame folders.

Layout (``<data-root>/samm``):
  SAMM_Micro_FACS_Codes_v2.xlsx                 sheet MICRO_ONLY: banner lines,
                                                then the header row (found by
                                                content) and 159 micro-movements
  <subject>/<Filename>/<subject>_<NNNNN>.jpg    frames, e.g. 006/006_1_2/006_05562.jpg
                                                (also under one child folder such
                                                as SAMM/, any image extension)

Subjects are ``samm/006`` (zero-padded as in the MEGC2019 flow names). Emotions
are the sheet's words lower-cased, except ``Other`` which becomes ``others``
so that one name means "no basic emotion" in CASME II, SAMM and CAS(ME)^3.
Frames are grayscale, 200 fps. The sheet has impossible rows (028_4_1 apex >
offset, 032_3_1 apex < onset): the generic order check reports them and, by
default, replaces the apex by the middle of onset..offset (``order``).
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.datasets._frames import FrameTracker, annotated_sample, find_base, index_frames
from benchmark.datasets._sheets import (
    MISSING_VALUE, check_annotation, check_duplicate, check_emotion, locate_sheet, read_sheet,
)
from benchmark.core.samples import DatasetReport, Defect, Sample

NAME = "samm"
FPS = 200.0
EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "others")
EMOTION_ALIASES = {"other": "others"}
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes*.xlsx", "SAMM*.xlsx", "*FACS*.xlsx")
COLUMNS = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    "onset": ("Onset Frame", "Onset"),
    "apex": ("Apex Frame", "Apex"),
    "offset": ("Offset Frame", "Offset"),
    "emotion": ("Estimated Emotion", "Emotion"),
}
OPTIONAL = {
    "action_units": ("Action Units", "AU"),
    "objective_class": ("Objective Classes", "Objective Class"),
    "notes": ("Notes",),
}


def canonical_subject(value) -> str | None:
    """``6`` / ``'6'`` / ``'006'`` -> ``'006'`` (None if unreadable)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip() if value is not None else ""
    return text.zfill(3) if re.fullmatch(r"\d+", text) else None


def read(
    root: Path,
    frame_fallback: str = "nearest",
    order: str = "fix",
    sheet: str | Path | None = None,
) -> DatasetReport:
    """Read SAMM from ``root`` (frames optional: annotation-only copies work)."""
    root = Path(root)
    defects: list[Defect] = []
    path = locate_sheet(root, sheet, SHEET_PATTERNS, NAME, defects)
    table = read_sheet(path, COLUMNS, OPTIONAL)
    base = find_base(root, "[0-9][0-9][0-9]")
    tracker = FrameTracker(NAME, root, frame_fallback, "<subject>/<Filename>/*.jpg")

    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for row in table:
        sub = canonical_subject(row.get("subject"))
        clip = row.text("filename")
        if sub is None or not clip:
            col = "subject" if sub is None else "filename"
            defects.append(Defect(row.where(), MISSING_VALUE,
                                  f"{row.where(col)}: {col} {row.text(col)!r} unreadable", "sample skipped"))
            continue
        key = f"{NAME}/{sub}/{clip}"
        if check_duplicate(key, row, seen, defects):
            continue
        if not clip.startswith(f"{sub}_"):
            defects.append(Defect(key, "subject_mismatch",
                                  f"{row.where('filename')}: clip {clip!r} does not start with subject {sub!r}",
                                  f"kept under subject {sub}"))
        emotion = check_emotion(key, row, EMOTIONS, defects, EMOTION_ALIASES)
        if emotion is None:
            continue
        ann = check_annotation(key, row, defects, order=order)
        if ann is None:
            continue
        folder = base / sub / clip
        clip_frames = index_frames(folder)
        sample = annotated_sample(key, ann, folder, clip_frames, tracker, defects, frame_fallback,
                                  f"no frames in {folder}",
                                  dataset=NAME, subject=f"{NAME}/{sub}", clip=clip, emotion=emotion, fps=FPS,
                                  grayscale=True)
        if sample is not None:
            samples.append(sample)
    samples = tracker.finish(samples, defects)
    return DatasetReport(NAME, root, samples, defects, [path])
