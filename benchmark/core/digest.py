"""Content digests of input files, memoised per process so that the run fingerprint and the
representation cache hash each file once. The memo is keyed by path, inode, size, mtime and
ctime: ctime changes on every write and cannot be set back (unlike mtime), so a rewritten file
is hashed again."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_MEMO: dict[tuple, str] = {}
_LOCK = threading.Lock()  # extraction threads share the memo


def file_digest(path: str | Path) -> str:
    """sha256 of the file's bytes (hex)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _LOCK:
        hit = _MEMO.get(key)
    if hit is None:
        hit = hashlib.sha256(p.read_bytes()).hexdigest()
        with _LOCK:
            _MEMO[key] = hit
    return hit
