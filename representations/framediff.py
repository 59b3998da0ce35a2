"""Apex minus onset in pixel space (MMNet-style motion image).

``space``:
- ``"pixel"``: the difference of the prepared 0..255 frames (-255..255);
- ``"normalized"``: the difference after MMNet's input normalisation (0..1,
  ImageNet mean/std per channel), i.e. ``(apex - onset) / 255 / std_c``;
- ``"standardized"``: each frame z-scored on its own first, which cancels a
  global brightness/contrast change between the two frames (lamp flicker).

Channels follow the preprocessing: RGB for ``none``/``raw``, one gray channel
for ``face``. ``normalize="minmax"`` stretches each channel to 0..255.
"""
from __future__ import annotations

import numpy as np

from representations import REPRESENTATIONS
from representations.flow import minmax, resize_channel
from representations.preprocess import PixelRepresentation, frame_events, prepare, read_frames
from representations.regions import REGION_MODES, apex_landmarks, crop_regions, region_centres
from representations.sampling import APEX_MODES, key_frames

SPACES = ("pixel", "normalized", "standardized")
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


@REPRESENTATIONS.register()
class FrameDiff(PixelRepresentation):
    """(N, C, size, size) float32 apex - onset (C = 3 RGB, or 1 with ``preprocess="face"``).

    Args: size, space (see module), normalize (``"none"`` | ``"minmax"``),
    regions (as the flow representations), preprocess / prep_size / detector /
    margin, apex, spot_method, on_missing, n_jobs, progress.
    """

    kind = "image"

    def __init__(self, size: int = 28, space: str = "pixel", normalize: str = "none", regions: str = "none",
                 preprocess: str = "none", prep_size: int | None = None, detector: str = "auto",
                 margin: int = 20, apex: str = "annotated", spot_method: str = "flow-prior", on_missing: str = "error",
                 n_jobs: int | None = None, progress: bool | None = None):
        self.size, self.space, self.normalize, self.regions = size, space, normalize, regions
        self.preprocess, self.prep_size, self.detector, self.margin = preprocess, prep_size, detector, margin
        self.apex, self.spot_method, self.on_missing = apex, spot_method, on_missing
        self.n_jobs, self.progress = n_jobs, progress

    def _validate(self) -> None:
        super()._validate()
        for name, value, allowed in (("space", self.space, SPACES), ("normalize", self.normalize, ("none", "minmax")),
                                     ("regions", self.regions, REGION_MODES), ("apex", self.apex, APEX_MODES)):
            if value not in allowed:
                raise ValueError(f"framediff: {name} must be one of {', '.join(allowed)}, not {value!r}")

    def _blank(self) -> np.ndarray:
        return np.zeros((1 if self._prep().gray else 3, self.size, self.size), np.float32)

    def _plan(self, sample, cache):
        k, events = key_frames(sample, self.apex, self.spot_method, cache, self._prep())
        roles, paths, ev = frame_events(sample, {"onset": k["onset"], "apex": k["apex"]})
        return roles, paths, events + ev

    def _compute(self, sample, roles, cache):
        rgb, _, _ = read_frames(sample, [roles["onset"], roles["apex"]])
        (on, ap), info = prepare(rgb, self._prep(), sample.key)
        on, ap = (np.atleast_3d(f).astype(np.float32) for f in (on, ap))  # (H, W, C)
        if self.space == "pixel":
            d = ap - on
        elif self.space == "normalized":
            std = IMAGENET_STD if on.shape[2] == 3 else IMAGENET_STD.mean(keepdims=True)
            d = (ap - on) / 255.0 / std
        else:
            z = lambda f: (f - f.mean()) / (f.std() + 1e-6)  # noqa: E731
            d = z(ap) - z(on)
        out = np.stack([resize_channel(d[:, :, c], self.size) for c in range(d.shape[2])])
        events = list(info["events"])
        if self.regions != "none":
            pts, hw, ev = apex_landmarks(sample, roles["onset"], roles["apex"], self._prep(), self._detector(), cache)
            events += ev
            out = crop_regions(out, region_centres(pts, hw, self.size), self.regions)
        if self.normalize == "minmax":
            out = minmax(out)
        return np.ascontiguousarray(out, np.float32), events
