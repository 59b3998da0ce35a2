"""Frame preprocessing shared by every pixel representation, and their base class.

Modes (the Preprocessing Paradox paper's two methodologies, the databases' own
framing, and the frames as given):

- ``raw`` (M1): centre square crop of the frame, resized to ``size`` (384), RGB.
- ``face`` (M2): face detection on the sample's reference frame (onset), box
  expanded by ``margin`` pixels (20) on every side, the same box cropped from
  every frame of the sample (so box jitter never shows up as motion), resized
  to ``size`` x ``size`` (224), grayscale. No face found -> the ``raw`` centre
  crop (grayscale), recorded as a fallback.
- ``aligned``: the databases' own crop framing from raw frames (see
  :mod:`representations.align`): the eye centres on the reference frame
  (``detector``: the mediapipe face mesh, recommended, or MTCNN's points), a
  rotation that levels them, a box of the official CASME II crops' aspect
  (0.827) sized and placed in eye distances so that it runs from just above the
  brows to the chin, cheek to cheek; the same rotation and box cut from every
  frame at native scale (never squashed), RGB; resized to ``size`` x ``size``
  only when ``size`` is given (as ``none`` does with the official crops). No
  face found -> the largest centred box of that aspect, unrotated, recorded as
  a fallback.
- ``none``: the frame as stored (e.g. CASME II ``Cropped``), resized to
  ``size`` x ``size`` only when ``size`` is given.

Detectors: ``mtcnn`` (facenet-pytorch, the one HTNet uses) and ``mediapipe``
(BlazeFace box + FaceMesh points). Both run on the frame padded by 30 % with a
black border: the official CASME II crops end at the brows and chin, and both
detectors misplace or miss faces that fill the whole image.

Landmarks are five ``(x, y)`` points ordered by image position: left eye, right
eye, nose, left mouth corner, right mouth corner (left = smaller x).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from benchmark.core.samples import Sample
from representations import align
from representations._cache import DiskCache, parallel_map
from representations.base import Representation, RepresentationError, check_missing, read_image

MODES = ("raw", "face", "aligned", "none")
DEFAULT_SIZE = {"raw": 384, "face": 224, "aligned": None, "none": None}
DETECTORS = ("mtcnn", "mediapipe")


def resolve_detector(detector: str, mode: str) -> str:
    """``auto``: the mesh for ``aligned`` (its eye centres placed the official crops best, see
    results/REPRESENTATIONS.md §5), MTCNN otherwise (the Paradox paper's M2 detector)."""
    if detector == "auto":
        return "mediapipe" if mode == "aligned" else "mtcnn"
    return detector
DETECT_PAD = 0.3  # border added before detection, as a fraction of the longer side
PREPROCESS_VERSION = 1  # bump when the output of this module changes


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    points: np.ndarray  # (5, 2) (x, y), see module docstring
    score: float


# ---------------------------------------------------------------- detectors
_LOCAL = threading.local()  # detectors are not thread-safe: one instance per thread


def _pad(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    p = int(round(DETECT_PAD * max(rgb.shape[:2])))
    return cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_CONSTANT, value=0), p


def _order_points(pts: np.ndarray) -> np.ndarray:
    """Eyes and mouth corners sorted by x so 'left' means image left."""
    eyes = pts[:2][np.argsort(pts[:2, 0])]
    mouth = pts[3:5][np.argsort(pts[3:5, 0])]
    return np.vstack([eyes, pts[2:3], mouth]).astype(np.float32)


class _MTCNN:
    def __init__(self):
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:  # optional dependency
            raise RepresentationError(
                "detector 'mtcnn' needs facenet-pytorch (pip install --no-deps facenet-pytorch requests); "
                "or use detector=mediapipe") from exc
        self.net = MTCNN(device="cpu", select_largest=True, post_process=False, keep_all=False)

    def __call__(self, rgb: np.ndarray) -> Face | None:
        big, p = _pad(rgb)
        boxes, probs, points = self.net.detect(big, landmarks=True)
        if boxes is None or len(boxes) == 0:
            return None
        box = np.asarray(boxes[0], dtype=np.float64) - p
        return Face(tuple(box.tolist()), _order_points(np.asarray(points[0], np.float64) - p), float(probs[0]))


class _MediaPipe:
    # FaceMesh indices: eye corners (33, 133) and (362, 263), nose tip 1, mouth corners 61, 291
    EYES = ((33, 133), (362, 263))

    def __init__(self):
        try:
            import mediapipe as mp
        except ImportError as exc:
            raise RepresentationError("detector 'mediapipe' needs mediapipe (pip install mediapipe==0.10.14)") from exc
        self.det = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
        self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)

    def __call__(self, rgb: np.ndarray) -> Face | None:
        big, p = _pad(np.ascontiguousarray(rgb))
        H, W = big.shape[:2]
        res = self.det.process(big)
        if not res.detections:
            return None
        d = res.detections[0]
        bb = d.location_data.relative_bounding_box
        box = (bb.xmin * W - p, bb.ymin * H - p, (bb.xmin + bb.width) * W - p, (bb.ymin + bb.height) * H - p)
        mesh = self.mesh.process(big)
        if mesh.multi_face_landmarks:
            lm = mesh.multi_face_landmarks[0].landmark
            xy = lambda i: np.array([lm[i].x * W - p, lm[i].y * H - p])  # noqa: E731
            pts = np.array([(xy(a) + xy(b)) / 2 for a, b in self.EYES] + [xy(1), xy(61), xy(291)])
        else:  # BlazeFace keypoints: eyes, nose, mouth centre; corners +-0.35 eye distance
            kp = d.location_data.relative_keypoints
            e1, e2, nose, mouth = (np.array([kp[i].x * W - p, kp[i].y * H - p]) for i in range(4))
            half = 0.35 * (e2 - e1)
            pts = np.array([e1, e2, nose, mouth - half, mouth + half])
        return Face(tuple(float(v) for v in box), _order_points(pts), float(d.score[0]))


_FACTORIES = {"mtcnn": _MTCNN, "mediapipe": _MediaPipe}


def get_detector(name: str):
    if name not in _FACTORIES:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {name!r}")
    cache = getattr(_LOCAL, "detectors", None)
    if cache is None:
        cache = _LOCAL.detectors = {}
    if name not in cache:
        cache[name] = _FACTORIES[name]()
    return cache[name]


def detect_face(rgb: np.ndarray, detector: str) -> Face | None:
    return get_detector(detector)(rgb)


def mesh_points(rgb: np.ndarray) -> np.ndarray | None:
    """(468, 2) face-mesh landmarks of an RGB frame in its pixels (None: no face)."""
    from representations._landmarks import mesh_landmarks

    pts = mesh_landmarks(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    return None if np.isnan(pts).any() else pts[:, :2].astype(np.float64)


def find_alignment(rgb: np.ndarray, detector: str) -> align.Alignment | None:
    """The ``aligned`` mode's rotated box on one RGB frame (None: no face found).

    ``mediapipe``: from the face mesh (brows, chin, cheeks); ``mtcnn``: from its
    five points (eyes, mouth corners)."""
    if detector == "mediapipe":
        pts = mesh_points(rgb)
        return None if pts is None else align.from_mesh(pts)
    face = detect_face(rgb, detector)
    return None if face is None else align.from_points(face.points)


# ---------------------------------------------------------------- geometry
def centre_square(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    s = min(h, w)
    x0, y0 = (w - s) // 2, (h - s) // 2
    return x0, y0, x0 + s, y0 + s


def expand_box(box, margin: int, shape) -> tuple[int, int, int, int]:
    """Box grown by ``margin`` px on every side, clipped to the frame."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    return (max(0, int(np.floor(x0 - margin))), max(0, int(np.floor(y0 - margin))),
            min(w, int(np.ceil(x1 + margin))), min(h, int(np.ceil(y1 + margin))))


def _resize(img: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or img.shape[:2] == (size, size):
        return img
    shrink = img.shape[0] >= size and img.shape[1] >= size
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Prep:
    """A preprocessing recipe; ``recipe()`` holds only what affects the output."""

    mode: str = "raw"
    size: int | None = None  # None: the mode's default (384 raw, 224 face, native none)
    detector: str = "mtcnn"
    margin: int = 20

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"preprocess must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode in ("face", "aligned") and self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {self.detector!r}")

    @property
    def out_size(self) -> int | None:
        return self.size if self.size is not None else DEFAULT_SIZE[self.mode]

    @property
    def gray(self) -> bool:
        return self.mode == "face"

    def recipe(self) -> dict:
        r = {"mode": self.mode, "size": self.out_size, "version": PREPROCESS_VERSION}
        if self.mode == "face":
            r.update(detector=self.detector, margin=self.margin, box_from="reference frame")
        if self.mode == "aligned":
            r.update(detector=self.detector, box_from="reference frame", **align.rule_recipe(self.detector))
        return r


def read_frames(sample: Sample, indices: Sequence[int]) -> tuple[list[np.ndarray], list[int], list[dict]]:
    """RGB frames at ``indices`` (nearest available when missing) and the events."""
    if not sample.frames:
        raise RepresentationError(f"{sample.key}: no frames are available for this sample")
    frames, used, events = [], [], []
    for i in indices:
        path, u = sample.frame_path(int(i))
        if u != i:
            events.append({"sample": sample.key, "kind": "nearest_frame", "detail": f"frame {i} missing, {u} used"})
        frames.append(cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB))
        used.append(int(u))
    return frames, used, events


def prepare(frames: list[np.ndarray], prep: Prep, key: str = "", ref: int = 0,
            box: Sequence[float] | None = None) -> tuple[list[np.ndarray], dict]:
    """Apply ``prep`` to RGB frames of one sample; the crop box comes from ``frames[ref]``
    (or is ``box``, e.g. found earlier on the same sample's onset: ``[x0, y0, x1, y1]``,
    or for ``aligned`` the ``info["align"]`` list ``[angle, cx, cy, w, h]``).

    Returns frames as (H, W, 3) RGB or (H, W) grayscale uint8 and
    ``{"box": [x0, y0, x1, y1], "events": [...]}`` (``aligned`` adds ``"align"``:
    the rotated box; ``"box"`` is then its axis-aligned bounds in frame pixels).
    """
    events: list[dict] = []
    shape = frames[ref].shape
    if prep.mode == "aligned":
        if box is not None and len(box) == 5:
            al = align.Alignment.from_list(box)
        elif box is not None:
            x0, y0, x1, y1 = (float(v) for v in box)
            al = align.Alignment(0.0, ((x0 + x1) / 2, (y0 + y1) / 2), (x1 - x0, y1 - y0))
        else:
            al = find_alignment(frames[ref], prep.detector)
            if al is None:
                al = align.fallback(shape)
                events.append({"sample": key, "kind": "no_face",
                               "detail": f"{prep.detector} found no face; centred crop of the official aspect used"})
            elif al.outside(shape):
                events.append({"sample": key, "kind": "crop_outside_frame",
                               "detail": "aligned box extends past the frame; edge pixels repeated there"})
        out = [_resize(al.apply(f), prep.out_size) for f in frames]
        bounds = [int(round(v)) for v in al.bounds()]
        return out, {"box": bounds, "align": al.to_list(), "events": events}
    if box is not None:
        box = tuple(int(v) for v in box)
    elif prep.mode == "none":
        box = (0, 0, shape[1], shape[0])
    elif prep.mode == "raw":
        box = centre_square(shape)
    else:
        face = detect_face(frames[ref], prep.detector)
        if face is None:
            box = centre_square(shape)
            events.append({"sample": key, "kind": "no_face",
                           "detail": f"{prep.detector} found no face; centre crop used"})
        else:
            box = expand_box(face.box, prep.margin, shape)
    x0, y0, x1, y1 = box
    out = []
    for f in frames:
        crop = _resize(f[y0:y1, x0:x1], prep.out_size)
        out.append(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if prep.gray else crop)
    return out, {"box": [int(v) for v in box], "events": events}


def to_gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


# ---------------------------------------------------------------- base class
class PixelRepresentation(Representation):
    """Base of representations computed from frames, cached per sample.

    Subclasses implement ``_plan(sample, cache) -> (roles, sources, events)``
    (which frames are used: e.g. ``{"onset": 46, "apex": 59}``, their paths,
    and fallbacks such as a nearest frame or a spotted apex) and
    ``_compute(sample, roles, cache) -> (array, events)``. The base runs the
    samples in parallel with a progress bar, caches every output under the full
    recipe + the roles + the source frames' identity, and collects fallbacks
    in ``report_`` (a list of ``{"sample", "kind", "detail"}`` that the runner
    writes to ``rep_report.json``).

    ``on_missing``: ``"error"`` raises :class:`RepresentationError` for samples
    without frames; ``"blank"`` gives them an all-zero array (recorded).
    ``n_jobs`` (default ``$MER_BENCHMARK_JOBS`` or the CPU count) and
    ``progress`` do not change the output and are left out of the recipe.
    """

    RUNTIME_PARAMS = ("n_jobs", "progress")
    VERSION = 1  # bump when a subclass's output changes for the same recipe

    def _detector(self) -> str:
        return resolve_detector(self.detector, self.preprocess)

    def _prep(self) -> Prep:
        return Prep(self.preprocess, self.prep_size, self._detector(), self.margin)

    def recipe(self) -> dict:
        params = {k: v for k, v in self.get_params().items() if k not in self.RUNTIME_PARAMS}
        for k in ("preprocess", "prep_size", "margin"):  # restated by Prep.recipe() where they matter
            params.pop(k, None)
        if getattr(self, "regions", "none") == "none":  # else the landmark detector shapes the output
            params.pop("detector", None)
        else:
            params["detector"] = self._detector()  # as resolved: "auto" and its choice are one recipe
        return {"rep": type(self).registry_name, "version": self.VERSION, **params,
                "preprocess": self._prep().recipe(), "opencv": cv2.__version__}

    def _plan(self, sample: Sample, cache: DiskCache) -> tuple[dict, list, list[dict]]:
        raise NotImplementedError

    def _compute(self, sample: Sample, roles: dict, cache: DiskCache) -> tuple[np.ndarray, list[dict]]:
        raise NotImplementedError

    def _blank(self) -> np.ndarray:
        raise NotImplementedError

    def _one(self, sample: Sample, cache: DiskCache) -> tuple[np.ndarray, list[dict]]:
        if not sample.frames:
            return self._blank(), [{"sample": sample.key, "kind": "no_frames",
                                   "detail": "no frames: all-zero input used (on_missing=blank)"}]
        roles, sources, events = self._plan(sample, cache)

        def compute():
            array, ev = self._compute(sample, roles, cache)
            return {"x": array}, {"events": ev}

        # on_missing only decides what frameless samples get (never cached): not in the key
        recipe = {k: v for k, v in self.recipe().items() if k != "on_missing"}
        arrays, meta = cache.get_or_compute({**recipe, "frames": roles}, sources, compute)
        return arrays["x"], events + meta.get("events", [])

    def _check_missing(self, samples: Sequence[Sample]) -> None:
        check_missing(samples, self.on_missing, type(self).registry_name, "feed them an all-zero input")

    def _validate(self) -> None:
        self._prep()

    def transform(self, samples: Sequence[Sample]) -> np.ndarray:
        self._validate()
        self._check_missing(samples)
        cache = DiskCache()
        cache.clean_tmp()
        results = parallel_map(lambda s: self._one(s, cache), list(samples), self.n_jobs,
                               desc=type(self).registry_name, progress=self.progress)
        self.report_ = [e for _, events in results for e in events]
        self.cache_stats_ = {"hits": cache.hits, "computed": cache.misses, "dir": str(cache.root)}
        return np.stack([a for a, _ in results])


def frame_events(sample: Sample, roles: dict) -> tuple[dict, list, list[dict]]:
    """Roles ``{"onset": 46, ...}`` -> (roles mapped to the frames used, paths, nearest-frame events)."""
    used, paths, events = {}, [], []
    for role, i in roles.items():
        path, u = sample.frame_path(int(i))
        if u != i:
            events.append({"sample": sample.key, "kind": "nearest_frame",
                           "detail": f"{role} frame {i} missing, {u} used"})
        used[role] = int(u)
        paths.append(path)
    return used, paths, events
