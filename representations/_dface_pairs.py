"""Where D-FACE's training pairs come from: a clip's onset and apex, random frame pairs inside
clips at their frame rate (``mixed_pairs``: the cross-fitted pretraining's mix of kinds), the
synthetic generator in memory, any folder of frame sequences and face videos (``corpus_pairs``)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from benchmark.core.samples import Sample
from benchmark.datasets import DATASETS, read_dataset
from benchmark.datasets import synthetic as syn
from benchmark.datasets import videos
from representations.base import RepresentationError, read_image

GAP_S = (0.25, 0.5)  # pretraining pair gap in seconds (the paper's 8-15 frames at 25-30 fps)
SYNTHETIC_SEED = 1  # the default checkpoint's faces; the default dataset is seed 0
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def load_frame(path, size: int, channels: int) -> np.ndarray:
    """(channels, size, size) uint8: grayscale or BGR, resized with area averaging."""
    return prepare_frame(read_image(path, grayscale=channels == 1), size, channels)  # strict: names a truncated file


def prepare_frame(img: np.ndarray, size: int, channels: int) -> np.ndarray:
    if channels == 1 and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif channels == 3 and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img[None] if img.ndim == 2 else img.transpose(2, 0, 1)


def apex_index(s: Sample) -> int:
    """Annotated apex, else the middle frame (the paper's pseudo-apex for SMIC-HS)."""
    if s.apex is not None:
        return s.apex
    if s.onset is None or s.offset is None:
        raise RepresentationError(f"{s.key}: neither an apex nor an onset/offset annotation")
    return (s.onset + s.offset) // 2


def pair_frames(s: Sample) -> tuple[tuple[str, int], tuple[str, int]]:
    """The annotated (role, frame index) pair D-FACE encodes: onset (else the first frame), apex."""
    if not s.frames:
        raise RepresentationError(f"{s.key}: D-FACE needs the onset and apex frames; this sample has none")
    return ("onset", s.onset if s.onset is not None else min(s.frames)), ("apex", apex_index(s))


def onset_apex_pair(s: Sample, size: int, channels: int, report: list | None = None) -> np.ndarray:
    """(2, C, S, S) uint8 onset and apex frames (nearest available frame, noted in ``report``)."""
    out = []
    for role, want in pair_frames(s):
        path, used = s.frame_path(want)
        if report is not None and used != want:
            report.append({"kind": "nearest_frame", "sample": s.key, "frame": role, "wanted": want, "used": used})
        if report is not None and role == "apex" and s.apex is None:
            report.append({"kind": "pseudo_apex_middle", "sample": s.key, "used": used})
        out.append(load_frame(path, size, channels))
    return np.stack(out)


def clip_pairs(samples: Sequence[Sample], n: int, size: int, channels: int, seed: int = 0,
               gap_s=GAP_S) -> np.ndarray:
    """``n`` pairs from the clips' frames: every clip's (onset, apex) first, then
    random pairs ``gap_s`` seconds apart at the clip's frame rate (nearest
    available frame; the whole clip when it is shorter than the gap)."""
    rng = np.random.default_rng(seed)
    usable = [s for s in samples if len(s.frames) >= 2]
    if not usable:
        raise RepresentationError("no sample with at least two frames to build training pairs from")
    out = [onset_apex_pair(s, size, channels) for s in usable[:n]]
    while len(out) < n:
        s = usable[rng.integers(len(usable))]
        idx = sorted(s.frames)
        fps = s.fps or 30.0
        a = idx[rng.integers(len(idx))]
        b = s.frame_path(a + max(1, round(rng.uniform(*gap_s) * fps)))[1]
        if a == b:
            a = idx[0] if b != idx[0] else idx[-1]
        pair = [load_frame(s.frames[i], size, channels) for i in (a, b)]
        out.append(np.stack(pair if a < b or rng.random() < 0.5 else pair[::-1]))
    return np.stack(out)


# Cross-fitted pretraining's pairs inside a clip (kind, share): onset -> a later frame, two
# neighbouring frames, a forward pair reversed (actions also end), a frame with itself (no action).
PAIR_MIX = (("onset_later", 0.4), ("neighbours", 0.2), ("reversed", 0.2), ("still", 0.2))


def _forward(s: Sample, idx: list[int], a: int, ahead: int) -> tuple[int, int]:
    """(a, b): b the available frame nearest ``ahead`` frames after a, b > a (the clip's last two
    frames when a is the last)."""
    b = s.frame_path(a + ahead)[1]
    if b > a:
        return a, b
    later = [f for f in idx if f > a]
    return (a, later[0]) if later else (idx[-2], idx[-1])


def mixed_pairs(samples: Sequence[Sample], n: int, size: int, channels: int, seed: int = 0,
                gap_s=GAP_S) -> tuple[np.ndarray, dict[str, int]]:
    """``n`` pairs inside random clips, at each clip's frame rate, of the kinds of :data:`PAIR_MIX`:
    onset -> a frame 1 frame to ``gap_s[1]`` s later, neighbouring frames, a pair ``gap_s`` apart
    reversed, a frame with itself. Returns the pairs and how many of each kind were drawn."""
    rng = np.random.default_rng(seed)
    usable = [s for s in samples if len(s.frames) >= 2]
    if not usable:
        raise RepresentationError("no sample with at least two frames to build training pairs from")
    kinds = rng.choice(len(PAIR_MIX), n, p=[w for _, w in PAIR_MIX])
    out = np.empty((n, 2, channels, size, size), np.uint8)
    for k, kind in enumerate(kinds):
        s = usable[rng.integers(len(usable))]
        idx, fps = sorted(s.frames), s.fps or 30.0
        if kind == 0:
            start = s.frame_path(s.onset if s.onset is not None else idx[0])[1]
            a, b = _forward(s, idx, start, int(rng.integers(1, max(1, round(gap_s[1] * fps)) + 1)))
        elif kind == 1:
            j = int(rng.integers(len(idx) - 1))
            a, b = idx[j], idx[j + 1]
        elif kind == 2:
            b, a = _forward(s, idx, idx[rng.integers(len(idx))], max(1, round(rng.uniform(*gap_s) * fps)))
        else:
            a = b = idx[rng.integers(len(idx))]
        first = load_frame(s.frames[a], size, channels)
        out[k] = np.stack([first, first if a == b else load_frame(s.frames[b], size, channels)])
    counts = np.bincount(kinds, minlength=len(PAIR_MIX))
    return out, {name: int(c) for (name, _), c in zip(PAIR_MIX, counts)}


def synthetic_pairs(n: int, size: int, channels: int, seed: int = SYNTHETIC_SEED, scale: str = "default",
                    gap_s=GAP_S) -> tuple[np.ndarray, list[str]]:
    """Pairs rendered in memory by the synthetic generator (no file is written).

    Faces and action units come from ``benchmark.datasets.synthetic.plan(seed, scale)``.
    Each pair is two frames ``gap_s`` seconds apart at the database's frame rate;
    the expression's profile is stretched to that gap (apex at 50-100 % of it).
    60 % of pairs go neutral -> expression, 20 % the reverse, 20 % carry head
    motion, flicker and noise only; 30 % of expressions use another emotion's
    action units than the clip's. Returns (pairs, subject ids ``synthetic-seedS:db/sub``).
    """
    clips = syn.plan(seed, scale)
    au_pool = syn.action_unit_sets()
    rng = np.random.default_rng([seed, 0xDFACE])
    out = np.empty((n, 2, channels, size, size), np.uint8)
    subjects = set()
    for k in range(n):
        p = clips[int(rng.integers(len(clips)))]
        gap = max(1, round(rng.uniform(*gap_s) * p.fps))
        mode = rng.choice(3, p=[0.6, 0.2, 0.2])  # forward, reverse, no expression
        aus = "" if mode == 2 else (p.aus if rng.random() < 0.7 else str(rng.choice(au_pool)))
        apex = p.onset + max(1, round(gap * rng.uniform(0.5, 1.0)))
        offset = max(apex + max(1, round(gap * rng.uniform(0.3, 0.8))), p.onset + gap + 1)
        images = syn.render_frames(p, (p.onset, p.onset + gap), aus=aus, apex=apex, offset=offset, stride=1,
                                   seed=(seed, k, 0xDFACE))
        frames = [prepare_frame(img, size, channels) for img in images]
        out[k] = np.stack(frames[::-1] if mode == 1 else frames)
        subjects.add(f"synthetic-seed{seed}:{p.database}/{p.subject}")
    return out, sorted(subjects)


def folder_sequences(root: Path) -> list[tuple[str, list[tuple[int, Path]]]]:
    """Leaf folders holding >= 2 images, as (subject, [(frame number, path)]): the
    number is the last integer in the file name (its position when there is none);
    the subject is the first folder level under ``root``."""
    seqs = []
    for folder, _dirs, files in os.walk(root):
        imgs = sorted(f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES)
        if len(imgs) < 2:
            continue
        nums = [re.findall(r"\d+", Path(f).stem) for f in imgs]
        frames = sorted((int(m[-1]) if m else i, Path(folder) / f) for i, (f, m) in enumerate(zip(imgs, nums)))
        rel = Path(folder).relative_to(root)
        seqs.append((rel.parts[0] if rel.parts else root.name, frames))
    return sorted(seqs, key=lambda s: str(s[1][0][1]))


def folder_pairs(root: Path, n: int, size: int, channels: int, fps: float, seed: int = 0,
                 gap_s=GAP_S) -> tuple[np.ndarray, list[str]]:
    """Pairs ``gap_s`` seconds apart from any folder of frame sequences and videos
    (:func:`corpus_pairs` without its record)."""
    pairs, subjects, _ = corpus_pairs(root, n, size, channels, fps, seed, gap_s)
    return pairs, subjects


def corpus_clips(root: Path) -> list[tuple[str, object]]:
    """(subject, clip) of a face corpus: every frame sequence of :func:`folder_sequences`
    (clip: its ``[(frame number, path)]``), then every video file (clip: its path) under
    ``root`` (or ``root`` itself when it is a video). The subject is the first folder level
    under ``root``: VoxCeleb's ``id/video/clip.mp4`` gives the speaker's ``id``."""
    root = Path(root)
    if root.is_file():
        return [(root.stem, root)] if videos.is_video(root) else []
    clips: list[tuple[str, object]] = list(folder_sequences(root))
    for folder, _dirs, files in sorted(os.walk(root)):
        for f in sorted(files):
            if videos.is_video(Path(f)):
                rel = Path(folder).relative_to(root)
                clips.append((rel.parts[0] if rel.parts else Path(f).stem, Path(folder) / f))
    return clips


def corpus_pairs(root: Path, n: int, size: int, channels: int, fps: float, seed: int = 0,
                 gap_s=GAP_S) -> tuple[np.ndarray, list[str], dict]:
    """``n`` pairs ``gap_s`` seconds apart inside random clips of :func:`corpus_clips`.

    Frame sequences are at ``fps``; a video at its container's rate (``CAP_PROP_FPS``), or at
    ``fps`` when the container states none (counted in the record's ``fps_fallback``). A
    video's frames are decoded only up to the last one its pairs need
    (:func:`benchmark.datasets.videos.read_frames`, seeking over long jumps), one clip at a
    time. A video OpenCV cannot decode, or one of a single frame, leaves the pool (the record
    names it) and the draw is repeated; none readable at all is an error. Returns (pairs,
    subjects ``<root name>:<subject>``, record of the clips used and skipped)."""
    root = Path(root)
    clips = corpus_clips(root)
    if not clips:
        raise FileNotFoundError(f"no readable frames under {root}: no video ({', '.join(videos.VIDEO_EXTS)}) "
                                "and no folder with two or more images")
    rng = np.random.default_rng(seed)
    out = np.empty((n, 2, channels, size, size), np.uint8)
    info: dict[Path, videos.VideoInfo] = {}
    wanted: dict[Path, list[tuple[int, int, int]]] = {}  # video -> (pair, first, second frame)
    skipped, used = [], set()
    k = 0
    while k < n:
        if not clips:
            raise FileNotFoundError(f"no readable frames under {root}: {len(skipped)} video(s) OpenCV cannot "
                                    f"use ({skipped[0]['path']}: {skipped[0]['reason']})")
        c = int(rng.integers(len(clips)))
        subject, clip = clips[c]
        if isinstance(clip, Path):
            if clip not in info:
                try:
                    info[clip] = videos.probe(clip)
                    if info[clip].frames < 2:
                        raise videos.VideoError(f"video {clip} has a single frame")
                except videos.VideoError as exc:
                    skipped.append({"path": _rel(clip, root), "reason": str(exc)})
                    clips.pop(c)
                    continue
            v = info[clip]
            gap = max(1, round(rng.uniform(*gap_s) * (v.fps or fps)))
            a = int(rng.integers(v.frames - gap)) if v.frames > gap else 0
            wanted.setdefault(clip, []).append((k, a, min(a + gap, v.frames - 1)))
        else:
            nums = np.array([f[0] for f in clip])
            i = int(rng.integers(len(clip)))
            want = nums[i] + max(1, round(rng.uniform(*gap_s) * fps))
            j = int(np.abs(nums - want).argmin())
            if j == i:
                j = len(clip) - 1 if i == 0 else 0
            out[k] = np.stack([load_frame(clip[q][1], size, channels) for q in (i, j)])
        used.add(f"{root.name}:{subject}")
        k += 1
    short = 0
    for clip, specs in wanted.items():  # one pass per video, only the frames its pairs need
        frames, end = videos.read_frames(clip, [f for _, a, b in specs for f in (a, b)],
                                         prepare=lambda img: prepare_frame(img, size, channels))
        short += end is not None
        for k, a, b in specs:
            out[k] = np.stack([frames[a], frames[b]])
    record = {"sequences": sum(not isinstance(c, Path) for _, c in clips), "videos_used": len(wanted)}
    if no_rate := sorted(_rel(p, root) for p in wanted if info[p].fps is None):
        record["fps_fallback"] = {"fps": fps, "videos": len(no_rate), "first": no_rate[:5]}
    if short:
        record["videos_shorter_than_stated"] = short  # their last decoded frame stood in
    if skipped:
        record["skipped_videos"] = {"count": len(skipped), "first": skipped[:10]}
    return out, sorted(used), record


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if root in path.parents else path.name


def dataset_pairs(root: Path, n: int, size: int, channels: int, seed: int = 0,
                  only: Sequence[str] | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """Pairs from database folders the readers know (``root/casme2`` ...), each at its
    own frame rate; subjects are the readers' ids (``casme2/sub01``), which the
    runner compares with test subjects. ``only``: the databases to read (e.g. all but
    the one a run tests on); a name no reader knows is an error."""
    if only is not None and (unknown := sorted(set(only) - set(DATASETS.names()) | set(only) & {"megc2019"})):
        raise ValueError(f"--datasets: {', '.join(unknown)} is no database with frames "
                         f"(known: {', '.join(n for n in DATASETS.names() if n != 'megc2019')})")
    samples, names = [], []
    for name in DATASETS.names():
        if name in ("megc2019",) or not (Path(root) / name).is_dir() or (only is not None and name not in only):
            continue
        try:
            report = read_dataset(name, Path(root) / name)
        except Exception:  # noqa: BLE001 - a folder the reader cannot use is not a source
            continue
        with_frames = [s for s in report.samples if len(s.frames) >= 2]
        if with_frames:
            samples += with_frames
            names.append(name)
    if not samples:
        which = f" among {', '.join(only)}" if only is not None else ""
        raise FileNotFoundError(f"no readable database with frames{which} under {root}")
    pairs = clip_pairs(samples, n, size, channels, seed)
    return pairs, sorted({s.subject for s in samples}), names


def gain_matched_u8(pairs: np.ndarray) -> np.ndarray:
    """uint8 pairs (N, 2, C, S, S) with each second frame rescaled to its first frame's mean and
    standard deviation (as ``dface`` tokenizes: ``representations.dface.match_gain``), rounded back
    to uint8; pairs of identical frames stay identical."""
    x = pairs.astype(np.float32)
    a, b = x[:, 0], x[:, 1]
    axes = tuple(range(1, a.ndim))
    ma, sa = a.mean(axes, keepdims=True), a.std(axes, keepdims=True)
    mb, sb = b.mean(axes, keepdims=True), b.std(axes, keepdims=True)
    matched = (b - mb) * (sa / np.maximum(sb, 1e-6)) + ma
    same = (pairs[:, 0] == pairs[:, 1]).reshape(len(pairs), -1).all(1)
    out = pairs.copy()
    out[~same, 1] = np.clip(np.rint(matched[~same]), 0, 255).astype(np.uint8)
    return out
