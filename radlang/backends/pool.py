"""The per-case map executor interface: a local process pool now; Dask can plug in later.
No operator knows where it runs."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

if TYPE_CHECKING:           # imported when the pool starts: a run whose every case is cached never needs it
    from concurrent.futures import ProcessPoolExecutor


def _worker_init():
    # One thread per worker for ITK and BLAS, so N workers don't oversubscribe N cores. The libraries read these
    # variables when they are first imported or used (ITK: its global default number of threads), so a worker that
    # only fits models never imports SimpleITK; a library already imported is told directly.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
        os.environ[var] = "1"
    sitk = sys.modules.get("SimpleITK")
    if sitk is not None:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class MapExecutor:
    """init / submit / finalize, as in Hamilton: `map` yields (index, result) as tasks finish."""

    def map(self, fn: Callable, items: list, weights: Iterable[float] | None = None) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def close(self):
        pass


class SerialExecutor(MapExecutor):
    def map(self, fn, items, weights=None):
        order = _largest_first(items, weights)
        for i in order:
            yield i, fn(items[i])


class LocalPool(MapExecutor):
    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def _get(self):
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"), initializer=_worker_init)
        return self._pool

    def map(self, fn, items, weights=None):
        if not items:
            return
        order = _largest_first(items, weights)
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
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                yield i, fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending[pool.submit(fn, items[nxt])] = nxt

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _largest_first(items, weights):
    if weights is None:
        return list(range(len(items)))
    w = list(weights)
    return sorted(range(len(items)), key=lambda i: (-w[i], i))


def make_executor(workers: int | None) -> MapExecutor:
    if workers == 1:
        return SerialExecutor()
    return LocalPool(workers)
