"""D-FACE tokenizer checkpoints: pretraining on pairs, the presets' default (synthetic-only)
checkpoints in the cache, the cross-fitted checkpoints of a run's own clips (``crossfit_checkpoints``),
and the file lock that keeps two processes from building one twice."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from benchmark.core import paths
from benchmark.core.samples import Sample
from representations._dface_net import (CVQVAE, file_sha256, load_checkpoint, preset_config, save_checkpoint,
                                        train_tokenizer)
from representations._dface_pairs import (GAP_S, PAIR_MIX, SYNTHETIC_SEED, dataset_pairs, folder_pairs, mixed_pairs,
                                          synthetic_pairs)

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


CROSSFIT_VERSION = 1  # bump when cross-fitted pretraining changes what a recipe produces


def clips_fingerprint(samples: Sequence[Sample]) -> str:
    """sha256 of the clips' keys and their frames' numbers, names and sizes (no file is read)."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.key):
        h.update(s.key.encode())
        for n, path in sorted(s.frames.items()):
            h.update(f"|{n}:{Path(path).name}:{Path(path).stat().st_size}".encode())
    return h.hexdigest()


def crossfit_checkpoints(samples: Sequence[Sample], groups: Sequence[int], k: int, init: Path, preset: str,
                         steps: int, pairs: int, batch_size: int, lr: float, seed: int = 0, device="cpu",
                         log=None) -> list[dict]:
    """Checkpoint g (g < k): ``init`` trained ``steps`` more on :func:`mixed_pairs` of the clips whose
    group is not g. Cached by the full recipe (clips, assignment, init sha, training settings), built
    under a file lock. Returns per checkpoint its path, sha256, subjects and the cost of building it
    (read back from the side file when it was cached; ``built_now`` says which)."""
    recipe = {"version": CROSSFIT_VERSION, "recipe_version": RECIPE_VERSION, "preset": preset,
              "net": dataclasses.asdict(preset_config(preset)), "init_sha256": file_sha256(init),
              "clips": clips_fingerprint(samples), "assignment": sorted({(s.subject, int(g)) for s, g in zip(samples, groups)}),
              "k": k, "steps": steps, "pairs": pairs, "batch_size": batch_size, "lr": lr, "seed": seed,
              "gap_s": list(GAP_S), "mix": PAIR_MIX}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    stem = cache_dir() / f"dface-{preset}-crossfit-{key}"
    paths = [stem.with_name(f"{stem.name}-{g + 1}of{k}.pt") for g in range(k)]
    built = set()
    if not all(p.exists() and p.with_suffix(".json").exists() for p in paths):
        stem.parent.mkdir(parents=True, exist_ok=True)
        say = log or (lambda m: print(f"[dface] {m}", file=sys.stderr, flush=True))
        with _file_lock(stem.with_suffix(".lock")):  # a concurrent builder finishes first
            for g, path in enumerate(paths):
                if not (path.exists() and path.with_suffix(".json").exists()):
                    say(f"cross-fitted tokenizer {g + 1}/{k} ({steps} steps, clips of the other groups) -> {path}")
                    train = [s for s, gs in zip(samples, groups) if gs != g]
                    _crossfit_one(train, init, path, preset, steps, pairs, batch_size, lr, seed + g, device)
                    built.add(g)
    return [{"group": g, "path": str(p), "built_now": g in built, **json.loads(p.with_suffix(".json").read_text())}
            for g, p in enumerate(paths)]


def _crossfit_one(samples, init: Path, out: Path, preset: str, steps: int, pairs: int, batch_size: int,
                  lr: float, seed: int, device) -> None:
    t0 = time.perf_counter()
    net, meta = load_checkpoint(init)
    data, kinds = mixed_pairs(samples, pairs, net.cfg.image_size, net.cfg.channels, seed=seed)
    with _threads_for_load():  # dead-code replacement as in pretrain(): the new clips may leave codes unused
        history = train_tokenizer(net, data, steps, batch_size, lr, seed, device=device)
    net.cpu()
    trained = meta["trained_on"]
    subjects = sorted({s.subject for s in samples})
    new = {"trained_on": {"datasets": trained["datasets"] + sorted({s.dataset for s in samples}),
                          "subjects": sorted(set(trained["subjects"]) | set(subjects))},
           "recipe": {"frames": "crossfit", "preset": preset, "init_sha256": file_sha256(init), "steps": steps,
                      "pairs": pairs, "batch_size": batch_size, "lr": lr, "seed": seed, "gap_s": list(GAP_S),
                      "pair_kinds": kinds, "recipe_version": RECIPE_VERSION, "crossfit_version": CROSSFIT_VERSION},
           "history": history, "torch": str(torch.__version__)}
    sha = save_checkpoint(out, net, new)
    cost = {"sha256": sha, "seconds": round(time.perf_counter() - t0, 1), "steps": steps, "pairs": pairs,
            "pair_kinds": kinds, "clips": len(samples), "subjects": len(subjects), "device": str(device),
            "final_loss": history[-1]["loss"] if history else None}
    side = out.with_suffix(".json")  # timings stay out of the checkpoint (see pretrain)
    tmp = side.with_name(f".{side.name}.tmp")
    tmp.write_text(json.dumps(cost, indent=1))
    tmp.replace(side)


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
