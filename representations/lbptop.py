"""LBP-TOP: local binary patterns on three orthogonal planes (Zhao & Pietikäinen, 2007),
the MEGC2019 baseline representation.

For a clip's gray volume ``V[t, y, x]`` (the onset..offset frames, prepared like every
pixel representation, optionally resized to ``size`` x ``size``), LBP codes are computed
with scikit-image's ``local_binary_pattern`` (``points`` neighbours on a circle of
``radius``, bilinear interpolation) on

- XY: every frame ``V[t]`` (appearance);
- XT: every row ``V[:, y, :]``, an image with rows t and columns x (horizontal motion);
- YT: every column ``V[:, :, x]``, an image with rows t and columns y (vertical motion).

Only centre pixels at least ``radius`` from every border of the volume are counted (the
neighbours of the others fall outside it; scikit-image would read them as 0). The
interior is cut into a ``blocks`` x ``blocks`` grid in (y, x) (``numpy.array_split`` of
the rows and of the columns; the whole clip in t) and each plane's codes in each block
are histogrammed and normalised to sum 1. Output: ``(N, 3 * blocks * blocks * n_bins)``
float32, ordered ``[plane XY, XT, YT][block row][block column][bin]``; ``method``
``"nri_uniform"`` (default: the original u2 mapping, ``points * (points - 1) + 3`` bins,
59 for 8 points) or ``"uniform"`` (rotation-invariant uniform, ``points + 2`` bins).

scikit-image's neighbourhood is a circle, so the spatial and temporal radii are the same
(the original allows ``R_T`` != ``R_X``); a ``radius`` of 1 in t means adjacent frames *of
the frames used*.

Frames: every frame that exists between onset and offset, in order (``clip_frames`` in the
recipe says so; the frame numbers used are part of the cache key). On a full copy that is
every frame of the clip; on a subsampled copy (the shared CASME II frames) the gaps stay
gaps: neighbours in t are the next and previous frames *that exist*, and each sample with
gaps is reported (``frame_gaps`` in ``rep_report.json``). A missing onset/offset is the
clip's first/last frame; a clip with fewer than ``2 * radius + 1`` frames in range is
extended by the nearest frames outside it, then, if the folder has too few, by repeating
its last frame (both recorded). No apex is needed (none is spotted).
"""
from __future__ import annotations

import numpy as np

from representations import REPRESENTATIONS
from representations.preprocess import PixelRepresentation, prepare, read_frames, to_gray
from representations.sampling import clip_bounds

METHODS = ("nri_uniform", "uniform")
PLANES = ("XY", "XT", "YT")


def n_bins(points: int, method: str) -> int:
    if method == "nri_uniform":
        return points * (points - 1) + 3
    if method == "uniform":
        return points + 2
    raise ValueError(f"lbptop: method must be one of {', '.join(METHODS)}, not {method!r}")


def plane_codes(volume: np.ndarray, points: int = 8, radius: int = 1,
                method: str = "nri_uniform") -> np.ndarray:
    """(3, T, H, W) LBP codes of a (T, H, W) uint8 volume on the XY, XT and YT planes
    (codes at every voxel; only the interior is meaningful)."""
    from skimage.feature import local_binary_pattern

    v = np.asarray(volume)
    if v.ndim != 3:
        raise ValueError(f"lbptop: expected a (T, H, W) volume, got shape {v.shape}")
    T, H, W = v.shape
    lbp = lambda img: local_binary_pattern(np.ascontiguousarray(img), points, radius, method)  # noqa: E731
    codes = np.empty((3, T, H, W), np.int32)
    for t in range(T):
        codes[0, t] = lbp(v[t])
    for y in range(H):
        codes[1, :, y, :] = lbp(v[:, y, :])
    for x in range(W):
        codes[2, :, :, x] = lbp(v[:, :, x])
    return codes


def lbp_top(volume: np.ndarray, points: int = 8, radius: int = 1, blocks: int = 5,
            method: str = "nri_uniform") -> np.ndarray:
    """LBP-TOP histogram of one (T, H, W) uint8 volume, shape (3, blocks, blocks, n_bins),
    each histogram summing to 1 (see module docstring)."""
    v = np.asarray(volume)
    bins = n_bins(points, method)
    T, H, W = v.shape
    r = int(np.ceil(radius))
    if min(T, H, W) < 2 * r + 1:
        raise ValueError(f"lbptop: a {T}x{H}x{W} volume has no voxel {r} away from every border")
    inner = plane_codes(v, points, radius, method)[:, r:T - r, r:H - r, r:W - r]
    rows = np.array_split(np.arange(inner.shape[2]), blocks)
    cols = np.array_split(np.arange(inner.shape[3]), blocks)
    out = np.zeros((3, blocks, blocks, bins), np.float64)
    for p in range(3):
        for i, rr in enumerate(rows):
            for j, cc in enumerate(cols):
                if len(rr) and len(cc):
                    c = inner[p][:, rr[0]:rr[-1] + 1, cc[0]:cc[-1] + 1].ravel()
                    out[p, i, j] = np.bincount(c, minlength=bins)[:bins] / c.size
    return out.astype(np.float32)


def clip_frames(sample, radius: int = 1) -> tuple[list[int], list[dict]]:
    """Frame numbers LBP-TOP uses for a sample (see module docstring) and the events."""
    numbers = sorted(sample.frames)
    onset, offset, events = clip_bounds(sample)
    lo, hi = min(onset, offset), max(onset, offset)
    used = [n for n in numbers if lo <= n <= hi]
    need = 2 * int(np.ceil(radius)) + 1
    if len(used) < need:
        rest = sorted((n for n in numbers if n not in used), key=lambda n: (min(abs(n - lo), abs(n - hi)), n))
        extra = rest[:need - len(used)]
        used = sorted(used + extra)
        detail = (f"{len(used) - len(extra)} frame(s) between onset {lo} and offset {hi}; "
                  f"nearest frames {extra} added")
        if len(used) < need:
            detail += f"; the folder has {len(used)}: last frame repeated to {need}"
            used = used + [used[-1]] * (need - len(used))
        events.append({"sample": sample.key, "kind": "short_clip", "detail": detail})
    elif len(used) < hi - lo + 1:
        events.append({"sample": sample.key, "kind": "frame_gaps",
                       "detail": f"{len(used)} of the {hi - lo + 1} frames {lo}..{hi} exist: "
                                 "LBP-TOP over those, in order"})
    return used, events


@REPRESENTATIONS.register()
class LBPTOP(PixelRepresentation):
    """LBP-TOP histograms over a block grid of the onset..offset clip (see module docstring).

    Args:
        points: neighbours on the circle (8).
        radius: circle radius in pixels and in frames (1).
        blocks: the (y, x) grid is ``blocks`` x ``blocks`` (5).
        method: ``"nri_uniform"`` (59 bins for 8 points) or ``"uniform"`` (``points + 2``).
        size: resize the prepared frames to ``size`` x ``size`` (None: as prepared).
        preprocess / prep_size / detector / margin: see representations.preprocess.
        on_missing: ``"error"`` or ``"blank"`` (all-zero histograms) for samples without frames.
        n_jobs, progress: extraction threads and progress bar (not in the recipe).
    """

    kind = "vector"
    VERSION = 1

    def __init__(self, points: int = 8, radius: int = 1, blocks: int = 5, method: str = "nri_uniform",
                 size: int | None = None, preprocess: str = "none", prep_size: int | None = None,
                 detector: str = "auto", margin: int = 20, on_missing: str = "error",
                 n_jobs: int | None = None, progress: bool | None = None):
        self.points, self.radius, self.blocks, self.method, self.size = points, radius, blocks, method, size
        self.preprocess, self.prep_size, self.detector, self.margin = preprocess, prep_size, detector, margin
        self.on_missing, self.n_jobs, self.progress = on_missing, n_jobs, progress

    def recipe(self) -> dict:
        return {**super().recipe(), "clip_frames": "every existing frame onset..offset, in order (gaps kept)",
                "skimage": _skimage_version()}

    def _validate(self) -> None:
        super()._validate()
        n_bins(self.points, self.method)
        if int(self.blocks) < 1 or int(self.points) < 1 or float(self.radius) <= 0:
            raise ValueError("lbptop: blocks and points must be >= 1 and radius > 0")

    def _dim(self) -> int:
        return 3 * self.blocks * self.blocks * n_bins(self.points, self.method)

    def _blank(self) -> np.ndarray:
        return np.zeros(self._dim(), np.float32)

    def _plan(self, sample, cache):
        used, events = clip_frames(sample, self.radius)
        return {"clip": used}, [sample.frames[n] for n in dict.fromkeys(used)], events

    def _compute(self, sample, roles, cache):
        import cv2

        rgb, _, _ = read_frames(sample, roles["clip"])
        frames, info = prepare(rgb, self._prep(), sample.key)
        gray = [to_gray(f) for f in frames]
        if self.size:
            gray = [cv2.resize(g, (self.size, self.size), interpolation=cv2.INTER_AREA
                               if min(g.shape) >= self.size else cv2.INTER_LINEAR) for g in gray]
        shapes = {g.shape for g in gray}
        if len(shapes) > 1:  # frames of one clip stored at different sizes: the first one's
            h, w = gray[0].shape
            gray = [g if g.shape == (h, w) else cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA) for g in gray]
        hist = lbp_top(np.stack(gray).astype(np.uint8), self.points, self.radius, self.blocks, self.method)
        return hist.ravel(), info["events"]


def _skimage_version() -> str:
    import skimage

    return skimage.__version__
