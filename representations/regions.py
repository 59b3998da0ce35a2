"""HTNet's four facial regions, as a transform of any (C, S, S) motion image.

HTNet (Wang et al., 2024) feeds its transformer a 28x28 mosaic of four 14x14
crops centred on facial landmarks of the apex frame (MTCNN's five points): the
two eyes on top, the two mouth corners below. Region side is half the image
side, centres are clamped so every crop stays inside the image.

``regions="htnet"`` crops ``img[y - h : y + h, x - h : x + h]`` around each
landmark ``(x, y)``. The public HTNet code indexes the image with ``(x, y)``
as ``(row, col)``, i.e. it crops around the landmark mirrored over the
diagonal; ``regions="htnet-transposed"`` reproduces that for comparisons with
published numbers and should not be used otherwise. (The public code also
names MTCNN's second point ``l_lips`` and its fourth ``r_eye``; MTCNN's order
is left eye, right eye, nose, left and right mouth corner, so its mosaic is in
fact [eye | eye] over [mouth corner | mouth corner], the layout used here.)
"""
from __future__ import annotations

import cv2
import numpy as np

from benchmark.core.samples import Sample

REGION_MODES = ("none", "htnet", "htnet-transposed")
LANDMARK_VERSION = 1
# The public code's stand-in when MTCNN finds no face on the 28x28 apex image.
HTNET_DEFAULT_POINTS_28 = np.array([[9.528073, 11.062551], [21.396168, 10.919773], [15.380184, 17.380562],
                                    [10.255435, 22.121233], [20.583706, 22.25584]], np.float32)
REGION_POINTS = (0, 1, 3, 4)  # left eye, right eye, left mouth corner, right mouth corner


def region_centres(points: np.ndarray, frame_hw: tuple[int, int], size: int) -> np.ndarray:
    """Landmarks of the prepared frame ``(x, y)`` -> integer centres on the ``size`` grid."""
    h, w = frame_hw
    pts = np.asarray(points, np.float64)[list(REGION_POINTS)] * [size / w, size / h]
    half = size // 4
    return np.clip(np.rint(pts), half, size - half).astype(int)


def crop_regions(img: np.ndarray, centres: np.ndarray, mode: str = "htnet") -> np.ndarray:
    """(C, S, S) image -> (C, S, S) mosaic [[eye, eye], [mouth corner, mouth corner]]."""
    if mode not in REGION_MODES[1:]:
        raise ValueError(f"regions must be one of {', '.join(REGION_MODES)}, not {mode!r}")
    size = img.shape[-1]
    if img.shape[-2] != size:
        raise ValueError(f"regions need a square image, got {img.shape[-2:]}")
    half = size // 4
    patches = []
    for x, y in centres:
        r, c = (y, x) if mode == "htnet" else (x, y)  # transposed: the public code's (row=x, col=y)
        patches.append(img[:, r - half:r + half, c - half:c + half])
    top = np.concatenate(patches[:2], axis=2)
    bottom = np.concatenate(patches[2:], axis=2)
    return np.concatenate([top, bottom], axis=1)


def apex_landmarks(sample: Sample, onset: int, apex: int, prep, detector: str, cache) -> tuple[np.ndarray, tuple, list]:
    """Five landmarks of the prepared apex frame (same crop as the flow), cached.

    Returns ``(points (5, 2) xy, prepared frame (h, w), events)``; when no face
    is found, HTNet's default points scaled to the frame (recorded).
    """
    from representations.preprocess import detect_face, prepare, read_frames

    frames_used = [sample.frame_path(onset)[1], sample.frame_path(apex)[1]]
    recipe = {"stage": "landmarks", "version": LANDMARK_VERSION, "prep": prep.recipe(),
              "detector": detector, "frames": frames_used}

    def compute():
        rgb, _, _ = read_frames(sample, frames_used)
        out, _ = prepare(rgb, prep, sample.key)
        a = out[1]
        a_rgb = np.ascontiguousarray(np.dstack([a] * 3) if a.ndim == 2 else a)
        face = detect_face(a_rgb, detector)
        h, w = a.shape[:2]
        events = []
        if face is None:
            pts = HTNET_DEFAULT_POINTS_28 * [w / 28, h / 28]
            events.append({"sample": sample.key, "kind": "no_landmarks",
                           "detail": f"{detector} found no face on apex frame {frames_used[1]}: "
                                     "HTNet's default landmarks used"})
        else:
            pts = face.points
        return {"points": np.asarray(pts, np.float32), "hw": np.array([h, w])}, {"events": events}

    arrays, meta = cache.get_or_compute(recipe, [sample.frames[n] for n in frames_used], compute)
    return arrays["points"], tuple(int(v) for v in arrays["hw"]), meta.get("events", [])


def draw(img_hw3: np.ndarray, centres: np.ndarray, size: int) -> np.ndarray:
    """Debug view: region boxes on an (S, S, 3) image."""
    out = img_hw3.copy()
    half = size // 4
    for x, y in centres:
        cv2.rectangle(out, (int(x - half), int(y - half)), (int(x + half - 1), int(y + half - 1)), (0, 0, 255), 1)
    return out
