"""Key frames of a sample and temporal sampling for frame-based models.

AF / KFS / MFS are the Preprocessing Paradox paper's three phases:

- ``AF``: the apex frame.
- ``KFS``: onset, apex, offset.
- ``MFS``: onset +0..3, apex -2..2, offset -3..0 (13 frames).

A database without an apex annotation (SMIC) gets a spotted apex
(:mod:`representations.apex_spotting`), and a missing onset/offset the clip's
first/last frame; each such choice is returned as an event for the run report.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from benchmark.core.samples import Sample
from representations import REPRESENTATIONS
from representations.base import RepresentationError
from representations.preprocess import PixelRepresentation, frame_events, prepare, read_frames

SAMPLINGS = ("AF", "KFS", "MFS")
MFS_OFFSETS = {"onset": (0, 1, 2, 3), "apex": (-2, -1, 0, 1, 2), "offset": (-3, -2, -1, 0)}
APEX_MODES = ("annotated", "spotted")


def temporal_indices(onset: int, apex: int, offset: int, mode: str) -> list[int]:
    """Frame numbers of one sampling phase, clamped to ``[onset, offset]``."""
    if mode == "AF":
        idx = [apex]
    elif mode == "KFS":
        idx = [onset, apex, offset]
    elif mode == "MFS":
        idx = ([onset + d for d in MFS_OFFSETS["onset"]] + [apex + d for d in MFS_OFFSETS["apex"]]
               + [offset + d for d in MFS_OFFSETS["offset"]])
    else:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, not {mode!r}")
    lo, hi = min(onset, offset), max(onset, offset)
    return [int(np.clip(i, lo, hi)) for i in idx]


def clip_bounds(sample: Sample) -> tuple[int, int, list[dict]]:
    """The annotated onset and offset, else the first and last available frame (recorded)."""
    numbers = sorted(sample.frames)
    onset, offset, events = sample.onset, sample.offset, []
    if onset is None:
        onset = numbers[0]
        events.append({"sample": sample.key, "kind": "no_onset", "detail": f"first frame {onset} used as onset"})
    if offset is None:
        offset = numbers[-1]
        events.append({"sample": sample.key, "kind": "no_offset", "detail": f"last frame {offset} used as offset"})
    return onset, offset, events


def key_frames(sample: Sample, apex: str = "annotated", spot_method: str = "flow-prior",
               cache=None, prep=None) -> tuple[dict[str, int], list[dict]]:
    """``{"onset", "apex", "offset"}`` frame numbers and the events taken to get them.

    ``apex="annotated"`` uses the annotation and spots only when there is none;
    ``"spotted"`` always spots (for ablations and to measure the spotter).
    """
    if apex not in APEX_MODES:
        raise ValueError(f"apex must be one of {', '.join(APEX_MODES)}, not {apex!r}")
    if not sample.frames:
        raise RepresentationError(f"{sample.key}: no frames are available for this sample")
    onset, offset, events = clip_bounds(sample)
    a = sample.apex
    if a is None or apex == "spotted":
        from representations.apex_spotting import spot_apex_cached

        a, _ = spot_apex_cached(sample, spot_method, onset=onset, offset=offset, cache=cache, prep=prep)
        why = "no apex annotation" if sample.apex is None else "apex=spotted"
        events.append({"sample": sample.key, "kind": "apex_spotted",
                       "detail": f"{why}: apex {a} spotted by {spot_method!r}"})
    return {"onset": int(onset), "apex": int(a), "offset": int(offset)}, events


def sampled_indices(sample: Sample, mode: str, **kw) -> tuple[list[int], list[dict]]:
    k, events = key_frames(sample, **kw)
    return temporal_indices(k["onset"], k["apex"], k["offset"], mode), events


def unique_used(sample: Sample, indices: Sequence[int]) -> list[int]:
    """The frames actually read (nearest available) for ``indices``."""
    return [sample.frame_path(int(i))[1] for i in indices]


# ---------------------------------------------------------------- representation

@REPRESENTATIONS.register()
class Frames(PixelRepresentation):
    """(N, T, C, S, S) uint8 prepared frames of one sampling phase
    (``AF`` T=1, ``KFS`` T=3, ``MFS`` T=13); C = 3 (RGB) or 1 (``face``).

    ``size`` None: the preprocessing's own size (384 raw, 224 face). uint8
    keeps MFS at 224 px to about 0.5 GB for CASME II's 255 clips.
    """

    kind = "frames"

    def __init__(self, sampling: str = "AF", size: int | None = None, preprocess: str = "raw",
                 prep_size: int | None = None,
                 detector: str = "auto", margin: int = 20, apex: str = "annotated", spot_method: str = "flow-prior",
                 on_missing: str = "error", n_jobs: int | None = None, progress: bool | None = None):
        self.sampling, self.size = sampling, size
        self.preprocess, self.prep_size, self.detector, self.margin = preprocess, prep_size, detector, margin
        self.apex, self.spot_method, self.on_missing = apex, spot_method, on_missing
        self.n_jobs, self.progress = n_jobs, progress

    def _validate(self) -> None:
        super()._validate()
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"frames: sampling must be one of {', '.join(SAMPLINGS)}, not {self.sampling!r}")
        if self._size() is None:
            raise ValueError(f"frames: preprocess={self.preprocess!r} keeps each clip's crop size; give size=...")

    def _size(self) -> int | None:
        return self.size if self.size is not None else self._prep().out_size

    def _length(self) -> int:
        return {"AF": 1, "KFS": 3, "MFS": 13}[self.sampling]

    def _blank(self) -> np.ndarray:
        c = 1 if self._prep().gray else 3
        return np.zeros((self._length(), c, self._size(), self._size()), np.uint8)

    def _plan(self, sample, cache):
        idx, events = sampled_indices(sample, self.sampling, apex=self.apex, spot_method=self.spot_method,
                                      cache=cache, prep=self._prep())
        roles, paths, ev = frame_events(sample, {f"t{k:02d}": i for k, i in enumerate(idx)})
        return roles, paths, events + ev

    def _compute(self, sample, roles, cache):
        from representations.preprocess import Prep

        p = self._prep()
        # one crop box for the whole sequence, from its first frame (onset; the apex for AF)
        rgb, _, _ = read_frames(sample, list(roles.values()))
        out, info = prepare(rgb, Prep(p.mode, self._size(), p.detector, p.margin), sample.key)
        arr = np.stack([np.atleast_3d(f).transpose(2, 0, 1) for f in out]).astype(np.uint8)
        return arr, info["events"]
