"""The apex frame itself (no motion): a static-appearance baseline."""
from __future__ import annotations

import cv2
import numpy as np

from representations import REPRESENTATIONS
from representations.base import Representation, RepresentationError, read_image


@REPRESENTATIONS.register()
class Apex(Representation):
    """(3, size, size) float32 0..255 (BGR): the stored apex crop when the dataset
    has one (``combined_datasets_whole``), else the apex frame (nearest available)."""

    kind = "image"

    def needs_frames(self) -> bool:  # reads the MEGC2019 folder's precomputed files only
        return False

    def __init__(self, size: int = 28):
        self.size = size

    def _path(self, s):
        if "apex_image" in s.extras:
            return s.extras["apex_image"]
        if not s.frames:
            raise RepresentationError(f"{s.key}: neither an apex crop nor frames are available")
        index = s.apex if s.apex is not None else (s.onset + s.offset) // 2
        return s.frame_path(index)[0]

    def transform(self, samples) -> np.ndarray:
        out = []
        for s in samples:
            img = cv2.resize(read_image(self._path(s)), (self.size, self.size), interpolation=cv2.INTER_AREA)
            out.append(img.transpose(2, 0, 1))
        return np.stack(out).astype(np.float32)
