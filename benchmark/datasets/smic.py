"""SMIC-HS: clip sheet with onset/offset and an *estimated* apex + clip folders.

Layout (``<data-root>/smic``):
  smic_apex.xlsx                               164 HS clips: subject, clip, label
                                               (0 negative, 1 positive, 2 surprise),
                                               onset/apex/offset frame numbers
  HS/<sX>/micro/<emotion>/<clip>/image<N>.bmp  official layout (when present)
  <sX>/<clip>/...  or  HS_long/SMIC_HS_E/<sX>/<clip>/...   flat variants

Subjects and clips are written as in the MEGC2019 lists: ``s01`` and
``s01_ne_01`` (the SMIC files say ``s1`` / ``s1_ne_01``; one ``name_normalized``
note records the renaming, and both spellings are tried for the folders).
SMIC has no apex annotation: the sheet's apex is an estimate, which one
file-level ``apex_estimated`` note records (not one defect per clip). Emotions
are the three SMIC classes ``negative``/``positive``/``surprise``. 100 fps.
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.datasets._frames import FrameTracker, annotated_sample, index_frames
from benchmark.datasets._sheets import (
    MISSING_VALUE, UNKNOWN_EMOTION, check_annotation, check_duplicate, locate_sheet, read_sheet,
)
from benchmark.core.samples import DatasetReport, Defect, Sample

NAME = "smic"
FPS = 100.0
EMOTIONS = ("negative", "positive", "surprise")
ABBREV = {"ne": "negative", "po": "positive", "sur": "surprise", "su": "surprise"}
SHEET_PATTERNS = ("smic_apex.xlsx", "smic*.xlsx", "SMIC*.xlsx", "*HS*.xlsx")
COLUMNS = {
    "subject": ("subject", "Subject"),
    "clip": ("clip", "Filename", "File name"),
    "onset": ("onset_frame", "Onset Frame", "Onset"),
    "apex": ("apex_frame", "Apex Frame", "Apex"),
    "offset": ("offset_frame", "Offset Frame", "Offset"),
}
OPTIONAL = {
    "label": ("label", "class"),
    "emotion": ("emotion", "Estimated Emotion"),
    "onset_path": ("onset_frame_path",),
    "apex_path": ("apex_frame_path",),
}


def subject_number(value) -> int | None:
    """``20`` / ``'20'`` / ``'s20'`` / ``'s01'`` -> 20 / 1 (None if unreadable)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip() if value is not None else ""
    m = re.fullmatch(r"(?i)s?0*(\d+)", text)
    return int(m.group(1)) if m else None


def canonical_clip(clip: str) -> str:
    """``'s1_ne_02'`` -> ``'s01_ne_02'``; other names unchanged."""
    m = re.fullmatch(r"(?i)s(\d+)_(.+)", clip.strip())
    return f"s{int(m.group(1)):02d}_{m.group(2)}" if m else clip.strip()


def _label(row) -> tuple[str | None, str]:
    """(emotion or None, raw text) from the ``label`` or ``emotion`` column."""
    for col in ("label", "emotion"):
        if col not in row.columns:
            continue
        raw = row.text(col)
        low = raw.lower()
        if low in {"0", "1", "2"}:
            return EMOTIONS[int(low)], raw
        if low in EMOTIONS:
            return low, raw
        if low in ABBREV:
            return ABBREV[low], raw
        return None, raw
    return None, ""


def _clip_emotion(clip: str) -> str | None:
    m = re.fullmatch(r"(?i)s\d+_([a-z]+)_\d+", clip)
    return ABBREV.get(m.group(1).lower()) if m else None


def _candidates(root: Path, n: int, clip: str, emotion: str, row) -> list[Path]:
    subs = [f"s{n}", f"s{n:02d}"]
    clips = list(dict.fromkeys([clip, canonical_clip(clip), re.sub(r"^s0*(\d+)_", r"s\1_", clip)]))
    out = []
    for s in subs:
        for c in clips:
            for base in (root / "HS", root):
                out.append(base / s / "micro" / emotion / c)
            for base in (root / "HS", root, root / "HS_long" / "SMIC_HS_E", root / "SMIC_HS_E"):
                out.append(base / s / c)
            out.append(root / c)
    for col in ("onset_path", "apex_path"):
        text = row.text(col) if col in row.columns else ""
        if text:
            rel = Path(text.replace("\\", "/")).parent
            out += [root.parent / rel, root / rel, root / Path(*rel.parts[1:]) if len(rel.parts) > 1 else root / rel]
    return list(dict.fromkeys(out))


def read(
    root: Path,
    frame_fallback: str = "nearest",
    order: str = "fix",
    sheet: str | Path | None = None,
) -> DatasetReport:
    """Read SMIC-HS from ``root`` (frames optional: annotation-only copies work)."""
    from benchmark.datasets import DatasetError

    root = Path(root)
    defects: list[Defect] = []
    path = locate_sheet(root, sheet, SHEET_PATTERNS, NAME, defects)
    table = read_sheet(path, COLUMNS, OPTIONAL)
    if "label" not in table.columns and "emotion" not in table.columns:
        raise DatasetError(f"{path}: worksheet {table.name!r}, header row {table.header_row}: "
                           "missing column 'label' (or 'emotion')")
    tracker = FrameTracker(NAME, root, frame_fallback, "HS/<sX>/micro/<emotion>/<clip> or <sX>/<clip>")
    renamed: list[str] = []
    with_apex = 0

    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for row in table:
        raw_clip = row.text("clip")
        n = subject_number(row.get("subject"))
        if n is None and raw_clip:  # subject cell empty: take it from the clip name
            m = re.match(r"(?i)s(\d+)_", raw_clip)
            n = int(m.group(1)) if m else None
        if n is None or not raw_clip:
            col = "clip" if not raw_clip else "subject"
            defects.append(Defect(row.where(), MISSING_VALUE,
                                  f"{row.where(col)}: {col} {row.text(col)!r} unreadable", "sample skipped"))
            continue
        sub = f"s{n:02d}"
        clip = canonical_clip(raw_clip)
        if clip != raw_clip:
            renamed.append(f"{raw_clip}->{clip}")
        key = f"{NAME}/{sub}/{clip}"
        if check_duplicate(key, row, seen, defects):
            continue
        m = re.match(r"(?i)s(\d+)_", clip)
        if m and int(m.group(1)) != n:
            defects.append(Defect(key, "subject_mismatch",
                                  f"{row.where('clip')}: clip {raw_clip!r} does not belong to subject {row.text('subject')!r}",
                                  f"kept under subject {sub}"))
        emotion, raw_label = _label(row)
        from_name = _clip_emotion(clip)
        col = "label" if "label" in row.columns else "emotion"
        if emotion is None:
            if from_name is None:
                defects.append(Defect(key, UNKNOWN_EMOTION,
                                      f"{row.where(col)}: label {raw_label!r} is not 0/1/2 or {'/'.join(EMOTIONS)}",
                                      "sample skipped"))
                continue
            defects.append(Defect(key, UNKNOWN_EMOTION,
                                  f"{row.where(col)}: label {raw_label!r} is not 0/1/2 or {'/'.join(EMOTIONS)}",
                                  f"{from_name!r} taken from the clip name"))
            emotion = from_name
        elif from_name is not None and from_name != emotion:
            defects.append(Defect(key, "label_mismatch",
                                  f"{row.where(col)}: label {raw_label!r} ({emotion}) but clip name says {from_name}",
                                  f"sheet label {emotion!r} kept"))
        ann = check_annotation(key, row, defects, order=order)
        if ann is None:
            continue
        with_apex += ann.apex is not None

        folder, clip_frames = None, {}
        for candidate in _candidates(root, n, raw_clip, emotion, row):
            clip_frames = index_frames(candidate)
            if clip_frames:
                folder = candidate
                break
        sample = annotated_sample(key, ann, folder, clip_frames, tracker, defects, frame_fallback,
                                  f"no clip folder {raw_clip} under {root} (HS/{sub}/micro/{emotion}/... or {sub}/...)",
                                  dataset=NAME, subject=f"{NAME}/{sub}", clip=clip, emotion=emotion, fps=FPS,
                                  grayscale=False)
        if sample is not None:
            samples.append(sample)
    samples = tracker.finish(samples, defects)
    if renamed:
        defects.insert(0, Defect(path.name, "name_normalized",
                                 f"{len(renamed)} clips written without zero-padded subject "
                                 f"(e.g. {', '.join(renamed[:3])})",
                                 "subjects s1..s9 and their clips renamed s01..s09 as in the MEGC2019 lists"))
    if with_apex:
        defects.insert(0, Defect(path.name, "apex_estimated",
                                 f"SMIC has no apex annotation; the apex of all {with_apex} clips read from "
                                 f"{path.name} is an estimate",
                                 "estimated apex used as the apex"))
    return DatasetReport(NAME, root, samples, defects, [path])
