"""Recipe-keyed disk cache of derived arrays, and the parallel extraction loop.

An entry's key is ``sha256(json(recipe) + identity of the source frames)``:
the recipe names everything that determines the array (algorithm and its
parameters, preprocessing, detector, sizes, normalisation, frame choice, code
version), and the identity is each source file's resolved path, size,
modification time and content hash (``identity="stat"`` / ``"content"``: only
the first three / path and content hash). Changing
any of them gives another key, so nothing stale is ever reused; old entries are
simply never read again.

Entries are ``.npz`` files written to a temporary name in the same folder and
renamed into place (``os.replace`` is atomic on POSIX), so a killed extraction
leaves finished entries intact and no half-written one; an unreadable entry
(disk trouble, a foreign file) is treated as a miss and rewritten.

Location: ``$MER_BENCHMARK_CACHE/reps`` (default ``~/.cache/mer-benchmark/reps``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from benchmark.core.digest import file_digest
from benchmark.core.paths import cache_dir

log = logging.getLogger("benchmark.cache")

JOBS_ENV = "MER_BENCHMARK_JOBS"
_META = "__meta__"
_RECIPE = "__recipe__"
STALE_TMP_S = 3600  # leftover temp files older than this are from killed writers


def default_root() -> Path:
    return cache_dir("reps")


IDENTITIES = ("full", "stat", "content")


def source_identity(paths: Iterable[Path], identity: str = "full") -> list:
    """What identifies the source files: ``[path, size, mtime_ns, sha256]`` (``full``, the
    default: a file replaced by one of the same name, size and time stamp is still told
    apart), ``[path, size, mtime_ns]`` or ``[path, sha256]``."""
    if identity not in IDENTITIES:
        raise ValueError(f"identity must be one of {', '.join(IDENTITIES)}, not {identity!r}")
    out = []
    for p in paths:
        p = Path(p).resolve()
        entry = [str(p)]
        if identity in ("full", "stat"):
            st = p.stat()
            entry += [st.st_size, st.st_mtime_ns]
        if identity in ("full", "content"):
            entry.append(file_digest(p))  # memoised per process (benchmark/core/digest.py)
        out.append(entry)
    return out


def cache_key(recipe: dict, sources: Sequence[Path] = (), identity: str = "full") -> str:
    blob = json.dumps({"recipe": recipe, "sources": source_identity(sources, identity)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class DiskCache:
    """``key -> (arrays, meta)`` in ``root/<key[:2]>/<key>.npz``."""

    def __init__(self, root: str | Path | None = None, identity: str = "full"):
        self.root = Path(root) if root is not None else default_root()
        self.identity = identity
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # counters are shared by the extraction threads

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def key(self, recipe: dict, sources: Sequence[Path] = ()) -> str:
        return cache_key(recipe, sources, self.identity)

    def get(self, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k not in (_META, _RECIPE)}
                meta = json.loads(str(z[_META])) if _META in z.files else {}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("cache entry %s unreadable (%s): recomputing", path, exc)
            path.unlink(missing_ok=True)
            return None
        return arrays, meta

    def put(self, key: str, arrays: dict[str, np.ndarray], meta: dict | None = None,
            recipe: dict | None = None) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays, **{_META: np.array(json.dumps(meta or {}, default=str)),
                                          _RECIPE: np.array(json.dumps(recipe or {}, default=str))})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def get_or_compute(self, recipe: dict, sources: Sequence[Path],
                       compute: Callable[[], tuple[dict[str, np.ndarray], dict]]):
        """``(arrays, meta)`` from the cache, or computed by ``compute()`` and stored."""
        key = self.key(recipe, sources)
        hit = self.get(key)
        with self._lock:
            if hit is not None:
                self.hits += 1
            else:
                self.misses += 1
        if hit is not None:
            return hit
        arrays, meta = compute()
        self.put(key, arrays, meta, recipe)
        return arrays, meta

    def clean_tmp(self, older_than_s: float = STALE_TMP_S) -> int:
        """Remove temp files left by killed writers (never a finished entry)."""
        if not self.root.is_dir():
            return 0
        now, n = time.time(), 0
        for p in self.root.glob("*/.tmp-*"):
            try:
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()
                    n += 1
            except FileNotFoundError:
                pass
        return n


@contextlib.contextmanager
def one_thread():
    """Torch and the BLAS libraries on one thread while a cached state is trained or fitted.

    Summation order follows the thread count, and training amplifies the last-bit differences:
    DFE's per-fold PCA basis differed by 8e-6 between one and two threads, its RVQ-VAE weights
    then by 0.1-0.25, and the CDE-part UF1 of the same recipe came out 0.552 and 0.519. A cached
    state must be a function of its recipe, not of the machine's cores or load."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def resolve_jobs(n_jobs: int | None) -> int:
    """``n_jobs`` or ``$MER_BENCHMARK_JOBS`` or the CPU count (at least 1)."""
    if n_jobs is None:
        env = os.environ.get(JOBS_ENV)
        n_jobs = int(env) if env else (os.cpu_count() or 1)
    return max(1, int(n_jobs))


def parallel_map(fn: Callable, items: Sequence, n_jobs: int | None = None, desc: str = "extract",
                 progress: bool | None = None) -> list:
    """``[fn(x) for x in items]`` on a thread pool with a progress bar, in order.

    Threads, not processes: OpenCV's flow routines and torch release the GIL,
    so threads run them in parallel without re-importing cv2/torch per worker
    or pickling samples. Each result is stored by ``fn`` as soon as it is done,
    so a killed run resumes from the finished samples.
    """
    from tqdm import tqdm

    n = resolve_jobs(n_jobs)
    bar = tqdm(total=len(items), desc=desc, unit="sample", leave=False,
               disable=(None if progress is None else not progress))
    out: list = [None] * len(items)
    try:
        if n == 1 or len(items) <= 1:
            for i, x in enumerate(items):
                out[i] = fn(x)
                bar.update(1)
            return out
        with ThreadPoolExecutor(n) as pool:
            futures = {pool.submit(fn, x): i for i, x in enumerate(items)}
            from concurrent.futures import as_completed

            try:
                for fut in as_completed(futures):
                    out[futures[fut]] = fut.result()
                    bar.update(1)
            except BaseException:
                for f in futures:
                    f.cancel()  # stop queued samples; running ones finish and are stored
                raise
        return out
    finally:
        bar.close()
