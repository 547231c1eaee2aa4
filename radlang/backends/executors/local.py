"""The local executor: a process pool on this machine (serial in this process for one worker), whose workers are
forked from a fork server on Linux (see `_fork_server`) and spawned elsewhere. Workers run one thread each and die
with the run (radlang/backends/executors/worker.py).

Every call into the pool (`submit`, which may start a worker process) is made by the thread that owns the pool:
the kernel's parent-death signal of a worker is tied to the *thread* that started it, not to the process. When
stages run concurrently (radlang/backends/stages.py), the run's main thread owns the pool and `serve`s: a stage
thread's `map` posts its request to the owner and receives the finished futures through its own queue; the owner
submits every task, keeping each map's queue short (largest cases first, memory flat)."""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import TYPE_CHECKING

from radlang.backends.executors import MapExecutor, largest_first
from radlang.backends.executors.worker import init_local_worker

if TYPE_CHECKING:           # imported when the pool starts: a run whose every case is cached never needs it
    from concurrent.futures import ProcessPoolExecutor


class SerialExecutor(MapExecutor):
    workers = 1
    in_process = True

    def map(self, fn, items, weights=None):
        for i in largest_first(items, weights):
            yield i, fn(items[i])


class _Job:
    """One `map` call: its items in submission order, the futures in flight, and the queue its results go to."""

    def __init__(self, fn, items, order):
        self.fn, self.items, self.order = fn, items, iter(order)
        self.pending: dict = {}              # future -> item index
        self.results: queue.SimpleQueue = queue.SimpleQueue()    # (index, finished future)
        self.left = len(items)               # results not yet taken by the caller
        self.closed = False


class LocalPool(MapExecutor):
    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._thread: threading.Thread | None = None      # the owner: it makes the pool and makes every submit
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()   # what the owner must do (from callbacks, other threads)
        self._serving = False
        self._server: int | None = None     # the pid of the fork server this pool started
        self._warming: threading.Thread | None = None   # starting the workers in the background (`start`)

    @property
    def started(self) -> bool:
        return self._pool is not None

    def start(self, imports: tuple[str, ...] = ()):
        """Start the workers' start-up now, so that it overlaps with what the parent does before its first map: the fork
        server begins importing `imports` (FORK_SERVER), or every worker is spawned and imports them (elsewhere)."""
        if self._pool is None:
            pool = self._get(tuple(imports))
            if self._server is None:
                self._spawn_all(pool)
            else:
                # a worker forked from the server waits for the server's imports: a thread waits, not the owner (the
                # workers' parent is the server, so the thread that asks for them does not matter)
                self._warming = threading.Thread(target=self._warm, args=(pool,), name="radlang-pool-start", daemon=True)
                self._warming.start()

    def _spawn_all(self, pool):
        for _ in range(self.workers):       # a submit with no idle worker starts one more, up to `workers`
            pool.submit(os.getpid)

    def _warm(self, pool):
        try:
            self._spawn_all(pool)
        except Exception:  # noqa: BLE001, S110 -- the server was stopped first (a run that closed before its workers were up)
            pass

    def _get(self, imports: tuple[str, ...] = ()):
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            # The kernel's parent-death signal is tied to the thread that started a process: a spawned worker's is
            # the thread that calls submit (ProcessPoolExecutor starts workers there), the fork server's is the thread
            # that starts the server, i.e. the owner. It is armed only when the owner is the main thread, which lives
            # as long as the run; otherwise workers are spawned and fall back on the watchdog thread.
            self._thread = threading.current_thread()
            kernel_signal = self._thread is threading.main_thread()
            server = _fork_server(imports) if kernel_signal and FORK_SERVER else None
            if server is not None:
                context, self._server = server
                parent = self._server
            else:
                import multiprocessing as mp

                context, parent = mp.get_context("spawn"), os.getpid()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=init_local_worker,
                                             initargs=(parent, kernel_signal, imports))
        elif threading.current_thread() is not self._thread:
            raise RuntimeError("LocalPool's pool is used from another thread than the one that started it")
        return self._pool

    # ---- run in the owner thread
    def _submit_next(self, job: _Job):
        if job.closed:
            return
        i = next(job.order, None)
        if i is None:
            return
        try:
            fut = self._get().submit(job.fn, job.items[i])
        except Exception as e:  # noqa: BLE001 -- a broken or closed pool: the caller's next result raises it
            from concurrent.futures import Future

            failed = Future()
            failed.set_exception(e)
            job.results.put((i, failed))
            return
        job.pending[fut] = i
        fut.add_done_callback(lambda f: self._inbox.put(("done", job, f)))

    def _start(self, job: _Job):
        for _ in range(self.workers * 2):        # keep the queue short: the largest cases start first
            self._submit_next(job)

    def _step(self, block: bool = True) -> None:
        """Carry out one request from the inbox (block until there is one)."""
        try:
            what, job, fut = self._inbox.get(block)
        except queue.Empty:
            return
        if what == "map":
            self._start(job)
        elif what == "done":
            i = job.pending.pop(fut, None)
            if i is not None and not job.closed:
                job.results.put((i, fut))
                self._submit_next(job)
        elif what == "close":
            self._cancel(job)

    def _cancel(self, job: _Job):
        job.closed = True
        for fut in list(job.pending):
            fut.cancel()

    def serve(self, done: threading.Event) -> None:
        self._serving = True
        if self._thread is None:
            self._thread = threading.current_thread()
        try:
            while not done.is_set():
                self._step()
        finally:
            self._serving = False

    def notify(self) -> None:
        self._inbox.put(("wake", None, None))

    # ---- run in any thread
    def map(self, fn, items, weights=None):
        if not items:
            return
        job = _Job(fn, items, largest_first(items, weights))
        here = self._thread is None or threading.current_thread() is self._thread
        if here:
            self._start(job)
        elif self._serving:
            self._inbox.put(("map", job, None))
        else:
            raise RuntimeError("LocalPool.map is called from another thread than the one that owns the pool, and that "
                               "thread is not serving it")
        try:
            while job.left:
                while here and job.results.empty():
                    self._step()
                i, fut = job.results.get()
                job.left -= 1
                yield i, fut.result()
        finally:
            if job.left:
                if here:
                    self._cancel(job)
                else:
                    self._inbox.put(("close", job, None))

    def close(self):
        if self._warming is not None:
            if self._warming.is_alive() and self._server is not None:   # the server is still importing: no worker yet
                _stop_fork_server(self._server)
                self._server = None
            self._warming.join()
            self._warming = None
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._server is not None:
            _stop_fork_server(self._server)
            self._server = None


FORK_SERVER = sys.platform.startswith("linux")


def _fork_server(imports: tuple[str, ...]):
    """(multiprocessing's forkserver context, the server's pid), the server started now with `imports` preloaded; None
    when this process has a fork server already, another library's (multiprocessing keeps one per process): its
    imports and its life are not the pool's to choose, so the pool spawns its workers.

    On Linux the workers are forked from a fork server: one process that imports radlang's worker set-up
    (radlang/backends/executors/server.py) and `imports` once, and forks a worker, with them imported, for each one the
    pool starts. A spawned worker starts Python and imports them itself (~0.3 CPU seconds for PyRadiomics, ~1.1 for
    scikit-learn's forests, each worker, while the run reads its cohort); a server forks in milliseconds. The server is
    single-threaded, which makes forking safe, as forking the run (whose stages run in threads) is not. It starts in the
    background: the pool's first worker waits for its imports."""
    import multiprocessing as mp
    from multiprocessing import forkserver

    if forkserver._forkserver._forkserver_pid is not None:
        return None
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["radlang.backends.executors.server", *imports])
    forkserver.ensure_running()
    return context, forkserver._forkserver._forkserver_pid


def _stop_fork_server(pid: int):
    """Stop the fork server `pid`, the pool's own. Its workers are gone by now (the pool was shut down) and it holds
    nothing: it is killed, not asked (a server still importing would finish its imports first)."""
    import signal
    from multiprocessing import forkserver

    server = forkserver._forkserver
    running = server._forkserver_pid
    if running != pid:
        return
    try:
        os.kill(running, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server._stop()


def make_local(workers: int | None) -> MapExecutor:
    """`workers` processes (None: one per core); one worker runs in this process."""
    n = workers or os.cpu_count() or 1
    return SerialExecutor() if n == 1 else LocalPool(n)
