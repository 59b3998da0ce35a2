"""DFE checkpoints: the fitted canonical shape, basis and RVQ-VAE arrays plus JSON meta
(what it was trained on) in one ``.npz``."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np


def save_checkpoint(path: Path, arrays: dict, meta: dict) -> str:
    """Arrays + JSON meta in one ``.npz``; returns the file's sha256."""
    buf = io.BytesIO()
    np.savez(buf, **arrays, __meta__=np.array(json.dumps(meta, sort_keys=True)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def load_checkpoint(path) -> tuple[dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dfe checkpoint {path} not found (make one: python -m benchmark pretrain dfe)")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"]))
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return arrays, meta
