"""Face videos as a frame source: clips in any container OpenCV's FFmpeg backend opens
(``.mp4``, ``.avi``, ``.mov``, ``.mkv``...), read with ``cv2.VideoCapture``.

Nothing decodes a whole clip into memory: :func:`probe` opens a clip and decodes its first
frame only; :func:`read_frames` decodes forward to the frames asked for, keeps only those
(optionally shrunk by ``prepare`` as they arrive) and seeks (``CAP_PROP_POS_FRAMES``) over
jumps of :data:`SEEK_AFTER` frames or more, so a long video costs the frames between the
requested ones, not its length. Frame indices are 0-based decode order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
SEEK_AFTER = 250  # frames: a shorter jump is decoded through (grab), a longer one seeks
MAX_FPS = 1000.0  # a container rate above this is a broken header, not a camera


class VideoError(ValueError):
    """A video OpenCV cannot open or decode; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float | None  # None: the container states no usable frame rate
    frames: int  # the container's frame count (counted by decoding when it states none)
    size: tuple[int, int]  # (width, height)


def is_video(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def _open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"cannot open video {path} (OpenCV {cv2.__version__} found no decoder for it)")
    return cap


def probe(path: Path) -> VideoInfo:
    """Frame rate, frame count and size of a clip whose first frame decodes."""
    path = Path(path)
    cap = _open(path)
    try:
        ok, first = cap.read()
        if not ok or first is None:
            raise VideoError(f"cannot decode video {path}: OpenCV opened it but read no frame")
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count <= 0:  # some containers (raw streams, some webm) state no count: count by decoding
            count = 1
            while cap.grab():
                count += 1
    finally:
        cap.release()
    fps = float(fps) if fps and math.isfinite(fps) and 0 < fps <= MAX_FPS else None
    return VideoInfo(path, fps, count, (first.shape[1], first.shape[0]))


def read_frames(path: Path, indices: Iterable[int],
                prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[dict[int, np.ndarray], int | None]:
    """The frames at ``indices`` (BGR, or ``prepare(frame)``), and ``None`` or, when the clip
    ends before the last index (a container's frame count can overstate it), the index after
    the last frame read: indices from there on get that last frame."""
    want = sorted(set(int(i) for i in indices))
    out: dict[int, np.ndarray] = {}
    if not want:
        return out, None
    cap = _open(Path(path))
    pos, last, end, got = 0, None, None, 0  # pos: index of the next frame read() returns
    try:
        for i in want:
            if i - pos >= SEEK_AFTER and cap.set(cv2.CAP_PROP_POS_FRAMES, i):
                pos = i  # FFmpeg's seek goes to the keyframe before i and decodes up to i
            while pos < i and cap.grab():  # decode only, no conversion, for the frames skipped
                pos += 1
            ok, img = cap.read() if pos == i else (False, None)
            if not ok:
                end = got
                break
            pos = got = i + 1
            last = out[i] = img if prepare is None else prepare(img)
    finally:
        cap.release()
    if last is None:
        raise VideoError(f"cannot decode video {path}: no frame of {want[0]}..{want[-1]} read")
    for i in want:
        out.setdefault(i, last)
    return out, end
