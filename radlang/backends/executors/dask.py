"""The Dask executor (dask.distributed). `--executor dask` starts a LocalCluster bound to 127.0.0.1 (one process
per worker, forked from the run on Linux (see FORK), one thread each, no dashboard, no memory limit: as the local pool) when the run starts and closes it at
the end of the run (its workers are killed, not stopped gracefully: see `_kill_workers`); `--executor
tcp://HOST:PORT` connects to a running scheduler, whose workers must have the same radlang (and the science stack)
installed: tasks name radlang's module-level functions, which workers import.
Results are placed by index, as with the local pool, so outputs are byte-identical."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading

import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed

from radlang.backends.executors import ExecutorError, MapExecutor, largest_first, run_chunk
from radlang.backends.executors.worker import THREAD_VARS, die_with_parent, import_all, limit_threads, radlang_version
from radlang.diagnostics import Diagnostic

CONNECT_S = 5          # seconds to wait for a scheduler (and for one of its workers)

# The LocalCluster's housekeeping, which serves only a dashboard (there is none): each worker's statistical profiler
# (100 samples a second), the event-loop health tick of every server (50 a second: the scheduler, the nannies and the
# client share this process), the system and memory monitors (there is no memory limit). Idle, a 2-worker cluster
# costs ~0.07 CPU seconds per second with the defaults, ~0.01 with these: on a 2-core machine that is several percent
# of an extraction's time (benchmarks/bench_dask.py).
QUIET = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
         "distributed.admin.system-monitor.interval": "5s", "distributed.worker.memory.monitor-interval": "1s"}


# On Linux the nannies start their workers by forking this process (distributed's default is spawn; macOS's system
# libraries are not safe to use in a forked child): a forked worker has distributed and radlang imported already. A
# spawned one starts Python and imports them (and the parent's main module) again, 0.5-0.6 CPU seconds each, which is
# most of what a Dask run costs on top of the local pool. The cluster is started in the thread that makes the executor
# (DaskExecutor.__init__), before the run's first stage: a fork while another thread is importing a module gives the
# worker that module half imported.
FORK = {"distributed.worker.multiprocessing-method": "fork"} if sys.platform.startswith("linux") else {}


def guided_chunks(order: list[int], workers: int) -> list[list[int]]:
    """`order` cut into consecutive chunks, each a share 1/(2 * workers) of the items not yet given out (guided
    self-scheduling, Polychronopoulos & Kuck 1987): large chunks first, single items at the end. Each task is a round
    trip through the scheduler (3-4 ms of CPU between this process and the workers, ~3% of an extraction of 40^3-voxel
    cases): 24 items on 2 workers are 12 tasks; the single items at the end still let a worker that finishes early
    take the next one, as they would one by one."""
    chunks, start = [], 0
    while start < len(order):
        size = max(1, (len(order) - start) // (2 * workers))
        chunks.append(order[start:start + size])
        start += size
    return chunks


class RadlangWorker(WorkerPlugin):
    """One thread per worker; the workers of a LocalCluster this run started also die with the run."""

    def __init__(self, parent_pid: int | None):
        self.parent_pid = parent_pid

    def setup(self, worker):
        limit_threads()
        if self.parent_pid is not None:
            # The worker process was started by this run's in-process nanny from a thread that lives as long as the
            # worker (distributed's AsyncProcess watch thread), so the kernel's parent-death signal is safe to arm.
            die_with_parent(self.parent_pid, kernel_signal=True)


class DaskExecutor(MapExecutor):
    def __init__(self, workers: int | None = None, address: str | None = None):
        self._cluster = None
        self._client = None
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._scratch: str | None = None        # the workers' local directory (a LocalCluster's; removed at close)
        self._lock = threading.Lock()           # orders `start` and the background start's hand-over of the client
        self._imports: tuple[str, ...] = ()     # what `start` asked the workers to import
        self._up = False                        # the workers are up: `start` asks them itself
        self._preloads: list = []               # the import tasks (held: a released future's task is forgotten)
        self.workers = workers or 2
        if address is not None:
            self._connect(address)
        else:
            # The LocalCluster starts now, in this thread (0.2-0.7 s), so that its workers are forked while no other
            # thread of this process is in the middle of anything (an import, a write); the client connects, and the
            # workers import what `start` asks for, in the background while the first stages run.
            self._start_cluster()
            self._starting = threading.Thread(target=self._connect_cluster, name="radlang-dask-start", daemon=True)
            self._starting.start()

    @property
    def started(self) -> bool:
        return True

    def _connect(self, address):
        try:
            client = Client(address, timeout=CONNECT_S, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise ExecutorError(Diagnostic("E715", f"--executor {address}: cannot reach a Dask scheduler at `{address}` "
                                                   f"within {CONNECT_S}s ({type(e).__name__}); nothing was run or written",
                                           hint="start one (`dask scheduler` and `dask worker ADDRESS` on machines with "
                                                "radlang installed), or use --executor dask for workers on this machine")) from None
        try:
            client.wait_for_workers(1, timeout=CONNECT_S)
        except (OSError, TimeoutError):
            client.close()
            raise ExecutorError(Diagnostic("E718", f"--executor {address}: the Dask scheduler at `{address}` has no workers "
                                                   f"(none joined within {CONNECT_S}s); nothing was run or written",
                                           hint="start workers with `dask worker ADDRESS` on machines with radlang installed")) from None
        try:
            versions = client.run(radlang_version)
        except Exception as e:  # noqa: BLE001 -- raised on a worker: radlang (or a module it needs) cannot be imported there
            client.close()
            raise ExecutorError(Diagnostic("E719", f"--executor {address}: radlang cannot be imported on the workers of "
                                                   f"`{address}` ({type(e).__name__}: {e})",
                                           hint="install the same radlang, with its `science` extra, on every worker")) from None
        from radlang import __version__

        other = sorted({v for v in versions.values() if v != __version__})
        if other:
            client.close()
            raise ExecutorError(Diagnostic("E719", f"--executor {address}: the workers of `{address}` run radlang "
                                                   f"{', '.join(other)}, this run {__version__}",
                                           hint="install the same radlang, with its `science` extra, on every worker"))
        client.register_plugin(RadlangWorker(None), name="radlang-worker")
        self._client = client
        self._up = True
        self.workers = max(1, sum(client.nthreads().values()))

    def _start_cluster(self):
        # the workers' scratch folder is the run's own: killed workers (see close) leave nothing in the shared one
        self._scratch = tempfile.mkdtemp(prefix="radlang-dask-")
        try:
            with dask.config.set({**QUIET, **FORK}):  # read when the scheduler, nannies and workers start (workers get a copy)
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                             host="127.0.0.1", dashboard_address=None, env=dict.fromkeys(THREAD_VARS, "1"),
                                             memory_limit=0, silence_logs=logging.ERROR, local_directory=self._scratch,
                                             # its HTTP server (no dashboard) on a free port: the default, 8787, may be
                                             # another cluster's, which makes distributed warn on stderr
                                             scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        except BaseException:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
            raise

    def _connect_cluster(self):
        try:
            self._client = client = Client(self._cluster, set_as_default=False)
            client.register_plugin(RadlangWorker(os.getpid()), name="radlang-worker")
            with self._lock:
                self._up = True
                imports = self._imports
            self._preload(client, imports)
        except BaseException as e:  # noqa: BLE001 -- re-raised in the run's thread by _get
            self._start_error = e

    def start(self, imports: tuple[str, ...] = ()):
        """Have every worker import `imports` before its first task, as the local pool's workers do, so that this
        overlaps with what the run does before its first map: a LocalCluster still starting asks its workers once they
        are up (in the background start), workers already there are asked now."""
        with self._lock:
            self._imports = tuple(imports)
            up = self._up
        if up:
            self._preload(self._client, self._imports)

    def _preload(self, client, imports):
        """One task per worker, pinned to it and ahead of any map's (whose priorities are at most the map's size)."""
        if imports:
            self._preloads += [client.submit(import_all, imports, workers=[w], allow_other_workers=False,
                                             priority=2**31, pure=False) for w in client.nthreads()]

    def _started(self):
        if self._starting is not None:
            self._starting.join()
            self._starting = None

    def _get(self):
        self._started()
        if self._start_error is not None:
            raise self._start_error
        return self._client

    def map(self, fn, items, weights=None):
        if not items:
            return
        client = self._get()
        order = largest_first(items, weights)
        chunks = guided_chunks(order, self.workers)
        index, futures = {}, []
        for rank, chunk in enumerate(chunks):  # higher priority runs first: the largest cases start first
            fut = client.submit(run_chunk, fn, [items[i] for i in chunk], priority=len(chunks) - rank, pure=False)
            index[fut.key] = chunk
            futures.append(fut)
        finished = False
        try:
            for fut, results in as_completed(futures, loop=client.loop, with_results=True):
                yield from zip(index[fut.key], results)
            finished = True
        finally:
            if not finished:
                client.cancel(futures)

    def _kill_workers(self):
        """SIGKILL the worker processes of the LocalCluster this run started. Their results are all in by the time
        the run closes the executor (or no longer wanted, when it failed): the graceful stop, each worker closing its
        comms and its interpreter while the nanny waits, costs 0.4-3 s, a kill ~0.1 s. Their nannies (in this
        process) are told first that the cluster is shutting down (`close_gracefully`): not to restart them, nor to
        unregister them from the scheduler, which after a kill took 1-1.7 s of the cluster's close (it is ~0.03 s
        now); the cluster's close then joins the processes."""
        for nanny in list(self._cluster.workers.values()):
            nanny.auto_restart = False
            nanny.close_gracefully(reason="radlang run done")
            proc = getattr(getattr(nanny, "process", None), "process", None)     # distributed's AsyncProcess
            if proc is not None and proc.pid is not None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def close(self):
        self._started()
        try:
            if self._cluster is not None:
                self._kill_workers()
            if self._client is not None:
                self._client.close()
        finally:
            self._client = None
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None
