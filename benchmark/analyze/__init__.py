"""Analyses of representations and run folders: ``python -m benchmark analyze {dface,dface-probe,dfe,apex,crops,seeds} ...``.

They live in the application layer because they combine what the components may
not: D-FACE's tokenizer with the token Transformer, a run folder with the
dataset it was made on, the apex spotter with the annotated apex.
"""
from __future__ import annotations

import argparse
import importlib

ANALYSES = {
    "dface": ("benchmark.analyze.dface", "D-FACE codebook usage, similarity and token maps"),
    "dface-probe": ("benchmark.analyze.dface_probe", "linear probe on D-FACE's continuous motion, tokens and one-hot maps, real pairs"),
    "dfe": ("benchmark.analyze.dfe", "DFE token diversity and heatmaps of a dfe run folder"),
    "apex": ("benchmark.analyze.apex", "apex spotting error on CASME II against the annotated apex"),
    "seeds": ("benchmark.analyze.seeds", "the seed distribution of a recipe (STSTNet's public one) and a published figure in it"),
    "crops": ("benchmark.analyze.crops", "raw-video crops (raw/face/aligned) against the official CASME II crops"),
}


def add_parser(sub) -> None:
    a = sub.add_parser("analyze", help="analyses: " + ", ".join(f"{k} ({v[1]})" for k, v in ANALYSES.items()))
    a.add_argument("analysis", choices=sorted(ANALYSES))
    a.add_argument("args", nargs=argparse.REMAINDER, help="the analysis' own arguments (--help to list them)")


def cmd(args) -> int:
    return importlib.import_module(ANALYSES[args.analysis][0]).main(args.args)
