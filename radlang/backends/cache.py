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
    """SHA-256 of a file's content (a directory: of its files' names and contents). Within one process a regular
    file's digest is remembered by (path, size, mtime_ns, ctime_ns, inode), once the file is at least 2 s old
    (a file rewritten within the file system's timestamp granularity is hashed again)."""
    import time

    p = Path(path)
    st = p.stat()
    memo = None
    if not p.is_dir() and max(st.st_mtime_ns, st.st_ctime_ns) < time.time_ns() - 2_000_000_000:
        memo = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
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
    if memo is not None:
        _FILE_HASHES[memo] = digest
    return digest


def stat_signature(path: str | os.PathLike) -> tuple[list, int]:
    """(signature, newest timestamp in ns) of a file or a directory tree, from stat alone: size, mtime_ns, ctime_ns,
    inode and device of the file (for a directory: of every file under it, with its relative name). Any write,
    replacement, rename or chmod changes it. Raises OSError when the path is missing."""
    p = Path(path)
    st = p.stat()
    if not p.is_dir():
        return ["file", st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev], max(st.st_mtime_ns, st.st_ctime_ns)
    rows, newest = [], max(st.st_mtime_ns, st.st_ctime_ns)
    for q in sorted(p.rglob("*")):
        if q.is_file():
            s = q.stat()
            rows.append([str(q.relative_to(p)), s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_dev])
            newest = max(newest, s.st_mtime_ns, s.st_ctime_ns)
    return ["dir", hashlib.sha256(canonical(rows)).hexdigest()], newest


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


HASH_INDEX = "file-hashes.json"


class Cache:
    settle_ns = 2_000_000_000       # a file hashed less than this after its last change is not put in the index

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self._index: dict[str, list] | None = None      # path -> [stat signature, sha256], see file_hash
        self._index_new: dict[str, list] = {}

    def file_hash(self, path: str | os.PathLike) -> str:
        """file_hash(path) (the content's SHA-256: what cache keys are made of), remembered across runs in a
        persistent index <root>/file-hashes.json keyed by the path and its stat signature (size, mtime_ns,
        ctime_ns, inode, device; for a folder, of every file in it). A file whose signature changed is hashed
        again; entries younger than 2 s are not stored (timestamp granularity), so a changed file is always
        detected. A warm re-run then reads no image at all."""
        import time

        sig, newest = stat_signature(path)
        name = os.path.abspath(path)          # the signature's inode/device identify the file behind any link
        if self._index is None:
            self._index = self._read_index()
        hit = self._index.get(name)
        if isinstance(hit, list) and len(hit) == 2 and hit[0] == sig:
            return hit[1]
        digest = file_hash(path)
        if newest < time.time_ns() - self.settle_ns and stat_signature(path)[0] == sig:
            self._index[name] = self._index_new[name] = [sig, digest]
        return digest

    def _read_index(self) -> dict[str, list]:
        try:
            with open(self.root / HASH_INDEX, encoding="utf-8") as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def flush(self) -> None:
        """Write the new file-hash index entries (merged with what is on disk; atomically)."""
        if not self._index_new:
            return
        index = self._read_index()
        index.update(self._index_new)
        try:
            atomic_write_text(self.root / HASH_INDEX, json.dumps(index, sort_keys=True, separators=(",", ":")))
        except OSError:          # only an accelerator: a read-only or full disk costs the next run some hashing
            return
        self._index_new = {}

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
