"""Where per-case and per-fold tasks run. One interface, `MapExecutor`, as in Hamilton: an executor is given a
picklable module-level function and a list of items and knows nothing about what the function does; modes call
`ctx.executor.map(fn, items)` and place each result by its index, so the order in which tasks finish never
reaches an output. Implementations: `local` (a process pool, serial for one worker) and `dask`
(dask.distributed: a LocalCluster on 127.0.0.1 or a running scheduler at tcp://HOST:PORT)."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from radlang.diagnostics import Diagnostic


class ExecutorError(Exception):
    """The executor cannot be started (a usage problem, E715-E719): raised before anything is written."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.message)


class MapExecutor:
    """`map` yields (index, fn(items[index])) as tasks finish, largest `weights` first; `workers` is how many
    tasks run at once; `in_process` whether tasks run in the calling thread; `close` stops whatever the executor
    started (it is called also when a run fails).

    While stages run concurrently (radlang/backends/stages.py) other threads call `map`, and the run's main thread
    is in `serve(done)` until `done` is set and `notify` is called: an executor that must make its calls from the
    thread that owns it (the local pool) makes them there."""

    workers: int = 1
    in_process: bool = False

    @property
    def started(self) -> bool:
        """The workers are up or starting: a map pays no start-up (the local pool once `start`ed or used; a Dask
        cluster from the start)."""
        return False

    def map(self, fn: Callable, items: list, weights: Iterable[float] | None = None) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def map_quick(self, fn: Callable, items: list) -> Iterator[tuple[int, Any]]:
        """`map` for many tasks of a few milliseconds each (the checks before per-case work): the items go out in
        2 x `workers` runs of consecutive items, one task each, instead of one round trip per item."""
        n = 2 * self.workers
        if self.in_process or len(items) <= n:
            yield from self.map(fn, items)
            return
        bounds = [round(k * len(items) / n) for k in range(n + 1)]
        runs = [range(a, b) for a, b in itertools.pairwise(bounds)]
        for r, results in self.map(functools.partial(run_chunk, fn), [[items[i] for i in run] for run in runs]):
            yield from zip(runs[r], results)

    def serve(self, done: threading.Event) -> None:
        done.wait()

    def notify(self) -> None:
        pass

    def start(self, imports: tuple[str, ...] = ()):
        """Start the workers now, in the background, each importing `imports`, instead of at the first `map` (an
        executor whose workers outlive the run, or that has none, ignores it)."""

    def close(self):
        pass


def run_chunk(fn, items) -> list:
    """One task: `fn` on each of `items`, in turn."""
    return [fn(item) for item in items]


def largest_first(items, weights) -> list[int]:
    if weights is None:
        return list(range(len(items)))
    w = list(weights)
    return sorted(range(len(items)), key=lambda i: (-w[i], i))


def is_scheduler_address(spec: str) -> bool:
    return spec.startswith("tcp://")


def check_spec(spec: str) -> Diagnostic | None:
    """E716 when `spec` names no executor (checked by the CLI before anything runs)."""
    if spec in ("local", "dask") or (is_scheduler_address(spec) and len(spec.split("://", 1)[1]) > 0):
        return None
    return Diagnostic("E716", f"--executor `{spec}`: not an executor; use `local`, `dask` or a scheduler address "
                              "`tcp://HOST:PORT`", hint="`--executor dask` starts 2 local Dask workers (or --workers N)")


def make_executor(spec: str, workers: int | None) -> MapExecutor:
    """`local` (workers=None: one per core), `dask` (a LocalCluster of `workers` or 2 processes, starting in the
    background from now) or a scheduler address (connected now, so that an unreachable one is reported before any
    output)."""
    bad = check_spec(spec)
    if bad is not None:
        raise ExecutorError(bad)
    if spec == "local":
        from radlang.backends.executors.local import make_local

        return make_local(workers)
    try:
        from radlang.backends.executors.dask import DaskExecutor
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in ("dask", "distributed"):
            raise
        raise ExecutorError(Diagnostic("E717", f"--executor {spec}: dask.distributed is not installed",
                                       hint="pip install 'dask[distributed]' (in radlang's `science` extra), "
                                            "or use --executor local")) from None

    if spec == "dask":
        return DaskExecutor(workers=workers or 2)
    return DaskExecutor(address=spec)
