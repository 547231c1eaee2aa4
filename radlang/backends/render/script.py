"""The rendered script itself: each stage as a short function that calls its operator's inlined `run`, the
runtime stand-ins, the provenance header, the page laid out by templates/study.py.j2, written atomically."""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from radlang import __version__, registry
from radlang.backends.render.inline import SCRIPT_MODULES, check_operator, inline_closure, is_radlang, op_functions
from radlang.backends.render.literals import RenderError, comment_text, identifier, pylit
from radlang.backends.render.pins import imported_modules, lock_text, package_pins


@dataclass(frozen=True)
class Option:
    """A command-line flag of the script (e.g. `--train-path` to point a cohort at another manifest)."""

    flag: str
    dest: str
    default: Any
    help: str


@dataclass
class StageCode:
    """What a hook returns: the body of the stage's function and what it needs."""

    body: list[str]                                  # Python lines of the function body, unindented
    functions: list[Callable] = field(default_factory=list)  # self-contained functions it calls (inlined once)
    options: list[Option] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # extra stdlib imports of the glue, e.g. "json"


@dataclass
class RenderContext:
    """What hooks use to write a stage: the study, literals, input expressions, flags."""

    study: Any
    spec_dir: str

    def lit(self, obj, indent: int = 4) -> str:
        return pylit(obj, indent=indent)

    def result(self, stage_name: str) -> str:
        """The expression for another stage's value inside a stage function."""
        return f"ctx.results[{stage_name!r}]"

    def input(self, stage, port: str) -> str | None:
        ref = stage.inputs.get(port)
        return None if ref is None else self.result(ref.stage)

    def option(self, flag: str, dest: str, default: Any, help: str) -> Option:
        return Option(flag, dest, default, help)

    def flag(self, stage, what: str) -> tuple[str, str]:
        """(`--train-path`, `train_path`): a per-stage command-line flag and its argparse dest."""
        dest = f"{identifier(stage.name)}_{what}"
        return "--" + dest.replace("_", "-"), dest


def call_run(stage, rc: RenderContext, op) -> StageCode:
    """A stage of an operator that declares its own `run`: the stage calls it, inlined verbatim, exactly as
    `radlang run` does. Each of the operator's `cli_paths` settings can be pointed elsewhere with a
    `--<stage>-<setting>` flag (relative to the working folder); the default is the spec's value, relative to
    the spec's folder, as in `radlang run`."""
    before, options = [], []
    for setting in op.cli_paths:
        flag, dest = rc.flag(stage, setting)
        before += [f"if args.{dest}:",
                   f"    stage.params = {{**stage.params, {setting!r}: str(Path(args.{dest}).resolve())}}"]
        help_ = (f"`{setting}` of {stage.kind} `{stage.name}` (default: {stage.params[setting]}, relative to the spec's folder)")
        options.append(rc.option(flag, dest, None, help_))
    return StageCode(body=[*before, f"return {op.run.__name__}(stage, ctx)"], functions=run_functions(op), options=options,
                     imports=["Path"] if before else [])


def run_functions(op) -> list[Callable]:
    """An operator's run-time glue: its `run`, per-case `case`, `on_cohort` and `fold_data` functions (those it declares)."""
    return [f for f in (op.run, op.case, op.on_cohort, op.fold_data) if f is not None]


def _stage_literal(st, spec_path: str) -> str:
    """`stage = ctx.declare(Stage(...))` with the stage's settings and everything else a mode reads, as
    literals; fields at their defaults are left out."""
    from dataclasses import fields as dc_fields

    type_ = {f.name: getattr(st.type, f.name) for f in dc_fields(st.type) if getattr(st.type, f.name) != f.default}
    fields = {"name": st.name, "kind": st.kind, "op": st.op, "params": st.params,
              "inputs": {p: [r.stage, r.attr] for p, r in sorted(st.inputs.items())}, "seed": st.seed, "type": type_,
              "fit": st.fit, "fit_within": list(st.fit_within), "extra": {k: v for k, v in st.extra.items() if k != "refs"}}
    fields = {k: v for k, v in fields.items() if k in ("name", "kind", "op", "params", "seed") or v not in ({}, [], "none")}
    lines = [f"    {k}={pylit(v, indent=4)}," for k, v in fields.items()]
    f = Path(st.span.file) if st.span and st.span.file else None
    file = str(f.resolve()) if f is not None and f.exists() else (str(f) if f else "")  # absolute: any working folder
    lines.append("    file=SPEC_PATH," if file == spec_path else f"    file={pylit(file)},")
    return "\n".join(["stage = ctx.declare(Stage(", *lines, "))"])


def runtime_needs() -> list[Callable]:
    """The radlang functions the runtime calls (imported at its top): inlined like executor glue."""
    from radlang.backends import render_runtime as _runtime

    tree = ast.parse(inspect.getsource(_runtime))
    return [getattr(_runtime, a.asname or a.name) for n in tree.body if isinstance(n, ast.ImportFrom) and is_radlang(n.module)
            for a in n.names]


def runtime_source() -> tuple[str, frozenset[str]]:
    from radlang.backends import render_runtime as _runtime

    src = inspect.getsource(_runtime)
    tree = ast.parse(src)
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
            and not isinstance(n, (ast.Import, ast.ImportFrom))]
    lines = src.split("\n")
    text = "\n".join(lines[body[0].lineno - 1:]).strip() + "\n"
    names = set()
    for n in body:
        if isinstance(n, (ast.ClassDef, ast.FunctionDef)):
            names.add(n.name)
        elif isinstance(n, ast.Assign):
            names |= {t.id for t in n.targets if isinstance(t, ast.Name)}
    return text, frozenset(names)


def _spec_lines(study, st) -> list[str]:
    """The statement as written in the spec (sanitised comment text), when it comes from the spec itself."""
    if not st.span or st.span.file != study.file:
        return []
    lines = study.source.split("\n")[st.span.line - 1: st.span.end_line]
    return [comment_text(x) for x in lines][:40]


def _default_out(study) -> str:
    return study.config.get("out") or "runs/study"


def render_study(study, date: str | None = None) -> tuple[str, dict[str, str]]:
    """The script text and the package pins it records."""
    rc = RenderContext(study=study, spec_dir=str(Path(study.file).resolve().parent))
    runtime, runtime_names = runtime_source()
    from radlang.backends.artefacts import write_artefact_manifest, write_stage_table

    wanted: list[Callable] = [*runtime_needs(), write_stage_table, write_artefact_manifest]
    spec_path = str(Path(study.file).resolve()) if Path(study.file).exists() else study.file
    origin: dict[int, str] = {}
    stages, options, glue_imports, problems, ops = [], [], set(), [], {}
    for st in study.stages:
        op = registry.get(st.op)
        code: StageCode = call_run(st, rc, op)
        problems += check_operator(op)

        for f in [*op_functions(op), *run_functions(op), *code.functions]:
            if f not in wanted:
                wanted.append(f)
        ops[op.name] = op
        options += [o for o in code.options if o not in options]
        glue_imports |= {SCRIPT_MODULES.get(m, f"import {m}") for m in code.imports}
        stages.append({
            "name": st.name, "fn": f"stage_{identifier(st.name)}", "body": [*_stage_literal(st, spec_path).split("\n"), *code.body],
            "header": comment_text(f"{st.kind} {st.name} = {st.op}(...)   [{op.behaviour}, seed {st.seed}]"),
            "comments": [comment_text(c) for c in st.comments],
            "spec": _spec_lines(study, st),
            "consumes": comment_text(", ".join(f"{p} <- {r}" for p, r in sorted(st.inputs.items())) or "nothing"),
            "fit": comment_text(f"fit on {st.fit}" + (f" inside the training folds of {', '.join(st.fit_within)}" if st.fit_within else "")
                                if st.fit != "none" else ""),
        })
    strict = {f for op in ops.values() for f in op_functions(op)}
    for op in [*ops.values(), *registry.all_ops()]:   # the study's operators first
        for f in op_functions(op):
            origin.setdefault(id(f), f"{f.__module__} (operator `{op.name}` v{op.version})")
        for f in run_functions(op):
            origin.setdefault(id(f), f"{f.__module__} (operator `{op.name}` v{op.version}, its run-time glue, verbatim)")
    functions, sources, more_imports, glue_problems = inline_closure(wanted, strict, runtime_names)
    problems += glue_problems
    glue_imports |= more_imports
    if problems:
        raise RenderError("E704", "operator code cannot be inlined into a standalone script:\n  " + "\n  ".join(dict.fromkeys(problems)))
    modules = imported_modules(sources)
    pins = package_pins(modules)
    spec_text = study.source
    sha = hashlib.sha256(spec_text.encode()).hexdigest()
    if date is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        when = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)
        date = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    registry_lines = []
    for op in ops.values():
        args = [f"name={op.name!r}", f"behaviour={op.behaviour!r}", f"version={op.version!r}", f"sink={op.sink!r}", f"fit={op.fit!r}"]
        args += [f"{what}={fn.__name__}" for what, fn in (("run", op.run), ("case", op.case), ("on_cohort", op.on_cohort),
                                                          ("fold_data", op.fold_data)) if fn is not None]
        if op.impl is not None:
            args.append(f"impl={op.impl.__name__}")
        if op.helpers:
            args.append("helpers=(" + ", ".join(h.__name__ for h in op.helpers) + ("," if len(op.helpers) == 1 else "") + ")")
        if op.raters:
            args.append("raters=True")
        if op.inner_cv is not None:
            args.append(f"inner_cv={op.inner_cv!r}")
        registry_lines.append(f"registry.add(OperatorInfo({', '.join(args)}))")

    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(Path(__file__).parents[1] / "templates")), autoescape=False,
                      undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["lit"] = pylit
    env.filters["comment"] = comment_text
    blocks = []
    for f, src in zip(functions, sources):
        if isinstance(f, tuple):
            blocks.append({"origin": comment_text(f"{f[2]} (a constant the executor glue uses)"), "source": src})
        else:
            blocks.append({"origin": comment_text(origin.get(id(f), f"{f.__module__} (executor glue, verbatim)")), "source": src})
    text = env.get_template("study.py.j2").render(
        title=comment_text(study.title), title_lit=pylit(study.title), spec_file=comment_text(study.file),
        version=__version__, date=date, sha=sha, python=sys.version.split()[0], pins=pins,
        spec_lines=[comment_text(x) for x in spec_text.split("\n")],
        spec_lit=_spec_literal(spec_text), seed=study.seed,
        seeds=[(comment_text(s.name), s.seed) for s in study.stages],
        functions=blocks, runtime=runtime, registry_lines=registry_lines,
        imports=_import_lines(glue_imports), stages=stages, options=options,
        default_out=pylit(_default_out(study)), spec_dir=pylit(rc.spec_dir),
        study_config=pylit(study.config, indent=0), spec_file_lit=pylit(study.file),
        spec_path_lit=pylit(spec_path),
        rendered_by=pylit(f"radlang {__version__} render"),
        pins_lit=pylit(pins, indent=0),
    )
    try:
        ast.parse(text)
    except SyntaxError as e:  # a bug in a hook or the template, never in the spec
        raise RenderError("E706", f"internal error: the rendered script is not valid Python (line {e.lineno}: {e.msg})") from e
    return text, pins


def _import_lines(extra: set[str]) -> list[str]:
    """The script's stdlib imports: what the template uses plus what the glue functions need."""
    lines = {"import argparse", "import hashlib", "import json", "import platform", "import sys", "import time",
             "from pathlib import Path"} | set(extra)
    return sorted(lines, key=lambda x: (x.startswith("from "), x))


def _spec_literal(text: str) -> str:
    lines = text.splitlines(keepends=True) or [""]
    return "(\n" + "\n".join(f"    {x!r}" for x in lines) + "\n)"


def render_to_file(study, output, lock: bool = False, date: str | None = None) -> Path:
    """Render and write the script (and requirements.lock beside it) atomically: all or nothing."""
    from radlang.backends.cache import atomic_write_text

    out = Path(output)
    if out.exists() and out.is_dir():
        raise RenderError("E702", f"`{output}` is a folder; give the script's file name, e.g. {Path(output) / 'study.py'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise RenderError("E702", f"cannot write `{output}`: the folder `{parent}` does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise RenderError("E702", f"cannot write `{output}`: the folder `{parent}` is not writable")
    text, pins = render_study(study, date=date)
    try:
        if lock:
            atomic_write_text(parent / "requirements.lock", lock_text(pins))
        atomic_write_text(out, text)
        out.chmod(0o755)  # it starts with a shebang; mkstemp made it private
        if lock:
            (parent / "requirements.lock").chmod(0o644)
    except OSError as e:
        raise RenderError("E702", f"cannot write `{output}`: {e.strerror or e}") from e
    return out
