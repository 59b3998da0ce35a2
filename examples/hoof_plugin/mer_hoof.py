"""An example plugin: HOOF, a histogram of oriented optical flow (Chaudhry et al., CVPR 2009).

Farneback flow from the onset to the apex frame of the face crop, cut into a
``grid`` x ``grid`` of cells; each cell gives a ``bins``-bin histogram of flow
orientation weighted by magnitude, folded so that left and right motion of the
same vertical direction share a bin (the paper's mirror symmetry), each
normalised to sum 1. Output kind ``vector``: it fits ``logreg`` and ``svm``.

Use it from outside the package, with no change to the suite:

    python -m benchmark run --plugin mer_hoof --rep hoof --model logreg --protocol cde   # on sys.path
    python -m benchmark run --plugin path/to/mer_hoof.py --rep hoof --model svm --protocol cde
    pip install -e examples/hoof_plugin    # then it loads through its entry point on every command
"""
from __future__ import annotations

import cv2
import numpy as np

from representations import REPRESENTATIONS
from representations.base import Representation, check_missing, read_image

__version__ = "0.1.0"


@REPRESENTATIONS.register("hoof")
class HOOF(Representation):
    kind = "vector"

    def __init__(self, bins: int = 8, grid: int = 4, size: int = 112, on_missing: str = "error"):
        self.bins, self.grid, self.size, self.on_missing = bins, grid, size, on_missing

    def transform(self, samples) -> np.ndarray:
        check_missing(samples, self.on_missing, "hoof", "give them an all-zero histogram")
        return np.stack([self._one(s) for s in samples]).astype(np.float32)

    def _one(self, sample) -> np.ndarray:
        if not sample.frames:
            return np.zeros(self.grid * self.grid * self.bins)
        onset = sample.onset if sample.onset is not None else min(sample.frames)
        apex = sample.apex if sample.apex is not None else max(sample.frames)
        a, b = (cv2.resize(read_image(sample.frame_path(n)[0], grayscale=True), (self.size, self.size))
                for n in (onset, apex))
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        mag, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1])
        folded = np.where(ang > np.pi, 2 * np.pi - ang, ang)  # mirror: up-left and up-right share a bin
        bins = np.minimum((folded / np.pi * self.bins).astype(int), self.bins - 1)
        cell = self.size // self.grid
        out = []
        for i in range(self.grid):
            for j in range(self.grid):
                sl = np.s_[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell]
                h = np.bincount(bins[sl].ravel(), weights=mag[sl].ravel(), minlength=self.bins)
                out.append(h / h.sum() if h.sum() > 0 else h)
        return np.concatenate(out)
