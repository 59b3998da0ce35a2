"""``python -m benchmark perf --sections gpu``: the CUDA paths measured by one short command.

On a CUDA machine, on the synthetic composite (the device machine has no licensed
data; ``--data-root`` points it at real data where there is some), within a time
budget (default 8 minutes):

(a) **float32 equivalence**: 2 LOSO folds of STSTNet trained on CUDA in float32
    (no autocast, TF32 off, dropout masks drawn by the host generator exactly as
    the CPU path draws them) against the CPU path with the same seeds; the
    predictions must agree within ``TOLERANCE`` (max. absolute difference of a
    class probability), which also makes their arg-max the same unless two
    classes tie within it. The default CUDA path (bf16 autocast, masks drawn on
    the device) is then timed on the same folds, and its agreement reported.
(b) **fold-parallel against sequential** STSTNet training on the same GPU: every
    fold of the composite for a few epochs, one stacked model
    (``models/fold_parallel.py``) against one fold after another (target: >= 20x).
(c) **the card's main command** (``run --rep dface --model transformer --protocol
    cde``) with ``--device cuda``, cold for the run folder (dataset and tokenizer
    caches as found: the row says which).
(d) while the budget lasts, **the public STSTNet recipe** (``batch_order=by-class``,
    800 epochs, ``fixed``) for a few seeds, fold-parallel on the GPU, through the
    ordinary run path: the seed spread of UF1/UAR on this hardware.

Without CUDA it refuses (one line), unless ``dry=True`` (``--dry``): then the same
code runs on the CPU with tiny sizes, so that the suite's tests exercise it
(``tests/test_perf_gpu.py``); a dry run's figures mean nothing and are labelled so.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

TOLERANCE = 1e-3  # (a): max. |p_cuda - p_cpu| over the test samples' class probabilities
TARGET_FOLD_PARALLEL = 20.0  # (b)


@dataclass(frozen=True)
class Sizes:
    check_folds: int = 2
    check_epochs: int = 50
    stack_folds: int = 0  # 0: every fold of the protocol
    stack_epochs: int = 20
    recipe_epochs: int = 800
    recipe_seeds: int = 5
    budget_s: float = 480.0


FULL = Sizes()
DRY = Sizes(check_folds=2, check_epochs=2, stack_folds=4, stack_epochs=2, recipe_epochs=2, recipe_seeds=1,
            budget_s=600.0)


class HostDropout(nn.Module):
    """``nn.Dropout`` whose mask comes from the host's global generator, drawn as the CPU path
    draws it (same kernel, channels-last layout), then moved to the input's device."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        mask = torch.empty(x.shape).contiguous(memory_format=torch.channels_last)
        return x * mask.bernoulli_(1 - self.p).div_(1 - self.p).to(x.device)


def _float32_model(**kw):
    """STSTNet trained in float32 with host-drawn dropout masks: on CUDA, the CPU path's arithmetic."""
    from models.ststnet import STSTNet

    class Float32STSTNet(STSTNet):
        cuda_autocast = False

        def build(self, in_shape, n_classes):
            net = super().build(in_shape, n_classes)
            net.drop = HostDropout(net.drop.p)
            return net

    return Float32STSTNet(**kw)


class _NoTF32:
    """float32 convolutions and matmuls without TF32 (cuDNN uses TF32 for convolutions by default)."""

    def __enter__(self):
        self.old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.old


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(fn, dev: torch.device):
    _sync(dev)
    t0 = time.perf_counter()
    out = fn()
    _sync(dev)
    return time.perf_counter() - t0, out


def _fit_predict(make, X, y, folds, seeds, epochs: int, dev: torch.device, k: int):
    return [make(epochs=epochs, seed=s, device=str(dev)).fit(X[f.train], y[f.train], k).predict_proba(X[f.test])
            for f, s in zip(folds, seeds)]


def _agreement(a: list, b: list) -> tuple[float, float]:
    same = np.concatenate([x.argmax(1) == z.argmax(1) for x, z in zip(a, b)])
    return float(same.mean()), max(float(np.abs(x - z).max()) for x, z in zip(a, b))


def check_float32(X, y, folds, sizes: Sizes, dev: torch.device) -> tuple[list[str], dict]:
    """(a): rows of the equivalence/precision table and the figures."""
    from models.ststnet import STSTNet

    k = int(y.max()) + 1
    chosen, seeds = folds[:sizes.check_folds], list(range(sizes.check_folds))
    _fit_predict(STSTNet, X, y, chosen[:1], seeds[:1], 1, dev, k)  # device start-up, cuDNN plans: untimed
    t_cpu, cpu = _timed(lambda: _fit_predict(STSTNet, X, y, chosen, seeds, sizes.check_epochs,
                                             torch.device("cpu"), k), torch.device("cpu"))
    with _NoTF32():
        t_f32, f32 = _timed(lambda: _fit_predict(_float32_model, X, y, chosen, seeds, sizes.check_epochs, dev, k), dev)
    t_bf16, bf16 = _timed(lambda: _fit_predict(STSTNet, X, y, chosen, seeds, sizes.check_epochs, dev, k), dev)
    agree32, d32 = _agreement(f32, cpu)
    agree16, d16 = _agreement(bf16, cpu)
    n = sum(len(f.test) for f in chosen)
    per = lambda t: t / (len(chosen) * sizes.check_epochs)
    rows = [
        f"| CPU path (float32, {torch.get_num_threads()} thread(s)) | {per(t_cpu) * 1e3:.1f} | reference | - |",
        f"| {dev.type.upper()} float32 (no autocast, TF32 off, host-drawn dropout masks) | {per(t_f32) * 1e3:.1f} | "
        f"{agree32:.0%} of {n} | {d32:.1e} ({'within' if d32 <= TOLERANCE else 'OUTSIDE'} {TOLERANCE:g}) |",
        f"| {dev.type.upper()} default path (bf16 autocast, device dropout masks) | {per(t_bf16) * 1e3:.1f} | "
        f"{agree16:.0%} of {n} | {d16:.1e} (other masks: not expected equal) |",
    ]
    return rows, {"float32_max_diff": d32, "float32_agreement": agree32, "float32_ok": d32 <= TOLERANCE,
                  "bf16_agreement": agree16, "ms_per_fold_epoch": {"cpu": per(t_cpu) * 1e3,
                                                                   "float32": per(t_f32) * 1e3,
                                                                   "bf16": per(t_bf16) * 1e3}}


def fold_parallel_vs_sequential(X, y, folds, sizes: Sizes, dev: torch.device) -> tuple[list[str], dict]:
    """(b): all folds stacked against one fold after another, same device, same seeds."""
    from models.fold_parallel import fit_folds, unsupported
    from models.ststnet import STSTNet

    k = int(y.max()) + 1
    chosen = folds[:sizes.stack_folds] if sizes.stack_folds else folds
    seeds = list(range(len(chosen)))
    template = STSTNet(epochs=sizes.stack_epochs, device=str(dev))
    why = unsupported(template, "fixed", [f.train for f in chosen], y)
    if why:
        raise RuntimeError(f"fold-parallel training is not possible on these folds: {why}")
    fit_folds(STSTNet(epochs=1, device=str(dev)), X, y, [f.train for f in chosen[:2]], seeds[:2], k)  # warm-up
    t_seq, seq = _timed(lambda: _fit_predict(STSTNet, X, y, chosen, seeds, sizes.stack_epochs, dev, k), dev)
    t_par, par = _timed(lambda: [m.predict_proba(X[f.test]) for m, f in zip(
        fit_folds(template, X, y, [f.train for f in chosen], seeds, k), chosen)], dev)
    agree, _ = _agreement(par, seq)
    ratio = t_seq / t_par
    fe = len(chosen) * sizes.stack_epochs
    rows = [f"| sequential, one fold after another | {t_seq / fe * 1e3:.2f} | {t_seq:.1f} s | 1.00x | - |",
            f"| fold-parallel, {len(chosen)} folds stacked | {t_par / fe * 1e3:.2f} | {t_par:.1f} s | {ratio:.1f}x "
            f"({'meets' if ratio >= TARGET_FOLD_PARALLEL else 'below'} the {TARGET_FOLD_PARALLEL:.0f}x target) | "
            f"{agree:.0%} |"]
    return rows, {"ratio": ratio, "folds": len(chosen), "agreement": agree}


def main_command_row(dev: torch.device, dry: bool, data_root) -> tuple[str, dict]:
    """(c): the card's main command on ``dev`` into a temporary run folder."""
    from benchmark.config import resolve
    from benchmark.core.paths import cache_dir
    from benchmark.perf import MAIN
    from benchmark.runner import execute

    cfg = {**MAIN, "device": dev.type}
    if data_root:
        cfg.update(data="real", data_root=str(data_root))
    if dry:  # the same run path, tiny: tokenizer preset, text encoder, epochs, bootstrap
        cfg.update(rep_params={"preset": "tiny"}, model_params={"text_encoder": "hash"}, epochs=2, n_boot=20)
    warm = any(cache_dir("dface").glob("dface-*.pt"))
    with tempfile.TemporaryDirectory(prefix="mer-perf-gpu-") as tmp:
        wall, run = _timed(lambda: execute(resolve({**cfg, "out": tmp}), progress=False), dev)
        m = json.loads((run / "metrics.json").read_text())
    uf1 = m["metrics"]["overall"]["uf1"]["mean"]
    flags = f" --device {dev.type}" + (" (dry: tiny preset, 2 epochs)" if dry else "")
    row = (f"| `python -m benchmark run --rep dface --model transformer --protocol cde{flags}` | "
           f"{wall / 60:.1f} min | {uf1:.3f} | {'reused' if warm else 'built in this run'} |")
    return row, {"wall_s": wall, "uf1": uf1}


def recipe_rows(sizes: Sizes, dev: torch.device, data_root, deadline: float) -> tuple[list[str], dict]:
    """(d): the public STSTNet recipe, one seed after another, fold-parallel, until ``deadline``."""
    from benchmark.config import resolve
    from benchmark.runner import execute

    rows, figures, last = [], [], 0.0
    base = {"rep": "precomputed", "model": "ststnet", "protocol": "cde", "device": dev.type,
            "epochs": sizes.recipe_epochs, "model_params": {"batch_order": "by-class"}, "n_boot": 20,
            "fold_parallel": "on", "selection": "fixed"}
    base.update({"data": "real", "data_root": str(data_root)} if data_root else {"data": "synthetic"})
    with tempfile.TemporaryDirectory(prefix="mer-perf-recipe-") as tmp:
        for seed in range(sizes.recipe_seeds):
            if time.perf_counter() + 1.2 * last > deadline:
                rows.append(f"| seeds {seed}.. | not run: the time budget is spent | | | |")
                break
            last, run = _timed(lambda: execute(resolve({**base, "seeds": [seed], "out": tmp}), progress=False), dev)
            m = json.loads((run / "metrics.json").read_text())
            o = m["metrics"]["overall"]
            figures.append((o["uf1"]["mean"], o["uar"]["mean"]))
            rows.append(f"| {seed} | {o['uf1']['mean']:.4f} | {o['uar']['mean']:.4f} | {last:.0f} s | "
                        f"{', '.join(m['training'])} |")
    summary = {}
    if figures:
        uf1 = np.array([f[0] for f in figures])
        summary = {"seeds": len(uf1), "uf1_mean": float(uf1.mean()), "uf1_sd": float(uf1.std(ddof=1)) if len(uf1) > 1 else 0.0}
    return rows, summary


def require_cuda() -> None:
    if not torch.cuda.is_available():
        raise RuntimeError("perf --sections gpu needs a CUDA device (torch.cuda.is_available() is False); "
                           "--dry runs the same code on the CPU with tiny sizes")


def gpu_section(data_root=None, dry: bool = False, sizes: Sizes | None = None, echo: bool = True) -> tuple[str, dict]:
    """The markdown of the GPU section (tables (a)-(d)) and its figures; without CUDA a
    ``RuntimeError`` unless ``dry``."""
    from benchmark.perf_training import cde_inputs

    if not dry:
        require_cuda()
    sizes = sizes or (DRY if dry else FULL)
    dev = torch.device("cpu") if dry else torch.device("cuda")
    t0 = time.perf_counter()
    deadline = t0 + sizes.budget_s
    say = (lambda s: print(s, flush=True)) if echo else (lambda s: None)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none (dry run on the CPU)"
    X, y, folds, _ = cde_inputs(data_root)
    what = f"the CDE flow images under {data_root}" if data_root else "the synthetic CDE composite"
    lines = [f"{'**Dry run on the CPU: these figures mean nothing; they show that the code runs.** ' if dry else ''}"
             f"Device: {name}; torch {torch.__version__}"
             f"{', CUDA ' + torch.version.cuda if dev.type == 'cuda' and torch.version.cuda else ''}; "
             f"{what} ({len(y)} samples, {len(folds)} LOSO folds); {os.cpu_count()} CPUs; budget "
             f"{sizes.budget_s / 60:.0f} min.", ""]
    say(lines[0])
    lines += [f"(a) {sizes.check_folds} folds x {sizes.check_epochs} epochs, same seeds: {dev.type.upper()} "
              f"training against the CPU path (tolerance: max. |difference| of a class probability <= "
              f"{TOLERANCE:g}).", "",
              "| path | ms per fold-epoch | same prediction as CPU | max. abs. prob. difference |",
              "|---|---|---|---|"]
    rows, a = check_float32(X, y, folds, sizes, dev)
    lines += rows + [""]
    say("\n".join(rows))
    n_stack = sizes.stack_folds or len(folds)
    lines += [f"(b) STSTNet, {n_stack} folds x {sizes.stack_epochs} epochs on the same {dev.type.upper()}, same "
              "seeds (default precision).", "",
              "| path | ms per fold-epoch | total | speed-up | same prediction as sequential |", "|---|---|---|---|---|"]
    rows, b = fold_parallel_vs_sequential(X, y, folds, sizes, dev)
    lines += rows + [""]
    say("\n".join(rows))
    lines += ["(c) The card's main command.", "", "| command | wall | UF1 | tokenizer checkpoint |", "|---|---|---|---|"]
    row, c = main_command_row(dev, dry, data_root)
    lines += [row, ""]
    say(row)
    lines += [f"(d) The public STSTNet recipe (batch_order=by-class, {sizes.recipe_epochs} epochs, fixed), "
              f"fold-parallel, one seed per run, while the budget lasts.", "",
              "| seed | UF1 | UAR | wall | training path |", "|---|---|---|---|---|"]
    rows, d = recipe_rows(sizes, dev, data_root, deadline)
    lines += rows
    say("\n".join(rows))
    if d.get("seeds", 0) > 1:
        lines.append(f"\nUF1 over {d['seeds']} seeds: mean {d['uf1_mean']:.4f}, sd {d['uf1_sd']:.4f}.")
    lines.append(f"\nSection wall time {time.perf_counter() - t0:.0f} s.")
    return "\n".join(lines) + "\n", {"a": a, "b": b, "c": c, "d": d}
