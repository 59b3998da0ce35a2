"""Frame folders: indexing ``reg_img<N>.jpg`` / ``<N>.jpg`` / ``<prefix><N>.png``
files by their frame number, and checking annotated frames against them.

A folder's frame number is the run of digits at the end of the file stem
(``reg_img46`` -> 46, ``006_05562`` -> 5562, ``image17581039`` -> 17581039).
When a folder mixes several name prefixes (e.g. ``img46.jpg`` and
``reg_img46.jpg``) only the most common prefix (or the first of ``prefixes``
that occurs) is used, so two different images never compete for one number.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from benchmark.core.samples import Defect, Sample

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<n>\d+)$")

# Defect kinds produced here.
FRAME_RANGE_MISMATCH = "frame_range_mismatch"
MISSING_FRAME = "missing_frame"
MISSING_FRAMES = "missing_frames"
NO_FRAMES = "no_frames"

FALLBACKS = ("nearest", "skip")


def index_frames(folder: Path, prefixes: Sequence[str] | None = None) -> dict[int, Path]:
    """``{frame number: path}`` of the numbered images directly in ``folder``.

    Empty when the folder does not exist. ``prefixes`` (e.g. ``("reg_img",)``)
    states which name prefix to prefer when several occur.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    by_prefix: dict[str, dict[int, Path]] = {}
    for p in folder.iterdir():
        if p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            continue
        m = _NUMBERED.match(p.stem.strip())
        if not m:
            continue
        group = by_prefix.setdefault(m["prefix"].lower(), {})
        n = int(m["n"])
        # same number twice under one prefix (e.g. 46.jpg and 46.png): keep
        # the preferred extension, deterministically
        if n not in group or IMAGE_EXTS.index(p.suffix.lower()) < IMAGE_EXTS.index(group[n].suffix.lower()):
            group[n] = p
    if not by_prefix:
        return {}
    if len(by_prefix) == 1:
        return dict(sorted(next(iter(by_prefix.values())).items()))
    for prefix in prefixes or ():
        if prefix.lower() in by_prefix:
            return dict(sorted(by_prefix[prefix.lower()].items()))
    counts = Counter({k: len(v) for k, v in by_prefix.items()})
    best = max(counts, key=lambda k: (counts[k], k))
    return dict(sorted(by_prefix[best].items()))


def nearest(frames: Mapping[int, Path], index: int) -> int:
    """Nearest available frame number (ties -> the earlier), as Sample.frame_path."""
    if index in frames:
        return index
    return min(frames, key=lambda n: (abs(n - index), n))


def describe(frames: Mapping[int, Path]) -> str:
    if not frames:
        return "no frames"
    return f"frames {min(frames)}..{max(frames)} ({len(frames)} files)"


def check_frames(
    key: str,
    folder: Path,
    frames: Mapping[int, Path],
    points: Mapping[str, int | None],
    defects: list[Defect],
    fallback: str = "nearest",
) -> bool:
    """Check that every annotated frame (``{"onset": 46, ...}``) exists.

    Out of the folder's range -> ``frame_range_mismatch``; inside the range but
    absent (a gap, e.g. subsampled copies) -> ``missing_frame``. One defect per
    sample, naming each frame and the nearest frame used. Returns False when
    the sample must be skipped (``fallback="skip"`` and a frame is missing).
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"frame fallback must be one of {FALLBACKS}, not {fallback!r}")
    if not frames:
        return True
    lo, hi = min(frames), max(frames)
    outside, gaps = [], []
    for name, n in points.items():
        if n is None or n in frames:
            continue
        used = nearest(frames, n)
        (outside if (n < lo or n > hi) else gaps).append(f"{name} {n} -> {used}")
    if not outside and not gaps:
        return True
    kind = FRAME_RANGE_MISMATCH if outside else MISSING_FRAME
    what = []
    if outside:
        what.append("outside the folder: " + ", ".join(outside))
    if gaps:
        what.append("missing inside the folder: " + ", ".join(gaps))
    detail = f"{folder} has {describe(frames)}; annotated frame " + "; ".join(what)
    onset, apex = points.get("onset"), points.get("apex")
    if onset is not None and apex is not None and onset != apex and nearest(frames, onset) == nearest(frames, apex):
        detail += f" (onset and apex fall on the same frame {nearest(frames, apex)}: no onset->apex motion)"
    if fallback == "skip":
        defects.append(Defect(key, kind, detail, "sample skipped"))
        return False
    defects.append(Defect(key, kind, detail, "nearest available frame used (as listed)"))
    return True


def first_dir(candidates: Iterable[Path]) -> Path | None:
    for c in candidates:
        if c.is_dir():
            return c
    return None


def find_base(root: Path, probe: str) -> Path:
    """``root`` itself, or the child folder of ``root`` that holds entries matching
    the glob ``probe`` (e.g. ``"spNO.*"``); ``root`` when none does."""
    if any(root.glob(probe)):
        return root
    for child in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
        if any(child.glob(probe)):
            return child
    return root


class FrameTracker:
    """Collects clips whose frame folder is missing.

    When no clip of the sheet has a folder (an annotation-only copy), one
    file-level ``no_frames`` note replaces the per-sample ``missing_frames``
    defects, and no sample is skipped for it.
    """

    def __init__(self, dataset: str, root: Path, fallback: str = "nearest", looked_for: str = ""):
        if fallback not in FALLBACKS:
            raise ValueError(f"frame fallback must be one of {FALLBACKS}, not {fallback!r}")
        self.dataset, self.root, self.fallback, self.looked_for = dataset, root, fallback, looked_for
        self.missing: list[tuple[str, str]] = []  # (key, detail)
        self.found = 0

    def missing_clip(self, key: str, detail: str) -> None:
        self.missing.append((key, detail))

    def clip_found(self) -> None:
        self.found += 1

    def finish(self, samples: list, defects: list[Defect]) -> list:
        """Add the defects; returns the samples kept."""
        if not self.missing:
            return samples
        if self.found == 0:
            defects.append(
                Defect(str(self.root), NO_FRAMES,
                       f"no frame folder found for any of the {len(self.missing)} samples "
                       f"(looked for {self.looked_for or 'clip folders'} under {self.root})",
                       "samples carry annotations only (no frames)")
            )
            return samples
        if self.fallback == "skip":
            skipped = {k for k, _ in self.missing}
            for key, detail in self.missing:
                defects.append(Defect(key, MISSING_FRAMES, detail, "sample skipped"))
            return [s for s in samples if s.key not in skipped]
        for key, detail in self.missing:
            defects.append(Defect(key, MISSING_FRAMES, detail, "kept without frames (only precomputed extras usable)"))
        return samples


def fill_offset(key: str, folder: Path, frames: Mapping[int, Path], defects: list[Defect]) -> int:
    """Unknown offset of a clip folder -> its last frame; updates the sample's
    ``missing_offset`` defect (from check_annotation) with that action."""
    from dataclasses import replace

    last = max(frames)
    action = f"last frame {last} of {folder} used as offset"
    for i in range(len(defects) - 1, -1, -1):
        if defects[i].sample == key and defects[i].kind == "missing_offset":
            defects[i] = replace(defects[i], action=action)
            return last
    defects.append(Defect(key, "missing_offset", "offset unknown", action))
    return last


def annotated_sample(key: str, ann, folder: Path | None, clip_frames: Mapping[int, Path], tracker: "FrameTracker",
                     defects: list[Defect], frame_fallback: str, missing: str, fill_offset_from_folder: bool = True,
                     **fields) -> Sample | None:
    """A sheet row's Sample with its frames checked (None: the row is dropped).

    No frames: ``tracker`` records ``missing`` (the sample is kept for inputs that
    need no frames). An unknown offset becomes the folder's last frame when the
    folder holds one clip (``fill_offset_from_folder``); the annotated frames
    are checked against the folder with ``frame_fallback``.
    """
    offset = ann.offset
    if folder is None or not clip_frames:
        tracker.missing_clip(key, missing)
    else:
        tracker.clip_found()
        if offset is None and fill_offset_from_folder:
            offset = fill_offset(key, folder, clip_frames, defects)
        if not check_frames(key, folder, clip_frames, {"onset": ann.onset, "apex": ann.apex, "offset": offset},
                            defects, frame_fallback):
            return None
    return Sample(onset=ann.onset, apex=ann.apex, offset=offset, frames=clip_frames, **fields)
