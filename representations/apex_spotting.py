"""Apex spotting for databases without an apex annotation (SMIC-HS).

The apex is the frame between onset and offset that differs most from the
onset, in the spirit of D&C-RoIs (Liong et al.): the face is divided into a
6x6 grid of blocks, each candidate frame is compared with the onset block by
block, and the score is the mean of the third of blocks that changed most (the
active regions: brows, mouth corners; averaging all blocks would dilute them
with static skin). Methods:

- ``flow``: Farneback flow onset -> frame on 128x128 grayscale, with the
  median flow (global head translation) subtracted and the eyes masked out
  (ellipses of 0.35 x 0.2 inter-ocular distances around the detected eye
  centres; blinks are the commonest large non-expression motion); block
  feature = mean flow magnitude.
- ``flow-prior`` (default): ``flow`` scores times a Gaussian prior over time
  centred on the middle of onset..offset with sigma = a third of the clip. On
  CASME II the pure ``flow`` argmax lands late (the face keeps drifting after
  the apex) and its mean error is worse than just taking the middle frame; the
  prior fixes that. It needs onset and offset, which SMIC annotates.
- ``lbp``: uniform LBP (8 neighbours, radius 1; 59 bins) histograms per block;
  block feature = chi-squared distance to the onset's histogram (D&C-RoIs'
  appearance feature).
- ``middle``: ``(onset + offset) // 2``, the baseline any spotter must beat.

The candidates are all available frames in (onset, offset]; we search them
exhaustively instead of D&C-RoIs' divide-and-conquer halving, which only saves
time. ``python -m representations.apex_spotting --data-root ../shared/data``
measures the error against CASME II's annotated apex (results/REPRESENTATIONS.md).
"""
from __future__ import annotations

import sys
from typing import Sequence

import cv2
import numpy as np

from benchmark.core.samples import Sample

METHODS = ("flow-prior", "flow", "lbp", "middle")
DEFAULT_METHOD = "flow-prior"
SIZE = 128
GRID = 6
TOP_FRACTION = 1 / 3
SPOT_VERSION = 2
EYE_AXES = (0.35, 0.2)  # eye mask semi-axes (x, y) in inter-ocular distances
PRIOR_SIGMA = 1 / 3  # prior width as a fraction of onset..offset


def _blocks(a: np.ndarray, grid: int = GRID) -> list[np.ndarray]:
    h, w = a.shape[:2]
    ys, xs = np.linspace(0, h, grid + 1).astype(int), np.linspace(0, w, grid + 1).astype(int)
    return [a[ys[i]:ys[i + 1], xs[j]:xs[j + 1]] for i in range(grid) for j in range(grid)]


def _top_mean(values: np.ndarray) -> float:
    k = max(1, int(round(len(values) * TOP_FRACTION)))
    return float(np.sort(values)[-k:].mean())


def _uniform_table() -> np.ndarray:
    """8-bit LBP code -> uniform label (0..57 uniform patterns, 58 for the rest)."""
    table = np.full(256, 58, np.uint8)
    k = 0
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        if sum(bits[i] != bits[(i + 1) % 8] for i in range(8)) <= 2:
            table[code] = k
            k += 1
    return table


_UNIFORM = _uniform_table()


def lbp(gray: np.ndarray) -> np.ndarray:
    """Uniform LBP labels of the interior pixels (8 neighbours, radius 1)."""
    g = gray.astype(np.int16)
    c = g[1:-1, 1:-1]
    code = np.zeros_like(c, dtype=np.uint8)
    shifts = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    h, w = g.shape
    for bit, (dy, dx) in enumerate(shifts):
        n = g[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx]
        code |= ((n >= c).astype(np.uint8) << bit)
    return _UNIFORM[code]


def _lbp_hists(gray: np.ndarray) -> np.ndarray:
    return np.stack([np.bincount(b.ravel(), minlength=59) / max(b.size, 1) for b in _blocks(lbp(gray))])


def score_lbp(onset: np.ndarray, frame: np.ndarray, onset_hists: np.ndarray | None = None) -> float:
    h0 = _lbp_hists(onset) if onset_hists is None else onset_hists
    h1 = _lbp_hists(frame)
    chi2 = ((h0 - h1) ** 2 / (h0 + h1 + 1e-10)).sum(1)
    return _top_mean(chi2)


def eye_mask(frame: np.ndarray, detector: str = "mediapipe") -> np.ndarray | None:
    """False on ellipses around the eyes of ``frame`` (None when no face is found)."""
    from representations.preprocess import detect_face

    rgb = np.ascontiguousarray(np.dstack([frame] * 3) if frame.ndim == 2 else frame)
    face = detect_face(rgb, detector)
    if face is None:
        return None
    yy, xx = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    iod = float(np.linalg.norm(face.points[1] - face.points[0]))
    ax, ay = EYE_AXES[0] * iod, EYE_AXES[1] * iod
    mask = np.ones(frame.shape[:2], bool)
    for x, y in face.points[:2]:
        mask &= ((xx - x) / ax) ** 2 + ((yy - y) / ay) ** 2 > 1
    return mask


def score_flow(onset: np.ndarray, frame: np.ndarray, mask: np.ndarray | None = None) -> float:
    f = cv2.calcOpticalFlowFarneback(onset, frame, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    f = f - np.median(f.reshape(-1, 2), axis=0)  # remove global head translation
    mag = np.sqrt((f ** 2).sum(-1))
    if mask is None:
        return _top_mean(np.array([b.mean() for b in _blocks(mag)]))
    w = mask.astype(np.float32)
    return _top_mean(np.array([(b * m).sum() / max(m.sum(), 1.0) for b, m in zip(_blocks(mag), _blocks(w))]))


def time_prior(frames: Sequence[int], onset: int, offset: int) -> np.ndarray:
    sigma = max(PRIOR_SIGMA * (offset - onset), 1.0)
    return np.exp(-0.5 * ((np.asarray(frames, float) - (onset + offset) / 2) / sigma) ** 2)


def _gray(path, prep, box=None) -> tuple[np.ndarray, list]:
    """Prepared grayscale frame and its crop box (the onset's box is reused for
    every candidate, as the representations do)."""
    from representations.preprocess import prepare, read_image, to_gray

    rgb = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)
    out, info = prepare([rgb], prep, box=box)
    return to_gray(out[0]), info.get("align", info["box"])  # aligned: the rotated box


def candidates(sample: Sample, onset: int, offset: int) -> list[int]:
    return [n for n in sorted(sample.frames) if onset < n <= offset]


def spot_apex(sample: Sample, method: str = DEFAULT_METHOD, onset: int | None = None, offset: int | None = None,
              prep=None, only: Sequence[int] | None = None,
              detector: str = "mediapipe") -> tuple[int, dict[int, float]]:
    """Spotted apex frame number and the score of every candidate.

    ``only`` restricts the candidates (e.g. to a regular grid of frames);
    ``detector`` finds the eyes to mask for the flow methods.
    """
    from representations.preprocess import Prep

    if method not in METHODS:
        raise ValueError(f"spot method must be one of {', '.join(METHODS)}, not {method!r}")
    onset = sample.onset if onset is None else onset
    offset = sample.offset if offset is None else offset
    onset = onset if onset is not None else min(sample.frames)
    offset = offset if offset is not None else max(sample.frames)
    on_path, on_used = sample.frame_path(onset)
    cands = [n for n in candidates(sample, on_used, offset) if only is None or n in set(only)]
    if not cands:
        return int(on_used), {}
    if method == "middle":
        mid = (on_used + offset) // 2
        return int(min(cands, key=lambda n: (abs(n - mid), n))), {}
    prep = Prep("none", SIZE) if prep is None else Prep(prep.mode, SIZE, prep.detector, prep.margin)
    g0, box = _gray(on_path, prep)
    h0 = _lbp_hists(g0) if method == "lbp" else None
    mask = eye_mask(g0, detector) if method.startswith("flow") else None
    scores = {}
    for n in cands:
        g, _ = _gray(sample.frames[n], prep, box)
        scores[n] = score_lbp(g0, g, h0) if method == "lbp" else score_flow(g0, g, mask)
    if method == "flow-prior":
        scores = dict(zip(cands, (np.array([scores[n] for n in cands]) * time_prior(cands, on_used, offset)).tolist()))
    return int(max(scores, key=lambda n: (scores[n], -n))), scores


def spot_apex_cached(sample: Sample, method: str = DEFAULT_METHOD, onset=None, offset=None, cache=None, prep=None):
    """:func:`spot_apex` through the disk cache (key: method, prep, candidate frames)."""
    from representations._cache import DiskCache
    from representations.preprocess import Prep

    cache = cache or DiskCache()
    prep = prep or Prep("none", SIZE)
    on = onset if onset is not None else (sample.onset if sample.onset is not None else min(sample.frames))
    off = offset if offset is not None else (sample.offset if sample.offset is not None else max(sample.frames))
    frames = [sample.frame_path(on)[1]] + candidates(sample, sample.frame_path(on)[1], off)
    recipe = {"stage": "apex_spotting", "version": SPOT_VERSION, "method": method, "size": SIZE,
              "grid": GRID, "top": TOP_FRACTION, "eye_axes": EYE_AXES, "prior_sigma": PRIOR_SIGMA,
              "eye_detector": "mediapipe", "prep": Prep(prep.mode, SIZE, prep.detector, prep.margin).recipe(),
              "onset": on, "offset": off, "frames": frames}

    def compute():
        apex, scores = spot_apex(sample, method, on, off, prep)
        return {"apex": np.array(apex)}, {"scores": {str(k): v for k, v in scores.items()}}

    arrays, meta = cache.get_or_compute(recipe, [sample.frames[n] for n in frames], compute)
    return int(arrays["apex"]), meta
