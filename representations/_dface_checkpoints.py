"""D-FACE tokenizer checkpoints: pretraining on pairs (synthetic, databases, face videos; resumable,
its cost in a side file), the presets' default (synthetic-only) checkpoints in the cache, the
cross-fitted checkpoints of a run's own clips (``crossfit_checkpoints``), and the file lock that
keeps two processes from building one twice."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.core import paths
from benchmark.core.samples import Sample
from representations._cache import one_thread
from representations._dface_net import (CVQVAE, file_sha256, load_checkpoint, preset_config, save_checkpoint,
                                        train_tokenizer)
from representations._dface_pairs import (GAP_S, PAIR_MIX, SYNTHETIC_SEED, corpus_pairs, dataset_pairs,
                                          gain_matched_u8, mixed_pairs, synthetic_pairs)

# How the default checkpoint of each preset is trained (pretrain() arguments).
DEFAULT_RECIPES = {
    "small": {"steps": 300, "batch_size": 32, "pairs": 2048, "lr": 1e-3, "seed": SYNTHETIC_SEED},
    "tiny": {"steps": 20, "batch_size": 16, "pairs": 48, "lr": 2e-3, "seed": SYNTHETIC_SEED, "scale": "tiny"},
}
RECIPE_VERSION = 1  # bump when pair sampling or training changes what a recipe produces


DATABASES = ("casme2", "samm", "smic", "casme3")  # data-root folders whose readers give subject ids
SAVE_EVERY = 100  # steps between resumable training states (a 'small' state is ~1 MB)


def pretrain(frames: str | Sequence[str], out: Path, preset: str = "small", steps: int = 300, batch_size: int = 32,
             pairs: int = 2048, lr: float = 1e-3, seed: int = SYNTHETIC_SEED, fps: float = 30.0,
             scale: str = "default", device: str = "cpu", log=print, log_every: int = 50,
             datasets: Sequence[str] | None = None, save_every: int = SAVE_EVERY) -> dict:
    """Train a tokenizer on ``frames`` and write the checkpoint ``out``.

    ``frames``: one source or several, each ``"synthetic"``, a data root with database folders
    (only those named in ``datasets`` when given: e.g. every database but the one a run will
    test on), or any folder of frame sequences and face videos (:func:`corpus_pairs`). Several
    sources share the ``pairs`` evenly (the first ones take the remainder), each drawn with
    ``seed``. The training state is saved every ``save_every`` steps next to ``out``
    (``.<name>.resume``, written atomically) and a rerun of the same recipe on the same pairs
    resumes from it; the finished checkpoint is the uninterrupted one (no timing in it: the same
    recipe gives a byte-identical file). The cost (seconds over all sessions, steps, pairs) goes
    to the side file ``out.with_suffix(".json")`` (:func:`checkpoint_cost`)."""
    cfg = preset_config(preset)
    t0 = time.perf_counter()
    sources = [frames] if isinstance(frames, (str, Path)) else list(frames)
    if not sources:
        raise ValueError("pretrain: no frame source given")
    if datasets is not None and not any(_is_data_root(str(src)) for src in sources):
        raise ValueError("--datasets names databases of a data root, and no --frames source is one")
    parts = [_source_pairs(str(src), pairs // len(sources) + (i < pairs % len(sources)), cfg, seed, fps, scale,
                           datasets) for i, src in enumerate(sources)]
    data = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    subjects = sorted({x for p in parts for x in p[1]})
    log(f"{len(data)} pairs from {', '.join(map(str, sources))} ({len(subjects)} subjects) in "
        f"{time.perf_counter() - t0:.0f} s")
    recipe = {"frames": _frames_label(sources[0]) if len(sources) == 1 else [_frames_label(x) for x in sources],
              "preset": preset, "steps": steps, "batch_size": batch_size, "pairs": pairs, "lr": lr, "seed": seed,
              "scale": scale if "synthetic" in sources else None, "gap_s": list(GAP_S),
              "fps": None if sources == ["synthetic"] else fps, "recipe_version": RECIPE_VERSION}
    if datasets is not None:
        recipe["datasets"] = sorted(datasets)
    meta = {"trained_on": {"datasets": [d for p in parts for d in p[2]], "subjects": subjects}, "recipe": recipe}
    if any(p[3] for p in parts):
        meta["sources"] = [p[3] for p in parts]  # videos skipped, frame-rate fallbacks
    torch.manual_seed(seed)
    net = CVQVAE(cfg)
    history, cost = _train_resumable(net, data, Path(out), {**meta, "net": dataclasses.asdict(cfg)}, steps,
                                     batch_size, lr, seed, device, log, log_every, save_every, t0)
    meta = {**meta, "history": history, "torch": str(torch.__version__)}
    net.cpu()
    sha = save_checkpoint(Path(out), net, meta)
    cost = {"sha256": sha, "seconds": round(time.perf_counter() - t0 + cost.pop("earlier_seconds"), 1),
            "steps": steps, "pairs": len(data), **cost}
    _write_json(Path(out).with_suffix(".json"), cost)
    return {**meta, "sha256": sha, "seconds": cost["seconds"], "cost": cost}


def checkpoint_cost(path: Path) -> dict | None:
    """What building a checkpoint cost (its side file), None when it has none."""
    side = Path(path).with_suffix(".json")
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError):
        return None


def _is_data_root(src: str) -> bool:
    return src != "synthetic" and Path(src).is_dir() and any((Path(src) / d).is_dir() for d in DATABASES)


def _frames_label(src: str) -> str:
    return src if src == "synthetic" else str(Path(src).resolve())


def _source_pairs(src: str, n: int, cfg, seed: int, fps: float, scale: str, datasets):
    """(pairs, subjects, dataset labels, record) of one ``--frames`` source."""
    if src == "synthetic":
        data, subjects = synthetic_pairs(n, cfg.image_size, cfg.channels, seed=seed, scale=scale)
        return data, subjects, [f"synthetic(generator=benchmark.datasets.synthetic, seed={seed}, scale={scale})"], {}
    root = Path(src)
    if not root.exists():
        raise FileNotFoundError(f"--frames {src} does not exist")
    if _is_data_root(src):
        data, subjects, names = dataset_pairs(root, n, cfg.image_size, cfg.channels, seed, only=datasets)
        return data, subjects, names, {}
    data, subjects, record = corpus_pairs(root, n, cfg.image_size, cfg.channels, fps, seed)
    return data, subjects, [f"folder:{root.resolve()}"], ({"frames": str(root.resolve()), **record}
                                                           if set(record) - {"sequences", "videos_used"} else {})


def _train_resumable(net, data: np.ndarray, out: Path, ident: dict, steps: int, batch_size: int, lr: float,
                     seed: int, device, log, log_every: int, save_every: int,
                     started: float) -> tuple[list[dict], dict]:
    """:func:`train_tokenizer` with its state saved every ``save_every`` steps to
    ``.<out name>.resume`` and resumed from there when the recipe (``ident``, the training
    settings and the pairs' sha256) is the same; a state of another recipe is set aside.
    ``started``: ``perf_counter()`` when this session's work began (pairs included): a state
    carries the seconds of the sessions before it (``earlier_seconds``)."""
    key = hashlib.sha256(json.dumps([ident, steps, batch_size, lr, seed, str(device)], sort_keys=True,
                                    default=str).encode() + hashlib.sha256(data.tobytes()).digest()).hexdigest()
    state_path = out.with_name(f".{out.name}.resume")
    resume, earlier, sessions = None, 0.0, []
    if state_path.exists():
        try:
            blob = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged state only costs the steps it held
            log(f"resume state {state_path} unreadable ({type(exc).__name__}): starting over")
            blob = None
        if blob is not None and blob.get("key") == key:
            resume, earlier, sessions = blob["state"], float(blob["seconds"]), list(blob["sessions"])
            log(f"resuming at step {resume['step']}/{steps} from {state_path}")
        elif blob is not None:
            log(f"resume state {state_path} is of another recipe: starting over")
    first = resume["step"] if resume else 0

    def save(state):
        seconds = earlier + time.perf_counter() - started
        blob = {"key": key, "state": state, "seconds": seconds,
                "sessions": [*sessions, {"from_step": first, "to_step": state["step"]}]}
        tmp = state_path.with_name(state_path.name + ".tmp")
        state_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(blob, tmp)
        tmp.replace(state_path)  # atomic: a kill mid-write leaves the previous state

    with one_thread():  # the checkpoint is a function of its recipe, not of the machine's load
        history = train_tokenizer(net, data, steps, batch_size, lr, seed, log_every=log_every, log=log,
                                  device=device, resume=resume, save_every=save_every, save=save)
    state_path.unlink(missing_ok=True)
    return history, {"earlier_seconds": earlier, "device": str(device), "save_every": save_every,
                     "sessions": [*sessions, {"from_step": first, "to_step": steps}]}


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def cache_dir() -> Path:
    return paths.cache_dir("dface")


# Default checkpoints shipped with the package (synthetic-only, hence redistributable): a cold first
# run copies one instead of training it (about a minute of one core), and every machine gets the same
# bytes, which a rebuild only gives at the same thread count. tests/test_dface.py checks the name.
SHIPPED = Path(__file__).parent / "checkpoints"


def default_checkpoint(preset: str, build: bool = True, log=None) -> Path:
    """The preset's default checkpoint (synthetic-only): the shipped copy, or built on first use."""
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
            shipped = SHIPPED / path.name  # same name = same recipe (the name hashes it)
            if shipped.exists():
                tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
                shutil.copyfile(shipped, tmp)
                tmp.replace(path)
            else:
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
                         log=None, match_gain: bool = False) -> list[dict]:
    """Checkpoint g (g < k): ``init`` trained ``steps`` more on :func:`mixed_pairs` of the clips whose
    group is not g. Cached by the full recipe (clips, assignment, init sha, training settings), built
    under a file lock. Returns per checkpoint its path, sha256, subjects and the cost of building it
    (read back from the side file when it was cached; ``built_now`` says which). ``match_gain``:
    train on the pairs gain-matched as ``dface`` tokenizes them (:func:`gain_matched_u8`)."""
    recipe = {"version": CROSSFIT_VERSION, "recipe_version": RECIPE_VERSION, "preset": preset,
              "net": dataclasses.asdict(preset_config(preset)), "init_sha256": file_sha256(init),
              "clips": clips_fingerprint(samples), "assignment": sorted({(s.subject, int(g)) for s, g in zip(samples, groups)}),
              "k": k, "steps": steps, "pairs": pairs, "batch_size": batch_size, "lr": lr, "seed": seed,
              "gap_s": list(GAP_S), "mix": PAIR_MIX, **({"match_gain": True} if match_gain else {})}
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
                    _crossfit_one(train, init, path, preset, steps, pairs, batch_size, lr, seed + g, device, say,
                                  match_gain)
                    built.add(g)
    return [{"group": g, "path": str(p), "built_now": g in built, **json.loads(p.with_suffix(".json").read_text())}
            for g, p in enumerate(paths)]


def _crossfit_one(samples, init: Path, out: Path, preset: str, steps: int, pairs: int, batch_size: int,
                  lr: float, seed: int, device, log=print, match_gain: bool = False) -> None:
    t0 = time.perf_counter()
    net, meta = load_checkpoint(init)
    data, kinds = mixed_pairs(samples, pairs, net.cfg.image_size, net.cfg.channels, seed=seed)
    if match_gain:
        data = gain_matched_u8(data)
    trained = meta["trained_on"]
    subjects = sorted({s.subject for s in samples})
    new = {"trained_on": {"datasets": trained["datasets"] + sorted({s.dataset for s in samples}),
                          "subjects": sorted(set(trained["subjects"]) | set(subjects))},
           "recipe": {"frames": "crossfit", "preset": preset, "init_sha256": file_sha256(init), "steps": steps,
                      "pairs": pairs, "batch_size": batch_size, "lr": lr, "seed": seed, "gap_s": list(GAP_S),
                      "pair_kinds": kinds, "recipe_version": RECIPE_VERSION, "crossfit_version": CROSSFIT_VERSION,
                      **({"match_gain": True} if match_gain else {})}}
    # resumable like pretrain(); dead-code replacement as there: the new clips may leave codes unused
    history, cost = _train_resumable(net, data, out, new, steps, batch_size, lr, seed, device, log, 0, SAVE_EVERY,
                                     t0)
    net.cpu()
    sha = save_checkpoint(out, net, {**new, "history": history, "torch": str(torch.__version__)})
    cost = {"sha256": sha, "seconds": round(time.perf_counter() - t0 + cost.pop("earlier_seconds"), 1),
            "steps": steps, "pairs": pairs, "pair_kinds": kinds, "clips": len(samples), "subjects": len(subjects),
            **cost, "final_loss": history[-1]["loss"] if history else None,
            "init": {"path": str(init), "sha256": new["recipe"]["init_sha256"], "trained_on": trained["datasets"],
                     "cost": checkpoint_cost(init)}}  # what the starting checkpoint cost to build
    _write_json(out.with_suffix(".json"), cost)  # timings stay out of the checkpoint (see pretrain)


@contextlib.contextmanager
def _file_lock(path: Path):
    import fcntl

    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
