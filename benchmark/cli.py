"""Command line: ``python -m benchmark {list,run,sweep,compare,refinalize,data check,leaderboard,check,pretrain,perf,analyze}``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark import analyze, perf, pretrain


def _run_parser(sub) -> None:
    r = sub.add_parser("run", help="train and evaluate one representation x model under a protocol")
    r.add_argument("--rep", required=True)
    r.add_argument("--model", required=True)
    r.add_argument("--protocol", required=True)
    src = r.add_mutually_exclusive_group()
    src.add_argument("--data-root", help="folder holding casme2/ samm/ smic/ casme3/ megc2019/")
    src.add_argument("--data", choices=["synthetic"], help="the embedded synthetic dataset (default without --data-root)")
    r.add_argument("--dataset", help="restrict the protocol to one database (e.g. casme2)")
    r.add_argument("--epochs", type=int)
    r.add_argument("--seeds", help="comma-separated, e.g. 1,2,3")
    r.add_argument("--selection", choices=["fixed", "inner-val", "oracle"])
    r.add_argument("--device", choices=["auto", "cpu", "cuda"])
    r.add_argument("--out", help="parent folder of run folders (default runs/)")
    r.add_argument("--config", help="YAML file of run settings (CLI flags override it)")
    r.add_argument("--rep-param", action="append", default=[], metavar="K=V", help="representation hyperparameter")
    r.add_argument("--model-param", action="append", default=[], metavar="K=V", help="model hyperparameter")
    r.add_argument("--data-param", action="append", default=[], metavar="K=V", help="dataset reader option")
    r.add_argument("--n-boot", type=int)
    r.add_argument("--workers", type=int, help="folds trained in parallel processes (default 1)")
    r.add_argument("--label", help="tag shown in the leaderboard")
    r.add_argument("--fold-parallel", choices=["auto", "on", "off"],
                   help="train a seed's folds as one stacked model (auto: on CUDA, where the model supports it)")
    r.add_argument("--fold-group", type=int, help="folds per stacked model (default: all, split over --workers)")
    r.add_argument("--preprocess", choices=["none", "raw", "face"],
                   help="pixel representations: same as --rep-param preprocess=...")
    r.add_argument("--allow-contamination", action="store_true", default=None)
    r.add_argument("--json", action="store_true", help="print metrics.json")
    r.add_argument("--quiet", action="store_true", help="no progress bars")


def _sweep_parser(sub) -> None:
    s = sub.add_parser("sweep", help="reps x models x protocols from a YAML spec, in units of folds, locally or on Ray")
    s.add_argument("spec", help="YAML: reps, models, protocols, seeds, folds_per_unit, leaderboard + run settings")
    s.add_argument("--executor", choices=["local", "ray"], default="local")
    s.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    s.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def _parse_params(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: parameter {item!r} is not K=V")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _rep_params(args) -> dict:
    params = _parse_params(args.rep_param)
    if args.preprocess:
        if params.get("preprocess", args.preprocess) != args.preprocess:
            raise SystemExit("error: --preprocess and --rep-param preprocess=... disagree")
        params["preprocess"] = args.preprocess
    return params


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered representations, models, protocols and compatible pairs")
    rf = sub.add_parser("refinalize", help="re-pool finished run folders with the current code (keeps config.json)")
    rf.add_argument("runs", nargs="+")
    cmp_ = sub.add_parser("compare", help="paired bootstrap of two finished runs on the same samples (a - b)")
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")
    cmp_.add_argument("--n-boot", type=int, default=1000)
    cmp_.add_argument("--json", action="store_true")
    _run_parser(sub)
    _sweep_parser(sub)
    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="read a database folder and report counts and defects")
    c.add_argument("--dataset", required=True)
    c.add_argument("--root", required=True)
    c.add_argument("--json", action="store_true")
    lb = sub.add_parser("leaderboard", help="generate markdown leaderboards from run folders")
    lb.add_argument("--runs", action="append", help="folder(s) of run folders (default results/runs)")
    lb.add_argument("--out", default="results/LEADERBOARD.md")
    ck = sub.add_parser("check", help="CI regression check against results/baselines.json")
    ck.add_argument("--baselines", default="results/baselines.json")
    ck.add_argument("--update", action="store_true", help="rewrite the baselines from this run")
    pretrain.add_parser(sub)
    analyze.add_parser(sub)
    perf.add_parser(sub)
    return ap


def cmd_list(_args) -> int:
    from models import MODELS
    from protocols import PROTOCOLS
    from representations import REPRESENTATIONS

    reps = {n: REPRESENTATIONS.get(n) for n in REPRESENTATIONS.names()}
    models = {n: MODELS.get(n) for n in MODELS.names()}
    print("representations:", ", ".join(f"{n} ({r.kind})" for n, r in reps.items()))
    print("models:         ", ", ".join(f"{n} ({'/'.join(sorted(m.accepts))})" for n, m in models.items()))
    print("protocols:      ", ", ".join(PROTOCOLS.names()))
    print("compatible pairs:")
    for n, r in reps.items():
        ok = [m for m, cls in models.items() if r.kind in cls.accepts]
        print(f"  {n:<12} -> {', '.join(ok) or '(none)'}")
    return 0


def cmd_run(args) -> int:
    from benchmark.config import resolve
    from benchmark.runner import execute, load_metrics

    cli = {
        "rep": args.rep, "model": args.model, "protocol": args.protocol, "data_root": args.data_root,
        "data": "real" if args.data_root else "synthetic", "dataset": args.dataset, "epochs": args.epochs,
        "seeds": [int(s) for s in args.seeds.split(",")] if args.seeds else None,
        "selection": args.selection, "device": args.device, "out": args.out, "n_boot": args.n_boot,
        "label": args.label, "workers": args.workers, "allow_contamination": args.allow_contamination,
        "fold_parallel": args.fold_parallel, "fold_group": args.fold_group,
        "rep_params": _rep_params(args) or None, "model_params": _parse_params(args.model_param) or None,
        "data_params": _parse_params(args.data_param) or None,
    }
    cfg = resolve(cli, args.config)
    run = execute(cfg, progress=not args.quiet)
    m = load_metrics(run)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    o = m["metrics"]["overall"]
    flag = "  [ORACLE: epoch chosen on the test fold]" if m["oracle"] else ""
    print(f"{m['rep']} + {m['model']} on {m['protocol']}{'/' + m['dataset'] if m['dataset'] else ''} "
          f"({m['data']}, {m['selection']}, seeds {m['seeds']}){flag}")
    for name in ("uf1", "uar", "accuracy"):
        ci = o[name]["ci"]
        print(f"  {name.upper():<8} {o[name]['mean']:.4f}  95% CI [{ci['low']:.4f}, {ci['high']:.4f}] ({ci['unit']} bootstrap)")
    for db, b in m["metrics"]["per_database"].items():
        print(f"  {db:<8} UF1 {b['uf1']['mean']:.4f}  UAR {b['uar']['mean']:.4f}  (n={b['n']})")
    print(f"  wall time {m['wall_s']:.0f} s -> {run}")
    return 0


def cmd_sweep(args) -> int:
    from benchmark.runner import load_metrics
    from benchmark.sweep import load_spec, run_sweep

    sweep = load_spec(args.spec)
    res = run_sweep(sweep, executor=args.executor, address=args.address, num_cpus=args.num_cpus,
                    progress=not args.quiet)
    print(f"{len(sweep.configs)} runs, {res.units} units: {len(res.ran)} scheduled, "
          f"{res.units - len(res.ran)} already done, {len(res.failed)} failed")
    for run in res.runs:
        if (run / "metrics.json").exists():
            o = load_metrics(run)["metrics"]["overall"]
            print(f"  UF1 {o['uf1']['mean']:.4f}  UAR {o['uar']['mean']:.4f}  {run}")
        else:
            print(f"  (unfinished)     {run}")
    for unit, error in res.failed:
        print(f"error: {unit}: {error}", file=sys.stderr)
    if res.leaderboard:
        print(f"wrote {res.leaderboard}")
    return 1 if res.failed else 0


def cmd_data_check(args) -> int:
    from benchmark.data_check import check, format_text

    summary = check(args.dataset, Path(args.root))
    print(json.dumps(summary, indent=2, default=str) if args.json else format_text(summary))
    return 0


def cmd_leaderboard(args) -> int:
    from benchmark.leaderboard import write_leaderboard

    path = write_leaderboard([Path(r) for r in (args.runs or ["results/runs"])], Path(args.out))
    print(f"wrote {path}")
    return 0


def cmd_compare(args) -> int:
    from benchmark.compare import compare, format_text

    res = compare(Path(args.run_a), Path(args.run_b), n_boot=args.n_boot)
    print(json.dumps(res, indent=2) if args.json else format_text(res))
    return 0


def cmd_refinalize(args) -> int:
    from benchmark.runner import refinalize

    for run in args.runs:
        print(f"re-pooled {refinalize(Path(run))}")
    return 0


def cmd_check(args) -> int:
    from benchmark.check import run_check

    return run_check(Path(args.baselines), update=args.update)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"list": cmd_list, "run": cmd_run, "sweep": cmd_sweep, "leaderboard": cmd_leaderboard,
                "check": cmd_check, "compare": cmd_compare, "refinalize": cmd_refinalize, "pretrain": pretrain.cmd, "perf": perf.cmd,
                "analyze": analyze.cmd}
    handler = cmd_data_check if args.command == "data" else handlers[args.command]
    try:
        return handler(args)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        # Known failure kinds become one clear line, not a traceback deep in numpy.
        print(f"error: {exc}", file=sys.stderr)
        return 2
