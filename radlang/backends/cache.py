"""A content-addressed stage cache. Keys hash (operator, version, settings, input content);
entries are written atomically (temp file + os.replace), so a killed run never leaves half an entry."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def key(*parts: Any) -> str:
    return hashlib.sha256(canonical(list(parts))).hexdigest()


_FILE_HASHES: dict[tuple, str] = {}


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (a directory: of its files' names and contents), memoised by mtime and size."""
    p = Path(path)
    st = p.stat()
    memo = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    if memo in _FILE_HASHES:
        return _FILE_HASHES[memo]
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    digest = h.hexdigest()
    _FILE_HASHES[memo] = digest
    return digest


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class Cache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, k: str) -> Path:
        return self.root / k[:2] / f"{k}.pkl"

    def get(self, k: str, default=None):
        p = self._path(k)
        try:
            with open(p, "rb") as fh:
                value = pickle.load(fh)
        except FileNotFoundError:
            self.misses += 1
            return default
        except Exception:  # a corrupt entry is a miss; it will be rewritten
            self.misses += 1
            return default
        self.hits += 1
        return value

    def has(self, k: str) -> bool:
        return self._path(k).exists()

    def put(self, k: str, value) -> None:
        atomic_write_bytes(self._path(k), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
