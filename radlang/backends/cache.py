"""A content-addressed, verified stage cache. Keys hash (operator, version, settings, input content).

An entry is one JSON document (`<root>/<key[:2]>/<key>.json`) whose first line records the SHA-256 of the rest;
values JSON cannot hold (bytes, tuples, DataFrames, numpy arrays and scalars, dicts with non-string keys) are typed
references in it, and the bytes they need are blobs named by their own SHA-256 (`<root>/blobs/<sha[:2]>/<sha>`:
raw bytes, Parquet for a DataFrame, `.npy` without pickle for an array). Every read checks both hashes; a mismatch
is warning W670, a miss (the stage recomputes and the entry is rewritten). Nothing is ever unpickled: a value the
codec cannot encode exactly is a TypeError at `put`. Every file is written atomically (a uniquely named temporary
file + os.replace), so a killed run never leaves half an entry."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def key(*parts: Any) -> str:
    return hashlib.sha256(canonical(list(parts))).hexdigest()


_FILE_HASHES: dict[tuple, str] = {}


def content_path(path: str | os.PathLike) -> Path:
    """The file or folder whose content an input path names: `folder#<SeriesInstanceUID>` (one DICOM series of a
    folder that holds several, as a manifest cohort names it) is the folder."""
    p = Path(path)
    if not p.exists() and "#" in str(path):
        folder = Path(str(path).rsplit("#", 1)[0])
        if folder.is_dir():
            return folder
    return p


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (a directory: of its files' names and contents; `folder#<series>`: of the
    folder's). Within one process a regular file's digest is remembered by (path, size, mtime_ns, ctime_ns,
    inode), once the file is at least 2 s old (a file rewritten within the file system's timestamp granularity is
    hashed again)."""
    import time

    p = content_path(path)
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
    p = content_path(path)
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


def output_sha256(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file written by a run (None when it is missing): compared with the digest recorded at writing."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> bool:
    """Write `data` to `path` through a uniquely named temporary file in the same folder and os.replace. A file
    that already holds exactly these bytes is left alone (an unchanged output keeps its mtime); any other content,
    a hand-edited output included, is replaced. Returns whether the file was written."""
    path = Path(path)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
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
    return True


def atomic_write_text(path, text: str) -> bool:
    return atomic_write_bytes(path, text.encode("utf-8"))



# ------------------------------------------------------------------------------------------------- the codec

TAG = "$"           # a JSON object with this key is a typed value; a plain dict holding it is itself tagged


class Corrupt(Exception):
    """A cache entry, blob or index whose bytes are not the ones recorded."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _frame_bytes(df) -> bytes:
    """Parquet bytes of a DataFrame (its attrs travel in the entry's JSON); TypeError unless it reads back exactly."""
    import io

    import pandas as pd

    plain = df.copy(deep=False)
    plain.attrs = {}
    buf = io.BytesIO()
    try:
        plain.to_parquet(buf, engine="pyarrow", compression=None)
        back = pd.read_parquet(io.BytesIO(buf.getvalue()), engine="pyarrow")
        pd.testing.assert_frame_equal(back, plain, check_exact=True, check_index_type=True, check_column_type=True,
                                      check_frame_type=True, check_names=True, check_flags=True, check_freq=True)
        same = list(back.dtypes.astype(str)) == list(plain.dtypes.astype(str))
    except (AssertionError, ValueError, TypeError, NotImplementedError, ImportError) as e:
        raise TypeError(f"the cache cannot store this DataFrame exactly as Parquet: {e}") from None
    except Exception as e:  # noqa: BLE001 -- pyarrow's own errors (ArrowTypeError, ArrowInvalid, ...)
        raise TypeError(f"the cache cannot store this DataFrame as Parquet: {type(e).__name__}: {e}") from None
    if not same:
        raise TypeError("the cache cannot store this DataFrame exactly as Parquet: its dtypes do not read back")
    return buf.getvalue()


def _array_bytes(a) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    try:
        np.save(buf, a, allow_pickle=False)
    except ValueError as e:
        raise TypeError(f"the cache cannot store a numpy array of dtype {a.dtype} without pickle: {e}") from None
    return buf.getvalue()


def encode(value: Any, blobs: dict[str, bytes]) -> Any:
    """`value` as JSON-able data; the bytes of blobs it refers to are added to `blobs` (sha256 -> bytes).
    Exact types only: None, bool, int, float, str, list, tuple, dict, bytes, numpy arrays and scalars (bool, int,
    float up to 64 bits), pandas DataFrames. Anything else (a subclass included) is a TypeError: nothing is pickled."""
    t = type(value)
    if value is None or t in (bool, int, float, str):
        return value
    if t is list:
        return [encode(v, blobs) for v in value]
    if t is tuple:
        return {TAG: "tuple", "v": [encode(v, blobs) for v in value]}
    if t is dict:
        if TAG not in value and all(type(k) is str for k in value):
            return {k: encode(v, blobs) for k, v in value.items()}
        return {TAG: "dict", "v": [[encode(k, blobs), encode(v, blobs)] for k, v in value.items()]}
    if t is bytes:
        h = _sha(value)
        blobs[h] = value
        return {TAG: "bytes", "sha256": h}
    mod = t.__module__.split(".")[0]
    if mod == "numpy":
        import numpy as np

        if t is np.ndarray:
            data = _array_bytes(value)
            h = _sha(data)
            blobs[h] = data
            return {TAG: "ndarray", "sha256": h}
        if isinstance(value, np.generic) and value.dtype.kind in "biuf" and value.dtype.itemsize <= 8:
            return {TAG: "scalar", "dtype": value.dtype.str, "v": value.item()}
    if mod == "pandas":
        import pandas as pd

        if t is pd.DataFrame:
            data = _frame_bytes(value)
            h = _sha(data)
            blobs[h] = data
            return {TAG: "frame", "sha256": h, "attrs": encode(dict(value.attrs), blobs)}
    raise TypeError(f"the cache stores only plain data, bytes, numpy arrays/scalars and DataFrames, not {t.__module__}.{t.__qualname__}")


def _decoder(read_blob):
    """A json object_hook that rebuilds tagged values; blobs come from `read_blob(sha256) -> bytes` (verified)."""

    def hook(d):
        tag = d.get(TAG)
        if tag is None:
            return d
        if tag == "tuple":
            return tuple(d["v"])
        if tag == "dict":
            return {k: v for k, v in d["v"]}
        if tag == "bytes":
            return read_blob(d["sha256"])
        if tag == "ndarray":
            import io

            import numpy as np

            return np.load(io.BytesIO(read_blob(d["sha256"])), allow_pickle=False)
        if tag == "scalar":
            import numpy as np

            return np.dtype(d["dtype"]).type(d["v"])
        if tag == "frame":
            import io

            import pandas as pd

            df = pd.read_parquet(io.BytesIO(read_blob(d["sha256"])), engine="pyarrow")
            df.attrs = d["attrs"]
            return df
        raise Corrupt(f"unknown value type {tag!r}")

    return hook


def _document(body: bytes) -> bytes:
    """A file holding `body` behind a first line that records its SHA-256."""
    return f"radlang-cache 1 {_sha(body)}\n".encode() + body


def _body(data: bytes, verify: bool = True) -> bytes:
    """The body of a `_document`, checked against its recorded SHA-256 (Corrupt when it differs)."""
    head, sep, body = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 3 or parts[:2] != [b"radlang-cache", b"1"]:
        raise Corrupt("no radlang-cache header")
    if verify and _sha(body).encode() != parts[2]:
        raise Corrupt("its SHA-256 differs from the one recorded")
    return body


# ------------------------------------------------------------------------------------------------- the cache

HASH_INDEX = "file-hashes.json"


class Cache:
    settle_ns = 2_000_000_000       # a file hashed less than this after its last change is not put in the index
    verify = True                   # check every SHA-256 on read (False only to measure what the checks cost)

    def __init__(self, root: str | os.PathLike, warnings: list[str] | None = None):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.warnings = warnings if warnings is not None else []     # the run's ctx.warnings (W670-W673 among them)
        self.held: list[tuple[str, str]] | None = None   # warnings to print later (a stage's, see stage_view)
        self._index: dict[str, list] | None = None      # path -> [stat signature, sha256], see file_hash
        self._index_new: dict[str, list] = {}

    def is_empty(self) -> bool:
        """No entry yet (a new output folder): every stage of this run will be computed."""
        try:
            with os.scandir(self.root) as it:
                return next(it, None) is None
        except FileNotFoundError:
            return True

    def uncounted(self) -> Cache:
        """The same cache (folder, warnings) with its own hit/miss counters: run.json counts the stages' entries only."""
        other = Cache(self.root, self.warnings)
        other.held = self.held
        other._index, other._index_new = self._index, self._index_new
        return other

    def stage_view(self) -> Cache:
        """The same cache (folder, file-hash index) for one stage of stages that run concurrently: its own counters,
        its own warnings, printed only when `release`d (the run releases its stages in the study's order)."""
        other = self.uncounted()
        other.warnings, other.held = [], []
        return other

    def release(self, view: Cache) -> None:
        """Add a stage_view's counts and warnings to this cache's and print its warnings."""
        self.hits += view.hits
        self.misses += view.misses
        self.warnings.extend(view.warnings)
        for code, message in view.held or ():
            print_warning(code, message)

    def warn(self, code: str, message: str) -> None:
        """Print a warning at once (also under --quiet; a stage_view's when it is released) and keep it for run.json."""
        self.warnings.append(f"{code}: {message}")
        if self.held is not None:
            self.held.append((code, message))
        else:
            print_warning(code, message)

    def file_hash(self, path: str | os.PathLike) -> str:
        """file_hash(path) (the content's SHA-256: what cache keys are made of), remembered across runs in a
        persistent index <root>/file-hashes.json keyed by the path and its stat signature (size, mtime_ns,
        ctime_ns, inode, device; for a folder, of every file in it). A file whose signature changed is hashed
        again; entries younger than 2 s are not stored (timestamp granularity), so a changed file is always
        detected. A warm re-run then reads no image at all. The index file carries its own SHA-256: a damaged
        index is dropped whole (W671) and rebuilt, so it can cost hashing time but never give a wrong digest."""
        import time

        sig, newest = stat_signature(path)
        name = os.path.abspath(path)          # the signature's inode/device identify the file behind any link
        if self._index is None:
            self._index = self._read_index(warn=True)
        hit = self._index.get(name)
        if hit is not None and hit[0] == sig:
            return hit[1]
        digest = file_hash(path)
        if newest < time.time_ns() - self.settle_ns and stat_signature(path)[0] == sig:
            self._index[name] = self._index_new[name] = [sig, digest]
        return digest

    def _read_index(self, warn: bool = False) -> dict[str, list]:
        p = self.root / HASH_INDEX
        try:
            data = p.read_bytes()
        except OSError:
            return {}
        try:
            index = json.loads(_body(data))
            if not isinstance(index, dict) or not all(_index_row(v) for v in index.values()):
                raise Corrupt("not a file-hash index")
        except (Corrupt, ValueError) as e:
            if warn:
                self.warn("W671", f"the file-hash index {p} failed verification ({e}); it is rebuilt (files are hashed again)")
            return {}
        return index

    def flush(self) -> None:
        """Write the new file-hash index entries (merged with what is on disk; atomically)."""
        if not self._index_new:
            return
        index = self._read_index()
        index.update(self._index_new)
        body = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
        try:
            atomic_write_bytes(self.root / HASH_INDEX, _document(body))
        except OSError:          # only an accelerator: a read-only or full disk costs the next run some hashing
            return
        self._index_new.clear()

    def _path(self, k: str) -> Path:
        return self.root / k[:2] / f"{k}.json"

    def _blob_path(self, h: str) -> Path:
        return self.root / "blobs" / h[:2] / h

    def _read_blob(self, h: str) -> bytes:
        if not (isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)):
            raise Corrupt("a blob reference is not a SHA-256")
        try:
            data = self._blob_path(h).read_bytes()
        except OSError as e:
            raise Corrupt(f"blob {h[:12]}… is unreadable ({e.strerror or e})") from None
        if self.verify and _sha(data) != h:
            raise Corrupt(f"blob {h[:12]}…'s SHA-256 differs from its name")
        return data

    def get(self, k: str, default=None):
        """The value stored under `k`, every byte checked against its SHA-256; `default` on a miss. A damaged
        entry (W670) is removed and counts as a miss: the caller recomputes and puts the value again."""
        p = self._path(k)
        try:
            data = p.read_bytes()
        except OSError:
            self.misses += 1
            return default
        try:
            value = json.loads(_body(data, self.verify), object_hook=_decoder(self._read_blob))
        except Exception as e:  # noqa: BLE001 -- Corrupt, or bytes that pass no reader: never served, recomputed
            why = str(e) if isinstance(e, Corrupt) else f"it does not decode: {type(e).__name__}: {e}"
            self.warn("W670", f"cache entry {p} failed verification ({why}); the stage is recomputed and the entry rewritten")
            try:
                p.unlink()
            except OSError:
                pass
            self.misses += 1
            return default
        self.hits += 1
        return value

    def has(self, k: str) -> bool:
        return self._path(k).exists()

    def put(self, k: str, value) -> None:
        """Store `value` (TypeError, before anything is written, for a value the codec cannot encode exactly).
        Blobs first, then the entry that refers to them: a killed run leaves no entry with a missing blob."""
        blobs: dict[str, bytes] = {}
        body = json.dumps(encode(value, blobs), separators=(",", ":")).encode()
        for h, data in blobs.items():
            atomic_write_bytes(self._blob_path(h), data)
        atomic_write_bytes(self._path(k), _document(body))


def print_warning(code: str, message: str) -> None:
    import sys

    print(f"radlang: warning[{code}]: {message}", file=sys.stderr)


def _index_row(v) -> bool:
    return (type(v) is list and len(v) == 2 and type(v[0]) is list and type(v[1]) is str and len(v[1]) == 64)
