"""Geometry of the ``aligned`` preprocessing: the databases' own crop framing from raw frames.

The official CASME II ``Cropped`` frames are the raw frames rotated so that the eyes
are level, then cut from just above the brows to the chin and between the cheeks,
about 232 x 284 px in a 640 x 480 frame (width / height about 0.83). ``aligned``
reproduces that from landmarks on the sample's reference (onset) frame:

1. the two eye centres: from the mediapipe face mesh (``detector="mediapipe"``, the
   means of each eye's corners) or MTCNN's five points (``detector="mtcnn"``);
2. the rotation that levels them (about the point between the eyes);
3. in the levelled frame, a box of the official crops' aspect ratio :data:`ASPECT`
   whose height is a fixed multiple of the eye distance and whose centre sits a fixed
   offset (in eye distances) from the point between the eyes (:data:`RULES`); with
   these constants it runs from just above the brows to the chin, cheek to cheek;
4. the same rotation + box cut from every frame of the sample at native scale
   (``cv2.warpAffine``, bilinear; parts outside the frame repeat the edge pixels).
   The box has the crops' aspect from the start: nothing is squashed.

How the constants were chosen: not on the four sub01 clips whose raw frames are
shared (they are the test). ``python -m benchmark analyze crops --calibrate`` runs the
same detectors on the official ``Cropped`` onset frames of every other CASME II
subject (sub02..sub26, 245 clips), where the official box is the frame itself, and
takes the medians of the box's centre offset and height in eye distances and of its
aspect. The eye distance is the scale because the crops' size follows it (height /
eye distance varies by 2.5 % between clips, r = 0.83) and not the face's height
(brow top to mouth: 3.3 %, r = 0.22); and the eyes lie well inside the crops, whereas
the chin and the face outline lie on or past their edges, where landmarks found on a
crop are unreliable. :func:`from_mesh` and :func:`from_points` only differ in where
the eye centres come from. (The rule's form was changed once, from a brow/eye-to-mouth
height to the eye distance, after a first rule missed on the four sub01 clips; the
constants are calibration medians, not adjusted to those clips: see
``results/REPRESENTATIONS.md`` section 5.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

ALIGN_VERSION = 1  # bump when the box rule or the warp changes

# Official crops' median width / height in pixels (sub02..sub26, quartiles 0.819..0.841).
ASPECT = 0.827

# mediapipe face mesh indices (the 468-point topology; the 478-point mesh adds irises)
MESH_EYES = ((33, 133), (362, 263))  # corners of each eye
MESH_BROWS = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107,            # image-left brow
              276, 283, 282, 295, 285, 300, 293, 334, 296, 336)    # image-right brow
MESH_MOUTH = (61, 291)  # mouth corners
MESH_CHIN = 152

# Per detector, in units of the eye distance, in the eye-levelled frame: box height, and
# the box centre's offset from the point between the eyes (dx right, dy down).
# Medians over the 245 calibration clips, rounded (quartiles: mediapipe height 2.238..2.303,
# dy 0.468..0.497; mtcnn height 2.226..2.377, dy 0.492..0.536; dx within +-0.03).
RULES = {
    "mediapipe": {"height": 2.26, "dx": 0.01, "dy": 0.48},
    "mtcnn": {"height": 2.29, "dx": 0.01, "dy": 0.52},
}


@dataclass(frozen=True)
class Alignment:
    """A rotated box in frame pixels: ``angle`` (degrees, the eye line's slope; the crop
    is rotated by -angle so the eyes are level), its ``centre`` (x, y) and ``size`` (w, h)."""

    angle: float
    centre: tuple[float, float]
    size: tuple[float, float]

    @property
    def out_shape(self) -> tuple[int, int]:
        """(width, height) of the cut-out in pixels."""
        return max(1, int(round(self.size[0]))), max(1, int(round(self.size[1])))

    def matrix(self) -> np.ndarray:
        """2 x 3 affine map frame pixel -> crop pixel."""
        t = np.radians(self.angle)
        c, s = np.cos(t), np.sin(t)
        rot = np.array([[c, s], [-s, c]])  # rotation by -angle (image coordinates, y down)
        w, h = self.out_shape
        b = np.asarray(self.centre, float)
        return np.hstack([rot, (np.array([w / 2, h / 2]) - rot @ b)[:, None]])

    def corners(self) -> np.ndarray:
        """(4, 2) crop corners in frame pixels: top-left, top-right, bottom-right, bottom-left."""
        w, h = self.out_shape
        m = np.vstack([self.matrix(), [0, 0, 1]])
        inv = np.linalg.inv(m)[:2]
        pts = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], float)
        return pts @ inv.T

    def bounds(self) -> tuple[float, float, float, float]:
        """Axis-aligned bounding box (x0, y0, x1, y1) of the crop in frame pixels."""
        c = self.corners()
        return float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max())

    def outside(self, shape: Sequence[int]) -> bool:
        """Whether part of the crop lies outside a frame of ``shape`` (h, w, ...)."""
        x0, y0, x1, y1 = self.bounds()
        return x0 < -0.5 or y0 < -0.5 or x1 > shape[1] + 0.5 or y1 > shape[0] + 0.5

    def apply(self, img: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(img, self.matrix(), self.out_shape, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def to_list(self) -> list[float]:
        return [round(float(v), 4) for v in (self.angle, *self.centre, *self.size)]

    @classmethod
    def from_list(cls, v: Sequence[float]) -> "Alignment":
        if len(v) != 5:
            raise ValueError(f"an alignment is [angle, cx, cy, w, h], not {list(v)!r}")
        return cls(float(v[0]), (float(v[1]), float(v[2])), (float(v[3]), float(v[4])))


def eye_angle(left_eye: Sequence[float], right_eye: Sequence[float]) -> float:
    """Slope of the eye line in degrees (image coordinates: positive when the image-right eye is lower)."""
    (x0, y0), (x1, y1) = left_eye, right_eye
    if x1 < x0:
        (x0, y0), (x1, y1) = (x1, y1), (x0, y0)
    return float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))


def level(points: np.ndarray, angle: float, pivot: Sequence[float]) -> np.ndarray:
    """Points rotated by -angle about ``pivot`` (into the levelled frame)."""
    t = np.radians(angle)
    c, s = np.cos(t), np.sin(t)
    rot = np.array([[c, s], [-s, c]])
    p = np.asarray(pivot, float)
    return (np.asarray(points, float) - p) @ rot.T + p


def unlevel(points: np.ndarray, angle: float, pivot: Sequence[float]) -> np.ndarray:
    return level(points, -angle, pivot)


def from_eyes(left_eye: Sequence[float], right_eye: Sequence[float], rule: dict,
              aspect: float = ASPECT) -> Alignment:
    """Alignment from two eye centres (frame pixels) and a rule (:data:`RULES`)."""
    eyes = np.array([left_eye, right_eye], float)
    if eyes[1, 0] < eyes[0, 0]:
        eyes = eyes[::-1]
    angle = eye_angle(eyes[0], eyes[1])
    pivot = eyes.mean(0)
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    centre = unlevel(np.array([[pivot[0] + rule["dx"] * iod, pivot[1] + rule["dy"] * iod]]), angle, pivot)[0]
    h = rule["height"] * iod
    return Alignment(angle, (float(centre[0]), float(centre[1])), (aspect * h, h))


def mesh_eyes(mesh_xy: np.ndarray) -> np.ndarray:
    """(2, 2) eye centres (means of each eye's corners) of face-mesh landmarks."""
    xy = np.asarray(mesh_xy, float)[:, :2]
    return np.array([xy[list(e)].mean(0) for e in MESH_EYES])


def from_mesh(mesh_xy: np.ndarray, rule: dict | None = None, aspect: float = ASPECT) -> Alignment:
    """Alignment from face-mesh landmarks ((468+, 2) frame pixels)."""
    return from_eyes(*mesh_eyes(mesh_xy), {**RULES["mediapipe"], **(rule or {})}, aspect)


def from_points(points: np.ndarray, rule: dict | None = None, aspect: float = ASPECT) -> Alignment:
    """Alignment from five points (left eye, right eye, nose, left and right mouth corner)."""
    p = np.asarray(points, float)
    return from_eyes(p[0, :2], p[1, :2], {**RULES["mtcnn"], **(rule or {})}, aspect)


def fallback(shape: Sequence[int], aspect: float = ASPECT) -> Alignment:
    """No face found: the largest centred box of the official aspect, unrotated."""
    h, w = float(shape[0]), float(shape[1])
    bw, bh = (aspect * h, h) if aspect * h <= w else (w, w / aspect)
    return Alignment(0.0, (w / 2, h / 2), (bw, bh))


def rule_recipe(detector: str) -> dict:
    """What of this module shapes the output (part of the cache key)."""
    return {"align_version": ALIGN_VERSION, "aspect": ASPECT, "rule": dict(RULES[detector])}


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two axis-aligned boxes (x0, y0, x1, y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
