"""DFE run report: out-of-fold diversity metrics and per-token deformation heatmaps.

For a finished ``dfe`` / ``dfe-bow`` run folder, :func:`report_run` refits each fold's
representation (read back from the fitted-state cache, so no retraining when the run
was made on this machine), tokenizes that fold's *test* samples with it, and pools the
tokens over folds: every sample is encoded by a tokenizer that never saw its subject.
It writes into the run folder:

``dfe_report.json``   normalized entropy of token usage (all stages, and per stage),
                      average NMI between per-frame token activations (the paper's
                      table 2 metrics), codes used, fallback counts, RVQ-VAE losses
``dfe_tokens.png``    per-token deformation heatmap of the first fold's codebook: the
                      displacement each code's decoded expression causes on the
                      canonical mean face mesh (front view), normalised per token

    python -m benchmark analyze dfe results/runs/<dfe run folder> [...]

``--jitter`` (no run folder) measures, on the clips of a database, the landmark jitter of the
two landmark options of ``dfe`` against the expression they should see: the mean vertex
displacement in pixels between the onset and the next frame (both neutral) against the
onset -> apex displacement, for per-frame detection (``landmarks=detect``) and flow tracking
(``landmarks=flow``), raw and after each option's own Procrustes alignment, see :func:`jitter`:

    python -m benchmark analyze dfe --jitter --data-root ../shared/data [--flow tvl1] [--limit N]
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np


def diversity(tokens: np.ndarray, n_codes: int) -> dict:
    """Metrics of (N samples, F frames, L stages) tokens."""
    from representations.dfe import activation_matrix, average_nmi, normalized_entropy

    t = np.asarray(tokens)
    per_frame = t.reshape(-1, t.shape[-1])
    nmi, cols = average_nmi(activation_matrix(per_frame, n_codes))
    return {
        "normalized_entropy": round(normalized_entropy(per_frame, n_codes), 4),
        "normalized_entropy_per_stage": [round(normalized_entropy(per_frame[:, i], n_codes), 4)
                                         for i in range(per_frame.shape[1])],
        "avg_nmi": round(nmi, 4), "nmi_features": cols,
        "codes_used": int(len(np.unique(per_frame))), "codebook_size": n_codes,
        "n_frames_encoded": int(len(per_frame)),
        "definitions": "entropy: H(token usage) / log2 K over all frames and stages (eq. 8 with log2 K: the "
                       "paper's 0.926 needs it); NMI: eq. 9 over per-frame binary activations (code chosen at "
                       "any stage), geometric normalisation, never/always-active codes left out",
    }


def plot_token_heatmaps(rep, path: Path, cols: int = 8) -> Path:
    """One panel per codebook entry: canonical mesh (x, y) coloured by |displacement|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    disp = np.linalg.norm(rep.token_displacements(), axis=-1)  # (K, 468)
    face = rep.state_["canonical"]
    k = len(disp)
    rows = int(np.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.5))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i >= k:
            continue
        d = disp[i] / max(disp[i].max(), 1e-12)  # normalised per token, as in the paper's heatmaps
        ax.scatter(face[:, 0], -face[:, 1], c=d, s=1.5, cmap="inferno", vmin=0, vmax=1)
        ax.set_title(f"{i}", fontsize=7)
        ax.set_aspect("equal")
    fig.suptitle("DFE tokens: deformation each code adds on the mean face (|displacement|, per-token max = 1)",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=48)
    plt.close(fig)
    from PIL import Image

    with Image.open(path) as im:  # a 64-colour palette keeps the committed report small
        im.convert("RGB").quantize(colors=64).save(path, optimize=True)
    return path


def report_run(run: Path, heatmap: bool = True) -> dict:
    from sklearn.base import clone

    from benchmark.config import RunConfig
    from benchmark.runner import plan

    run = Path(run)
    cfg_dict = json.loads((run / "config.json").read_text())["config"]
    cfg_dict["seeds"] = tuple(cfg_dict["seeds"])
    p = plan(RunConfig(**cfg_dict))
    if not getattr(p.rep, "source", None):
        raise ValueError(f"{run}: not a dfe run")
    tokens, events, losses, first = [], [], [], None
    for fold in p.folds:
        rep = clone(p.rep).fit([p.sel.samples[i] for i in fold.train], p.sel.y[fold.train])
        before = len(getattr(rep, "report_", []))
        idx, _ = rep.encode([p.sel.samples[i] for i in fold.test])
        tokens.append(idx)
        events += rep.report_[before:]  # the test samples' fallbacks only (each sample once)
        if rep.history_:
            losses.append(rep.history_[-1])
        first = first or rep
    n_codes = first.net_.cfg.codebook_size
    out = {"run": run.name, "out_of_fold": True, **diversity(np.concatenate(tokens), n_codes),
           "fallbacks": dict(Counter(e["kind"] for e in events)),
           "rvq_final_losses_mean": {k: round(float(np.mean([h[k] for h in losses])), 4)
                                     for k in (losses[0] if losses else {}) if k != "step"}}
    if p.rep.source == "mesh":
        out["pca_explained_variance"] = round(float(first.state_["explained_variance_ratio"].sum()), 4)
        if heatmap:
            out["heatmap"] = plot_token_heatmaps(first, run / "dfe_tokens.png").name
    (run / "dfe_report.json").write_text(json.dumps(out, indent=1))
    return out


# --------------------------------------------------------------------------- landmark jitter


def clip_jitter(s, flow: str, cache, max_gap: int = 1) -> dict | None:
    """One clip's displacements (mean over the 468 mesh vertices, pixels, x-y plane) onset ->
    the next stored frame (at most ``max_gap`` frames on: 1 = onset+1) and onset -> apex, per
    landmark option, raw and aligned; None when there is no such frame, the apex falls on the
    onset, or a face is missing on one of the three frames."""
    from representations._dfe_features import sample_landmarks
    from representations._dfe_track import STABLE, similarity_on, tracked_landmarks
    from representations._landmarks import N_POINTS, similarity_align
    from representations.base import read_image

    onset = s.frame_path(s.onset if s.onset is not None else min(s.frames))[1]
    nxt = min((f for f in s.frames if f > onset), default=None)
    apex = s.frame_path(s.apex)[1] if s.apex is not None else None
    if nxt is None or nxt - onset > max_gap or apex is None or apex in (onset, nxt):
        return None
    frames = [onset, nxt, apex]
    h, w = read_image(s.frames[onset]).shape[:2]
    out = {"sample": s.key, "frames": frames}
    for name, lm, align in (
            ("detect", lambda: sample_landmarks(s, frames, cache), lambda f, ref: similarity_align(f, ref)),
            ("flow", lambda: tracked_landmarks(s, frames, flow, cache)[:, :N_POINTS],
             lambda f, ref: similarity_on(f, ref, STABLE))):
        pts = lm()
        if np.isnan(pts).any():
            return None
        inside = ((pts[0, :, 0] >= 0) & (pts[0, :, 0] <= w - 1) & (pts[0, :, 1] >= 0) & (pts[0, :, 1] <= h - 1))
        for k, role in ((1, "neighbour"), (2, "apex")):
            aligned = align(pts[k], pts[0])  # mapped onto the onset shape: pixels of the onset frame
            for kind, q in (("raw", pts[k]), ("aligned", aligned)):
                d = np.linalg.norm(q[:, :2] - pts[0, :, :2], axis=1)
                out[f"{name}_{kind}_{role}"] = float(d.mean())
                out[f"{name}_{kind}_{role}_inside"] = float(d[inside].mean())
    return out


def jitter(samples, flow: str = "farneback", n_jobs: int = 1, progress: bool | None = None,
           max_gap: int = 1) -> dict:
    """Landmark jitter (onset -> onset+1) against the expression (onset -> apex) over ``samples``.

    Detection: the 468-point mesh on each of the three frames (the ``landmarks=detect``
    landmarks), aligned onto the onset shape by the similarity fitted on all points (as that
    path aligns). Tracking: the 478-point attention mesh on the onset carried by the onset ->
    frame ``flow`` (``landmarks=flow``), its first 468 vertices (the same mesh topology),
    aligned on the stable points. Means over vertices, then over clips; ``ratio`` = mean apex /
    mean neighbour displacement (how far the expression stands above the jitter)."""
    from representations._cache import DiskCache, parallel_map

    cache = DiskCache()
    rows = parallel_map(lambda s: clip_jitter(s, flow, cache, max_gap), [s for s in samples if s.frames], n_jobs,
                        desc="dfe jitter", progress=progress)
    used = [r for r in rows if r is not None]
    if not used:
        raise ValueError(f"no clip with a frame at most {max_gap} after the onset, an apex and faces on all three")
    summary = {}
    for name in ("detect", "flow"):
        for kind in ("raw", "aligned"):
            for where in ("", "_inside"):
                nb = np.array([r[f"{name}_{kind}_neighbour{where}"] for r in used])
                ap = np.array([r[f"{name}_{kind}_apex{where}"] for r in used])
                summary[f"{name}_{kind}{where}"] = {
                    "neighbour_mean_px": round(float(nb.mean()), 4), "neighbour_median_px": round(float(np.median(nb)), 4),
                    "apex_mean_px": round(float(ap.mean()), 4), "apex_median_px": round(float(np.median(ap)), 4),
                    "ratio": round(float(ap.mean() / max(nb.mean(), 1e-12)), 2),
                    "clips_apex_over_2x_neighbour": round(float(np.mean(ap > 2 * nb)), 3)}
    return {"clips": len(used), "clips_skipped": len(rows) - len(used), "flow": flow, "summary": summary,
            "per_clip": used,
            "definitions": "mean over the 468 mesh vertices (or the vertices inside the frame on the onset: "
                           "_inside) of the x-y distance in pixels of the onset frame from the onset position; "
                           "neighbour: onset+1, apex: the annotated apex; aligned: after the option's own "
                           "similarity alignment onto the onset shape (detect: all points, flow: stable points)"}


def jitter_table(r: dict) -> str:
    lines = [f"{r['clips']} clips ({r['clips_skipped']} skipped), tracking flow {r['flow']}; pixels of the onset frame",
             "", "| landmarks | alignment | onset→onset+1 (mean / median px) | onset→apex (mean / median px) "
             "| apex / neighbour | clips apex > 2× neighbour |", "|---|---|---|---|---|---|"]
    for name in ("detect", "flow"):
        for kind in ("raw", "aligned"):
            for where in ("", "_inside"):
                m = r["summary"][f"{name}_{kind}{where}"]
                lines.append(f"| {name} | {kind}{' (vertices inside the frame)' if where else ''} "
                             f"| {m['neighbour_mean_px']:.3f} / {m['neighbour_median_px']:.3f} "
                             f"| {m['apex_mean_px']:.3f} / {m['apex_median_px']:.3f} | {m['ratio']:.2f} "
                             f"| {m['clips_apex_over_2x_neighbour']:.2f} |")
    return "\n".join(lines)


def jitter_main(args) -> int:
    from benchmark.datasets import read_dataset

    samples = [s for s in read_dataset(args.dataset, Path(args.data_root) / args.dataset).samples if s.frames]
    if args.limit:
        samples = samples[:: max(len(samples) // args.limit, 1)][: args.limit]  # evenly over the subjects
    r = jitter(samples, args.flow, args.n_jobs, progress=None, max_gap=args.max_gap)
    r.update(dataset=args.dataset, data_root=str(Path(args.data_root).resolve()), limit=args.limit,
             max_gap=args.max_gap)
    if args.out:
        Path(args.out).write_text(json.dumps(r, indent=1))
    print(jitter_table(r))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--no-heatmap", action="store_true")
    ap.add_argument("--jitter", action="store_true", help="landmark jitter of detect vs flow tracking (no run folder)")
    ap.add_argument("--data-root", default="../shared/data", help="--jitter: the folder holding the database")
    ap.add_argument("--dataset", default="casme2", help="--jitter: database (default casme2)")
    ap.add_argument("--flow", default="farneback", choices=("farneback", "tvl1"), help="--jitter: tracking flow")
    ap.add_argument("--limit", type=int, default=0, help="--jitter: clips, evenly spaced (0: all)")
    ap.add_argument("--n-jobs", type=int, default=1, help="--jitter: threads")
    ap.add_argument("--max-gap", type=int, default=1, help="--jitter: frames from the onset to its neighbour, at most")
    ap.add_argument("--out", help="--jitter: write the JSON (per clip and summary) here")
    args = ap.parse_args(argv)
    if args.jitter:
        return jitter_main(args)
    if not args.runs:
        ap.error("give dfe run folders, or --jitter")
    for run in args.runs:
        r = report_run(run, heatmap=not args.no_heatmap)
        print(json.dumps({k: v for k, v in r.items() if k != "definitions"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
