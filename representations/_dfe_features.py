"""DFE's per-sample landmark features: which frames are read, their face-mesh landmarks
(cached per sample and frame set), the fallback for frames without a face, and the
Procrustes-aligned displacements from the onset shape."""
from __future__ import annotations

import numpy as np

from benchmark.core.samples import Sample
from representations._cache import DiskCache
from representations._landmarks import LANDMARK_VERSION, frame_landmarks, similarity_align


def frame_plan(s: Sample, n_frames: int) -> list[int]:
    """``n_frames`` frame numbers evenly spaced onset..offset, the one nearest the apex set to it."""
    onset = s.onset if s.onset is not None else min(s.frames)
    offset = s.offset if s.offset is not None else max(s.frames)
    offset = max(offset, onset)
    want = [int(round(v)) for v in np.linspace(onset, offset, n_frames)]
    apex = s.apex if s.apex is not None and onset <= s.apex <= offset else None
    if apex is not None and n_frames > 2:
        k = 1 + int(np.argmin([abs(w - apex) for w in want[1:-1]]))
        want[k] = apex
    return want


def used_frames(s: Sample, n_frames: int) -> tuple[list[int], list[dict]]:
    """Frame numbers actually read (nearest available) and the nearest-frame events."""
    used, events = [], []
    for w in frame_plan(s, n_frames):
        u = s.frame_path(w)[1]
        if u != w:
            events.append({"sample": s.key, "kind": "nearest_frame", "detail": f"frame {w} missing, {u} used"})
        used.append(u)
    return used, events


def sample_landmarks(s: Sample, frames: list[int], cache: DiskCache) -> np.ndarray:
    """(F, 468, 3) landmarks of ``frames`` (NaN where no face), cached per sample and frame set."""
    uniq = sorted(set(frames))
    paths = [s.frames[i] for i in uniq]

    def compute():
        return {"lm": np.stack([frame_landmarks(p) for p in paths])}, {}

    recipe = {"rep": "dfe-landmarks", "version": LANDMARK_VERSION, "frames": uniq, "detector": "mediapipe-facemesh"}
    lm = cache.get_or_compute(recipe, paths, compute)[0]["lm"]
    return lm[[uniq.index(i) for i in frames]]


def fill_missing(lm: np.ndarray, key: str) -> tuple[np.ndarray | None, list[dict]]:
    """Frames without a face take the nearest frame with one; None when no frame has a face."""
    ok = ~np.isnan(lm).any(axis=(1, 2))
    if not ok.any():
        return None, [{"sample": key, "kind": "no_face_clip", "detail": "no face on any frame: zero displacement"}]
    good = np.flatnonzero(ok)
    out, events = lm.copy(), []
    for i in np.flatnonzero(~ok):
        j = good[np.argmin(np.abs(good - i))]
        out[i] = lm[j]
        events.append({"sample": key, "kind": "no_face", "detail": f"frame position {i}: landmarks of position {j}"})
    return out, events


def displacements(lm: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """(F, 468, 3) aligned landmarks minus the aligned first (onset) frame, in canonical units."""
    aligned = np.stack([similarity_align(f, canonical) for f in lm])
    return aligned - aligned[0]
