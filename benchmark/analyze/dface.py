"""Looking inside a D-FACE tokenizer (paper sections 3.2, 4.6, A.1-A.2), as PNG images.

:func:`write_analysis` writes, for a fitted or default ``DFace`` and some samples:

``codebook_usage.png``        how often each code is chosen, with the perplexity
``codebook_cosine.png``       cosine similarity between codebook vectors (Fig. 5)
``codebook_distance.png``     Euclidean distance between codebook vectors (Fig. 6)
``index_maps.png``            per sample the h x w index map, cells shaded by the
                              classifier's sparse-attention weights when given (Fig. 4)
``no_action.png``             the index map of two identical frames (section 3.2)
``analysis.json``             the numbers behind the images

CLI (visualisation only; the classifier giving the attention weights is trained on
all the samples shown, so it says nothing about accuracy)::

    python -m benchmark analyze dface --out dface-analysis [--data-root DIR] [--epochs 30]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np


def codebook_usage(indices: np.ndarray, k: int) -> dict:
    """Counts per code, perplexity exp(H(p)) and the number of codes used."""
    counts = np.bincount(np.asarray(indices).ravel(), minlength=k)
    p = counts / max(counts.sum(), 1)
    nz = p[p > 0]
    return {"counts": counts.tolist(), "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
            "codes_used": int((counts > 0).sum()), "codebook_size": int(k)}


def codebook_similarity(codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarity, Euclidean distance) matrices between codebook vectors."""
    cb = np.asarray(codebook, dtype=np.float64)
    unit = cb / np.maximum(np.linalg.norm(cb, axis=1, keepdims=True), 1e-12)
    sq = (cb ** 2).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * cb @ cb.T, 0))
    return unit @ unit.T, dist


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_usage(usage: dict, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(range(len(usage["counts"])), usage["counts"], color="tab:blue")
    ax.set_xlabel("code index")
    ax.set_ylabel("uses")
    ax.set_title(f"codebook usage: {usage['codes_used']}/{usage['codebook_size']} codes, "
                 f"perplexity {usage['perplexity']:.1f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_matrix(m: np.ndarray, title: str, path: Path, cmap: str = "viridis") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(m, cmap=cmap)
    ax.set_title(title)
    ax.set_xlabel("code index")
    ax.set_ylabel("code index")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_map(ax, grid: np.ndarray, weights: np.ndarray | None, title: str, vrange=(0.0, 1.0)) -> None:
    shade = weights if weights is not None else np.zeros(grid.shape)
    lo, hi = vrange
    ax.imshow(shade, cmap="Reds", vmin=lo, vmax=hi)
    for (r, c), v in np.ndenumerate(grid):
        dark = weights is not None and (shade[r, c] - lo) > 0.6 * (hi - lo)
        ax.text(c, r, str(int(v)), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def plot_index_maps(indices: np.ndarray, hw: tuple[int, int], path: Path, attention: np.ndarray | None = None,
                    titles: Sequence[str] | None = None, max_maps: int = 24) -> Path:
    """Grid of index maps; with ``attention`` (N, h*w) cells are shaded by weight."""
    plt = _plt()
    n = min(len(indices), max_maps)
    cols = min(n, 6)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    shown = None if attention is None else np.asarray(attention[:n], dtype=float)
    vrange = (0.0, 1.0) if shown is None else (float(shown.min()), max(float(shown.max()), float(shown.min()) + 1e-9))
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        w = None if shown is None else shown[k].reshape(hw)
        _draw_map(ax, np.asarray(indices[k]).reshape(hw), w, titles[k] if titles else f"sample {k}", vrange)
    what = "" if shown is None else (f" (shade: sparse attention weight, {vrange[0]:.3f}..{vrange[1]:.3f};"
                                      f" uniform = {1 / shown.shape[1]:.3f})")
    fig.suptitle("action token index maps" + what, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_no_action(image: np.ndarray, index_map: np.ndarray, path: Path) -> Path:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(5, 2.6))
    a.imshow(image if image.ndim == 2 else image[..., ::-1], cmap="gray")
    a.set_title("frame (used twice)", fontsize=8)
    a.axis("off")
    _draw_map(b, index_map, None, "'no action' index map")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_analysis(rep, samples: Sequence, out_dir: Path, attention: np.ndarray | None = None,
                   titles: Sequence[str] | None = None, max_maps: int = 24) -> dict:
    """Write every image for ``rep`` (a ``DFace``) on ``samples``; returns the summary."""
    import cv2

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    indices = rep.transform_indices(list(samples))
    cb = rep.codebook()
    net = rep._net()
    hw = (net.cfg.token_h, net.cfg.token_w)
    usage = codebook_usage(indices, len(cb))
    cos, dist = codebook_similarity(cb)
    first = samples[0]
    onset = first.onset if first.onset is not None else min(first.frames)
    frame = cv2.imread(str(first.frame_path(onset)[0]), cv2.IMREAD_UNCHANGED)
    no_action = rep.no_action_map(frame)
    files = {
        "usage": plot_usage(usage, out / "codebook_usage.png"),
        "cosine": plot_matrix(cos, "cosine similarity of codebook vectors", out / "codebook_cosine.png", "coolwarm"),
        "distance": plot_matrix(dist, "Euclidean distance of codebook vectors", out / "codebook_distance.png"),
        "index_maps": plot_index_maps(indices, hw, out / "index_maps.png", attention, titles, max_maps),
        "no_action": plot_no_action(frame, no_action, out / "no_action.png"),
    }
    summary = {"usage": usage, "no_action_map": no_action.tolist(), "n_samples": len(indices),
               "checkpoint": {k: v for k, v in rep._pretrained()[1].items() if k in ("path", "sha256")},
               "files": {k: str(v) for k, v in files.items()}}
    (out / "analysis.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark analyze dface", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-root", help="default: the synthetic dataset")
    ap.add_argument("--protocol", default="cde")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--checkpoint")
    ap.add_argument("--epochs", type=int, default=30, help="classifier epochs for the attention weights (0: none)")
    ap.add_argument("--max-maps", type=int, default=24)
    args = ap.parse_args(argv)
    from benchmark.datasets import read_dataset
    from models.transformer import Transformer
    from protocols import PROTOCOLS
    from representations.dface import DFace

    if args.data_root:
        root = Path(args.data_root)
    else:
        from benchmark.datasets.synthetic import ensure_synthetic

        root = ensure_synthetic()
    protocol = PROTOCOLS.get(args.protocol)()
    sel = protocol.select(read_dataset(protocol.source, root / protocol.source))
    rep = DFace(preset=args.preset, checkpoint=args.checkpoint)
    attention = None
    if args.epochs:
        X = rep.transform(sel.samples)
        model = Transformer(epochs=args.epochs).fit(X, sel.y, n_classes=len(sel.classes), class_names=sel.classes)
        attention = model.attention(X)
    titles = [f"{s.key} ({sel.classes[c]})" for s, c in zip(sel.samples, sel.y)]
    summary = write_analysis(rep, sel.samples, Path(args.out), attention, titles, args.max_maps)
    print(json.dumps({k: summary[k] for k in ("usage", "no_action_map", "files")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
