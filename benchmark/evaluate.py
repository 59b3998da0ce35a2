"""``python -m benchmark evaluate``: score published per-fold checkpoints under a protocol, no training.

    python -m benchmark evaluate --model ststnet --protocol cde --rep precomputed \\
        --weights ../shared/data/megc2019/published/STSTNet --data-root ../shared/data

Authors of LOSO papers publish one checkpoint per test subject. This runs the
suite's ordinary run path (``benchmark.runner.execute``) with selection
``published-weights``: planning (``check_weights``, called by
``plan.plan``) matches every fold to the checkpoint named after its test
subject (``<subject>.pth`` or ``.pt``, the subject without its database prefix:
``sub01``, ``006``, ``s01``), loads each through the model's state-dict adapter
(``Model.load_published``, e.g. ``models/ststnet.py``) and stops with a one-line
error before any prediction when the folder does not fit: a subject without a
checkpoint, a checkpoint that names no test subject, a folder made for another
protocol, keys or shapes the adapter does not accept (file and first key named).
Each fold's model is then the loaded checkpoint (``published_model``, called by
``folds.fold_model``) instead of a trained one. The run folder is an ordinary
one; ``config.json`` records the weights folder as given and every file's
sha256 (``published_weights``), each fold record its file and digest.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

SUFFIXES = (".pth", ".pt")
SELECTION = "published-weights"


def checkpoint_stem(fold_name: str) -> str:
    """The checkpoint name of a fold: its test subject without the database prefix."""
    return fold_name.rsplit("/", 1)[-1]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_checkpoint(path: Path) -> dict:
    """A state dict from ``path`` (tensors only: ``weights_only``; CUDA-saved files load on the CPU)."""
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same one-line error
        raise ValueError(f"{path}: not a readable PyTorch state dict ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(sd, dict) or not all(hasattr(v, "shape") for v in sd.values()):
        raise ValueError(f"{path}: not a state dict (expected a mapping of parameter names to tensors, "
                         f"got {type(sd).__name__})")
    return sd


def _describe(p) -> str:
    return f"protocol {p.cfg.protocol}{'/' + p.cfg.dataset if p.cfg.dataset else ''}"


def _listing(names, n: int = 4) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _tolerated(p) -> set[str]:
    """Checkpoints of a composite's other databases' subjects, when ``--dataset`` restricts it
    (the CDE weights scored on the CASME II part): present, not used, not an error."""
    if not p.cfg.dataset or not getattr(p.protocol, "databases", ()):
        return set()
    return {checkpoint_stem(s.subject) for s in p.report.samples if s.dataset != p.cfg.dataset}


def check_weights(p) -> dict:
    """Check a planned run's weights folder against its folds; the record for ``config.json``.

    Called by ``plan.plan`` when ``cfg.weights`` is set or the selection is
    ``published-weights``. Every error is one line naming what is wrong.
    """
    cfg = p.cfg
    if cfg.selection != SELECTION:
        raise ValueError(f"--weights is for selection {SELECTION!r} (not {cfg.selection!r}); "
                         "use `python -m benchmark evaluate`")
    if not cfg.weights:
        raise ValueError(f"selection {SELECTION!r} needs a weights folder (--weights DIR)")
    if len(cfg.seeds) > 1:
        raise ValueError(f"selection {SELECTION!r} scores one set of checkpoints: seeds do not apply "
                         f"(got {len(cfg.seeds)})")
    if not callable(getattr(p.model, "load_published", None)):
        raise ValueError(f"model {cfg.model!r} has no adapter for published checkpoints "
                         "(a load_published(state_dict, in_shape, n_classes) method)")
    if getattr(p.rep, "learned", False):
        raise ValueError(f"representation {cfg.rep!r} is fitted per fold: published weights need a "
                         "representation whose features do not depend on the fold")
    root = Path(cfg.weights)
    if not root.is_dir():
        raise FileNotFoundError(f"--weights {root} is not a folder")
    files: dict[str, Path] = {}
    for f in sorted(root.iterdir()):
        if f.is_file() and f.suffix in SUFFIXES:
            if f.stem in files:
                raise ValueError(f"--weights {root}: two checkpoints for {f.stem!r} ({files[f.stem].name}, {f.name})")
            files[f.stem] = f
    if not files:
        raise ValueError(f"--weights {root}: no checkpoint ({', '.join('*' + s for s in SUFFIXES)}) in it")
    need = {checkpoint_stem(f.name): f.name for f in p.folds}
    if len(need) != len(p.folds):
        raise ValueError(f"{_describe(p)}: fold names do not give one checkpoint name each")
    missing = [s for s in need if s not in files]
    tolerated = _tolerated(p)
    extra = [s for s in files if s not in need and s not in tolerated]
    if missing and extra:
        raise ValueError(
            f"--weights {root} does not fit {_describe(p)} ({len(need)} folds): {len(missing)} test "
            f"subject(s) have no checkpoint ({_listing(need[s] for s in missing)}) and {len(extra)} "
            f"checkpoint(s) name no test subject ({_listing(files[s].name for s in extra)}): "
            "a weights folder for another protocol or dataset?")
    if missing:
        raise ValueError(f"--weights {root}: no checkpoint for test subject(s) "
                         f"{_listing(need[s] for s in missing)} of {_describe(p)} "
                         f"(expected {_listing(s + '.pth' for s in missing)})")
    if extra:
        raise ValueError(f"--weights {root}: checkpoint(s) {_listing(files[s].name for s in extra)} "
                         f"name no test subject of {_describe(p)}")
    in_shape = tuple(int(d) for d in p.rep.transform(p.sel.samples[:1]).shape[1:])
    n_classes = len(p.sel.classes)
    record = {"dir": cfg.weights, "in_shape": list(in_shape), "folds": {}, "files": {}}
    for fold in p.folds:
        path = files[checkpoint_stem(fold.name)]
        _load(p.model, path, in_shape, n_classes, p)
        record["folds"][fold.name] = path.name
        record["files"][path.name] = sha256(path)
    return record


def _load(template, path: Path, in_shape, n_classes: int, p):
    from sklearn.base import clone

    model = clone(template)
    try:
        return model.load_published(read_checkpoint(path), in_shape, n_classes)
    except (ValueError, KeyError, RuntimeError) as exc:
        msg = str(exc.args[0]) if exc.args else str(exc)
        if msg.startswith(str(path)):
            raise ValueError(msg) from None
        raise ValueError(f"{path}: {msg} (model {p.cfg.model!r}, {n_classes} classes of "
                         f"{_describe(p)})") from None


def published_model(p, fold, X):
    """The fold's model: its planned checkpoint loaded through the adapter (``folds.fold_model``).
    The file must still be the one planned (same sha256)."""
    root = Path(p.weights["dir"])
    name = p.weights["folds"][fold.name]
    path = root / name
    digest = sha256(path)
    if digest != p.weights["files"][name]:
        raise RuntimeError(f"{path} changed since the run was planned (sha256 {digest[:12]}...)")
    model = _load(p.model, path, tuple(X.shape[1:]), len(p.sel.classes), p)
    model.weights_source_ = f"{path} sha256:{digest}"
    return model


# ---------------------------------------------------------------- command line
def add_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="score published per-fold checkpoints under a protocol (no training)")
    e.add_argument("--model", required=True)
    e.add_argument("--protocol", required=True)
    e.add_argument("--weights", required=True,
                   help="folder of per-fold checkpoints named after the test subjects (<subject>.pth)")
    e.add_argument("--rep", default="precomputed", help="representation the checkpoints expect (default precomputed)")
    src = e.add_mutually_exclusive_group()
    src.add_argument("--data-root", help="folder holding casme2/ samm/ smic/ casme3/ megc2019/")
    src.add_argument("--data", choices=["synthetic"], help="the embedded synthetic dataset (default without --data-root)")
    e.add_argument("--dataset", help="restrict the protocol to one database (e.g. casme2)")
    e.add_argument("--out", help="parent folder of run folders (default runs/)")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"])
    e.add_argument("--n-boot", type=int, help="bootstrap resamples (default 1000)")
    e.add_argument("--label", help="free-text tag shown in the leaderboard")
    e.add_argument("--rep-param", action="append", default=[], metavar="K=V", help="representation hyperparameter")
    e.add_argument("--model-param", action="append", default=[], metavar="K=V", help="model hyperparameter")
    e.add_argument("--json", action="store_true", help="print metrics.json")
    e.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd(args) -> int:
    from benchmark.config import parse_params, resolve
    from benchmark.runner import execute, load_metrics

    cfg = resolve({
        "rep": args.rep, "model": args.model, "protocol": args.protocol, "data_root": args.data_root,
        "data": "real" if args.data_root else "synthetic", "dataset": args.dataset, "out": args.out,
        "device": args.device, "n_boot": args.n_boot, "label": args.label, "selection": SELECTION,
        "weights": args.weights, "rep_params": parse_params(args.rep_param) or None,
        "model_params": parse_params(args.model_param) or None,
    })
    run = execute(cfg, progress=not args.quiet)
    m = load_metrics(run)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    o = m["metrics"]["overall"]
    n = len(json.loads((run / "config.json").read_text())["published_weights"]["files"])
    print(f"{m['model']} published weights {cfg.weights} ({n} checkpoints, sha256 in config.json) on "
          f"{m['protocol']}{'/' + m['dataset'] if m['dataset'] else ''} ({m['data']}, rep {m['rep']})")
    for name in ("uf1", "uar", "accuracy"):
        ci = o[name]["ci"]
        print(f"  {name.upper():<8} {o[name]['mean']:.4f}  95% CI [{ci['low']:.4f}, {ci['high']:.4f}] "
              f"({ci['unit']} bootstrap)")
    for db, b in m["metrics"]["per_database"].items():
        print(f"  {db:<8} UF1 {b['uf1']['mean']:.4f}  UAR {b['uar']['mean']:.4f}  (n={b['n']})")
    print(f"  wall time {m['wall_s']:.0f} s -> {run}")
    return 0
