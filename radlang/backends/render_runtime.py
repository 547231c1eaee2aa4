"""The small runtime a rendered script carries when it calls radlang's run-time glue verbatim (the operators'
`run` functions). These classes stand in for what the glue reads of radlang's compiled Stage, RunContext,
registry and diagnostics: plain data, no numbers decided here. The script has no cache (every run computes
everything) and runs cases serially, which gives the same numbers as `radlang run` with any number of workers."""

from __future__ import annotations

from radlang.backends.cache import file_hash  # inlined into the script with the executor's code


class InputRef:
    """A port's source stage, optionally one attribute of it (`train.outcome`)."""

    def __init__(self, stage, attr=None):
        self.stage, self.attr = stage, attr

    def __str__(self):
        return self.stage + (f".{self.attr}" if self.attr else "")


class StageType:
    """The static type of a stage (radlang.types.RType), as plain fields; a field left out is at its
    default (None, False or empty)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self.__dict__.get(name)


class Span:
    def __init__(self, file, line=1, col=1):
        self.file, self.line, self.col = file, line, col


class Stage:
    """One stage of the study: its operator, settings (params), inputs, seed and type."""

    def __init__(self, name, kind, op, params, seed, inputs=None, type=None, fit="none", fit_within=(), extra=None, file=""):
        self.name, self.kind, self.op, self.params, self.seed = name, kind, op, params, seed
        self.settings = params
        self.inputs = {port: InputRef(*ref) for port, ref in (inputs or {}).items()}
        self.type = StageType(**(type or {}))
        self.fit, self.fit_within, self.extra = fit, tuple(fit_within), dict(extra or {})
        self.span = Span(file)
        self.merged_into = None

    @property
    def deps(self):
        return sorted({r.stage for r in self.inputs.values()})


class Study:
    def __init__(self, title, seed, file, config):
        self.title, self.seed, self.file, self.config, self.stages = title, seed, file, config, []

    def stage(self, name):
        return self.by_name()[name]

    def by_name(self):
        return {s.name: s for s in self.stages}


class Diagnostic:
    def __init__(self, code, message, span=None, hint=None, related=(), severity=""):
        self.code, self.message, self.span, self.hint = code, message, span, hint


class RunError(Exception):
    """Bad data: the diagnostics name the case, the file and the column."""

    def __init__(self, diagnostics):
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.message for d in diagnostics))


class OperatorInfo:
    """What the stages' code reads of an operator's declaration (radlang/registry.py)."""

    def __init__(self, name, behaviour, version, run=None, case=None, on_cohort=None, impl=None, helpers=(),
                 sink=False, fit="none", raters=False, inner_cv=None, fold_data=None, reaches=None):
        self.name, self.behaviour, self.version, self.run = name, behaviour, version, run
        self.case, self.on_cohort, self.impl, self.helpers = case, on_cohort, impl, tuple(helpers)
        self.sink, self.fit, self.raters, self.inner_cv, self.fold_data = sink, fit, raters, inner_cv, fold_data
        self.reaches = reaches or {}   # stage name -> {name: function}, as the operator's `reaches` gave it at render time

    def reached(self, stage, study=None):
        return self.reaches.get(stage.name, {})


class Registry:
    """The operators this study uses: their version, implementation and helpers."""

    def __init__(self):
        self.ops = {}

    def add(self, info):
        self.ops[info.name] = info

    def get(self, name):
        return self.ops.get(name)


registry = Registry()


class Cache:
    """The script keeps no cache: every lookup misses, nothing is stored."""

    def __init__(self, root=None):
        self.root, self.hits, self.misses = root, 0, 0

    def get(self, key, default=None):
        return default

    def has(self, key):
        return False

    def put(self, key, value):
        """Nothing is stored."""

    def uncounted(self):
        return Cache(self.root)


class SerialMap:
    """Cases one after another, in order (results are the same as with a process pool)."""

    def map(self, fn, items, weights=None):
        for i, item in enumerate(items):
            yield i, fn(item)

    def map_quick(self, fn, items):
        """Many quick tasks (the checks before per-case work): in this process too."""
        return self.map(fn, items)

    def close(self):
        """Nothing to release."""


class SilentProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def __getattr__(self, name):  # advance, update, ...: no progress bar in a script
        if name.startswith("__"):
            raise AttributeError(name)
        return self._nothing

    def _nothing(self, *args, **kwargs):
        """Do nothing."""


class RunContext:
    """What a mode reads and writes while it runs: earlier results, the output folder, warnings."""

    def __init__(self, study, out, on_error="fail"):
        self.study, self.out, self.on_error = study, out, on_error
        self.results, self.keys, self.inputs = {}, {}, {}
        self.excluded, self.warnings, self.timings = [], [], {}
        self.boundary = {}  # stage -> what crossed its privacy boundary (for run.json)
        self.summary = []   # headline results, printed by main() after the run
        self.cache, self.executor, self.workers, self.quiet = Cache(), SerialMap(), 1, True

    def declare(self, stage):
        """Add a stage to the study as its function starts (later stages look earlier ones up by name)."""
        self.study.stages.append(stage)
        return stage

    def stage_key(self, stage, *extra):
        return stage.name

    def warn(self, code, message):
        """A runtime warning: printed at once and listed in run.json."""
        import sys

        print(f"warning[{code}]: {message}", file=sys.stderr)
        self.warnings.append(f"{code}: {message}")

    def hash_input(self, path):
        """SHA-256 of an input file (or folder), recorded for run.json: radlang's own `file_hash`."""
        digest = file_hash(path)
        self.inputs[str(path)] = digest
        return digest

    def progress(self, total, description):
        return SilentProgress()
