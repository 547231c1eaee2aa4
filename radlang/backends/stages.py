"""Independent stages run concurrently (`radlang run` with more than one worker).

Each stage runs in a thread of its own as soon as every stage it reads is done. Operators use process-wide state
(torch's and NumPy's global generators, pyplot, warning filters, torch's thread count), so stage code in this process
still runs one stage at a time: a stage holds the run's *turn* while its own code runs and lets go of it only while
it waits on the executor (`ctx.executor.map`, for an executor whose tasks run in other processes). While one stage's
cases or folds are in the workers, another stage runs its own code or puts its tasks into the workers too: two
cohorts' extractions, the evaluations of several models on the same features.

The outputs are those of the serial run, byte for byte: every result is placed by name or by index, never by
completion order; what a stage adds to the run's lists (warnings, summary lines, excluded cases, cache counts) is
kept per stage and added, and its warnings printed, in the study's order once every earlier stage is done. When a
stage fails, the stages before it in the study's order still run (so that the error is the one a serial run stops
at), no later stage starts, later stages that are running stop at their next task, and the earliest error is
raised.

The local process pool is owned by the run's main thread (a worker's parent-death signal is tied to the thread that
started it): the main thread `serve`s the executor while the stages run, radlang/backends/executors/local.py."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from radlang import registry
from radlang.backends.artefacts import write_stage_table
from radlang.backends.executors import MapExecutor


class StageCancelled(Exception):
    """Raised in a running stage whose result can no longer be used: an earlier stage (in the study's order) failed."""


def run_stage(ctx, stage) -> None:
    """One stage, by its operator's own run-time code; its value in ctx.results, its table, key and time."""
    op = registry.get(stage.op)
    t0 = time.perf_counter()
    ctx.results[stage.name] = op.run(stage, ctx)
    write_stage_table(ctx, stage.name, ctx.results[stage.name])
    ctx.keys.setdefault(stage.name, ctx.stage_key(stage))
    ctx.timings[stage.name] = round(time.perf_counter() - t0, 4)


class StageExecutor(MapExecutor):
    """A stage's `ctx.executor`: the run's executor, giving up the turn while it waits for tasks in other processes."""

    def __init__(self, inner: MapExecutor, turn: threading.Lock, cancelled):
        self.inner, self.turn, self.cancelled = inner, turn, cancelled
        self.workers, self.in_process = inner.workers, inner.in_process

    @property
    def started(self) -> bool:
        return self.inner.started

    def map(self, fn, items, weights=None):
        results = self.inner.map(fn, items, weights)
        end = object()
        try:
            while True:
                if self.in_process:
                    item = next(results, end)
                else:
                    self.turn.release()
                    try:
                        item = next(results, end)
                    finally:
                        self.turn.acquire()
                if item is end:
                    return
                if self.cancelled():
                    raise StageCancelled()
                yield item
        finally:
            results.close()


class ConcurrentStages:
    """Runs `stages` (in the study's order) of ctx, each as soon as the stages it reads are done."""

    def __init__(self, ctx, stages):
        self.ctx, self.stages = ctx, list(stages)
        self.index = {s.name: i for i, s in enumerate(self.stages)}
        self.waits = [self._waits(i, s) for i, s in enumerate(self.stages)]
        self.turn = threading.Lock()         # held by the stage whose code runs; guards everything below too
        self.started: set[int] = set()
        self.finished: set[int] = set()      # ran to the end, failed or stopped
        self.errors: dict[int, BaseException] = {}
        self.views: dict[int, object] = {}   # stage -> its context (its own warnings, summary, excluded, cache counts)
        self.released = 0                    # stages before this index are added to the run's lists
        self.aborted = False
        self.done = threading.Event()

    def _waits(self, i, stage) -> set[int]:
        """The stages `stage` waits for: those it reads, and the earlier members of a merged pass it belongs to
        (passes/merge_features.py: the group's first member computes the pass per case and the others read its cached
        results; started together, each would compute it again)."""
        group = stage.extra.get("merge", {}).get("group", ())
        return ({self.index[d] for d in stage.deps if d in self.index}
                | {self.index[g] for g in group if g in self.index and self.index[g] < i})

    def first_error(self) -> int:
        return min(self.errors, default=len(self.stages))

    def cancelled(self, i: int) -> bool:
        return self.aborted or i > self.first_error()

    def _launch_ready(self) -> None:
        """Start every stage whose inputs are done, that is before the first error; set `done` when nothing runs."""
        for i in range(0 if self.aborted else self.first_error()):
            if i not in self.started and self.waits[i] <= self.finished - set(self.errors):
                self.started.add(i)
                threading.Thread(target=self._run, args=(i,), name=f"radlang-stage-{self.stages[i].name}",
                                 daemon=True).start()
        if len(self.started) == len(self.finished):
            self.done.set()
            self.ctx.executor.notify()

    def _view(self, i: int):
        ctx = self.ctx
        cache = ctx.cache.stage_view()
        executor = StageExecutor(ctx.executor, self.turn, lambda: self.cancelled(i))
        return replace(ctx, cache=cache, warnings=cache.warnings, summary=[], excluded=[], executor=executor, order=i)

    def _run(self, i: int) -> None:
        with self.turn:
            view = self.views[i] = self._view(i)
            try:
                run_stage(view, self.stages[i])
            except BaseException as e:  # noqa: BLE001 -- kept, and the earliest one raised in the main thread
                self.errors[i] = e
            finally:
                self.finished.add(i)
                self._release()
                self._launch_ready()

    def _release(self, final: bool = False) -> None:
        """Add the finished stages' lists to the run's, in the study's order (`final`: every stage's, at the end)."""
        while self.released < len(self.stages) and (final or self.released in self.finished):
            view = self.views.pop(self.released, None)
            if view is not None:
                ctx = self.ctx
                ctx.cache.release(view.cache)
                ctx.summary.extend(view.summary)
                ctx.excluded.extend(view.excluded)
                # a stage's value may keep its context (an evaluation's `folds`, which a later stage calls): what it
                # adds from now on goes to the run's at once
                view.cache, view.warnings, view.summary, view.excluded = ctx.cache, ctx.warnings, ctx.summary, ctx.excluded
            self.released += 1

    def run(self) -> None:
        with self.turn:
            self._launch_ready()
        try:
            self.ctx.executor.serve(self.done)
        except BaseException:         # Ctrl-C: no stage starts, running ones stop at their next task
            self.aborted = True
            raise
        with self.turn:
            self._release(final=True)
        if self.errors:
            raise self.errors[self.first_error()]
