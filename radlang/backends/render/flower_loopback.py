"""A Flower app of `radlang render --target flower --site-data` deployed on this machine: one `flower-superlink` and one
`flower-supernode` per site on 127.0.0.1 (insecure mode, loopback only), then `flwr run`. Each SuperNode's node config
names only its own site's files (and an audit log of every file its ClientApp opens). Every process started here,
with the Flower processes they spawn, is stopped on the way out; every wait is bounded.

Used by the deployment test (tests/federated/test_flower_loopback.py) and benchmarks/bench_federated.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

TOOLS = ("flower-superlink", "flower-supernode", "flwr")
MARK = "RADLANG_LOOPBACK"     # the environment variable that marks every process of one deployment


class LoopbackError(Exception):
    """A deployment that could not run: `.code` (E753 unreachable SuperLink, E754 a run that failed or timed out)."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def tool(name: str) -> str | None:
    """The Flower executable: beside this Python first (a virtual environment), then on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def loopback_available() -> tuple[bool, str]:
    missing = [t for t in TOOLS if tool(t) is None]
    if missing:
        return False, f"the Flower executables are not installed: {', '.join(missing)} (pip install 'radlang[flower]')"
    return True, ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, token: str) -> dict:
    env = dict(os.environ)
    env[MARK] = token
    env["FLWR_HOME"] = str(home)
    env["PATH"] = str(Path(tool("flwr")).parent) + os.pathsep + env.get("PATH", "")   # the SuperLink starts flower-superexec
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _marked(token: str):
    """The live processes that carry this deployment's mark in their environment (children inherit it, even those that
    Flower starts detached, or that lost their parent)."""
    import psutil

    out = []
    for p in psutil.process_iter():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get(MARK) == token:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def stop(procs, token: str, timeout: float = 15.0) -> None:
    """Terminate the processes started here and every process they started (found by the mark in their environment),
    then kill what is left; repeated until none is left or `timeout` has passed twice."""
    import psutil

    deadline = time.monotonic() + 2 * timeout
    while True:
        tree = _marked(token)
        if not tree or time.monotonic() > deadline:
            break
        for p in tree:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=timeout)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=timeout)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass


def start_supernode(superlink: str, port: int, node_config: str, log: Path, env: dict, retries: int = 3, wait: float = 20.0):
    """One SuperNode that gives up after `retries` reconnection attempts or `wait` seconds without the SuperLink."""
    cmd = [tool("flower-supernode"), "--insecure", "--superlink", superlink, "--host", "127.0.0.1", "--port", str(port),
           "--max-retries", str(retries), "--max-wait-time", str(wait), "--node-config", node_config]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)


def wait_listening(port: int, proc, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def _flwr(args, env, cwd, timeout=60.0) -> str:
    try:
        proc = subprocess.run([tool("flwr"), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout + proc.stderr


def _submit(app: Path, out: Path, message_timeout: float, env, cwd) -> str:
    """Submit the app to the SuperLink; its run id."""
    said = _flwr(["run", str(app), "loopback", "--format", "json", "--run-config", f'out="{out}" timeout={float(message_timeout)}'],
                 env, cwd, timeout=120)
    try:
        run = json.loads(said[said.index("{"): said.rindex("}") + 1])
    except ValueError:
        run = {}
    if not run.get("run-id"):
        raise LoopbackError("E754", f"`flwr run` did not start a run: {said[-2000:]}")
    return str(run["run-id"])


def _status(run_id: str, env, cwd) -> str:
    said = _flwr(["ls", "loopback", "--run-id", run_id, "--format", "json"], env, cwd)
    try:
        runs = json.loads(said[said.index("{"): said.rindex("}") + 1]).get("runs", [])
    except ValueError:
        return ""
    return str(runs[0].get("status", "")) if runs else ""


def _log_tails(tmp: Path, n: int = 1200) -> str:
    return "".join(f"\n--- {p.name}:\n{p.read_text(errors='replace')[-n:]}" for p in sorted(tmp.glob("*.log")) if not p.name.startswith("audit-"))


@contextmanager
def processes(token: str):
    """A list to which started processes are appended; they and theirs are stopped when the block ends."""
    procs = []
    try:
        yield procs
    finally:
        stop(procs, token)


def run_loopback(app: Path, timeout: float = 300.0, superlink_port: int | None = None, retries: int = 3,
                 message_timeout: float = 600.0) -> dict:
    """Deploy the app folder (with its sites/<site>/ data) on loopback and run it once.
    Returns {"result": the ServerApp's JSON, "audit": {site: [opened paths]}, "seconds": wall time of `flwr run`}.
    `superlink_port`: connect the SuperNodes to this port instead of starting a SuperLink (to test an unreachable one);
    `message_timeout`: how long the ServerApp waits for a round's replies (each message starts a ClientApp process, which
    imports torch: on a busy machine that alone can take minutes)."""
    app = Path(app).resolve()
    sites = sorted(p.name for p in (app / "sites").iterdir() if (p / "train.csv").exists())
    token = f"{os.getpid()}-{time.time_ns()}"
    with tempfile.TemporaryDirectory(prefix="radlang-loopback-") as tmp, processes(token) as procs:
        tmp = Path(tmp)
        home = tmp / "flwr-home"
        home.mkdir()
        env = _env(home, token)
        port = superlink_port or free_port()
        if superlink_port is None:
            sl = subprocess.Popen([tool("flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=(tmp / "superlink.log").open("w"), stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
            procs.append(sl)
            if not wait_listening(port, sl, 60):
                raise LoopbackError("E754", f"the SuperLink did not start on 127.0.0.1:{port}: "
                                            + (tmp / "superlink.log").read_text(errors="replace")[-1500:])
        (home / "config.toml").write_text(f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
                                          f'address = "127.0.0.1:{port}"\ninsecure = true\n')
        nodes = {}
        for site in sites:
            cfg = [f'data-path="{app / "sites" / site / "train.csv"}"', f'audit-log="{tmp / f"audit-{site}.log"}"', f'site="{site}"']
            if (app / "sites" / site / "test.csv").exists():
                cfg.append(f'test-path="{app / "sites" / site / "test.csv"}"')
            nodes[site] = start_supernode(f"127.0.0.1:{port}", free_port(), " ".join(cfg), tmp / f"supernode-{site}.log", env, retries)
            procs.append(nodes[site])
        if superlink_port is not None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and any(p.poll() is None for p in nodes.values()):
                time.sleep(0.5)
            gave_up = [s for s, p in nodes.items() if p.poll() is not None]
            raise LoopbackError("E753", f"the SuperLink at 127.0.0.1:{port} cannot be reached: the SuperNode(s) of site(s) "
                                        f"{', '.join(f'`{s}`' for s in gave_up) or 'none'} gave up after {retries} retries"
                                        + ("" if len(gave_up) == len(nodes) else " (the others did not within 120 s)"))
        out = tmp / "result.json"
        t0 = time.monotonic()
        run_id = _submit(app, out, message_timeout, env, tmp)
        status = ""
        while not out.exists():
            if time.monotonic() - t0 > timeout:
                raise LoopbackError("E754", f"the Flower run {run_id} did not finish within {timeout:g} s (status {status!r})" + _log_tails(tmp))
            time.sleep(1.0)
            status = _status(run_id, env, tmp)
            if status.startswith("finished") and not out.exists():
                time.sleep(2.0)                     # the result is written just before the run finishes
                if not out.exists():
                    log = _flwr(["log", run_id, "loopback", "--show"], env, tmp)
                    raise LoopbackError("E754", f"the Flower run {run_id} ended ({status}) without a result: {log[-2500:]}" + _log_tails(tmp))
        seconds = time.monotonic() - t0
        audit = {s: sorted(set((tmp / f"audit-{s}.log").read_text().split("\n")) - {""}) if (tmp / f"audit-{s}.log").exists() else []
                 for s in sites}
        return {"result": json.loads(out.read_text()), "audit": audit, "seconds": seconds}
