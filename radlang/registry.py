"""The operator registry. An operator is declared once, in one module under radlang/ops/:
its ports, its settings model, its output type, how it is fit, its implementation, and what the
renderer needs, and how it runs. The grammar, the executor and the renderer never name operators;
`radlang ops` and docs/language.md are generated from this registry.

How an operator runs (`behaviour`):

- `stateless`: run once per stage; `run(stage, ctx) -> value`.
- `per_case`: a function applied to each case (`case`), which the stage's `run` hands to the executor's
  per-case map (radlang/backends/cases.py: the process pool, one cache entry per case, all problems at once).
- `fitted`: fit on a training view, apply to any view (selectors and models: the validation stage refits them
  inside each training fold).

`run(stage, ctx)` is the run-time entry point: glue that lives in the operator's own module (reading and
caching inputs, writing outputs) and imports radlang's backend machinery inside its body only, so that
`radlang check` never imports it. `radlang render` inlines it into the script the same way.

Implementation rule (it makes `radlang render` possible without writing logic twice): `impl`
and every function in `helpers` are self-contained. They use only their arguments, builtins,
other functions listed in `helpers`, and modules they import inside their own body (stdlib or
third-party, never radlang). The renderer inlines their source; the executor calls them.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from radlang.types import RType
from radlang.values import Settings

Fit = Literal["none", "data", "outcome"]
Behaviour = Literal["stateless", "per_case", "fitted"]
BEHAVIOURS = ("stateless", "per_case", "fitted")


@dataclass(frozen=True)
class Port:
    name: str
    kinds: tuple[str, ...]          # accepted RType kinds
    optional: bool = False
    doc: str = ""


@dataclass
class InferCtx:
    """What an operator's `infer` sees: its input types, its settings, and a way to complain."""

    stmt: Any
    inputs: dict[str, RType]
    settings: Any
    report: Callable[..., None]     # report(code, message, span=None, hint=None, setting=None)
    types: dict[str, RType]         # every stage type known so far, by name
    externals: dict[str, str] = field(default_factory=dict)   # cohort -> the validation stage that names it `external`

    def error(self, code: str, message: str, *, setting: str | None = None, port: str | None = None, hint: str | None = None):
        self.report(code, message, setting=setting, port=port, hint=hint)

    def mixed_cohorts(self, src: RType, tgt: RType):
        """E242: a stage fit on the features of one cohort and the outcome of another. When one of the two is an
        external validation cohort, the hint leads to fitting on the training cohort, never on the external one."""
        if not (src.cohort and tgt.cohort and src.cohort != tgt.cohort):
            return
        if src.cohort in self.externals:
            hint = (f"`{src.cohort}` is the external validation cohort of `{self.externals[src.cohort]}`: fit on the training cohort "
                    f"`{tgt.cohort}` instead (build the features from `{tgt.cohort}`, upstream too); `{src.cohort}` is for evaluation only")
        elif tgt.cohort in self.externals:
            hint = (f"use `{src.cohort}.outcome`: `{tgt.cohort}` is the external validation cohort of "
                    f"`{self.externals[tgt.cohort]}`, for evaluation only")
        else:
            hint = f"use `{src.cohort}.outcome`"
        self.error("E242", f"the features come from cohort `{src.cohort}` but the target is `{tgt.detail}`", port="target", hint=hint)


@dataclass(frozen=True)
class Operator:
    name: str
    kind: str                        # statement kind: cohort, segment, features, select, model, validate, ...
    doc: str
    settings: type[Settings]
    output: str                      # RType kind produced
    inputs: tuple[Port, ...] = ()
    positional: tuple[str, ...] = () # names (ports first, then settings) that positional arguments fill
    fit: Fit = "none"                # "data": fit on data statistics; "outcome": fit on outcomes
    behaviour: Behaviour | None = None  # how it runs: stateless, per_case or fitted (see the module doc); required
    run: Callable | None = None      # run(stage, ctx) -> the stage's value (the run-time entry point); required
    case: Callable | None = None     # per_case: the function applied to each case (a segmenter's (image, mask, params) -> (roi, problems))
    on_cohort: Callable | None = None  # on_cohort(ctx, stage, cohort_df, perturb) -> the stage's value computed on another cohort
    # (a stage fit on data whose value is a cohort, e.g. `nyul`, fits on the cases cohort_df.attrs["radlang"]["fit_cases"]
    # names when given: a validation's training fold, radlang/passes/fit_boundaries.py image_fits)
    cli_paths: tuple[str, ...] = ()  # path settings the rendered script exposes as `--<stage>-<setting>` flags
    impl: Callable | None = None
    helpers: tuple[Callable, ...] = ()
    infer: Callable[[InferCtx], RType | None] | None = None
    version: str = "1"
    plan: Callable | None = None     # plan(stage, memory_budget_bytes) -> list of (severity, text) lines for `radlang plan`
    sink: bool = False               # its results are study outputs (files under <out>); sinks are never pruned
    examples: tuple[str, ...] = ()
    raters: bool = False             # a fitted selector whose factory gets re-extractions of its input (perturbations, retest)
    read_file: Callable | None = None  # a cohort's: (ctx, stage, path) -> the cohort table of another file, read like its own
    check_data: Callable | None = None  # (stage, bound, spec folder, diags, listings) -> cohort facts: what `check` reads of its files
    check_facts: Callable | None = None  # (stage, bound, checked stages, cohort facts, diags): what `check` finds in the facts of
                                     # the cohorts a stage reads (after every check_data, when they found no error)
    merge: Callable | None = None    # stages of one input whose settings merge run as one pass: ([params]) -> (union, summary) or None
    merge_settings: tuple[str, ...] = ()  # the settings in which mergeable stages may differ
    inner_cv: str | None = None      # a fitted stage's setting that sets its own inner CV folds (checked against each training set)
    fold_data: Callable | None = None  # a fitted stage's per-case inputs besides its features, from a validation's cohort tables:
                                     # (stage, training rows, external rows or None, splits) -> (fold inputs, diagnostics)
    transductive: Callable | None = None  # (settings) -> a sentence when the stage uses held-out cases' features, else None
    flower: Callable | None = None   # a federated stage's Flower app: (stage, run context, site_data) -> {path: text} (render --target flower)
    reaches: Callable | None = None  # (stage, study) -> {name: function}: code the run-time glue calls only for some
                                     # settings or outcomes (a survival evaluation's metrics), which it looks up through
                                     # `registry.get(op).reached(stage)` instead of naming it: a render carries only what
                                     # the study's stages reach (radlang/backends/render/script.py)
    study_code: Callable | None = None  # (stage, study) -> [(keyword, function name, source)]: functions `radlang render`
                                     # writes into study.py before the stage's function, each passed to `run` by keyword
                                     # (`run(stage, ctx, pipeline=fold_pipeline_v)`); `run` called without them builds the
                                     # same source itself (evaluate's fold pipeline). The code the study runs, not a comment.
    library_code: Callable | None = None  # (settings, seed) -> lines of Python: the library object the settings make (a
                                     # scikit-learn pipeline, PyRadiomics' settings), built by the operator's own code;
                                     # `radlang render` writes them into the stage's function as comments
    worker_imports: tuple[str, ...] | Callable = ()  # the modules its tasks import in a worker (its per-case function,
                                     # the folds it fits), or (stage, study) -> them. A cold run (an empty cache) starts
                                     # the pool with the run, and the workers' start-up imports them while the run
                                     # compiles and reads its cohorts (backends/executors/local.py)

    def __post_init__(self):
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"operator {self.name!r}: `behaviour` must be one of {', '.join(BEHAVIOURS)}, not {self.behaviour!r}")
        if self.run is None:
            raise ValueError(f"operator {self.name!r} declares no `run`: its run-time entry point")
        if self.behaviour == "per_case" and self.case is None:
            raise ValueError(f"operator {self.name!r} runs per case: declare the per-case function as `case`")

    def worker_modules(self, stage, study) -> tuple[str, ...]:
        """The modules this stage's tasks import in a worker (`worker_imports`)."""
        return tuple(self.worker_imports(stage, study) if callable(self.worker_imports) else self.worker_imports)

    def reached(self, stage, study=None) -> dict:
        """{name: function} of the settings-dependent code this stage's run-time glue calls (`reaches`)."""
        return self.reaches(stage, study) if self.reaches is not None else {}

    @property
    def port_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.inputs)

    def port(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)


_REGISTRY: dict[str, Operator] = {}
_LOADED = False


_DECLARED_IN: dict[str, str] = {}   # operator name -> the radlang.ops module that declared it


def register(op: Operator) -> Operator:
    if op.name in _REGISTRY and _REGISTRY[op.name] is not op:
        raise ValueError(f"operator {op.name!r} is declared twice")
    _REGISTRY[op.name] = op
    frame = sys._getframe(1)
    while frame is not None and not frame.f_globals.get("__name__", "").startswith("radlang.ops."):
        frame = frame.f_back
    if frame is not None:
        _DECLARED_IN[op.name] = frame.f_globals["__name__"].rsplit(".", 1)[-1]
    return op


def _load():
    """Import every operator module (for `radlang ops`, the docs, render)."""
    global _LOADED
    if _LOADED:
        return
    import radlang.ops as pkg

    for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not m.name.startswith("_"):
            importlib.import_module(f"radlang.ops.{m.name}")
    _LOADED = True


def _index() -> dict[str, tuple[str, str]]:
    """operator name -> (statement kind, module under radlang/ops), without importing any operator module.

    Compiling a spec imports only the modules of the operators it uses, so `radlang check` does not pay
    for every operator's settings models as the library grows. The index is generated from the registry
    (`python -m radlang.registry`) and tests/test_registry_index.py holds it equal to what the modules declare;
    a name it lacks still resolves, by importing everything."""
    from radlang.ops._index import OPERATORS

    return OPERATORS


def build_index() -> dict[str, tuple[str, str]]:
    return {op.name: (op.kind, _DECLARED_IN[op.name]) for op in all_ops() if op.name in _DECLARED_IN}


def get(name: str) -> Operator | None:
    op = _REGISTRY.get(name)
    if op is None and not _LOADED:
        entry = _index().get(name)
        if entry is not None:
            importlib.import_module(f"radlang.ops.{entry[1]}")
            op = _REGISTRY.get(name)
        if op is None:
            _load()
            op = _REGISTRY.get(name)
    return op


def all_ops() -> list[Operator]:
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def names(kind: str | None = None) -> list[str]:
    """Operator names (of one statement kind), for hints; imports no operator module."""
    return sorted(n for n, (k, _) in _index().items() if kind in (None, k))


@functools.lru_cache(maxsize=1)
def _kinds() -> tuple[str, ...]:
    return tuple(sorted({k for k, _ in _index().values()} | {"preset"}))


def kinds() -> list[str]:
    """Statement kinds: those of the operators, plus `preset`."""
    return list(_kinds())


def _write_index(path=None) -> str:
    from pathlib import Path

    lines = ['"""Generated by `python -m radlang.registry` from the operator modules: do not edit.',
             "",
             "operator name -> (statement kind, module under radlang/ops). See radlang.registry._index.\"\"\"",
             "",
             "OPERATORS = {"]
    lines += [f"    {name!r}: ({kind!r}, {mod!r})," for name, (kind, mod) in sorted(build_index().items())]
    lines += ["}", ""]
    text = "\n".join(lines)
    path = Path(path or Path(__file__).parent / "ops" / "_index.py")
    path.write_text(text, encoding="utf-8")
    return str(path)


if __name__ == "__main__":
    from radlang import registry  # this file runs as __main__; the operator modules register into radlang.registry

    print(f"wrote {registry._write_index()}")
