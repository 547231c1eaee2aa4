"""One `radlang run` per output folder.

The run holds an exclusive `filelock` lock on `<out>/.radlang.lock` for its whole length and records who holds it
(pid, host, spec, start time) in the sidecar `<out>/.radlang.lock.json`. A second run into the same folder stops at
once with E710 naming the holder (or, with `--wait`, waits for it). The operating system releases the lock when its
process dies, even by `kill -9`; the sidecar then stays behind, so the next run knows a run died there and says
whose (W673) before it takes the folder over. Nothing of the dead run can be served wrongly: cache entries are
whole or absent (atomic writes) and verified on read."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Self

LOCK = ".radlang.lock"
HOLDER = ".radlang.lock.json"


class OutDirInUse(Exception):
    """Another live run holds the output folder."""

    def __init__(self, out: Path, holder: dict | None):
        self.out, self.holder = out, holder
        super().__init__(f"the output folder `{out}` is in use by another radlang run ({describe(holder)})")


def describe(holder: dict | None) -> str:
    if not holder:
        return "holder unknown"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, spec `{holder.get('spec')}`, "
            f"started {holder.get('started')}")


def _read_holder(out: Path, patience_s: float = 0.0) -> dict | None:
    """The sidecar's content; a holder that has just taken the lock may not have written it yet: wait a little."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            data = json.loads((out / HOLDER).read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


class OutDirLock:
    """`with OutDirLock(out, spec, wait=False, on_wait=print) as lock:` -- the folder is this run's inside.
    `lock.dead` is the sidecar of a run that died holding the folder (None when the last run ended normally)."""

    def __init__(self, out: str | os.PathLike, spec: str, wait: bool = False, on_wait=None):
        self.out, self.spec, self.wait, self.on_wait = Path(out), spec, wait, on_wait
        self.dead: dict | None = None
        self._lock = None

    def __enter__(self) -> Self:
        from filelock import FileLock, Timeout

        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.out / LOCK), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            holder = _read_holder(self.out, patience_s=1.0)
            if not self.wait:
                raise OutDirInUse(self.out, holder) from None
            if self.on_wait is not None:
                self.on_wait(f"waiting for the run that holds `{self.out}` ({describe(holder)}) to finish")
            self._lock.acquire(timeout=-1)
        self.dead = _read_holder(self.out)          # left behind: its run died without releasing the folder
        from radlang.backends.cache import atomic_write_text

        atomic_write_text(self.out / HOLDER, json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "spec": self.spec,
             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, sort_keys=True) + "\n")
        return self

    def __exit__(self, *exc) -> bool:
        try:
            (self.out / HOLDER).unlink()
        except OSError:
            pass
        self._lock.release()
        return False
