"""Face-mesh landmarks per frame (mediapipe FaceMesh, 468 3D points) and Procrustes alignment.

Landmarks are ``(468, 3)`` float32 in pixels of the unpadded frame: x and y from the
mesh's normalised coordinates times the image size, z times the image width (mediapipe
gives z on roughly the scale of x). A frame where no face is found is all-NaN; callers
decide the fallback. Frames are padded by 30 % with black before the mesh runs, as in
``preprocess``: the CASME II crops end at the brows and chin and FaceMesh misses faces
that fill the image.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

from representations.base import RepresentationError, read_image

N_POINTS = 468
PAD = 0.3
LANDMARK_VERSION = 1  # bump when the landmarks of a frame change
N_REFINED = 478  # with refine_landmarks: the iris points of the attention mesh added
_LOCAL = threading.local()  # FaceMesh graphs are not thread-safe: one per thread and kind


def _mesh(refine: bool = False):
    key = "refined" if refine else "mesh"
    mesh = getattr(_LOCAL, key, None)
    if mesh is None:
        try:
            import mediapipe as mp
        except ImportError as exc:
            raise RepresentationError("dfe needs mediapipe (pip install mediapipe==0.10.14)") from exc
        mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=refine, min_detection_confidence=0.5)
        setattr(_LOCAL, key, mesh)
    return mesh


def mesh_landmarks(bgr: np.ndarray, refine: bool = False) -> np.ndarray:
    """(468, 3) float32 landmarks of the face in a BGR or grayscale image, (478, 3) of the
    attention mesh with ``refine``; pixels of the unpadded frame, z times the padded width;
    NaN when none is found."""
    n = N_REFINED if refine else N_POINTS
    rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    p = int(round(PAD * max(h, w)))
    big = np.ascontiguousarray(cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_CONSTANT, value=0))
    H, W = big.shape[:2]
    res = _mesh(refine).process(big)
    if not res.multi_face_landmarks:
        return np.full((n, 3), np.nan, np.float32)
    lm = res.multi_face_landmarks[0].landmark
    return np.array([[q.x * W - p, q.y * H - p, q.z * W] for q in lm[:n]], np.float32)


def frame_landmarks(path) -> np.ndarray:
    return mesh_landmarks(read_image(path))


# --------------------------------------------------------------------------- Procrustes


def similarity_align(shape: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``shape`` (P, 3) mapped onto ``ref`` by the least-squares similarity transform
    (rotation, isotropic scale, translation; Umeyama 1991, reflections excluded)."""
    mu_s, mu_r = shape.mean(0), ref.mean(0)
    a, b = shape - mu_s, ref - mu_r
    u, sig, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rot = u @ fix @ vt
    scale = (sig * np.diag(fix)).sum() / max((a ** 2).sum(), 1e-12)
    return (scale * a @ rot + mu_r).astype(np.float32)


def normalise_shape(shape: np.ndarray) -> np.ndarray:
    """Centred, unit Frobenius norm."""
    c = shape - shape.mean(0)
    return (c / max(np.linalg.norm(c), 1e-12)).astype(np.float32)


def procrustes_mean(shapes: np.ndarray, iters: int = 10) -> np.ndarray:
    """Generalised Procrustes mean of (N, P, 3) shapes (centred, unit norm)."""
    ref = normalise_shape(shapes[0])
    for _ in range(iters):
        aligned = np.stack([similarity_align(s, ref) for s in shapes])
        new = similarity_align(normalise_shape(aligned.mean(0)), ref)  # keep the first shape's orientation
        new = normalise_shape(new)
        if np.abs(new - ref).max() < 1e-7:
            break
        ref = new
    return ref
