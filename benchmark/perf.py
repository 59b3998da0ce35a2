"""Extraction throughput: onset->apex flow pairs per second, cold and warm cache.

``python -m benchmark perf --data-root ../shared/data`` times the ``tvl1`` and
``farneback`` representations on CASME II clips at the frames' native size and
with the frames resized to 112 and 224 before the flow, each:

- cold: empty cache (read JPEGs, flow, strain, resize, write the cache);
- new output recipe: the flow fields are cached, the output recipe changes
  (28 -> 56 px), so only strain/resize/normalise run;
- warm: the same recipe again (cache reads only);

and the ratio of the warm rerun's time to the cold one's. Every timing runs in
a fresh temporary cache, never the user's.
"""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Sequence

from benchmark.core.paths import cache_dir, use_cache_root

DEFAULT_SIZES = (None, 112, 224)


@contextlib.contextmanager
def _temporary_cache():
    with tempfile.TemporaryDirectory(prefix="mer-perf-") as tmp, use_cache_root(tmp) as root:
        yield root


def pick_samples(data_root: Path, n: int) -> list:
    """``n`` CASME II clips spread over the subjects, with distinct onset and apex frames."""
    from benchmark.datasets import read_dataset

    report = read_dataset("casme2", Path(data_root) / "casme2")
    ok = [s for s in report.samples if s.frames and s.onset in s.frames and s.apex in s.frames and s.onset != s.apex]
    if not ok:
        raise ValueError(f"no CASME II clip with onset and apex frames under {data_root}")
    step = max(1, len(ok) // n)
    return ok[::step][:n]


def _time(fn) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process (the CPU figure does not
    depend on how busy the machine is)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def measure(algorithm: str, samples: Sequence, flow_size: int | None, n_jobs: int = 1) -> dict:
    from representations import REPRESENTATIONS

    cls = REPRESENTATIONS.get(algorithm)
    with _temporary_cache():
        (cold, cold_cpu) = _time(lambda: cls(flow_size=flow_size, size=28, n_jobs=n_jobs,
                                             progress=False).transform(samples))
        rerecipe, _ = _time(lambda: cls(flow_size=flow_size, size=56, n_jobs=n_jobs, progress=False).transform(samples))
        warm, _ = _time(lambda: cls(flow_size=flow_size, size=28, n_jobs=n_jobs, progress=False).transform(samples))
    n = len(samples)
    return {"algorithm": algorithm, "flow_size": flow_size, "pairs": n, "cold_s": cold, "cold_cpu_s": cold_cpu,
            "rerecipe_s": rerecipe, "warm_s": warm, "cold_pps": n / cold, "cold_pps_cpu": n / max(cold_cpu, 1e-9),
            "rerecipe_pps": n / rerecipe, "warm_pps": n / warm, "warm_over_cold": warm / cold}


def _native(samples) -> str:
    import cv2

    shapes = [cv2.imread(str(s.frames[s.onset])).shape[:2] for s in samples]
    h, w = statistics.median(s[0] for s in shapes), statistics.median(s[1] for s in shapes)
    return f"native (~{int(w)}x{int(h)})"


def extraction_table(data_root: str | Path, n_pairs: int = 8, sizes: Sequence[int | None] = DEFAULT_SIZES,
                     algorithms: Sequence[str] = ("tvl1", "farneback"), n_jobs: int = 1,
                     echo: bool = True) -> str:
    """Time extraction and return (and print, with ``echo``) a markdown table."""
    import cv2

    samples = pick_samples(Path(data_root), n_pairs)
    native = _native(samples)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"Flow extraction throughput: {len(samples)} CASME II onset->apex pairs, {n_jobs} thread(s), "
             f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} OpenCV threads), "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} "
             "at the start; output 28x28 (u, v, strain) min-max. Wall-clock rates depend on the machine's "
             "load; 'per CPU-second' divides by this process's CPU time instead.", "",
             "| algorithm | flow resolution | cold pairs/s | cold pairs per CPU-s | new output recipe pairs/s "
             "| warm pairs/s | warm / cold time |", "|---|---|---|---|---|---|---|"]
    if echo:
        print("\n".join(lines), flush=True)
    for algo in algorithms:
        for fs in sizes:
            r = measure(algo, samples, fs, n_jobs)
            row = (f"| {algo} | {native if fs is None else f'{fs}x{fs}'} | {r['cold_pps']:.2f} | "
                   f"{r['cold_pps_cpu']:.2f} | {r['rerecipe_pps']:.1f} | {r['warm_pps']:.0f} | "
                   f"{r['warm_over_cold']:.4f} |")
            lines.append(row)
            if echo:
                print(row, flush=True)
    return "\n".join(lines) + "\n"


SECTIONS = ("main", "training", "flops", "extraction", "gpu")
DEFAULT_SECTIONS = ("main", "training", "flops", "extraction")  # gpu: asked for by name (needs CUDA or --dry)
NOTES_MARK = "<!-- hand-written notes below this line are kept when the file is regenerated -->"


def add_parser(sub) -> None:
    p = sub.add_parser("perf", help="speed: training paths vs a reference loop, FLOP/s, extraction pairs/s")
    p.add_argument("--data-root", help="folder holding megc2019/ and casme2/ (default: the synthetic dataset)")
    p.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                   help=f"any of {', '.join(SECTIONS)} (default {','.join(DEFAULT_SECTIONS)})")
    p.add_argument("--dry", action="store_true",
                   help="gpu: run the GPU section's code on the CPU with tiny sizes (figures mean nothing)")
    p.add_argument("--folds", type=int, default=4, help="training: LOSO folds timed per path (default 4)")
    p.add_argument("--epochs", type=int, default=20, help="training: epochs per fold (default 20)")
    p.add_argument("--workers", type=int, default=2, help="training: worker processes of the --workers path")
    p.add_argument("--pairs", type=int, default=8, help="extraction: onset->apex pairs per timing (default 8)")
    p.add_argument("--jobs", type=int, default=1, help="extraction threads (default 1)")
    p.add_argument("--sizes", default="native,112,224", help="flow resolutions, e.g. native,112,224")
    p.add_argument("--algorithms", default="tvl1,farneback")
    p.add_argument("--out", help="also write the tables, with machine, commit and date, to this markdown file")


def cmd(args) -> int:
    from benchmark import perf_training
    from benchmark.provenance import git_commit, machine, now

    sections = [s.strip() for s in args.sections.split(",")]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown perf section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    if args.dry and args.out:
        raise ValueError("--dry figures mean nothing: they are not written to --out")
    if "gpu" in sections and not args.dry:
        from benchmark.perf_gpu import require_cuda

        require_cuda()  # before any other section runs
    parts = [f"# Performance\n\nGenerated by `python -m benchmark perf{_argv_tail(args)}` on {now()}, "
             f"commit {git_commit()}, machine: {_describe(machine())}.\n"]
    if "main" in sections:
        print("## The main command on the synthetic default", flush=True)
        parts.append("## The main command on the synthetic default\n\n" + main_command_table())
    if "training" in sections:
        print("## Training: CDE STSTNet, suite vs reference loop", flush=True)
        parts.append("## Training: CDE STSTNet, suite vs reference loop\n\n" + perf_training.training_table(
            args.data_root, args.folds, args.epochs, args.workers))
    if "flops" in sections:
        print("## Achieved FLOP/s", flush=True)
        plot = Path(args.out).parent / "plots" / "ststnet_roofline.png" if args.out else None  # beside the leaderboard's
        parts.append("## Achieved FLOP/s of the STSTNet training step\n\n" + perf_training.flops_table(
            plot=plot, link="plots/ststnet_roofline.png"))
    if "extraction" in sections:
        if args.data_root:
            root = Path(args.data_root)
        else:
            from benchmark.datasets.synthetic import ensure_synthetic

            root = ensure_synthetic()
        sizes = [None if s.strip() == "native" else int(s) for s in args.sizes.split(",")]
        print("## Representation extraction", flush=True)
        parts.append("## Representation extraction\n\n" + extraction_table(
            root, args.pairs, sizes, [a.strip() for a in args.algorithms.split(",")], args.jobs))
    if "gpu" in sections:
        from benchmark import perf_gpu

        print("## GPU", flush=True)
        text, _ = perf_gpu.gpu_section(args.data_root, dry=args.dry)
        parts.append("## GPU\n\n" + f"Generated by `python -m benchmark perf{_argv_tail(args)}` on {now()}, "
                     f"commit {git_commit()}.\n\n" + text)
    if args.out:
        out = Path(args.out)
        head, _, notes = (out.read_text() if out.exists() else "").partition(NOTES_MARK)
        complete = not set(DEFAULT_SECTIONS) - set(sections)  # a partial run keeps the file's header
        text = merge_sections(head, parts if complete else parts[1:]) if head.strip() else "\n".join(parts)
        out.write_text(text + (f"\n{NOTES_MARK}{notes}" if notes else ""))
    return 0


def merge_sections(old: str, new_parts: list[str]) -> str:
    """``old`` markdown with each section of ``new_parts`` (``# Title`` header or ``## Title``)
    replacing its namesake, or appended; the sections not run are kept:
    ``perf --sections gpu --out results/PERF.md`` keeps the CPU sections, a CPU run the GPU one."""
    def split(text: str) -> list[str]:
        chunks, cur = [], []
        for line in text.splitlines(keepends=True):
            if line.startswith("## ") and cur:
                chunks.append("".join(cur))
                cur = []
            cur.append(line)
        if cur:
            chunks.append("".join(cur))
        return chunks

    chunks = split(old)
    title = lambda c: c.splitlines()[0].strip() if c.startswith("#") else None
    for part in new_parts:
        part = part.rstrip("\n") + "\n\n"
        at = [i for i, c in enumerate(chunks) if title(c) == title(part)]
        if at:
            chunks[at[0]] = part
        else:
            chunks.append(part)
    return "".join(chunks).rstrip("\n") + "\n"


MAIN = {"rep": "dface", "model": "transformer", "protocol": "cde", "data": "synthetic"}


def main_command_table() -> str:
    """Wall time of ``python -m benchmark run --rep dface --model transformer --protocol cde`` into
    a temporary run folder (the user's dataset and tokenizer caches are reused when present:
    say so in the row, since a fresh machine also builds them)."""
    import json

    from benchmark.config import resolve
    from benchmark.runner import execute

    warm = any((cache_dir("dface")).glob("dface-*.pt"))
    with tempfile.TemporaryDirectory(prefix="mer-perf-main-") as tmp:
        t0 = time.perf_counter()
        run = execute(resolve({**MAIN, "out": tmp}), progress=False)
        wall = time.perf_counter() - t0
        m = json.loads((run / "metrics.json").read_text())["metrics"]["overall"]
    row = (f"| `python -m benchmark run --rep dface --model transformer --protocol cde` | {wall / 60:.1f} min | "
           f"{m['uf1']['mean']:.3f} | {'reused' if warm else 'built in this run'} | "
           f"{os.getloadavg()[0]:.1f} |")
    print(row, flush=True)
    return ("| command | wall | UF1 | tokenizer checkpoint | load average after |\n|---|---|---|---|---|\n"
            + row + "\n")


def _describe(info: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in info.items())


def _argv_tail(args) -> str:
    import sys

    i = sys.argv.index("perf") if "perf" in sys.argv else len(sys.argv)
    return "".join(f" {a}" for a in sys.argv[i + 1:])


# ---------------------------------------------------------------- agreement with the published flows
def agreement(data_root: str | Path, recipes: dict[str, tuple[str, dict]], every: int = 1) -> str:
    """Per-channel Pearson correlation of the suite's flows with the STSTNet images.

    ``recipes``: label -> (representation, params); each is computed at 28x28
    min-max in ``cv2`` order, like ``STSNet_whole_norm_u_v_os``, for the CASME II
    samples of the MEGC2019 list that have frames (every ``every``-th), and
    correlated with the stored image channel by channel, per sample. Reports the
    mean and median over samples (u, v, strain). Uses the normal cache.
    """
    import numpy as np

    from benchmark.datasets import read_dataset
    from representations import REPRESENTATIONS

    report = read_dataset("megc2019", Path(data_root) / "megc2019")
    samples = [s for s in report.samples if s.dataset == "casme2" and s.frames and "flow" in s.extras][::every]
    theirs = REPRESENTATIONS.get("precomputed")().transform(samples)  # (strain, v, u)
    lines = [f"{len(samples)} CASME II samples (MEGC2019 list, with frames); per-sample Pearson r, mean / median", "",
             "| recipe | r(u) | r(v) | r(strain) |", "|---|---|---|---|"]
    for label, (name, params) in recipes.items():
        ours = REPRESENTATIONS.get(name)(**{**params, "channel_order": "cv2", "size": 28,
                                            "normalize": "minmax"}).transform(samples)
        r = np.array([[np.corrcoef(o[c].ravel(), t[c].ravel())[0, 1] for c in (2, 1, 0)]
                      for o, t in zip(ours, theirs)])
        r = np.nan_to_num(r)  # a constant channel (zero motion) correlates with nothing
        cells = [f"{m:.3f} / {md:.3f}" for m, md in zip(r.mean(0), np.median(r, 0))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"
