"""How the local pool's (and the Dask executor's) workers start and end: started ahead of the work, each imports the
modules it is given; a worker leaves without tearing its interpreter down, after flushing its output; and skops is
imported without torch, trusting the same types. (A cold run starting the pool: tests/extraction/test_warm_rerun.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from radlang.backends.executors.local import LocalPool

REPO = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False)


def _imported(names):
    import sys as s

    return [n for n in names if n in s.modules]


def test_started_pool_imports_the_declared_modules_in_every_worker():
    pool = LocalPool(2)
    try:
        pool.start(("colorsys", "not_a_module_radlang_test"))   # one that cannot be imported is left to the task
        assert pool._pool is not None
        got = dict(pool.map(_imported, [("colorsys", "wave")] * 4))
        assert got == {i: ["colorsys"] for i in range(4)}
    finally:
        pool.close()


def test_worker_exit_flushes_and_skips_the_teardown():
    r = _python("""
import atexit, sys
from radlang.backends.executors.worker import exit_without_teardown

class Freed:
    def __del__(self):
        sys.stdout.write("torn down")

kept = Freed()
exit_without_teardown()
atexit.register(lambda: sys.stdout.write("later handler;"))   # registered after: runs first
sys.stdout.write("buffered;")
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "buffered;later handler;"


def test_skops_without_torch_trusts_the_same_types():
    probe = """
import json, sys
{imp}
import skops.io._trusted_types as T
print(json.dumps({{"torch": "torch" in sys.modules, "dask": "dask.array" in sys.modules,
                   "types": {{k: sorted(map(str, v)) for k, v in vars(T).items() if k.isupper() and isinstance(v, list)}}}}))
"""
    ours = _python(probe.format(imp="from radlang.ops.fold_engine import skops_io; skops_io()"))
    plain = _python(probe.format(imp="import skops.io"))
    assert ours.returncode == 0 and plain.returncode == 0, ours.stderr + plain.stderr
    a, b = json.loads(ours.stdout), json.loads(plain.stdout)
    assert not a["torch"] and not a["dask"]
    assert a["types"] == b["types"] and len(a["types"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100


def test_dask_workers_import_the_declared_modules_before_the_map():
    """`start` on a LocalCluster still starting, then on one already up: every task, on either worker, finds the
    modules imported; a map's items, grouped into tasks, each come back once under their own index."""
    import pytest

    pytest.importorskip("distributed")
    from radlang.backends.executors.dask import DaskExecutor

    ex = DaskExecutor(workers=2)
    try:
        ex.start(("colorsys", "not_a_module_radlang_test"))
        got = dict(ex.map(_imported, [("colorsys", "wave")] * 20))
        assert got == {i: ["colorsys"] for i in range(20)}
        ex.start(("wave",))
        got = dict(ex.map(_imported, [("colorsys", "wave")] * 20, weights=range(20)))
        assert got == {i: ["colorsys", "wave"] for i in range(20)}
    finally:
        ex.close()


def _parent_pid(_):
    return os.getppid()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_linux_pool_workers_are_forked_from_its_server_which_ends_with_the_pool():
    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("the fork server is used on Linux only")
    pool = LocalPool(2)
    try:
        pool.start(("colorsys",))
        server = pool._server
        assert server is not None and server != os.getpid()
        assert set(dict(pool.map(_parent_pid, list(range(6)))).values()) == {server}
        assert dict(pool.map(_imported, [("colorsys",)] * 2)) == {0: ["colorsys"], 1: ["colorsys"]}
    finally:
        pool.close()
    assert not _alive(server)


def test_a_pool_closed_before_its_server_is_up_leaves_no_process():
    """A run that ends before its workers are up (a tiny study) stops the server in the middle of its imports."""
    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("the fork server is used on Linux only")
    pool = LocalPool(2)
    pool.start(("sklearn.ensemble", "pandas"))
    server = pool._server
    pool.close()
    assert not _alive(server)
    assert str(server) not in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()


class _Recorder:
    """An executor whose tasks run elsewhere (not in process), recording what each map is given."""

    def __init__(self, workers):
        from radlang.backends.executors import MapExecutor

        class Recording(MapExecutor):
            in_process = False

            def map(inner, fn, items, weights=None):
                self.tasks.append(len(items))
                for i, item in enumerate(items):
                    yield i, fn(item)

        self.tasks: list[int] = []
        self.executor = Recording()
        self.executor.workers = workers


def test_map_quick_sends_runs_of_items_and_places_each_result_under_its_index():
    for workers, n, tasks in [(2, 11, 4), (2, 4, 4), (3, 25, 6), (2, 1, 1)]:
        rec = _Recorder(workers)
        got = dict(rec.executor.map_quick(abs, [-i for i in range(n)]))
        assert got == {i: i for i in range(n)}
        assert rec.tasks == ([n] if n <= 2 * workers else [tasks])   # one map: `tasks` runs, or the items themselves
    pool = LocalPool(2)
    try:
        assert dict(pool.map_quick(abs, [-i for i in range(9)])) == {i: i for i in range(9)}
    finally:
        pool.close()


def test_a_fork_server_of_another_library_is_left_alone_and_the_pool_spawns():
    """multiprocessing keeps one fork server per process: one that radlang did not start keeps its imports and its
    life, and the pool's workers are spawned (their parent is this process)."""
    import multiprocessing as mp
    from multiprocessing import forkserver

    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("the fork server is used on Linux only")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([])
    forkserver.ensure_running()
    theirs = forkserver._forkserver._forkserver_pid
    pool = LocalPool(2)
    try:
        pool.start(("colorsys",))
        assert pool._server is None
        assert set(dict(pool.map(_parent_pid, list(range(4)))).values()) == {os.getpid()}
    finally:
        pool.close()
        assert _alive(theirs)
        forkserver._forkserver._stop()
