"""Onset -> apex optical flow (Dual TV-L1, Farneback) and optical strain.

Output: (N, C, size, size) float32 with channels (u, v, strain[, magnitude])
(``channel_order="cv2"`` reverses them, as ``cv2.imread`` yields the stored
STSTNet images). Steps, per sample:

1. key frames: annotated onset and apex (a spotted apex where there is none,
   see :mod:`representations.apex_spotting`); nearest available frame when
   one is missing (recorded);
2. preprocessing (``none`` | ``raw`` | ``face``, see
   :mod:`representations.preprocess`), grayscale, optionally resized to
   ``flow_size`` before the flow is computed;
3. flow (u, v) in pixels of that resolution, cached on its own so that output
   options (size, normalisation, regions) never recompute it;
4. optical strain from the flow's first derivatives at flow resolution:
   ``sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2)`` (Liong et al.; HTNet eq. 2);
5. resized to ``size`` (area averaging); with ``normalize="none"`` u, v are
   rescaled to pixels of the output grid, so values keep a physical meaning;
6. optional HTNet regions (:mod:`representations.regions`);
7. ``normalize="minmax"``: every channel of every image stretched to 0..255
   (the STSTNet/HTNet recipe; absolute magnitude is lost).

``size=28, normalize="minmax"`` gives the STSTNet/HTNet input; ``size=224``
keeps detail for larger models.
"""
from __future__ import annotations

import cv2
import numpy as np

from representations import REPRESENTATIONS
from representations.preprocess import PixelRepresentation, frame_events, prepare, read_frames, to_gray
from representations.regions import REGION_MODES, apex_landmarks, crop_regions, region_centres
from representations.sampling import APEX_MODES, key_frames

FLOW_VERSION = 1
NORMALIZATIONS = ("minmax", "none")
STRAIN_DIFFS = ("central", "forward")
CHANNEL_ORDERS = ("rgb", "cv2")


def optical_strain(u: np.ndarray, v: np.ndarray, diff: str = "central") -> np.ndarray:
    """Optical strain magnitude of a flow field (pixels per pixel)."""
    if diff == "central":
        u_y, u_x = np.gradient(u)
        v_y, v_x = np.gradient(v)
    elif diff == "forward":  # as in the spotting code of the MEGC baselines; last row/col replicated
        u_x, v_x = (np.diff(a, axis=1, append=a[:, -1:]) for a in (u, v))
        u_y, v_y = (np.diff(a, axis=0, append=a[-1:]) for a in (u, v))
    else:
        raise ValueError(f"strain must be one of {', '.join(STRAIN_DIFFS)}, not {diff!r}")
    return np.sqrt(u_x ** 2 + v_y ** 2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def resize_channel(a: np.ndarray, size: int) -> np.ndarray:
    if a.shape == (size, size):
        return a.astype(np.float32)
    shrink = a.shape[0] >= size and a.shape[1] >= size
    return cv2.resize(a.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def minmax(a: np.ndarray) -> np.ndarray:
    """Per-channel stretch to 0..255 (a constant channel becomes 0), like cv2.NORM_MINMAX."""
    lo = a.min(axis=(-2, -1), keepdims=True)
    span = a.max(axis=(-2, -1), keepdims=True) - lo
    out = np.where(span > 0, (a - lo) * 255.0 / np.where(span > 0, span, 1), 0)
    return np.clip(out, 0, 255).astype(np.float32)  # float rounding can overshoot 255


class _Flow(PixelRepresentation):
    """Shared pipeline; subclasses give the flow algorithm and its parameters."""

    kind = "flow_image"

    def _algorithm(self) -> dict:
        raise NotImplementedError

    def flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _validate(self) -> None:
        super()._validate()
        for name, value, allowed in (("normalize", self.normalize, NORMALIZATIONS),
                                     ("strain", self.strain, STRAIN_DIFFS),
                                     ("channel_order", self.channel_order, CHANNEL_ORDERS),
                                     ("regions", self.regions, REGION_MODES), ("apex", self.apex, APEX_MODES)):
            if value not in allowed:
                raise ValueError(f"{type(self).registry_name}: {name} must be one of {', '.join(allowed)}, "
                                 f"not {value!r}")
        if self.regions != "none" and self.size % 4:
            raise ValueError(f"regions need a size divisible by 4, not {self.size}")

    def _channels(self) -> int:
        return 4 if self.magnitude else 3

    def _blank(self) -> np.ndarray:
        return np.zeros((self._channels(), self.size, self.size), np.float32)

    def _plan(self, sample, cache):
        k, events = key_frames(sample, self.apex, self.spot_method, cache, self._prep())
        roles, paths, ev = frame_events(sample, {"onset": k["onset"], "apex": k["apex"]})
        if roles["onset"] == roles["apex"]:
            ev.append({"sample": sample.key, "kind": "same_frame",
                       "detail": f"onset and apex fall on frame {roles['apex']}: zero motion"})
        return roles, paths, events + ev

    def field(self, sample, roles: dict, cache) -> tuple[np.ndarray, list[dict]]:
        """(2, H, W) onset->apex flow at flow resolution, cached under its own recipe."""
        prep = self._prep()
        recipe = {"stage": "flow", "version": FLOW_VERSION, "algorithm": self._algorithm(),
                  "preprocess": prep.recipe(), "flow_size": self.flow_size, "frames": roles,
                  "opencv": cv2.__version__}
        idx = [roles["onset"], roles["apex"]]

        def compute():
            rgb, _, _ = read_frames(sample, idx)
            out, info = prepare(rgb, prep, sample.key)
            on, ap = (to_gray(f) for f in out)
            if self.flow_size:
                on, ap = (cv2.resize(f, (self.flow_size, self.flow_size), interpolation=cv2.INTER_AREA)
                          for f in (on, ap))
            f = self.flow(on, ap)
            return {"uv": np.ascontiguousarray(f.transpose(2, 0, 1), np.float32)}, {"events": info["events"],
                                                                                  "box": info["box"]}

        arrays, meta = cache.get_or_compute(recipe, [sample.frames[i] for i in idx], compute)
        return arrays["uv"], meta.get("events", [])

    def _compute(self, sample, roles, cache):
        uv, events = self.field(sample, roles, cache)
        u, v = uv
        chans = [u, v, optical_strain(u, v, self.strain)]
        if self.magnitude:
            chans.append(np.sqrt(u ** 2 + v ** 2))
        h, w = u.shape
        out = np.stack([resize_channel(c, self.size) for c in chans])
        if self.normalize == "none":  # displacement in pixels of the output grid (strain is a ratio)
            out[0] *= self.size / w
            out[1] *= self.size / h
            if self.magnitude:
                out[3] = np.sqrt(out[0] ** 2 + out[1] ** 2)
        if self.regions != "none":
            pts, hw, ev = apex_landmarks(sample, roles["onset"], roles["apex"], self._prep(), self._detector(), cache)
            events = events + ev
            out = crop_regions(out, region_centres(pts, hw, self.size), self.regions)
        if self.normalize == "minmax":
            out = minmax(out)
        if self.channel_order == "cv2":
            out = out[::-1]
        return np.ascontiguousarray(out, np.float32), events


_SHARED_DOC = """
    Args (shared by the flow representations):
        size: output side (28 = STSTNet/HTNet input; 224 for larger models).
        normalize: ``"minmax"`` per channel and image to 0..255, or ``"none"``.
        magnitude: append the flow magnitude as a 4th channel.
        channel_order: ``"rgb"`` (u, v, strain[, mag]) or ``"cv2"`` (reversed,
            as ``cv2.imread`` yields the stored STSTNet images).
        flow_size: resize prepared frames to this square side before the flow
            (None: flow at the preprocessed resolution).
        strain: derivative scheme, ``"central"`` or ``"forward"``.
        regions: ``"none"``, ``"htnet"`` or ``"htnet-transposed"`` (public code).
        preprocess / prep_size / detector / margin: see representations.preprocess.
        apex: ``"annotated"`` (spotted only when missing) or ``"spotted"``.
        spot_method: apex spotting method (``"flow"`` or ``"lbp"``).
        on_missing: ``"error"`` or ``"blank"`` for samples without frames.
        n_jobs, progress: extraction threads and progress bar (not in the recipe).
"""


@REPRESENTATIONS.register()
class TVL1(_Flow):
    __doc__ = """Dual TV-L1 flow (OpenCV contrib ``optflow``) + optical strain; defaults are OpenCV's
    (tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps, epsilon 0.01).""" + _SHARED_DOC

    def __init__(self, size: int = 28, normalize: str = "minmax", magnitude: bool = False,
                 channel_order: str = "rgb", flow_size: int | None = None, strain: str = "central",
                 regions: str = "none", preprocess: str = "none", prep_size: int | None = None,
                 detector: str = "auto", margin: int = 20, apex: str = "annotated", spot_method: str = "flow-prior",
                 on_missing: str = "error", tau: float = 0.25, lambda_: float = 0.15, theta: float = 0.3,
                 nscales: int = 5, warps: int = 5, epsilon: float = 0.01,
                 n_jobs: int | None = None, progress: bool | None = None):
        self.size, self.normalize, self.magnitude, self.channel_order = size, normalize, magnitude, channel_order
        self.flow_size, self.strain, self.regions = flow_size, strain, regions
        self.preprocess, self.prep_size, self.detector, self.margin = preprocess, prep_size, detector, margin
        self.apex, self.spot_method, self.on_missing = apex, spot_method, on_missing
        self.tau, self.lambda_, self.theta, self.nscales, self.warps, self.epsilon = (
            tau, lambda_, theta, nscales, warps, epsilon)
        self.n_jobs, self.progress = n_jobs, progress

    def _algorithm(self) -> dict:
        return {"name": "dual_tvl1", "tau": self.tau, "lambda": self.lambda_, "theta": self.theta,
                "nscales": self.nscales, "warps": self.warps, "epsilon": self.epsilon}

    def flow(self, prev, nxt):
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(
            tau=self.tau, lambda_=self.lambda_, theta=self.theta, nscales=self.nscales,
            warps=self.warps, epsilon=self.epsilon)
        return tvl1.calc(prev, nxt, None)


@REPRESENTATIONS.register()
class Farneback(_Flow):
    __doc__ = """Farneback flow + optical strain; defaults are HTNet's code
    (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2, flags 0).""" + _SHARED_DOC

    def __init__(self, size: int = 28, normalize: str = "minmax", magnitude: bool = False,
                 channel_order: str = "rgb", flow_size: int | None = None, strain: str = "central",
                 regions: str = "none", preprocess: str = "none", prep_size: int | None = None,
                 detector: str = "auto", margin: int = 20, apex: str = "annotated", spot_method: str = "flow-prior",
                 on_missing: str = "error", pyr_scale: float = 0.5, levels: int = 3, winsize: int = 15,
                 iterations: int = 3, poly_n: int = 5, poly_sigma: float = 1.2, flags: int = 0,
                 n_jobs: int | None = None, progress: bool | None = None):
        self.size, self.normalize, self.magnitude, self.channel_order = size, normalize, magnitude, channel_order
        self.flow_size, self.strain, self.regions = flow_size, strain, regions
        self.preprocess, self.prep_size, self.detector, self.margin = preprocess, prep_size, detector, margin
        self.apex, self.spot_method, self.on_missing = apex, spot_method, on_missing
        self.pyr_scale, self.levels, self.winsize, self.iterations = pyr_scale, levels, winsize, iterations
        self.poly_n, self.poly_sigma, self.flags = poly_n, poly_sigma, flags
        self.n_jobs, self.progress = n_jobs, progress

    def _algorithm(self) -> dict:
        return {"name": "farneback", "pyr_scale": self.pyr_scale, "levels": self.levels, "winsize": self.winsize,
                "iterations": self.iterations, "poly_n": self.poly_n, "poly_sigma": self.poly_sigma,
                "flags": self.flags}

    def flow(self, prev, nxt):
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, self.pyr_scale, self.levels, self.winsize,
                                            self.iterations, self.poly_n, self.poly_sigma, self.flags)
