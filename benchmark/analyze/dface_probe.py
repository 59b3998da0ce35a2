"""Where D-FACE loses the motion: a linear probe on each stage of the tokenizer's output, on real
pairs, for the synthetic checkpoint and the cross-fitted ones (``python -m benchmark analyze
dface-probe``).

For one protocol (default: the CDE CASME II part) and each tokenizer, the same LOSO folds and the
same linear probe as the matrix's ``linear probe`` column (``logreg``: standardised, C = 1,
nothing chosen on the test subject) are trained on

* ``continuous``: the motion ``D = E2 - E1`` (16 positions x code dim),
* ``quantized``: the codebook vectors the token Transformer sees,
* ``one-hot``: the index maps as one-hot codes (16 positions x codebook size),
* ``quantized, shared removed``: a diagnostic, not the method: the same codebook's nearest
  vectors to ``D`` minus its mean over the 16 positions (does quantizing the position-specific
  motion keep what quantizing ``D`` loses?),

and the share of ``D``'s energy taken by the component shared by the 16 positions is measured
(``D = 1 m^T + R`` with ``m`` the mean over positions, so ``|D|^2 = 16 |m|^2 + |R|^2``; the
share is ``16 |m|^2 / |D|^2`` per sample; 1 means the map is one code repeated over the face).

Cross-fitted tokenizers: a fold uses the checkpoint whose subject group holds its test subject,
as a run does (``benchmark/plan.py``); the shared-component share of a sample is read from that
same checkpoint, the one that never saw it. The encodings come from the representation's cache,
so after the matrix cells have run this costs only the probes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

STAGES = ("continuous", "quantized", "one-hot", "quantized, shared removed")
TOKENIZERS = {"synthetic": {}, "crossfit": {"pretrain": "crossfit"},
              "crossfit-gain": {"pretrain": "crossfit", "crossfit_gain": True}}


def shared_share(d: np.ndarray) -> np.ndarray:
    """(N,) share of each sample's ``|D|^2`` in the component shared by its positions; NaN for D = 0."""
    d = np.asarray(d, dtype=np.float64)
    total = (d ** 2).sum(axis=(1, 2))
    shared = d.shape[1] * (d.mean(axis=1) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, shared / total, np.nan)


def stage_features(indices: np.ndarray, quantized: np.ndarray, d: np.ndarray, codebook: np.ndarray) -> dict:
    """The probe inputs of one encoding, flattened per sample."""
    onehot = np.eye(len(codebook), dtype=np.float32)[np.asarray(indices)]
    r = d - d.mean(axis=1, keepdims=True)
    nearest = ((r[..., None, :] - codebook) ** 2).sum(-1).argmin(-1)  # (N, L): codes of the centred motion
    return {"continuous": d.reshape(len(d), -1), "quantized": quantized.reshape(len(quantized), -1),
            "one-hot": onehot.reshape(len(onehot), -1),
            "quantized, shared removed": codebook[nearest].reshape(len(d), -1)}


def _plan(protocol: str, dataset: str | None, data_root: str, rep_params: dict):
    from benchmark.config import RunConfig
    from benchmark.plan import plan

    return plan(RunConfig(rep="dface", model="logreg", protocol=protocol, dataset=dataset, data_root=data_root,
                          rep_params={"on_missing": "blank", **rep_params}))


def _encodings(p) -> dict[str | None, tuple]:
    """Checkpoint path (None: the plan's own) -> (indices, quantized, D, codebook) of all samples."""
    from sklearn.base import clone

    paths = sorted({v["checkpoint"] for v in p.fold_rep_params.values()}) or [None]
    out = {}
    for path in paths:
        rep = clone(p.rep)
        if path is not None:
            rep.set_params(checkpoint=path)
        rep.fit([])  # a cross-fitted checkpoint is used as it is; nothing is fitted on the samples
        idx, q, d = rep.encode(list(p.sel.samples))
        out[path] = (idx, q, d, rep.codebook())
    return out


def probe(p) -> dict:
    """Pooled LOSO UF1/UAR of the linear probe on each stage, and the shared-component share."""
    from benchmark.core.metrics import uar, uf1
    from models import MODELS

    enc = _encodings(p)
    y = np.asarray(p.sel.y)
    feats = {path: stage_features(*e) for path, e in enc.items()}
    preds = {s: np.full(len(y), -1) for s in STAGES}
    share = np.full(len(y), np.nan)
    for f in p.folds:
        path = p.fold_rep_params.get(f.name, {}).get("checkpoint")
        share[f.test] = shared_share(enc[path][2][f.test])
        for stage in STAGES:
            X = feats[path][stage]
            m = MODELS.get("logreg")().fit(X[f.train], y[f.train], n_classes=len(p.sel.classes))
            preds[stage][f.test] = m.predict_proba(X[f.test]).argmax(1)
    blank = np.array([not s.frames for s in p.sel.samples])
    return {"n": int(len(y)), "folds": len(p.folds), "blank_inputs": int(blank.sum()),
            "probe": {s: {"uf1": round(uf1(y, preds[s]), 4), "uar": round(uar(y, preds[s]), 4)} for s in STAGES},
            "shared_share": {"median": round(float(np.nanmedian(share)), 3),
                             "mean": round(float(np.nanmean(share)), 3),
                             "p10_p90": [round(float(v), 3) for v in np.nanpercentile(share, [10, 90])]},
            "checkpoints": len(enc)}


def markdown(rows: list[dict]) -> str:
    lines = ["| protocol | tokenizer | LP on continuous D | LP on quantized tokens | LP on one-hot maps | "
             "LP on quantized D − shared (diagnostic) | shared share of \\|D\\|² (median [p10, p90]) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        s, pr = r["shared_share"], r["probe"]
        lines.append(f"| {r['protocol']} | {r['tokenizer']} | " +
                     " | ".join(f"{pr[k]['uf1']:.3f} ({pr[k]['uar']:.3f})" for k in STAGES) +
                     f" | {s['median']:.2f} [{s['p10_p90'][0]:.2f}, {s['p10_p90'][1]:.2f}] |")
    return "\n".join(lines) + "\n\nUF1 (UAR) pooled over the LOSO folds; linear probe = `logreg`, standardised, C = 1.\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark analyze dface-probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True, help="folder holding casme2/ (and megc2019/ for cde)")
    ap.add_argument("--protocols", default="cde:casme2,loso:casme2",
                    help="comma-separated protocol:dataset pairs (default cde:casme2,loso:casme2)")
    ap.add_argument("--tokenizers", default="synthetic,crossfit", help="any of " + ", ".join(TOKENIZERS))
    ap.add_argument("--out", help="also write the rows as JSON to this file")
    a = ap.parse_args(argv)
    rows = []
    for pair in a.protocols.split(","):
        protocol, _, dataset = pair.partition(":")
        for tok in a.tokenizers.split(","):
            if tok not in TOKENIZERS:
                raise SystemExit(f"dface-probe: unknown tokenizer {tok!r} (choose from {', '.join(TOKENIZERS)})")
            r = probe(_plan(protocol, dataset or None, a.data_root, TOKENIZERS[tok]))
            rows.append({"protocol": pair, "tokenizer": tok, **r})
            print(json.dumps(rows[-1]), flush=True)
    print(markdown(rows))
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0
