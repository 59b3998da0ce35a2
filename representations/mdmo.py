"""MDMO: Main Directional Mean Optical flow (Liu et al., IEEE TAC 2016), on a grid.

Per sample, from the suite's own onset -> apex flow field (``flow="farneback"`` or
``"tvl1"``, the same computation and cache entry as ``--rep farneback`` / ``--rep tvl1``
with the same preprocessing and ``flow_size``; :mod:`representations.flow`):

1. the field (u, v) in pixels, at flow resolution, is cut into a ``grid`` x ``grid`` array
   of regions of interest (``numpy.array_split`` of rows and columns; 6 x 6 = the paper's
   36 ROIs in number, not its landmark-defined shapes);
2. in each region the vectors with non-zero magnitude are put into ``n_bins`` direction
   bins of equal width, bin 0 centred on +x (right) and, counting towards +y (image
   rows, i.e. downwards), bin ``k`` centred on ``2 pi k / n_bins``:
   ``k = floor((atan2(v, u) + pi / n_bins) / (2 pi / n_bins)) mod n_bins``
   (:func:`direction_bins`);
3. the main direction is the bin with the most vectors (ties: the lowest bin); the
   region's feature is the mean of the vectors in it, as magnitude rho and angle theta
   (the mean vector's, so a bin straddling +-pi is averaged correctly; a region without
   moving pixels gives (0, 0));
4. ``normalize="max"`` (the paper's): every rho divided by the largest rho of the sample
   (``"none"`` keeps pixels of the flow resolution).

Output ``(N, 2 * grid * grid)`` float32: ``output="polar"`` (the paper's ``(rho_1,
theta_1, ..., rho_R, theta_R)``, theta in -pi..pi) or ``"cartesian"`` (``rho cos theta,
rho sin theta``: no wrap-around at +-pi for a linear head), regions row by row.

Simplifications (documented): one onset -> apex field instead of the paper's per-frame
fields averaged over the clip (the flow cache serves it; SMIC gets a spotted apex as in
the flow representations); a fixed grid on the prepared frame instead of 36 ROIs from 66
landmarks (the suite's landmark code gives five points only); no removal of global head
motion beyond what the preprocessing does.
"""
from __future__ import annotations

import numpy as np

from representations import REPRESENTATIONS
from representations.preprocess import PixelRepresentation

FLOWS = ("farneback", "tvl1")
OUTPUTS = ("polar", "cartesian")
NORMALIZATIONS = ("max", "none")


def direction_bins(u: np.ndarray, v: np.ndarray, n_bins: int = 8) -> np.ndarray:
    """Direction bin of each vector (see module docstring, step 2)."""
    width = 2 * np.pi / n_bins
    return (np.floor((np.arctan2(v, u) + width / 2) / width).astype(np.int64)) % n_bins


def main_direction(u: np.ndarray, v: np.ndarray, n_bins: int = 8) -> tuple[float, float, int]:
    """``(rho, theta, bin)`` of one region: the mean vector of its most populated direction
    bin (``bin`` -1 and (0, 0) when no vector moves)."""
    u, v = np.ravel(u).astype(np.float64), np.ravel(v).astype(np.float64)
    moving = (u != 0) | (v != 0)
    if not moving.any():
        return 0.0, 0.0, -1
    u, v = u[moving], v[moving]
    b = direction_bins(u, v, n_bins)
    k = int(np.argmax(np.bincount(b, minlength=n_bins)))
    mu, mv = u[b == k].mean(), v[b == k].mean()
    return float(np.hypot(mu, mv)), float(np.arctan2(mv, mu)), k


def mdmo(uv: np.ndarray, grid: int = 6, n_bins: int = 8, normalize: str = "max",
         output: str = "polar") -> np.ndarray:
    """MDMO feature of one (2, H, W) flow field, shape (2 * grid * grid,)."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"mdmo: normalize must be one of {', '.join(NORMALIZATIONS)}, not {normalize!r}")
    if output not in OUTPUTS:
        raise ValueError(f"mdmo: output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    u, v = np.asarray(uv[0]), np.asarray(uv[1])
    rows = np.array_split(np.arange(u.shape[0]), grid)
    cols = np.array_split(np.arange(u.shape[1]), grid)
    feats = np.zeros((grid * grid, 2))
    for i, rr in enumerate(rows):
        for j, cc in enumerate(cols):
            if len(rr) and len(cc):
                sl = (slice(rr[0], rr[-1] + 1), slice(cc[0], cc[-1] + 1))
                feats[i * grid + j, :2] = main_direction(u[sl], v[sl], n_bins)[:2]
    top = feats[:, 0].max()
    if normalize == "max" and top > 0:
        feats[:, 0] /= top
    if output == "cartesian":
        feats = np.stack([feats[:, 0] * np.cos(feats[:, 1]), feats[:, 0] * np.sin(feats[:, 1])], 1)
    return feats.ravel().astype(np.float32)


@REPRESENTATIONS.register()
class MDMO(PixelRepresentation):
    """Main Directional Mean Optical flow over a grid (see module docstring).

    Args:
        flow: ``"farneback"`` or ``"tvl1"`` (that representation's default algorithm
            parameters; its cached field is reused).
        grid: regions per side (6: 36 regions).
        n_bins: direction bins (8).
        normalize: ``"max"`` (rho / largest rho of the sample) or ``"none"``.
        output: ``"polar"`` (rho, theta) or ``"cartesian"`` (rho cos, rho sin).
        flow_size: resize prepared frames to this square side before the flow (None: as
            prepared), as in the flow representations.
        preprocess / prep_size / detector / margin: see representations.preprocess.
        apex / spot_method: key frames, as in the flow representations.
        on_missing: ``"error"`` or ``"blank"`` (all-zero feature) for samples without frames.
        n_jobs, progress: extraction threads and progress bar (not in the recipe).
    """

    kind = "vector"
    VERSION = 1

    def __init__(self, flow: str = "farneback", grid: int = 6, n_bins: int = 8, normalize: str = "max",
                 output: str = "polar", flow_size: int | None = None, preprocess: str = "none",
                 prep_size: int | None = None, detector: str = "auto", margin: int = 20,
                 apex: str = "annotated", spot_method: str = "flow-prior", on_missing: str = "error",
                 n_jobs: int | None = None, progress: bool | None = None):
        self.flow, self.grid, self.n_bins, self.normalize, self.output = flow, grid, n_bins, normalize, output
        self.flow_size = flow_size
        self.preprocess, self.prep_size, self.detector, self.margin = preprocess, prep_size, detector, margin
        self.apex, self.spot_method, self.on_missing = apex, spot_method, on_missing
        self.n_jobs, self.progress = n_jobs, progress

    def _flow_rep(self):
        """The flow representation whose onset -> apex field (and its cache entry) MDMO reads."""
        if self.flow not in FLOWS:
            raise ValueError(f"mdmo: flow must be one of {', '.join(FLOWS)}, not {self.flow!r}")
        return REPRESENTATIONS.get(self.flow)(
            flow_size=self.flow_size, preprocess=self.preprocess, prep_size=self.prep_size,
            detector=self.detector, margin=self.margin, apex=self.apex, spot_method=self.spot_method,
            on_missing=self.on_missing, n_jobs=1, progress=False)

    def recipe(self) -> dict:
        return {**super().recipe(), "flow_algorithm": self._flow_rep()._algorithm(),
                "flow_frames": "onset->apex"}

    def _validate(self) -> None:
        super()._validate()
        self._flow_rep()._validate()
        if int(self.grid) < 1 or int(self.n_bins) < 1:
            raise ValueError("mdmo: grid and n_bins must be >= 1")
        if self.normalize not in NORMALIZATIONS or self.output not in OUTPUTS:
            raise ValueError(f"mdmo: normalize must be one of {', '.join(NORMALIZATIONS)} and output one of "
                             f"{', '.join(OUTPUTS)}")

    def _blank(self) -> np.ndarray:
        return np.zeros(2 * self.grid * self.grid, np.float32)

    def _plan(self, sample, cache):
        return self._flow_rep()._plan(sample, cache)

    def _compute(self, sample, roles, cache):
        uv, events = self._flow_rep().field(sample, roles, cache)
        return mdmo(uv, self.grid, self.n_bins, self.normalize, self.output), events
