"""Helpers for the executor tests: run `radlang run` as a subprocess, list the processes a run started, compare
output folders byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TAG = "RADLANG_EXECUTOR_TEST_TAG"      # an environment variable every process the run starts inherits


def cli(*args, tag: str = "", **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env[TAG] = tag
    return subprocess.Popen([sys.executable, "-m", "radlang", "run", *map(str, args), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def tagged(tag: str) -> list[int]:
    """Live processes (zombies excluded) whose environment carries TAG=tag: the run and all it started, wherever
    they were reparented."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{TAG}={tag}".encode() in env and state != "Z":
            found.append(int(d.name))
    return found


def outputs(out: Path, names) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in names}


def rendezvous(job) -> bool:
    """A task (run in a worker process) that announces itself in `folder` by the file `me` and waits for the task
    `other` to do the same: True when it came within `wait_s`. Two tasks both return True only when they ran at the
    same time."""
    import time

    me, other, folder, wait_s = job
    (Path(folder) / me).touch()
    deadline = time.monotonic() + wait_s
    while not (Path(folder) / other).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
