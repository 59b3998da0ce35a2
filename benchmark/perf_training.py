"""Training speed of the CDE STSTNet recipe: the suite against a reference loop, in one process.

The reference loop is written the way the public STSTNet/HTNet scripts are: one
fold at a time, a ``DataLoader`` over the fold's training tensors, and the test
subject scored after every epoch, with torch's default threads. It uses the
same network, initial weights, mini-batches and dropout draws as the suite
(same seeds), so the paths differ in speed only; the table says how far their
predictions agree.

Measured on ``folds`` LOSO folds of the CDE (the first ones of the official
list) for ``epochs`` epochs each, then projected to the full run (68 folds x
800 epochs). Ratios are what to compare across machines, not seconds.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

FULL_FOLDS, FULL_EPOCHS = 68, 800


def cde_inputs(data_root: str | Path | None):
    """(X, y, folds) of the CDE with the precomputed flow images (or the synthetic dataset's)."""
    from benchmark.config import RunConfig
    from benchmark.runner import plan

    cfg = RunConfig(rep="precomputed", model="ststnet", protocol="cde",
                    data="real" if data_root else "synthetic", data_root=str(data_root) if data_root else None)
    p = plan(cfg)
    return p.rep.transform(p.sel.samples), p.sel.y, p.folds, "real CDE flows" if data_root else "synthetic CDE"


def reference_fold(X, y, train, test, epochs: int, seed: int, batch_size: int = 256, lr: float = 5e-5):
    """A public-script-style LOSO fold: DataLoader loop, test subject scored after every epoch."""
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    from models.ststnet import _STSTNet

    torch.manual_seed(seed)
    net = _STSTNet(X.shape[1], int(y.max()) + 1, tuple(X.shape[2:]))
    train_set = TensorDataset(torch.as_tensor(X[train]), torch.as_tensor(y[train]))
    # Same order and dropout draws as the suite's seed: the sampler gets the suite's batch
    # generator, and each loader its own spare generator, because a DataLoader draws a worker
    # seed from the global RNG on every iteration (which would shift the dropout masks).
    sampler = RandomSampler(train_set, generator=torch.Generator().manual_seed(seed))
    spare = torch.Generator().manual_seed(0)
    loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, generator=spare)
    test_loader = DataLoader(TensorDataset(torch.as_tensor(X[test]), torch.as_tensor(y[test])),
                             batch_size=batch_size, generator=spare)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        net.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(net(xb), yb).backward()
            opt.step()
        net.eval()
        with torch.no_grad():  # the public scripts evaluate the test subject every epoch
            proba = torch.cat([torch.softmax(net(xb), 1) for xb, _ in test_loader])
    return proba.numpy()


def suite_fold(X, y, train, test, epochs: int, seed: int):
    from models.ststnet import STSTNet

    return STSTNet(epochs=epochs, seed=seed).fit(X[train], y[train], int(y.max()) + 1).predict_proba(X[test])


def _pool_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _pool_fold(args):
    return suite_fold(*args)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def training_table(data_root=None, folds: int = 4, epochs: int = 20, workers: int = 2, echo: bool = True) -> str:
    """Seconds per fold-epoch of each path on the same folds and seeds; markdown table."""
    from models.fold_parallel import fit_folds
    from models.ststnet import STSTNet

    X, y, all_folds, what = cde_inputs(data_root)
    chosen = all_folds[:folds]
    seeds = list(range(len(chosen)))
    args = [(X, y, f.train, f.test, epochs, s) for f, s in zip(chosen, seeds)]
    threads = torch.get_num_threads()
    rows = {}
    t, ref = _timed(lambda: [reference_fold(*a) for a in args])
    rows["reference loop (DataLoader, test scored every epoch), one fold at a time"] = (t, ref, threads)
    t, seq = _timed(lambda: [suite_fold(*a) for a in args])
    rows["suite, sequential, one process"] = (t, seq, threads)
    ctx = __import__("multiprocessing").get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_pool_init, initargs=(1,)) as pool:
        list(pool.map(_pool_fold, [(X, y, chosen[0].train, chosen[0].test, 1, 0)] * workers))  # start-up, untimed
        t, par = _timed(lambda: list(pool.map(_pool_fold, args)))
    rows[f"suite, sequential, {workers} worker processes x 1 thread (`--workers {workers}`)"] = (t, par, workers)
    t, stacked = _timed(lambda: [m.predict_proba(X[f.test]) for m, f in zip(
        fit_folds(STSTNet(epochs=epochs), X, y, [f.train for f in chosen], seeds, int(y.max()) + 1), chosen)])
    rows[f"suite, fold-parallel ({len(chosen)} folds stacked), one process"] = (t, stacked, threads)
    lines = [f"{what}: {len(chosen)} LOSO folds x {epochs} epochs per path, same seeds; STSTNet, Adam 5e-5, "
             f"batch 256; torch {torch.__version__}, {threads} torch thread(s) in-process, {os.cpu_count()} CPUs, "
             f"load average {os.getloadavg()[0]:.1f} at the end. Projection: x {FULL_FOLDS} folds x "
             f"{FULL_EPOCHS} epochs.", "",
             "| path | s per fold-epoch | projected full run | speed-up vs reference | same predictions as reference |",
             "|---|---|---|---|---|"]
    ref_rate = rows[next(iter(rows))][0]
    for name, (t, probas, _) in rows.items():
        per = t / (len(chosen) * epochs)
        agree = np.mean(np.concatenate([a.argmax(1) == b.argmax(1) for a, b in zip(probas, ref)]))
        dmax = max(float(np.abs(a - b).max()) for a, b in zip(probas, ref))
        lines.append(f"| {name} | {per:.3f} | {per * FULL_FOLDS * FULL_EPOCHS / 60:.0f} min | "
                     f"{ref_rate / t:.2f}x | {agree:.0%} (max abs. prob. diff {dmax:.1e}) |")
        if echo:
            print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GEMM rate (FLOP/s) this process reaches with ``threads`` threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b))[0] for _ in range(repeats))
    torch.set_num_threads(old)
    return 2 * n ** 3 / best


def _ststnet_step(batch: int = 256, shape=(3, 28, 28), n_classes: int = 3):
    """One STSTNet training step (forward, backward, Adam) on random inputs, as a closure."""
    from models.ststnet import _STSTNet

    net = _STSTNet(shape[0], n_classes, shape[1:]).to(memory_format=torch.channels_last)
    x = (torch.rand(batch, *shape) * 255).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, n_classes, (batch,))
    opt = torch.optim.Adam(net.parameters(), lr=5e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    return step


def step_flops(batch: int = 256, shape=(3, 28, 28), n_classes: int = 3, repeats: int = 20) -> tuple[float, float]:
    """(FLOPs of one STSTNet training step, best seconds per step) at the current thread count."""
    from torch.utils.flop_counter import FlopCounterMode

    step = _ststnet_step(batch, shape, n_classes)
    with FlopCounterMode(display=False) as counter:
        step()
    for _ in range(3):
        step()
    best = min(_timed(step)[0] for _ in range(repeats))
    return counter.get_total_flops(), best


def memory_bandwidth(threads: int, mib: int = 256, repeats: int = 5) -> float:
    """Best copy rate (bytes read + written per second) of a ``mib`` MiB float32 tensor."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    src = torch.rand(mib * 2 ** 20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = min(_timed(lambda: dst.copy_(src))[0] for _ in range(repeats))
    torch.set_num_threads(old)
    return 2 * src.numel() * 4 / best


# Profiler op names -> the step's parts (first match wins; "aten::mul"/"div_": dropout's mask and scale).
PARTS = (("convolution (backward)", ("convolution_backward",)),
         ("convolution (forward)", ("convolution", "mkldnn_conv")),
         ("batch norm", ("batch_norm",)), ("ReLU", ("relu", "threshold_backward", "clamp_min")),
         ("max-pool", ("max_pool",)), ("avg-pool", ("avg_pool",)), ("linear", ("addmm", "aten::mm", "aten::t")),
         ("dropout", ("bernoulli", "dropout", "aten::mul", "aten::div_")),
         ("zero-fill and copies", ("fill_", "zero_", "copy_", "aten::empty")),
         ("Adam", ("Optimizer", "_foreach", "addcdiv", "addcmul", "lerp", "sqrt", "aten::add_")))


def _part(name: str) -> str:
    for part, keys in PARTS:
        if any(k in name for k in keys):
            return part
    return "other (loss, autograd, small ops)"


def step_profile(threads: int, batch: int = 256, repeats: int = 20) -> dict:
    """Self CPU time of one STSTNet training step by part (torch.profiler's shares, scaled to the
    best unprofiled step time), with each part's FLOPs (torch.utils.flop_counter: convolutions
    and matmuls) and an estimate of the bytes it moves (from a second profile that records
    shapes, whose overhead would distort the times: leaf ops only, every input tensor read once,
    an output as large as the largest input written once; float32)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    step = _ststnet_step(batch)
    with FlopCounterMode(display=False) as counter:
        step()
    for _ in range(3):
        step()
    best = min(_timed(step)[0] for _ in range(repeats))
    passes = {}
    for shapes in (False, True):
        with profile(activities=[ProfilerActivity.CPU], record_shapes=shapes) as prof:
            for _ in range(repeats):
                step()
        passes[shapes] = prof.key_averages(group_by_input_shape=shapes)
    torch.set_num_threads(old)
    parts: dict[str, dict] = {}
    new = lambda: {"seconds": 0.0, "bytes": 0.0, "flops": 0.0}  # noqa: E731
    for e in passes[False]:
        parts.setdefault(_part(e.key), new())["seconds"] += e.self_cpu_time_total / 1e6 / repeats
    for e in passes[True]:
        if e.cpu_time_total > 0 and e.self_cpu_time_total >= 0.5 * e.cpu_time_total:  # leaf: its own work
            sizes = [int(np.prod(s)) for s in (e.input_shapes or []) if isinstance(s, list) and s
                     and all(isinstance(d, int) for d in s)]
            parts.setdefault(_part(e.key), new())["bytes"] += 4 * (sum(sizes) + max(sizes, default=0)) * e.count / repeats
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        name = str(op)
        key = "convolution (backward)" if "backward" in name else "convolution (forward)" if "conv" in name else "linear"
        parts.setdefault(key, new())["flops"] += flops
    profiled = sum(p["seconds"] for p in parts.values())
    for p in parts.values():  # the profiler's own cost spread pro rata: shares kept, the total is the unprofiled step
        p["seconds"] *= best / profiled
    return {"threads": threads, "step_seconds": best, "profiled_step_seconds": profiled, "parts": parts,
            "flops": counter.get_total_flops()}


def profile_table(profile: dict, peak: float, bandwidth: float) -> str:
    """Markdown: each part's share of the step, its FLOP/s against the GEMM peak and its
    estimated bytes/s against the measured copy bandwidth."""
    lines = [f"| part | share of step time | ms per step | GFLOP/s (share of {peak / 1e9:.0f} GEMM peak) | "
             f"est. GB/s (share of {bandwidth / 1e9:.1f} copy bandwidth) | FLOP per byte |", "|---|---|---|---|---|---|"]
    total = profile["step_seconds"]
    for name, p in sorted(profile["parts"].items(), key=lambda kv: -kv[1]["seconds"]):
        t = max(p["seconds"], 1e-12)
        gf = f"{p['flops'] / t / 1e9:.1f} ({p['flops'] / t / peak:.0%})" if p["flops"] else "–"
        gb = f"{p['bytes'] / t / 1e9:.1f} ({p['bytes'] / t / bandwidth:.0%})" if p["bytes"] else "–"
        ai = f"{p['flops'] / p['bytes']:.2f}" if p["flops"] and p["bytes"] else "–"
        lines.append(f"| {name} | {p['seconds'] / total:.0%} | {p['seconds'] * 1e3:.1f} | {gf} | {gb} | {ai} |")
    return "\n".join(lines) + "\n"


def plot_roofline(profile: dict, peak: float, bandwidth: float, path: Path) -> Path:
    """Roofline of the step's parts (left) and where the step's time goes (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = profile["parts"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.1, 1]})
    ai = np.logspace(-2, 3, 200)
    ax.loglog(ai, np.minimum(peak, bandwidth * ai) / 1e9, color="black", lw=1.5)
    ax.text(ai[-1], peak / 1e9 * 1.08, f"GEMM peak {peak / 1e9:.0f} GFLOP/s", ha="right", fontsize=8)
    ax.text(0.012, bandwidth * 0.012 / 1e9 * 1.3, f"copy bandwidth {bandwidth / 1e9:.1f} GB/s", rotation=33,
            fontsize=8)
    total_bytes = sum(p["bytes"] for p in parts.values())
    points = {k: (p["flops"], p["bytes"], p["seconds"]) for k, p in parts.items() if p["flops"] and p["bytes"]}
    points["whole step"] = (profile["flops"], total_bytes, profile["step_seconds"])
    for k, (f, b, t) in points.items():
        ax.loglog(f / b, f / t / 1e9, "o", ms=8 if k == "whole step" else 6,
                  color="tab:red" if k == "whole step" else "tab:blue")
        ax.annotate(k, (f / b, f / t / 1e9), textcoords="offset points", xytext=(6, -3), fontsize=8)
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved, estimated)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(f"STSTNet training step, batch 256, {profile['threads']} thread(s)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    order = sorted(parts, key=lambda k: parts[k]["seconds"])
    share = [parts[k]["seconds"] / profile["step_seconds"] for k in order]
    bars = bx.barh(order, share, color=["tab:blue" if parts[k]["flops"] else "tab:gray" for k in order])
    for bar, k in zip(bars, order):
        p = parts[k]
        note = f"{p['bytes'] / max(p['seconds'], 1e-12) / 1e9:.1f} GB/s" if p["bytes"] else ""
        bx.text(bar.get_width() + 0.005, bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=8)
    bx.set_xlabel("share of the step's CPU time (blue: FLOPs counted; label: est. GB/s)", fontsize=9)
    bx.tick_params(axis="y", labelsize=8)
    bx.set_xlim(0, max(share) * 1.35)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def flops_table(echo: bool = True, repeats: int = 20, gemm_n: int = 2048, plot: Path | None = None,
                link: str | None = None) -> str:
    """Achieved FLOP/s of the step against the GEMM peak, then the step's time by part against
    the GEMM peak and the copy bandwidth (with ``plot``: the roofline PNG of the 1-thread step)."""
    lines = ["STSTNet training step (batch 256, 28x28x3, forward + backward + Adam), FLOPs counted by "
             "torch.utils.flop_counter (convolutions and matmuls only), against the best float32 GEMM "
             "rate and the best copy bandwidth (a 256 MiB tensor, bytes read + written) measured in this "
             "process.", "",
             "| threads | step FLOPs | best step time | achieved GFLOP/s | GEMM peak GFLOP/s | share of peak | "
             "copy bandwidth GB/s |", "|---|---|---|---|---|---|---|"]
    old = torch.get_num_threads()
    profiles = []
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        flops, secs = step_flops(repeats=repeats)
        peak = matmul_peak(threads, n=gemm_n)
        bandwidth = memory_bandwidth(threads, mib=64 if gemm_n < 1024 else 256)
        lines.append(f"| {threads} | {flops / 1e6:.0f} M | {secs * 1e3:.1f} ms | {flops / secs / 1e9:.1f} | "
                     f"{peak / 1e9:.1f} | {flops / secs / peak:.1%} | {bandwidth / 1e9:.1f} |")
        if echo:
            print(lines[-1], flush=True)
        profiles.append((step_profile(threads, repeats=repeats), peak, bandwidth))
    torch.set_num_threads(old)
    for prof, peak, bandwidth in profiles:
        lines += ["", f"Where the {prof['threads']}-thread step's time goes (torch.profiler self CPU time, scaled to "
                  f"the unprofiled {prof['step_seconds'] * 1e3:.1f} ms step; bytes estimated):", "",
                  profile_table(prof, peak, bandwidth).rstrip()]
    if plot is not None:
        plot_roofline(*profiles[0], Path(plot))
        link = link or Path(plot).as_posix()
        lines += ["", f"Roofline and time by part of the 1-thread step: [{link}]({link})."]
    return "\n".join(lines) + "\n"
