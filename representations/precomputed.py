"""Flow images read from a folder in the STSTNet/HTNet ``norm_u_v_os`` format."""
from __future__ import annotations

import cv2
import numpy as np

from representations import REPRESENTATIONS
from representations.base import Representation, RepresentationError, read_image, stored_channels


@REPRESENTATIONS.register()
class Precomputed(Representation):
    """(3, H, W) float32 arrays of the stored 0..255 values.

    ``channel_order="cv2"`` (default) yields (strain, v, u) exactly as
    ``cv2.imread`` does, which is the order the published STSTNet/HTNet weights
    and scripts use; ``"rgb"`` yields (u, v, strain).
    """

    kind = "flow_image"

    def needs_frames(self) -> bool:  # reads the MEGC2019 folder's precomputed files only
        return False

    def __init__(self, channel_order: str = "cv2"):
        self.channel_order = channel_order

    def transform(self, samples) -> np.ndarray:
        if self.channel_order not in ("cv2", "rgb"):
            raise ValueError(f"channel_order must be 'cv2' or 'rgb', not {self.channel_order!r}")
        out = []
        for s in samples:
            path = s.extras.get("flow")
            if path is None:
                raise RepresentationError(
                    f"{s.key}: no precomputed flow image (expected in "
                    "megc2019/STSNet_whole_norm_u_v_os); use a flow representation computed from frames")
            img = read_image(path)
            if stored_channels(path) < 3:  # (u, v, strain): one channel copied three times is no flow
                raise RepresentationError(f"{path}: flow image has {stored_channels(path)} channel(s), "
                                          "expected 3 (u, v, optical strain)")
            if out and img.shape[:2] != out[0].shape[1:]:
                raise RepresentationError(f"{path}: flow image is {img.shape[1]}x{img.shape[0]}, the others "
                                          f"{out[0].shape[2]}x{out[0].shape[1]}")
            if self.channel_order == "rgb":
                img = img[:, :, ::-1]
            out.append(img.transpose(2, 0, 1))
        return np.stack(out).astype(np.float32)
