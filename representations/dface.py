"""D-FACE facial action tokens (Deng et al.): a C-VQ-VAE turns (onset, apex) into an index map.

Output kind ``tokens``: float32 ``(N, h*w, code_dim)`` (default ``(N, 16, 32)``), the
codebook vectors of the chosen indices (``Z~`` of the paper, flattened row by row).
The classifier embeds them with one learned linear layer: the paper applies the
tokenizer's up-projection ``P`` and then a token embedding ``T``, two linear maps
whose composition is one linear map, so nothing is lost by learning it directly,
and the model needs no side channel to the tokenizer. ``discretize=False`` gives
the continuous motion ``D`` instead (the A.9 ablation), in the same shape.
:meth:`DFace.transform_indices` gives the integer index maps ``(N, h*w)``.
Before tokenizing, the apex frame's brightness is matched to the onset frame's
(``match_gain``, default on; pretraining keeps raw frames): see :func:`match_gain`.

Checkpoints: ``checkpoint=None`` uses the preset's default, trained only on the
synthetic generator (``benchmark.datasets.synthetic``, seed 1: other faces than the
seed-0 default dataset) and built on first use into
``$MER_BENCHMARK_CACHE/dface/`` (or ``~/.cache/mer-benchmark/dface/``); the same
file comes from ``python -m benchmark pretrain dface --frames synthetic --preset
small --out PATH``. Every checkpoint records the datasets and subjects it was
trained on; :meth:`DFace.training_subjects` reports them to the runner's
contamination check, and ``finetune_steps > 0`` adds the fold's training subjects.

Encodings of the checkpoint's tokenizer are cached per sample in the recipe-keyed
representation cache (``representations/_cache.py``); a fine-tuned tokenizer is
fold-specific and is not cached.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from benchmark.core import paths
from benchmark.core.samples import Sample
from benchmark.datasets.synthetic import ClipPlan
from representations import REPRESENTATIONS
from representations._dface_net import (
    CVQVAE, file_sha256, load_checkpoint, preset_config, save_checkpoint, to_input, train_tokenizer,
)
from representations.base import Representation, RepresentationError

GAP_S = (0.25, 0.5)  # pretraining pair gap in seconds (the paper's 8-15 frames at 25-30 fps)
SYNTHETIC_SEED = 1  # the default checkpoint's faces; the default dataset is seed 0
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}

# How the default checkpoint of each preset is trained (pretrain() arguments).
DEFAULT_RECIPES = {
    "small": {"steps": 300, "batch_size": 32, "pairs": 2048, "lr": 1e-3, "seed": SYNTHETIC_SEED},
    "tiny": {"steps": 20, "batch_size": 16, "pairs": 48, "lr": 2e-3, "seed": SYNTHETIC_SEED, "scale": "tiny"},
}
RECIPE_VERSION = 1  # bump when pair sampling or training changes what a recipe produces
DFACE_CACHE_VERSION = 1  # bump when encoding (frame loading, gain matching) changes a sample's D


# --------------------------------------------------------------------------- frames and pairs


def load_frame(path, size: int, channels: int) -> np.ndarray:
    """(channels, size, size) uint8: grayscale or BGR, resized with area averaging."""
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag)
    if img is None:
        raise RepresentationError(f"cannot read frame {path}")
    return prepare_frame(img, size, channels)


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
    from benchmark.datasets import synthetic as syn

    clips = syn.plan(seed, scale)
    au_pool = sorted({a for v in syn.AU_CHOICES.values() for a in v})
    rng = np.random.default_rng([seed, 0xDFACE])
    bases: dict = {}
    out = np.empty((n, 2, channels, size, size), np.uint8)
    subjects = set()
    for k in range(n):
        p = clips[int(rng.integers(len(clips)))]
        gap = max(1, round(rng.uniform(*gap_s) * syn.FPS[p.database]))
        mode = rng.choice(3, p=[0.6, 0.2, 0.2])  # forward, reverse, no expression
        aus = "" if mode == 2 else (p.aus if rng.random() < 0.7 else str(rng.choice(au_pool)))
        apex = p.onset + max(1, round(gap * rng.uniform(0.5, 1.0)))
        offset = max(apex + max(1, round(gap * rng.uniform(0.3, 0.8))), p.onset + gap + 1)
        q = _PairClip(**{f.name: getattr(p, f.name) for f in dataclasses.fields(p)}, pair=(p.onset, p.onset + gap))
        q = dataclasses.replace(q, aus=aus, apex=apex, offset=offset, stride=1, seed=(seed, k, 0xDFACE))
        if p.identity_seed not in bases:
            bases[p.identity_seed] = syn.subject_base(p)
        frames = [prepare_frame(img, size, channels) for _, img in syn.render_clip(q, bases[p.identity_seed])]
        out[k] = np.stack(frames[::-1] if mode == 1 else frames)
        subjects.add(f"synthetic-seed{seed}:{p.database}/{p.subject}")
    return out, sorted(subjects)


@dataclasses.dataclass(frozen=True)
class _PairClip(ClipPlan):
    """A synthetic clip rendered at two frame numbers only."""

    pair: tuple[int, int] = (0, 0)

    @property
    def frame_numbers(self) -> list[int]:
        return list(self.pair)


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
    """Pairs ``gap_s`` seconds apart (at ``fps``) from any folder of frame sequences."""
    seqs = folder_sequences(Path(root))
    if not seqs:
        raise FileNotFoundError(f"no folder with two or more images under {root}")
    rng = np.random.default_rng(seed)
    out, subjects = [], set()
    for _ in range(n):
        subject, frames = seqs[int(rng.integers(len(seqs)))]
        nums = np.array([f[0] for f in frames])
        i = int(rng.integers(len(frames)))
        want = nums[i] + max(1, round(rng.uniform(*gap_s) * fps))
        j = int(np.abs(nums - want).argmin())
        if j == i:
            j = len(frames) - 1 if i == 0 else 0
        out.append(np.stack([load_frame(frames[k][1], size, channels) for k in (i, j)]))
        subjects.add(f"{Path(root).name}:{subject}")
    return np.stack(out), sorted(subjects)


def dataset_pairs(root: Path, n: int, size: int, channels: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Pairs from database folders the readers know (``root/casme2`` ...), each at its
    own frame rate; subjects are the readers' ids (``casme2/sub01``), which the
    runner compares with test subjects."""
    from benchmark.datasets import DATASETS, read_dataset

    samples, names = [], []
    for name in DATASETS.names():
        if name in ("megc2019",) or not (Path(root) / name).is_dir():
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
        raise FileNotFoundError(f"no readable database with frames under {root}")
    pairs = clip_pairs(samples, n, size, channels, seed)
    return pairs, sorted({s.subject for s in samples}), names


def match_gain(i2: torch.Tensor, i1: torch.Tensor) -> torch.Tensor:
    """``i2`` rescaled to ``i1``'s per-image mean and standard deviation.

    Lighting flicker (a global gain change between onset and apex) is no facial
    action, but a briefly pretrained tokenizer encodes it as one code repeated
    over the whole map: on synthetic development data (generator seed 2, not
    the default dataset) 99 % of ``D``'s norm was such a sample-wide component
    and a linear probe on the tokens was at chance (UF1 0.36); matching the
    gain before tokenizing cut that share to 39 % and lifted the probe to 0.51.
    Pretraining keeps raw frames (as the paper); identical frames stay identical."""
    dims = tuple(range(1, i1.dim()))
    m1, s1 = i1.mean(dims, keepdim=True), i1.std(dims, keepdim=True)
    m2, s2 = i2.mean(dims, keepdim=True), i2.std(dims, keepdim=True)
    same = (i1 == i2).flatten(1).all(1).view(-1, *([1] * (i1.dim() - 1)))  # exact, not up to rounding
    return torch.where(same, i2, (i2 - m2) * (s1 / s2.clamp_min(1e-6)) + m1)


# --------------------------------------------------------------------------- pretraining


def pretrain(frames: str, out: Path, preset: str = "small", steps: int = 300, batch_size: int = 32,
             pairs: int = 2048, lr: float = 1e-3, seed: int = SYNTHETIC_SEED, fps: float = 30.0,
             scale: str = "default", device: str = "cpu", log=print, log_every: int = 50) -> dict:
    """Train a tokenizer on ``frames`` (``"synthetic"``, a data root with database
    folders, or any folder of frame sequences) and write the checkpoint ``out``."""
    cfg = preset_config(preset)
    t0 = time.perf_counter()
    if frames == "synthetic":
        data, subjects = synthetic_pairs(pairs, cfg.image_size, cfg.channels, seed=seed, scale=scale)
        datasets = [f"synthetic(generator=benchmark.datasets.synthetic, seed={seed}, scale={scale})"]
    elif any((Path(frames) / d).is_dir() for d in ("casme2", "samm", "smic", "casme3")):
        data, subjects, datasets = dataset_pairs(Path(frames), pairs, cfg.image_size, cfg.channels, seed)
    else:
        data, subjects = folder_pairs(Path(frames), pairs, cfg.image_size, cfg.channels, fps, seed)
        datasets = [f"folder:{Path(frames).resolve()}"]
    log(f"{len(data)} pairs from {frames} ({len(subjects)} subjects) in {time.perf_counter() - t0:.0f} s")
    torch.manual_seed(seed)
    net = CVQVAE(cfg)
    with _threads_for_load():
        history = train_tokenizer(net, data, steps, batch_size, lr, seed, log_every=log_every, log=log,
                                  device=device)
    meta = {
        "trained_on": {"datasets": datasets, "subjects": subjects},
        "recipe": {"frames": frames if frames == "synthetic" else str(Path(frames).resolve()), "preset": preset,
                   "steps": steps, "batch_size": batch_size, "pairs": pairs, "lr": lr, "seed": seed,
                   "scale": scale if frames == "synthetic" else None,
                   "gap_s": list(GAP_S), "fps": fps if frames not in ("synthetic",) else None,
                   "recipe_version": RECIPE_VERSION},
        "history": history, "torch": str(torch.__version__),
    }  # no timings in the file: the same recipe gives a byte-identical checkpoint on the same platform
    net.cpu()
    sha = save_checkpoint(Path(out), net, meta)
    return {**meta, "sha256": sha, "seconds": round(time.perf_counter() - t0, 1)}


def cache_dir() -> Path:
    return paths.cache_dir("dface")


def default_checkpoint(preset: str, build: bool = True, log=None) -> Path:
    """The preset's default checkpoint (synthetic-only), built on first use."""
    if preset not in DEFAULT_RECIPES:
        raise ValueError(
            f"the {preset!r} preset has no default checkpoint; build one with `python -m benchmark pretrain "
            f"dface --preset {preset} --frames DIR --out CKPT` and pass --rep-param checkpoint=CKPT")
    r = DEFAULT_RECIPES[preset]
    key = json.dumps([RECIPE_VERSION, r, dataclasses.asdict(preset_config(preset))], sort_keys=True)
    path = cache_dir() / f"dface-{preset}-synthetic-{hashlib.sha256(key.encode()).hexdigest()[:10]}.pt"
    if path.exists() or not build:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(path.with_suffix(".lock")):  # a concurrent builder finishes first
        if not path.exists():
            say = log or (lambda m: print(f"[dface] {m}", file=sys.stderr, flush=True))
            say(f"building the default {preset} tokenizer (synthetic data only) -> {path}")
            pretrain("synthetic", path, preset=preset, log=say, log_every=100, **r)
    return path


@contextlib.contextmanager
def _threads_for_load():
    """Fewer torch threads while the machine is busy: on shared cores an oversubscribed
    thread pool made training several times slower than one thread."""
    before = torch.get_num_threads()
    idle = (os.cpu_count() or 1) - os.getloadavg()[0]
    torch.set_num_threads(max(1, min(before, int(idle + 0.5))))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _file_lock(path: Path):
    import fcntl

    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- representation


@REPRESENTATIONS.register()
class DFace(Representation):
    """D-FACE action tokens of the (onset, apex) pair.

    Args:
        preset: ``small`` (64x64 grayscale, 2 CPU cores; default), ``paper``
            (hidden 512, 256x256 RGB; needs a checkpoint you pretrain) or ``tiny`` (tests).
        checkpoint: a file from ``python -m benchmark pretrain dface``; None = the
            preset's synthetic-only default (built on first use).
        discretize: False = continuous ``D = E2 - E1`` instead of codebook vectors (A.9).
        finetune_steps: > 0 fine-tunes the tokenizer per fold, self-supervised (pixel
            MSE), on pairs from the fold's training clips only (then ``learned``).
        finetune_lr, batch_size, seed: fine-tuning and inference settings.
        match_gain: rescale the apex frame to the onset frame's mean and standard
            deviation before tokenizing (default True; see :func:`match_gain`).
        on_missing: ``error`` or ``blank`` for samples without frames: ``blank``
            gives them the "no action" tokens (``D = 0``), noted in the report.
        device: ``cpu``, ``cuda`` or ``auto``.
    """

    kind = "tokens"

    def __init__(self, preset: str = "small", checkpoint: str | None = None, discretize: bool = True,
                 finetune_steps: int = 0, finetune_lr: float = 3e-4, batch_size: int = 64, seed: int = 0,
                 match_gain: bool = True, on_missing: str = "error", device: str = "cpu"):
        self.preset = preset
        self.checkpoint = checkpoint
        self.discretize = discretize
        self.finetune_steps = finetune_steps
        self.finetune_lr = finetune_lr
        self.batch_size = batch_size
        self.seed = seed
        self.match_gain = match_gain
        self.on_missing = on_missing
        self.device = device

    @property
    def learned(self) -> bool:
        return self.finetune_steps > 0

    # ------------------------------------------------------------------ checkpoint

    def checkpoint_path(self) -> Path:
        if self.checkpoint:
            path = Path(self.checkpoint).expanduser()
            if not path.exists():
                raise FileNotFoundError(f"D-FACE checkpoint {path} does not exist")
            return path
        return default_checkpoint(self.preset)

    def _pretrained(self) -> tuple[CVQVAE, dict]:
        """The checkpoint's network (loaded once per instance) and its meta."""
        path = self.checkpoint_path()
        cached = getattr(self, "_loaded", None)
        if cached is None or cached[0] != str(path):
            net, meta = load_checkpoint(path)
            if self.checkpoint and meta.get("recipe", {}).get("preset") not in (None, self.preset):
                raise ValueError(f"checkpoint {path} was trained with preset {meta['recipe']['preset']!r}, "
                                 f"not {self.preset!r}; pass --rep-param preset={meta['recipe']['preset']}")
            meta = {**meta, "path": str(path), "sha256": file_sha256(path)}
            self._loaded = cached = (str(path), net, meta)
        return cached[1], cached[2]

    def _device(self) -> torch.device:
        from benchmark.core.device import resolve_device

        return resolve_device(self.device)

    def _net(self) -> CVQVAE:
        net = getattr(self, "net_", None)
        return net if net is not None else self._pretrained()[0]

    # ------------------------------------------------------------------ estimator API

    def fit(self, samples: Sequence[Sample], y=None) -> "DFace":
        net, meta = self._pretrained()
        trained = set(meta["trained_on"]["subjects"])
        self.checkpoint_meta_ = {k: meta[k] for k in ("path", "sha256", "trained_on", "recipe")}
        if self.finetune_steps > 0:
            import copy

            net = copy.deepcopy(net)
            cfg = net.cfg
            pairs = clip_pairs(samples, max(4 * len(samples), self.batch_size), cfg.image_size, cfg.channels,
                               seed=self.seed)
            with _threads_for_load():
                train_tokenizer(net, pairs, self.finetune_steps, self.batch_size, self.finetune_lr, self.seed,
                                replace_dead=False, device=self._device())
            net.cpu().eval()
            trained |= {s.subject for s in samples}
        self.net_ = net
        self.trained_on_ = trained
        return self

    def training_subjects(self) -> set[str]:
        if getattr(self, "trained_on_", None) is not None:
            return set(self.trained_on_)
        return set(self._pretrained()[1]["trained_on"]["subjects"])

    def recipe(self) -> dict:
        meta = self._pretrained()[1]
        return {**super().recipe(), "checkpoint_sha256": meta["sha256"],
                "checkpoint_trained_on": meta["trained_on"]["datasets"]}

    @torch.no_grad()
    def encode(self, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices (N, L) int64, quantized vectors (N, L, code), continuous D (N, L, code)).

        With the checkpoint's tokenizer (no per-fold fine-tuning) each sample's D
        is cached on disk by the recipe (checkpoint hash included) and its two
        frames' identity, so a second run only reads it back; a fine-tuned
        tokenizer is fold-specific and encodes afresh.
        """
        from representations._cache import DiskCache
        from representations.base import check_missing

        check_missing(samples, self.on_missing, "dface", "get the 'no action' tokens")
        net = self._net()
        dev = self._device()
        cfg = net.cfg
        cache = DiskCache() if self.finetune_steps == 0 else None
        # D does not depend on ``discretize`` (applied after): one entry serves both settings
        recipe = {**{k: v for k, v in self.recipe().items() if k != "discretize"},
                  "stage": "dface-D", "version": DFACE_CACHE_VERSION}
        events: dict[int, list] = {k: [{"kind": "no_frames_no_action_tokens", "sample": s.key}]
                                   for k, s in enumerate(samples) if not s.frames}
        d = torch.zeros(len(samples), cfg.n_tokens, cfg.code_dim)  # D = 0: "no action" for blanks
        todo = []
        for k, s in enumerate(samples):
            if not s.frames:
                continue
            key = cache.key(recipe, self._pair_paths(s)) if cache else None
            hit = cache.get(key) if cache else None
            if hit is None:
                todo.append((k, s, key))
            else:
                d[k] = torch.from_numpy(hit[0]["d"])
                events[k] = hit[1].get("events", [])
        if todo:
            net.to(dev).eval()
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for k, _, _ in chunk:
                events[k] = []
            pairs = torch.as_tensor(np.stack([onset_apex_pair(s, cfg.image_size, cfg.channels, events[k])
                                              for k, s, _ in chunk]))
            out = net.tokenize(*self._input(pairs.to(dev)))[1].cpu()
            for (k, _, key), dk in zip(chunk, out):
                d[k] = dk
                if cache:
                    cache.put(key, {"d": dk.numpy()}, {"events": events[k]}, recipe)
        net.cpu()
        self.report_ = [e for k in sorted(events) for e in events[k]]  # the runner writes it to rep_report.json
        self.cache_stats_ = ({"hits": len(samples) - len(todo) - sum(not s.frames for s in samples),
                              "computed": len(todo), "dir": str(cache.root)} if cache else
                             {"disabled": "tokenizer fine-tuned on this fold"})
        indices = net.quant.nearest(d)
        return indices.numpy(), net.quant.codebook.detach()[indices].numpy(), d.numpy()

    @staticmethod
    def _pair_paths(s: Sample) -> list[Path]:
        """The files ``onset_apex_pair`` reads: the cache entry's source identity."""
        return [s.frame_path(want)[0] for _, want in pair_frames(s)]

    def _input(self, pairs_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i1, i2 = to_input(pairs_u8)
        return (i1, match_gain(i2, i1)) if self.match_gain else (i1, i2)

    def transform(self, samples: Sequence[Sample]) -> np.ndarray:
        indices, quantized, d = self.encode(list(samples))
        return (quantized if self.discretize else d).astype(np.float32)

    def transform_indices(self, samples: Sequence[Sample]) -> np.ndarray:
        return self.encode(list(samples))[0]

    def codebook(self) -> np.ndarray:
        return self._net().quant.codebook.detach().cpu().numpy().copy()

    @torch.no_grad()
    def index_map(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """(h, w) index map of two images (any size, gray or BGR uint8)."""
        net = self._net().eval()
        cfg = net.cfg
        pair = np.stack([prepare_frame(im, cfg.image_size, cfg.channels) for im in (first, second)])
        idx, _ = net.tokenize(*self._input(torch.as_tensor(pair[None])))
        return idx[0].view(cfg.token_h, cfg.token_w).numpy()

    def no_action_map(self, image: np.ndarray) -> np.ndarray:
        """The index map of two identical frames: the "no action" state (section 3.2)."""
        return self.index_map(image, image)

    def __getstate__(self):  # the loaded checkpoint is not part of the estimator's state
        state = dict(self.__dict__)
        state.pop("_loaded", None)
        return state
