"""D-FACE tokenizer checkpoints: pretraining on pairs, the presets' default (synthetic-only)
checkpoints in the cache, and the file lock that keeps two processes from building one twice."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch

from benchmark.core import paths
from representations._dface_net import CVQVAE, preset_config, save_checkpoint, train_tokenizer
from representations._dface_pairs import GAP_S, SYNTHETIC_SEED, dataset_pairs, folder_pairs, synthetic_pairs

# How the default checkpoint of each preset is trained (pretrain() arguments).
DEFAULT_RECIPES = {
    "small": {"steps": 300, "batch_size": 32, "pairs": 2048, "lr": 1e-3, "seed": SYNTHETIC_SEED},
    "tiny": {"steps": 20, "batch_size": 16, "pairs": 48, "lr": 2e-3, "seed": SYNTHETIC_SEED, "scale": "tiny"},
}
RECIPE_VERSION = 1  # bump when pair sampling or training changes what a recipe produces


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
