"""`radlang run`: execute a compiled study stage by stage.

Each operator declares how it runs (radlang/registry.py): its own `run(stage, ctx) -> value`, in its
module under radlang/ops/. The executor never names an operator; the glue that does the work calls the
generic machinery here (the per-case map in cases.py, the cache, atomic writes, glue.py), and the numbers
come from the operators' own self-contained implementations, which the renderer inlines too.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radlang import __version__, registry
from radlang.backends.artefacts import run_record_sources, write_artefact_manifest
from radlang.backends.cache import Cache, atomic_write_text, key
from radlang.backends.executors import make_executor
from radlang.backends.outdir import prepare_out_dir
from radlang.diagnostics import Diagnostic


class RunError(Exception):
    """Bad data or a failed stage: carries diagnostics (E6xx) that name the case, the file and the column."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.message for d in diagnostics))


class SharedProgress:
    """One rich Progress for the stages that show bars at the same time (rich shows one live display at a time):
    started by its first user, stopped when its last one is done. Bars are shown in the order of the stages that
    added them (`order`), whichever started first."""

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self._users = 0
        self._bars = None

    @contextmanager
    def use(self, quiet: bool, order: int = 0):
        if quiet:                   # nothing to show: rich is not even imported
            yield _NoBars()
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        class Ordered(Progress):
            def get_renderables(self):
                yield self.make_tasks_table(sorted(self.tasks, key=lambda t: t.fields.get("order", 0)))

        with self._lock:
            if self._bars is None:
                self._bars = Ordered(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TimeRemainingColumn(), disable=quiet, transient=False)
                self._bars.start()
            self._users += 1
            bars = self._bars
        try:
            yield _OrderedBars(bars, order)
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._bars.stop()
                    self._bars = None


class _NoBars:
    """The bars of a quiet run: they show nothing."""

    def add_task(self, description, **kw):
        return 0

    def advance(self, task, advance=1):
        pass

    def update(self, task, **kw):
        pass


class _OrderedBars:
    """The shared Progress as one stage sees it: its bars carry the stage's place in the study."""

    def __init__(self, bars, order: int):
        self._bars, self._order = bars, order

    def add_task(self, description, **kw):
        return self._bars.add_task(description, order=self._order, **kw)

    def __getattr__(self, name):        # advance, update, ...
        return getattr(self._bars, name)


@dataclass
class RunContext:
    study: Any
    out: Path
    cache: Cache
    workers: int
    on_error: str = "fail"
    quiet: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)       # input file -> sha256 (for the run manifest)
    excluded: list[dict] = field(default_factory=list)          # cases skipped with on_error: skip
    boundary: dict = field(default_factory=dict)                # stage -> what crossed its privacy boundary (for run.json)
    warnings: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)         # headline results, printed after the run
    executor: Any = None          # a MapExecutor (radlang/backends/executors): per-case and per-fold tasks
    display: SharedProgress = field(default_factory=SharedProgress)     # the progress bars of the run
    order: int = 0                # the place in the study of the stage this context runs (its bars' place)

    def stage_key(self, stage, *extra) -> str:
        """A cache key for a stage: operator, version, settings, input stage keys, and extra content hashes."""
        op = registry.get(stage.op)
        ins = {p: [self.keys.get(r.stage), r.attr] for p, r in sorted(stage.inputs.items())}
        return key(stage.op, op.version, stage.params, ins, stage.seed, *extra)

    keys: dict[str, str] = field(default_factory=dict)          # stage -> content key of its output

    def warn(self, code: str, message: str) -> None:
        """A runtime warning (W6xx): printed at once and listed in run.json."""
        self.cache.warn(code, message)

    def hash_input(self, path) -> str:
        h = self.cache.file_hash(path)          # content SHA-256, via the cache's persistent (path, stat) index
        self.inputs[str(path)] = h
        return h

    def close(self):
        """Stop the workers and save the file-hash index."""
        try:
            self.executor.close()
        finally:
            self.cache.flush()

    def progress(self, total: int, description: str):
        """A rich progress display to add a bar to (silent when quiet or not a terminal); stages that run at the same
        time share one."""
        return self.display.use(self.quiet, self.order)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "radlang": __version__}
    for pkg in ("numpy", "pandas", "scipy", "SimpleITK", "pyradiomics", "scikit-learn", "torch", "monai", "pingouin",
                "dcurves", "shap", "lifelines", "scikit-survival", "lark", "pydantic", "networkx"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def resolve_out(study, out: str | os.PathLike | None = None) -> Path:
    """The output folder: `out` (the --out flag) is relative to the current folder; the spec's `out:` is relative to
    the spec's folder."""
    out_dir = Path(out or study.config.get("out") or "runs/study")
    if not out_dir.is_absolute() and out is None:
        out_dir = Path(study.file).resolve().parent / out_dir
    return out_dir


@contextmanager
def held_run(study, out: str | os.PathLike | None = None, workers: int | None = None, quiet: bool = False,
             force: bool = False, wait: bool = False, executor: str = "local"):
    """The run context. The executor starts first (`local`, `dask` or a Dask scheduler address, see
    radlang/backends/executors: one that cannot start raises ExecutorError before anything is written); then the output
    folder is checked (radlang.backends.outdir: OutDirError, a usage error; `force` lifts the refusals of folders that
    hold other files) and held for this run alone (outlock.OutDirLock: OutDirInUse when another run holds it, unless
    `wait`). On leaving, the workers stop and the file-hash index is saved."""
    from radlang.backends.outlock import OutDirLock, describe

    out_dir = resolve_out(study, out)
    ex = make_executor(executor, workers or study.config.get("workers"))
    try:
        prepare_out_dir(out_dir, study.file, force)

        def waiting(message):
            print(f"radlang: {message}", file=sys.stderr)

        with OutDirLock(out_dir, str(study.file), wait=wait, on_wait=waiting) as lock:
            ctx = RunContext(study=study, out=out_dir, cache=Cache(out_dir / ".cache"), workers=ex.workers,
                             on_error=study.config.get("on_error", "fail"), quiet=quiet, executor=ex)
            ctx.warnings = ctx.cache.warnings
            if ctx.cache.is_empty():
                # a cold run: the stages that give the workers tasks (per case, per fold) will run, so the workers'
                # start-up begins now, importing what those tasks need while this process reads the cohorts
                imports = sorted({m for s in study.stages for m in registry.get(s.op).worker_modules(s, study)})
                if imports:
                    ex.start(tuple(imports))
            if lock.dead is not None:
                ctx.cache.warn("W673", f"a run that did not finish held `{out_dir}` ({describe(lock.dead)}); this run takes "
                                       "the folder over and reuses the verified cache entries it left")
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        ex.close()          # a second close is a no-op: this one stops the workers when the folder was refused


def run_stages(ctx: RunContext, stages, concurrent: bool | None = None) -> None:
    """Run `stages` (in the study's order) in ctx, each by its operator's own run-time code: one after another, or
    (`concurrent`; by default when the executor runs tasks in more than one other process) each as soon as the
    stages it reads are done (radlang/backends/stages.py: the same outputs, byte for byte)."""
    from radlang.backends.stages import ConcurrentStages, run_stage

    if concurrent is None:
        concurrent = ctx.executor.workers > 1 and not ctx.executor.in_process
    if concurrent:
        ConcurrentStages(ctx, stages).run()
        return
    for stage in stages:
        run_stage(ctx, stage)


def run_study(study, out: str | os.PathLike | None = None, workers: int | None = None, quiet: bool = False,
              force: bool = False, wait: bool = False, executor: str = "local", concurrent: bool | None = None) -> RunContext:
    with held_run(study, out, workers, quiet, force, wait, executor) as ctx:
        t_all = time.perf_counter()
        run_stages(ctx, study.stages, concurrent)
        ctx.timings["total"] = round(time.perf_counter() - t_all, 4)
        write_manifest(ctx)
        write_artefact_manifest(ctx, hashlib.sha256(study.source.encode()).hexdigest())
    return ctx


def write_manifest(ctx: RunContext):
    study = ctx.study
    manifest = {
        "study": study.title,
        **run_record_sources(ctx, study.file, study.source),    # relocatable: no absolute path
        "seed": study.seed,
        "stages": [{"name": s.name, "op": s.op, "seed": s.seed, "seconds": ctx.timings.get(s.name)} for s in study.stages],
        "excluded_cases": ctx.excluded,
        "warnings": ctx.warnings,
        "versions": _versions(),
        "platform": platform.platform(),
        "cache": {"hits": ctx.cache.hits, "misses": ctx.cache.misses},
        "total_seconds": ctx.timings.get("total"),
    }
    if ctx.boundary:
        manifest["boundary"] = ctx.boundary
    atomic_write_text(ctx.out / "run.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
