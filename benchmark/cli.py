"""Command line: ``python -m benchmark {list,run,sweep,compare,refinalize,replay,data check,leaderboard,check,pretrain,perf,analyze}``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from benchmark import analyze, evaluate, perf, pretrain


# The ``run`` flags are generated from RunConfig's fields (one flag per field, typed by its
# annotation), so a new setting is a flag, a YAML key and a config.json entry at once.
RUN_HELP = {
    "rep": "representation (see `list`)", "model": "model (see `list`)", "protocol": "protocol (see `list`)",
    "data": "the embedded synthetic dataset (default without --data-root)",
    "data_root": "folder holding casme2/ samm/ smic/ casme3/ megc2019/",
    "dataset": "restrict the protocol to one database (e.g. casme2)",
    "epochs": "training epochs (default: the model's published schedule)", "seeds": "comma-separated, e.g. 1,2,3",
    "selection": "which epoch is evaluated (oracle: chosen on the test fold; reproductions only)",
    "device": "compute device", "out": "parent folder of run folders (default runs/)",
    "rep_params": "representation hyperparameter", "model_params": "model hyperparameter",
    "data_params": "dataset reader option", "n_boot": "bootstrap resamples of the CIs",
    "split_seed": "seed of the protocol's split (stratified protocols)",
    "allow_contamination": "run folds whose test subject a learned component saw (the row is marked)",
    "label": "tag shown in the leaderboard", "workers": "fold processes (default auto: one per core for torch models on the CPU, else 1)",
    "fold_parallel": "train a seed's folds as one stacked model (auto: on CUDA, where the model supports it)",
    "fold_group": "folds per stacked model (default: all, split over --workers)",
    "weights": "folder of published per-fold checkpoints (with --selection published-weights; see `evaluate`)",
    "plugins": "import MODULE (dotted name or .py file) that registers its own entries",
}
_PARAM_FLAGS = {"rep_params": "--rep-param", "model_params": "--model-param", "data_params": "--data-param"}


def _run_parser(sub) -> None:
    from benchmark import config

    r = sub.add_parser("run", help="train and evaluate one representation x model under a protocol")
    src = r.add_mutually_exclusive_group()
    choices = {"selection": config.SELECTIONS, "device": config.DEVICES, "fold_parallel": config.FOLD_PARALLEL,
               "data": ("synthetic",)}
    for f in dataclasses.fields(config.RunConfig):
        flag, kw = f"--{f.name.replace('_', '-')}", {"help": RUN_HELP[f.name], "dest": f.name}
        if f.name in _PARAM_FLAGS:
            flag, kw = _PARAM_FLAGS[f.name], {**kw, "action": "append", "default": [], "metavar": "K=V"}
        elif f.name == "plugins":
            flag, kw = "--plugin", {**kw, "action": "append", "default": [], "metavar": "MODULE"}
        elif f.type in ("bool",):
            kw = {**kw, "action": "store_true", "default": None}
        elif f.type in ("int", "int | None"):
            kw = {**kw, "type": int}
        elif f.name == "workers":
            kw = {**kw, "type": _workers, "metavar": "N|auto"}
        if f.name in choices:
            kw["choices"] = choices[f.name]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kw["required"] = True
        (src if f.name in ("data", "data_root") else r).add_argument(flag, **kw)
    r.add_argument("--config", help="YAML file of run settings (CLI flags override it)")
    r.add_argument("--preprocess", choices=["none", "raw", "face", "aligned"],
                   help="pixel representations: same as --rep-param preprocess=...")
    r.add_argument("--json", action="store_true", help="print metrics.json")
    r.add_argument("--quiet", action="store_true", help="no progress bars")


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', not {text!r}") from None


def run_settings(args) -> dict:
    """The ``run`` flags given, as RunConfig values (None: not given, so YAML or the default holds)."""
    from benchmark.config import RunConfig, parse_params, parse_seeds

    values = {}
    for f in dataclasses.fields(RunConfig):
        v = getattr(args, f.name)
        if f.name in _PARAM_FLAGS:
            v = (_rep_params(args) if f.name == "rep_params" else parse_params(v)) or None
        elif f.name == "plugins":
            v = v or None
        elif f.name == "seeds" and v is not None:
            v = parse_seeds(v)
        values[f.name] = v
    values["data"] = "real" if args.data_root else args.data  # neither: YAML or config.resolve decides
    return values


def _plugin_arg(parser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE (dotted name or .py file) that registers its own entries")


def _sweep_parser(sub) -> None:
    s = sub.add_parser("sweep", help="reps x models x protocols from a YAML spec, in units of folds, locally or on Ray")
    s.add_argument("spec", help="YAML: reps, models, protocols, seeds, folds_per_unit, leaderboard + run settings")
    s.add_argument("--executor", choices=["local", "ray"], default="local")
    s.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    s.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--rows", type=_labels, default=(), help="arena spec: only these rows (labels, comma-separated)")
    s.add_argument("--columns", type=_labels, default=(), help="arena spec: only these columns (labels, comma-separated)")
    _plugin_arg(s)


def _labels(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _rep_params(args) -> dict:
    from benchmark.config import parse_params

    params = parse_params(args.rep_params)
    if args.preprocess:
        if params.get("preprocess", args.preprocess) != args.preprocess:
            raise SystemExit("error: --preprocess and --rep-param preprocess=... disagree")
        params["preprocess"] = args.preprocess
    return params


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="registered representations, models, protocols and compatible pairs")
    _plugin_arg(ls)
    rf = sub.add_parser("refinalize", help="re-pool finished run folders with the current code (keeps config.json)")
    rf.add_argument("runs", nargs="+")
    rp = sub.add_parser("replay", help="retrain committed run folders into a scratch folder and, where the "
                        "metrics come out equal, restore their per-sample files (predictions.csv, folds/)")
    rp.add_argument("runs", nargs="+")
    rp.add_argument("--scratch", default=None, help="where the replays are trained (default: a temporary folder)")
    cmp_ = sub.add_parser("compare", help="paired bootstrap of two finished runs on the same samples (a - b)")
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")
    cmp_.add_argument("--n-boot", type=int, default=1000)
    cmp_.add_argument("--json", action="store_true")
    cps = sub.add_parser("comparisons", help="paired bootstrap of every arena cell against its reference "
                                              "(results/comparisons/<arena>.json)")
    cps.add_argument("--arena", action="append", default=[], metavar="NAME", help="only these arenas (repeatable)")
    cps.add_argument("--runs", default="results/runs", help="folder of run folders")
    cps.add_argument("--out", default="results/comparisons")
    cps.add_argument("--n-boot", type=int, default=1000)
    _run_parser(sub)
    _sweep_parser(sub)
    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="read a database folder and report counts and defects")
    c.add_argument("--dataset", required=True)
    c.add_argument("--root", required=True)
    c.add_argument("--json", action="store_true")
    c.add_argument("--images", choices=["key", "all", "none"], default="key",
                   help="open the files a run reads: key frames and flow/apex images (default), every frame, or none")
    lb = sub.add_parser("leaderboard", help="generate the leaderboard (arena matrices, run tables, plots) from run folders")
    lb.add_argument("--runs", action="append", help="folder(s) of run folders (default results/runs; the index and "
                    "comparisons are read beside the first)")
    lb.add_argument("--format", choices=["markdown", "latex", "csv", "json"], default="markdown",
                    help="markdown (default): LEADERBOARD.md, its plots and the README block; latex/csv/json: the "
                    "arena matrices only")
    lb.add_argument("--out", help="markdown: default results/LEADERBOARD.md; other formats: default stdout")
    lb.add_argument("--arenas", default=None, help="folder of arena specs (default benchmark/matrix)")
    lb.add_argument("--arena", action="append", help="export only this arena (repeatable; latex/csv/json)")
    lb.add_argument("--readme", help="README whose results-at-a-glance block to rewrite (default README.md when "
                    "--out is the default; '' for none)")
    lb.add_argument("--allow-empty", action="store_true", help="write a leaderboard even when no run is found")
    ck = sub.add_parser("check", help="CI regression check against results/baselines.json")
    ck.add_argument("--baselines", default="results/baselines.json")
    ck.add_argument("--update", action="store_true", help="rewrite the baselines from this run")
    pretrain.add_parser(sub)
    analyze.add_parser(sub)
    perf.add_parser(sub)
    evaluate.add_parser(sub)
    return ap


def cmd_list(args) -> int:
    """Names and declared kinds from the registries' tables: imports no entry (and no torch),
    except the plugins asked for, whose classes register on import."""
    from benchmark.plugins import load_plugins
    from models import MODELS
    from protocols import PROTOCOLS
    from representations import REPRESENTATIONS

    load_plugins(args.plugin)
    kinds = {n: _declared(REPRESENTATIONS, n, "kind") for n in REPRESENTATIONS.names()}
    accepts = {n: set(_declared(MODELS, n, "accepts")) for n in MODELS.names()}
    print("representations:", ", ".join(f"{n} ({k})" for n, k in kinds.items()))
    print("models:         ", ", ".join(f"{n} ({'/'.join(sorted(a))})" for n, a in accepts.items()))
    print("protocols:      ", ", ".join(PROTOCOLS.names()))
    print("compatible pairs:")
    for n, kind in kinds.items():
        ok = [m for m, a in accepts.items() if kind in a]
        print(f"  {n:<12} -> {', '.join(ok) or '(none)'}")
    return 0


def _declared(registry, name: str, attr: str):
    declared = registry.declared(name)
    return declared[attr] if attr in declared else getattr(registry.get(name), attr)


def cmd_run(args) -> int:
    from benchmark.config import resolve
    from benchmark.data_check import run_notes
    from benchmark.results import load_result
    from benchmark.runner import execute

    cfg = resolve(run_settings(args), args.config)
    run = execute(cfg, progress=not args.quiet)
    r = load_result(run)
    if args.json:
        print(json.dumps(r.to_json(), indent=2))
        return 0
    flag = "  [ORACLE: epoch chosen on the test fold]" if r.oracle else ""
    print(f"{r.rep} + {r.model} on {r.protocol}{'/' + r.dataset if r.dataset else ''} "
          f"({r.data}, {r.selection}, seeds {list(r.seeds)}){flag}")
    for name in ("uf1", "uar", "accuracy"):
        m = r.metrics.overall.metric(name)
        print(f"  {name.upper():<8} {m.mean:.4f}  95% CI [{m.ci.low:.4f}, {m.ci.high:.4f}] ({m.ci.unit} bootstrap)")
    for db, b in r.metrics.per_database.items():
        print(f"  {db:<8} UF1 {b.uf1.mean:.4f}  UAR {b.uar.mean:.4f}  (n={b.n})")
    print(f"  wall time {r.wall_s:.0f} s -> {run}")
    for note in run_notes(run):  # blank / dropped inputs, a list that is not the official one, defects
        print(f"  note: {note}")
    return 0


def cmd_sweep(args) -> int:
    from benchmark.results import load_result
    from benchmark.sweep import load_spec, run_sweep

    sweep = load_spec(args.spec, plugins=args.plugin, rows=args.rows, columns=args.columns)
    for note in sweep.notes:
        print(f"note: {note}")
    res = run_sweep(sweep, executor=args.executor, address=args.address, num_cpus=args.num_cpus,
                    progress=not args.quiet)
    print(f"{len(sweep.configs)} runs, {res.units} units: {len(res.ran)} scheduled, "
          f"{res.units - len(res.ran)} already done, {len(res.failed)} failed")
    for run in res.runs:
        if (run / "metrics.json").exists():
            o = load_result(run).metrics.overall
            print(f"  UF1 {o.uf1.mean:.4f}  UAR {o.uar.mean:.4f}  {run}")
        else:
            print(f"  (unfinished)     {run}")
    for unit, error in res.failed:
        print(f"error: {unit}: {error}", file=sys.stderr)
    if res.leaderboard:
        print(f"wrote {res.leaderboard}")
    return 1 if res.failed else 0


def cmd_data_check(args) -> int:
    from benchmark.data_check import check, format_text

    summary = check(args.dataset, Path(args.root), images=args.images)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_text(summary))
    return 1 if summary.get("images", {}).get("problems") else 0


def cmd_leaderboard(args) -> int:
    from benchmark.arenas import ARENA_DIR
    from benchmark.leaderboard import LeaderboardError, build_board, write_leaderboard

    runs, arenas = [Path(r) for r in (args.runs or ["results/runs"])], Path(args.arenas or ARENA_DIR)
    if args.format == "markdown":
        out = Path(args.out or "results/LEADERBOARD.md")
        readme = args.readme if args.readme is not None else (None if args.out else "README.md")
        path = write_leaderboard(runs, out, args.allow_empty, arenas, Path(readme) if readme else None)
        print(f"wrote {path}" + (f" and the block of {readme}" if readme else ""))
        return 0
    from benchmark.export import export

    matrices = build_board(runs, args.allow_empty, arenas).matrices
    if args.arena:
        unknown = sorted(set(args.arena) - {m.arena.name for m in matrices})
        if unknown:
            raise LeaderboardError(f"--arena {unknown[0]}: no such arena (known: {', '.join(m.arena.name for m in matrices)})")
        matrices = [m for m in matrices if m.arena.name in args.arena]
    text = export(matrices, args.format)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_compare(args) -> int:
    from benchmark.compare import compare, format_text

    res = compare(Path(args.run_a), Path(args.run_b), n_boot=args.n_boot)
    print(json.dumps(res, indent=2) if args.json else format_text(res))
    return 0


def cmd_comparisons(args) -> int:
    from benchmark.arenas import load_arenas
    from benchmark.comparisons import write_comparisons
    from benchmark.index import load_index

    arenas = load_arenas()
    unknown = sorted(set(args.arena) - {a.name for a in arenas})
    if unknown:
        raise ValueError(f"unknown arena {unknown[0]!r} (known: {', '.join(a.name for a in arenas)})")
    chosen = [a for a in arenas if not args.arena or a.name in args.arena]
    # ablations.json only on a full run: --arena is for redoing one arena quickly
    for path in write_comparisons(chosen, load_index(), args.runs, args.out, args.n_boot, ablations=not args.arena):
        data = json.loads(path.read_text())
        parts = ([(len(data["comparisons"]), len(data["missing"]))] if "comparisons" in data else
                 [(len(a["comparisons"]), len(a["missing"])) for a in data["ablations"]])
        print(f"wrote {path}: {sum(p[0] for p in parts)} compared, {sum(p[1] for p in parts)} missing")
    return 0


def cmd_refinalize(args) -> int:
    from benchmark.runner import refinalize

    for run in args.runs:
        print(f"re-pooled {refinalize(Path(run))}")
    return 0


def cmd_replay(args) -> int:
    import contextlib
    import tempfile

    from benchmark.runner import replay

    failed = 0
    scratch = contextlib.nullcontext(args.scratch) if args.scratch else tempfile.TemporaryDirectory(prefix="replay-")
    with scratch as folder:
        for run in args.runs:
            if (Path(run) / "predictions.csv").exists():
                print(f"has its predictions: {run}")
                continue
            try:
                print(f"restored {replay(Path(run), Path(folder))}")
            except (RuntimeError, ValueError) as exc:
                failed += 1
                print(f"error: {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_check(args) -> int:
    from benchmark.check import run_check

    return run_check(Path(args.baselines), update=args.update)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"list": cmd_list, "run": cmd_run, "sweep": cmd_sweep, "leaderboard": cmd_leaderboard,
                "check": cmd_check, "compare": cmd_compare, "comparisons": cmd_comparisons, "refinalize": cmd_refinalize, "replay": cmd_replay, "pretrain": pretrain.cmd, "perf": perf.cmd, "evaluate": evaluate.cmd,
                "analyze": analyze.cmd}
    handler = cmd_data_check if args.command == "data" else handlers[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted: the folds finished so far are kept in the run folder; the same command "
              "resumes from them", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        # Known failure kinds become one clear line, not a traceback deep in numpy.
        print(f"error: {exc}", file=sys.stderr)
        return 2
