"""DFE's flow-tracked landmarks (``landmarks=flow``): the face mesh detected once, on the
onset frame, and carried to every later sampled frame by the suite's dense optical flow.

Per sample:

1. the 478-point attention face mesh (mediapipe FaceMesh with ``refine_landmarks=True``:
   the 468 mesh vertices plus 10 iris points, bundled in the 0.10.14 wheel) on the onset
   frame, padded by 30 % as in :mod:`representations._landmarks`;
2. for every other sampled frame, the onset -> frame flow (``flow``: ``farneback`` or
   ``tvl1``, :mod:`representations.flow` with its defaults, on the grayscale frames as
   stored, i.e. ``preprocess=none``) sampled at the onset vertices by bilinear interpolation
   (``scipy.ndimage.map_coordinates``, order 1); each vertex moves by the flow at its onset
   position (x, y); z keeps its onset value (the flow is 2-D). Every field starts at the
   onset, so errors do not accumulate along the clip. Vertices outside the frame (the CASME II
   crops cut the mesh at the cheeks: 18-71 of 478 vertices) take the flow of the nearest
   border pixel; none of them is a stable point;
3. :func:`tracked_displacements`: every frame similarity-aligned to the canonical shape by
   the transform fitted on :data:`STABLE_POINTS` only (nose bridge and dorsum, inner eye
   corners, inner canthus / nose side walls, mandible angles), applied to all vertices,
   minus the aligned onset: head motion is removed, the expression is not fitted away.

No face on the onset frame: the clip has no landmarks (all NaN); the representation gives it
all-zero displacement and records ``no_face_onset`` (as ``no_face_clip`` in the per-frame path).
"""
from __future__ import annotations

import cv2
import numpy as np

from benchmark.core.samples import Sample
from representations._cache import DiskCache
from representations._landmarks import N_REFINED, PAD, mesh_landmarks
from representations.base import read_image

TRACK_VERSION = 1  # bump when the tracked landmarks of a sample change
FLOWS = ("farneback", "tvl1")
# Vertices of the mediapipe face mesh that micro-expressions barely move and that lie inside the
# official CASME II crops (252 onsets: >= 5 px from the border on all, 365 on 96 %; the face oval
# above the jaw, the temples and the cheeks fall outside those crops, see results/DFE.md).
STABLE_POINTS = {
    "nose bridge and dorsum": (168, 6, 197, 195, 5, 4),
    "inner eye corners": (133, 362),
    "inner canthus / nose side walls": (245, 465, 122, 351),
    "face outline at the mandible angles": (136, 150, 149, 365, 379, 378),
}
STABLE = tuple(sorted(i for v in STABLE_POINTS.values() for i in v))


def refined_landmarks(bgr: np.ndarray) -> np.ndarray:
    """(478, 3) attention-mesh landmarks (:func:`representations._landmarks.mesh_landmarks`)."""
    return mesh_landmarks(bgr, refine=True)


# --------------------------------------------------------------------------- tracking


def sample_field(uv: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(P, 2) flow (u, v) of a (2, H, W) field at (P, 2) points (x, y), bilinear; points
    outside the field take the nearest border value."""
    from scipy.ndimage import map_coordinates

    coords = np.stack([xy[:, 1], xy[:, 0]]).astype(np.float64)  # (row, col)
    return np.stack([map_coordinates(np.asarray(c, np.float64), coords, order=1, mode="nearest")
                     for c in uv[:2]], axis=1).astype(np.float32)


def track(onset_lm: np.ndarray, fields: list[np.ndarray | None]) -> np.ndarray:
    """(F, P, 3): the onset landmarks moved by each onset -> frame field (None: the onset
    itself, no motion); z is kept."""
    out = np.repeat(onset_lm[None].astype(np.float32), len(fields), axis=0)
    for i, uv in enumerate(fields):
        if uv is not None:
            out[i, :, :2] += sample_field(uv, onset_lm[:, :2])
    return out


def flow_rep(name: str):
    """The suite's flow representation whose ``flow(prev, next)`` gives the fields (defaults)."""
    from representations.flow import TVL1, Farneback

    if name not in FLOWS:
        raise ValueError(f"flow must be one of {', '.join(FLOWS)}, not {name!r}")
    return Farneback() if name == "farneback" else TVL1()


def _gray(path) -> np.ndarray:
    img = read_image(path)
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def tracked_landmarks(s: Sample, frames: list[int], flow: str, cache: DiskCache) -> np.ndarray:
    """(F, 478, 3) landmarks of ``frames`` (``frames[0]`` the onset, where the mesh is
    detected), tracked by ``flow``; all NaN when no face is found on the onset. Cached per
    sample, frame set and flow algorithm."""
    rep = flow_rep(flow)
    uniq = sorted(set(frames[1:]) - {frames[0]})
    paths = [s.frames[frames[0]]] + [s.frames[i] for i in uniq]

    def compute():
        onset = _gray(paths[0])
        lm = refined_landmarks(read_image(paths[0]))
        if np.isnan(lm).any():
            return {"lm": np.full((1 + len(uniq), N_REFINED, 3), np.nan, np.float32)}, {}
        fields = [None] + [np.ascontiguousarray(rep.flow(onset, _gray(p)).transpose(2, 0, 1)) for p in paths[1:]]
        return {"lm": track(lm, fields)}, {}

    recipe = {"rep": "dfe-tracked-landmarks", "version": TRACK_VERSION, "onset": frames[0], "frames": uniq,
              "detector": "mediapipe-facemesh-refined", "pad": PAD, "flow": rep._algorithm(),
              "preprocess": "none", "opencv": cv2.__version__}
    lm = cache.get_or_compute(recipe, paths, compute)[0]["lm"]
    pos = {frames[0]: 0, **{f: 1 + k for k, f in enumerate(uniq)}}
    return lm[[pos[i] for i in frames]]


# --------------------------------------------------------------------------- alignment


def similarity_on(shape: np.ndarray, ref: np.ndarray, idx) -> np.ndarray:
    """``shape`` (P, 3) mapped onto ``ref`` by the least-squares similarity transform (Umeyama,
    no reflection) fitted on the points ``idx`` only and applied to every point."""
    idx = list(idx)
    a_all = np.asarray(shape, np.float64)
    a, b = a_all[idx], np.asarray(ref, np.float64)[idx]
    mu_s, mu_r = a.mean(0), b.mean(0)
    a, b = a - mu_s, b - mu_r
    u, sig, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    fix = np.diag([1.0] * (a.shape[1] - 1) + [d])
    rot = u @ fix @ vt
    scale = (sig * np.diag(fix)).sum() / max((a ** 2).sum(), 1e-12)
    return (scale * (a_all - mu_s) @ rot + mu_r).astype(np.float32)


def tracked_displacements(lm: np.ndarray, canonical: np.ndarray, idx=STABLE) -> np.ndarray:
    """(F, P, 3) frames aligned to ``canonical`` on the stable points, minus the aligned onset."""
    aligned = np.stack([similarity_on(f, canonical, idx) for f in lm])
    return aligned - aligned[0]
