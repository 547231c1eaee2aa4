"""The local executor: a process pool of `spawn` workers on this machine (serial in this process for one worker).
Workers run one thread each and die with the run (radlang/backends/executors/worker.py)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from radlang.backends.executors import MapExecutor, largest_first
from radlang.backends.executors.worker import init_local_worker

if TYPE_CHECKING:           # imported when the pool starts: a run whose every case is cached never needs it
    from concurrent.futures import ProcessPoolExecutor


class SerialExecutor(MapExecutor):
    workers = 1

    def map(self, fn, items, weights=None):
        for i in largest_first(items, weights):
            yield i, fn(items[i])


class LocalPool(MapExecutor):
    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._thread: threading.Thread | None = None

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

            # ProcessPoolExecutor (Python 3.9+, spawn) starts workers in the thread that calls submit, i.e. the thread
            # that made the pool (map checks it): the kernel's parent-death signal is tied to that thread, so it is
            # armed only when that thread is the main one, which lives as long as the process.
            self._thread = threading.current_thread()
            kernel_signal = self._thread is threading.main_thread()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"), initializer=init_local_worker,
                                             initargs=(os.getpid(), kernel_signal, imports))
        elif threading.current_thread() is not self._thread:
            raise RuntimeError("LocalPool.map is called from another thread than the one that started the pool")
        return self._pool

    def map(self, fn, items, weights=None):
        if not items:
            return
        order = largest_first(items, weights)
        from concurrent.futures import FIRST_COMPLETED, wait

        pool = self._get()
        pending = {}
        it = iter(order)
        # keep the queue short so the largest cases start first and memory stays flat
        for _ in range(self.workers * 2):
            i = next(it, None)
            if i is None:
                break
            pending[pool.submit(fn, items[i])] = i
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    yield i, fut.result()
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[pool.submit(fn, items[nxt])] = nxt
        finally:
            for fut in pending:
                fut.cancel()

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def make_local(workers: int | None) -> MapExecutor:
    """`workers` processes (None: one per core); one worker runs in this process."""
    n = workers or os.cpu_count() or 1
    return SerialExecutor() if n == 1 else LocalPool(n)
