"""The apex frame itself (no motion): a static-appearance baseline."""
from __future__ import annotations

import cv2
import numpy as np

from representations import REPRESENTATIONS
from representations.base import Representation, RepresentationError, read_image


@REPRESENTATIONS.register()
class Apex(Representation):
    """(3, size, size) float32 0..255 (BGR): the stored apex crop when the dataset
    has one (``combined_datasets_whole``), else the apex frame (nearest available).
    ``on_missing``: what a sample with neither gets (``blank``: a black image; the runner's
    ``drop`` leaves it out; ``error``)."""

    kind = "image"

    def __init__(self, size: int = 28, on_missing: str = "error"):
        self.size = size
        self.on_missing = on_missing

    def has_inputs(self, sample) -> bool:
        return "apex_image" in sample.extras or bool(sample.frames)

    def _path(self, s):
        if "apex_image" in s.extras:
            return s.extras["apex_image"]
        index = s.apex if s.apex is not None else (s.onset + s.offset) // 2
        return s.frame_path(index)[0]

    def transform(self, samples) -> np.ndarray:
        lacking = [s.key for s in samples if not self.has_inputs(s)]
        if lacking and self.on_missing != "blank":
            raise RepresentationError(f"{lacking[0]}: neither an apex crop nor frames are available "
                                      f"({len(lacking)} sample(s)); pass on_missing=blank (zero image) or drop")
        out = []
        for s in samples:
            if not self.has_inputs(s):  # on_missing=blank: a black image
                out.append(np.zeros((3, self.size, self.size), np.uint8))
                continue
            img = cv2.resize(read_image(self._path(s)), (self.size, self.size), interpolation=cv2.INTER_AREA)
            out.append(img.transpose(2, 0, 1))
        return np.stack(out).astype(np.float32)
