"""The leaderboard's figures, per arena (matplotlib, Agg): a representation x model UF1 heatmap
(values annotated, n/a hatched grey, not-run cells blank) and UF1 with CIs by model."""
from __future__ import annotations

import textwrap
from pathlib import Path

from benchmark.matrices import NA, RUN, Matrix

DPI = 100
FONT = 10


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": FONT, "axes.titlesize": FONT + 1, "figure.titlesize": FONT + 2})
    return plt


def _title(m: Matrix, what: str, width_in: float) -> str:
    return "\n".join(textwrap.wrap(f"{m.arena.title}: {what}", int(width_in * 11)))  # ~11 chars per inch at 10 pt


def heatmap(m: Matrix, path: Path) -> None:
    import numpy as np
    from matplotlib.patches import Rectangle

    plt = _plt()
    rows, cols = m.arena.rows, m.arena.columns
    values = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, col in enumerate(cols):
            c = m.cell(r, col)
            if c.status == RUN:
                values[i, j] = c.metric("uf1").mean
    done = values[~np.isnan(values)]
    chance = m.chance.metric("uf1").mean if m.chance and m.chance.status == RUN else None
    lo = min([chance or done.min(), done.min()]) if done.size else 0
    hi = done.max() if done.size else 1
    width = min(16, 2.6 + 1.35 * len(cols))
    fig, ax = plt.subplots(figsize=(width, max(3.2, 1.7 + 0.36 * len(rows))))
    im = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=lo, vmax=max(hi, lo + 1e-3), aspect="auto")
    for i, r in enumerate(rows):
        for j, col in enumerate(cols):
            c = m.cell(r, col)
            if c.status == NA:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.85", hatch="///", edgecolor="0.6", lw=0))
                ax.text(j, i, "n/a", ha="center", va="center", color="0.35", fontsize=FONT - 1)
            elif c.status == RUN:
                v = values[i, j]
                dark = (v - lo) / max(hi - lo, 1e-9) < 0.6
                ax.text(j, i, f"{v:.3f}" + (f" ×{c.n_seeds}" if c.n_seeds > 1 else ""), ha="center", va="center",
                        color="white" if dark else "black", fontsize=FONT - 1,
                        fontweight="bold" if r in m.best(col) else "normal")
    ref_i, ref_j = rows.index(m.arena.reference[0]), cols.index(m.arena.reference[1])
    ax.add_patch(Rectangle((ref_j - 0.5, ref_i - 0.5), 1, 1, fill=False, edgecolor="tab:red", lw=2.5))
    ax.set_xticks(range(len(cols)), cols, rotation=25, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xticks(np.arange(len(cols) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=1)
    ax.tick_params(which="minor", length=0)
    bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("UF1 (seed mean)")
    notes = "bold: column best; red frame: reference cell; blank: not run yet; ×n: n seeds"
    if chance is not None:
        notes += f"; chance {chance:.3f}"
    ax.set_title(_title(m, "UF1", width) + "\n" + "\n".join(textwrap.wrap(notes, int(width * 11))), fontsize=FONT)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def dots(m: Matrix, path: Path) -> None:
    """One panel per model column with a finished cell; the representations on a shared axis."""
    plt = _plt()
    cols = [col for col in m.arena.columns if any(c.column == col for c in m.finished)]
    rows = [r for r in m.arena.rows if any(c.row == r for c in m.finished)]
    if not cols:
        return
    ncol = min(4, len(cols))
    nrow = -(-len(cols) // ncol)
    width = min(16, 2.4 + 3.3 * ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(width, 1.3 + nrow * (0.9 + 0.3 * len(rows))), sharex=True,
                             sharey=True, squeeze=False)
    chance = m.chance.metric("uf1").mean if m.chance and m.chance.status == RUN else None
    for k, ax in enumerate(axes.flat):
        if k >= len(cols):
            ax.set_visible(False)
            continue
        col = cols[k]
        for i, r in enumerate(rows):
            c = m.cell(r, col)
            if c.status != RUN:
                continue
            s = c.metric("uf1")
            ref = (r, col) == m.arena.reference
            ax.errorbar(s.mean, i, xerr=[[s.mean - s.ci.low], [s.ci.high - s.mean]], fmt="D" if ref else "o",
                        color="tab:red" if ref else "tab:blue", capsize=3, ms=5)
        if chance is not None:
            ax.axvline(chance, color="0.4", ls="--", lw=1)
        ax.set_title(col)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.xaxis.set_tick_params(labelbottom=True)  # every panel keeps its scale: rows of panels are far apart
        if k + ncol >= len(cols):
            ax.set_xlabel("UF1 (95% CI)")
    title = (_title(m, "UF1 with 95% CIs by model", width) + "\nred diamond: reference cell"
             + ("; dashed: chance" if chance is not None else ""))
    fig.suptitle(title, fontsize=FONT + 1)
    # tight_layout does not make room for a suptitle: keep its lines (and a margin) above the panels
    top = (title.count("\n") + 1.5) * (FONT + 1) * 1.35 / 72 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, 1 - top))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def write_plots(matrices: list[Matrix], folder: Path) -> list[Path]:
    """Both figures of every arena with a finished cell; returns the files written."""
    written = []
    for m in matrices:
        if not m.finished:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for name, draw in (("heatmap", heatmap), ("dots", dots)):
            path = folder / f"{m.arena.name}_{name}.png"
            draw(m, path)
            written.append(path)
    return written
