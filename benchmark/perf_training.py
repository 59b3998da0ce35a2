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


def step_flops(batch: int = 256, shape=(3, 28, 28), n_classes: int = 3, repeats: int = 20) -> tuple[float, float]:
    """(FLOPs of one STSTNet training step, best seconds per step) at the current thread count."""
    from torch.utils.flop_counter import FlopCounterMode

    from models.ststnet import _STSTNet

    net = _STSTNet(shape[0], n_classes, shape[1:]).to(memory_format=torch.channels_last)
    x = (torch.rand(batch, *shape) * 255).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, n_classes, (batch,))
    opt = torch.optim.Adam(net.parameters(), lr=5e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    for _ in range(3):
        step()
    best = min(_timed(step)[0] for _ in range(repeats))
    return counter.get_total_flops(), best


def flops_table(echo: bool = True, repeats: int = 20, gemm_n: int = 2048) -> str:
    lines = ["STSTNet training step (batch 256, 28x28x3, forward + backward + Adam), FLOPs counted by "
             "torch.utils.flop_counter (convolutions and matmuls only), against the best float32 GEMM "
             "rate measured in this process.", "",
             "| threads | step FLOPs | best step time | achieved GFLOP/s | GEMM peak GFLOP/s | share of peak |",
             "|---|---|---|---|---|---|"]
    old = torch.get_num_threads()
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        flops, secs = step_flops(repeats=repeats)
        peak = matmul_peak(threads, n=gemm_n)
        lines.append(f"| {threads} | {flops / 1e6:.0f} M | {secs * 1e3:.1f} ms | {flops / secs / 1e9:.1f} | "
                     f"{peak / 1e9:.1f} | {flops / secs / peak:.1%} |")
        if echo:
            print(lines[-1], flush=True)
    torch.set_num_threads(old)
    return "\n".join(lines) + "\n"
