"""CASME II: official coding sheet + Cropped (or RAW) frame folders.

Layout (``<data-root>/casme2``):
  CASME2-coding-*.xlsx                      coding sheet (2014 ``20140508`` or the
                                            2019 ``20190701`` variant; header names
                                            matched case/space-insensitively)
  Cropped/subXX/<Filename>/reg_img<N>.jpg   official cropped faces (``frames="cropped"``)
  CASME2_RAW_selected/subXX/<Filename>/img<N>.jpg   raw frames (``frames="raw"``)

``frames="auto"`` (default) takes a clip from ``Cropped`` when it is there, else from
``CASME2_RAW_selected`` (reported as ``frames_source_fallback``); ``"cropped"`` or
``"raw"`` read that folder only (a clip it lacks has no frames, a missing folder is an
error), so raw and cropped frames are never mixed. On the command line:
``--data-param frames=raw``.

Subjects are ``casme2/sub01`` (the sheet's ``01`` / ``1`` / ``sub01``), as in the
MEGC2019 lists. Annotated frame numbers are kept as in the sheet; when one is
not in the clip folder (subsampled copies, or the known folder/sheet mismatches
of the source) the defect lists the nearest frame that ``Sample.frame_path``
will use (``frame_fallback="skip"`` drops such samples instead). A clip with no
folder at all is kept without frames and reported (``missing_frames``).
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.datasets._frames import FrameTracker, annotated_sample, index_frames
from benchmark.core.samples import DatasetReport, Defect, Sample
from benchmark.datasets._sheets import (
    MISSING_VALUE, check_annotation, check_duplicate, check_emotion, locate_sheet, read_sheet,
)

NAME = "casme2"
FPS = 200.0
EMOTIONS = ("others", "disgust", "happiness", "repression", "surprise", "sadness", "fear")
SHEET_PATTERNS = ("CASME2-coding-*.xlsx", "CASME2*coding*.xlsx", "*coding*.xlsx")
FRAME_SOURCES = {
    "cropped": (("Cropped", "CASME2_Cropped", "CASME2-Cropped"), ("reg_img", "img")),
    "raw": (("CASME2_RAW_selected", "CASME2-RAW-selected", "CASME2_RAW", "CASME2-RAW"), ("img", "reg_img")),
}
COLUMNS = {
    "subject": ("Subject", "Sub"),
    "filename": ("Filename", "File name", "Clip"),
    "onset": ("OnsetFrame", "Onset"),
    "apex": ("ApexFrame", "Apex", "Apex Frame"),
    "offset": ("OffsetFrame", "Offset"),
    "emotion": ("Estimated Emotion", "Emotion", "Estimated_Emotion"),
}
OPTIONAL = {"action_units": ("Action Units", "AU", "AUs", "ActionUnits")}
FRAME_CHANGES = "frames_source_fallback"
FRAME_CHOICES = ("auto", "cropped", "raw")


def canonical_subject(value) -> str | None:
    """``'01'``, ``1``, ``'sub1'``, ``'sub01'`` -> ``'sub01'`` (None if unreadable)."""
    text = str(value).strip() if value is not None else ""
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    m = re.fullmatch(r"(?i)(?:sub)?\s*(\d+)", text)
    return f"sub{int(m.group(1)):02d}" if m else None


def read(
    root: Path,
    frames: str = "auto",
    frame_fallback: str = "nearest",
    order: str = "fix",
    sheet: str | Path | None = None,
) -> DatasetReport:
    """Read CASME II from ``root``.

    frames: ``"auto"`` (default: ``Cropped`` where it has the clip, else the raw
    frames, reported as ``frames_source_fallback``), ``"cropped"`` or ``"raw"``
    (that folder only; :class:`DatasetError` when it does not exist).
    frame_fallback: ``"nearest"`` or ``"skip"`` for annotated frames missing
    from a clip folder. order: onset/apex/offset order policy (see _sheets).
    """
    root = Path(root)
    if frames not in FRAME_CHOICES:
        raise ValueError(f"casme2: frames must be one of {', '.join(FRAME_CHOICES)}, not {frames!r}")
    strict = frames != "auto"
    frames = "cropped" if frames == "auto" else frames
    defects: list[Defect] = []
    path = locate_sheet(root, sheet, SHEET_PATTERNS, NAME, defects)
    table = read_sheet(path, COLUMNS, OPTIONAL)

    order_names = [frames] + ([] if strict else [k for k in FRAME_SOURCES if k != frames])
    bases = []
    for kind in order_names:
        dirs, prefixes = FRAME_SOURCES[kind]
        base = next((root / d for d in dirs if (root / d).is_dir()), None)
        if base is not None:
            bases.append((kind, base, prefixes))
    if strict and not bases and root.is_dir():
        from benchmark.datasets import DatasetError

        raise DatasetError(f"casme2: frames={frames!r} but {root} has no "
                           f"{' / '.join(FRAME_SOURCES[frames][0])} folder (frames=auto takes whichever exists)")
    if bases and bases[0][0] != frames:
        defects.append(Defect(str(root), FRAME_CHANGES,
                              f"no {frames} frame folder ({' / '.join(FRAME_SOURCES[frames][0])}) in {root}",
                              f"{bases[0][0]} frames from {bases[0][1]} used"))
    looked = " or ".join(f"{b.name}/subXX/<Filename>" for _, b, _ in bases) or (
        "Cropped/subXX/<Filename> or CASME2_RAW_selected/subXX/<Filename>")
    tracker = FrameTracker(NAME, root, frame_fallback, looked)

    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for row in table:
        sub = canonical_subject(row.get("subject"))
        clip = row.text("filename")
        if sub is None or not clip:
            col = "subject" if sub is None else "filename"
            defects.append(Defect(f"{row.where()}", MISSING_VALUE,
                                  f"{row.where(col)}: {col} {row.text(col)!r} unreadable", "sample skipped"))
            continue
        key = f"{NAME}/{sub}/{clip}"
        if check_duplicate(key, row, seen, defects):
            continue
        emotion = check_emotion(key, row, EMOTIONS, defects)
        if emotion is None:
            continue
        ann = check_annotation(key, row, defects, order=order)
        if ann is None:
            continue

        clip_frames: dict[int, Path] = {}
        folder = None
        for i, (kind, base, prefixes) in enumerate(bases):
            candidate = base / sub / clip
            clip_frames = index_frames(candidate, prefixes)
            if clip_frames:
                folder = candidate
                if i > 0 and bases[0][0] == frames:
                    defects.append(Defect(key, FRAME_CHANGES, f"no frames in {bases[0][1] / sub / clip}",
                                          f"{kind} frames from {candidate} used"))
                break
        sample = annotated_sample(key, ann, folder, clip_frames, tracker, defects, frame_fallback,
                                  ("no frame folder " + " or ".join(str(b / sub / clip) for _, b, _ in bases)
                                   if bases else f"no frame folder under {root}"),
                                  dataset=NAME, subject=f"{NAME}/{sub}", clip=clip, emotion=emotion, fps=FPS,
                                  grayscale=False)
        if sample is not None:
            samples.append(sample)
    samples = tracker.finish(samples, defects)
    return DatasetReport(NAME, root, samples, defects, [path])
