"""The local executor: a process pool of `spawn` workers on this machine (serial in this process for one worker).
Workers run one thread each and die with the run (radlang/backends/executors/worker.py).

Every call into the pool (`submit`, which may start a worker process) is made by the thread that owns the pool:
the kernel's parent-death signal of a worker is tied to the *thread* that started it, not to the process. When
stages run concurrently (radlang/backends/stages.py), the run's main thread owns the pool and `serve`s: a stage
thread's `map` posts its request to the owner and receives the finished futures through its own queue; the owner
submits every task, keeping each map's queue short (largest cases first, memory flat)."""

from __future__ import annotations

import os
import queue
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

    def start(self, imports: tuple[str, ...] = ()):
        """Spawn every worker now (a spawned worker starts Python, imports radlang and then `imports`: ~0.3 s for
        PyRadiomics, more for scikit-learn), so that this overlaps with what the parent does before its first map."""
        if self._pool is None:
            pool = self._get(tuple(imports))
            for _ in range(self.workers):       # a submit with no idle worker spawns one more, up to `workers`
                pool.submit(os.getpid)

    def _get(self, imports: tuple[str, ...] = ()):
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # ProcessPoolExecutor (Python 3.9+, spawn) starts workers in the thread that calls submit, i.e. the owner;
            # the kernel's parent-death signal is armed only when that thread is the main one, which lives as long as
            # the process (other workers fall back on the watchdog thread).
            self._thread = threading.current_thread()
            kernel_signal = self._thread is threading.main_thread()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"), initializer=init_local_worker,
                                             initargs=(os.getpid(), kernel_signal, imports))
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
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def make_local(workers: int | None) -> MapExecutor:
    """`workers` processes (None: one per core); one worker runs in this process."""
    n = workers or os.cpu_count() or 1
    return SerialExecutor() if n == 1 else LocalPool(n)
