"""`radlang render`: a compiled study -> one standalone, auditable Python script.

One implementation: the script holds radlang's own code, copied verbatim with `inspect.getsource`,
never a second version of it. That is (1) the operators' self-contained functions (`impl` and
`helpers`, see radlang/registry.py), (2) the run-time glue that calls them: each operator's declared
`run` (and its per-case `case` and `on_cohort` functions), with every
radlang function, class and constant they reach (`from radlang... import f` becomes a comment since f
is defined in the script), and (3) a small runtime (render_runtime.py) standing in for the
Stage, RunContext, registry and diagnostics the glue reads. The stages call the same functions in study
order with their settings as Python literals, exactly as `radlang run` does, so the two agree to the byte.

A stage calls its operator's `run` (`call_run`); the operator's `cli_paths` become `--<stage>-<setting>`
flags. The page layout lives in radlang/backends/templates/study.py.j2. Nothing from the
spec is pasted into code: strings become `repr` literals and comments are sanitised `#` lines, so
spec text can never run. See docs/architecture.md, "Rendering".
"""

from __future__ import annotations

import ast
import builtins
import dis
import functools
import hashlib
import importlib
import inspect
import keyword
import math
import os
import re
import sys
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from radlang import __version__, registry


class RenderError(Exception):
    """A study that cannot be rendered, or a script that cannot be written. `.code`: E7xx usage, E2xx/E6xx otherwise."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


# --------------------------------------------------------------------------- hooks

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


# --------------------------------------------------------------------------- literals and comments

def pylit(obj: Any, indent: int = 0, width: int = 100) -> str:
    """A deterministic Python literal for JSON-able data (what Stage.params holds). Strings go through
    repr(), so quotes, backslashes, newlines and template syntax stay inert."""
    flat = _flat(obj)
    if len(flat) + indent <= width or not isinstance(obj, (dict, list, tuple)) or not obj:
        return flat
    pad, inner = " " * indent, " " * (indent + 4)
    if isinstance(obj, dict):
        items = [f"{inner}{_flat(k)}: {pylit(v, indent + 4, width)}," for k, v in obj.items()]
        return "{\n" + "\n".join(items) + f"\n{pad}}}"
    open_, close = ("[", "]") if isinstance(obj, list) else ("(", ")")
    items = [f"{inner}{pylit(v, indent + 4, width)}," for v in obj]
    return open_ + "\n" + "\n".join(items) + f"\n{pad}{close}"


def _flat(obj: Any) -> str:
    if obj is None or isinstance(obj, bool):
        return repr(obj)
    if isinstance(obj, int):
        return repr(int(obj))
    if isinstance(obj, float):
        if math.isnan(obj):
            return 'float("nan")'
        if math.isinf(obj):
            return 'float("inf")' if obj > 0 else '-float("inf")'
        return repr(float(obj))
    if isinstance(obj, str):
        return repr(str(obj))
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{_flat(k)}: {_flat(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(_flat(v) for v in obj) + "]"
    if isinstance(obj, tuple):
        return "(" + ", ".join(_flat(v) for v in obj) + ("," if len(obj) == 1 else "") + ")"
    if hasattr(obj, "model_dump"):
        from radlang.values import to_plain

        return _flat(to_plain(obj))
    raise RenderError("E705", f"cannot write a {type(obj).__name__} as a Python literal")


def comment_text(text: str) -> str:
    """One line of text that is safe inside a `#` comment: no line breaks, nothing unprintable."""
    out = []
    for ch in str(text):
        if ch == "\t":
            out.append("    ")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out).rstrip()


def identifier(name: str) -> str:
    """A stage name as part of a Python identifier (stage names are radlang NAMEs already)."""
    s = re.sub(r"\W", "_", name)
    return s + "_" if keyword.iskeyword(s) else s


# --------------------------------------------------------------------------- self-containedness

_BUILTINS = set(dir(builtins))


def _code_objects(code: types.CodeType):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _code_objects(c)


@functools.lru_cache(maxsize=4096)
def global_names(fn: Callable) -> set[str]:
    """Names a function (and the functions, lambdas, comprehensions and classes nested in it) looks up
    as globals. Local imports are locals, so they do not appear here."""
    names: set[str] = set()
    for code in _code_objects(fn.__code__):
        stored = set()
        for ins in dis.get_instructions(code):
            if ins.opname in ("STORE_NAME", "DELETE_NAME"):
                stored.add(ins.argval)
        for ins in dis.get_instructions(code):
            # LOAD_NAME: class bodies look names up in the class, then in the globals
            if ins.opname in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL") or (ins.opname == "LOAD_NAME" and ins.argval not in stored):
                names.add(ins.argval)
    return names


def self_contained_problems(fn: Callable, allowed: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Why `fn` cannot be inlined into a standalone script (empty when it can)."""
    return list(_self_contained_problems(fn, frozenset(allowed)))


@functools.lru_cache(maxsize=4096)
def _self_contained_problems(fn: Callable, allowed: frozenset[str]) -> tuple[str, ...]:
    where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"
    if not isinstance(fn, types.FunctionType):
        return [f"{where} is not a plain function ({type(fn).__name__})"]
    problems = []
    if fn.__name__ == "<lambda>":
        return [f"{where} is a lambda; give it a name with `def` so its source can be inlined"]
    if "<locals>" in fn.__qualname__ or "." in fn.__qualname__:
        problems.append(f"{where} is not a module-level function")
    if fn.__closure__:
        problems.append(f"{where} closes over {', '.join(fn.__code__.co_freevars)}")
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError) as e:
        return problems + [f"{where}: its source cannot be read ({e})"]
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return problems + [f"{where}: its source is not a `def`"]
    if node.decorator_list:
        problems.append(f"{where} is decorated; the script would not reproduce the decorator")
    for d in list(node.args.defaults) + [d for d in node.args.kw_defaults if d is not None]:
        for n in ast.walk(d):
            if isinstance(n, ast.Name) and n.id not in _BUILTINS:
                problems.append(f"{where}: a default value uses the global `{n.id}`; use a literal")
    for n in ast.walk(node):
        if isinstance(n, ast.ImportFrom) and n.level:
            problems.append(f"{where} uses a relative import")
        mods = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""] if isinstance(n, ast.ImportFrom) else []
        for m in mods:
            if m.split(".")[0] == "radlang":
                problems.append(f"{where} imports `{m}`; the script must not need radlang (copy the logic into a helper)")
    free = sorted(global_names(fn) - _BUILTINS - set(allowed) - {fn.__name__})
    if free:
        problems.append(f"{where} uses module-level name(s) {', '.join(f'`{x}`' for x in free)}: import them inside the "
                        "function, or list the functions among the operator's `helpers`")
    return problems


def op_functions(op) -> list[Callable]:
    return ([op.impl] if op.impl is not None else []) + list(op.helpers)


def check_operator(op) -> list[str]:
    """Every function of an operator must be inlinable, and it may call only its own helpers."""
    fns = op_functions(op)
    allowed = {f.__name__ for f in fns if hasattr(f, "__name__")}
    return [p for f in fns for p in self_contained_problems(f, allowed)]


# How a hook's `imports` entries are written (anything else is `import <name>`).
SCRIPT_MODULES = {"Path": "from pathlib import Path"}


def function_source(fn: Callable) -> str:
    return textwrap.dedent(inspect.getsource(fn)).rstrip() + "\n"


def _is_radlang(module_name: str | None) -> bool:
    return (module_name or "").split(".")[0] == "radlang"


# radlang objects that run-time glue uses and the script's runtime (render_runtime.py) stands in for
SHIMS = {"radlang.diagnostics.Diagnostic": "Diagnostic", "radlang.backends.executor.RunError": "RunError",
         "radlang.registry": "registry", "radlang.compiled.InputRef": "InputRef", "radlang.compiled.Stage": "Stage",
         "radlang.compiled.Study": "Study", "radlang.diagnostics.Span": "Span", "radlang.backends.cache.Cache": "Cache"}


def _qualname(obj) -> str:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__name__', '')}"


def _is_literal(v) -> bool:
    try:
        _flat(v)
        return not callable(v)
    except RenderError:
        return False


def _strip_radlang_decorators(src: str, fn) -> str:
    node = ast.parse(src).body[0]
    for d in getattr(node, "decorator_list", []):
        root = d.func if isinstance(d, ast.Call) else d
        while isinstance(root, ast.Attribute):
            root = root.value
        if not (isinstance(root, ast.Name) and _is_radlang(getattr(fn.__globals__.get(root.id), "__module__", None))):
            return src
    return "\n".join(src.split("\n")[node.lineno - 1:]) if getattr(node, "decorator_list", None) else src


def _annotation_names(src: str) -> set[str]:
    """Names used only in annotations (not evaluated at run time, but linters want them defined)."""
    out = set()
    for node in ast.walk(ast.parse(src)):
        anns = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            anns = [x.annotation for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x is not None] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            anns = [node.annotation]
        for ann in anns:
            if ann is None:
                continue
            if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
                try:
                    ann = ast.parse(ann.value, mode="eval")
                except SyntaxError:
                    continue
            out |= {n.id for n in ast.walk(ann) if isinstance(n, ast.Name)}
    return out


def inline_closure(fns: list, strict: set, runtime_names: frozenset[str] = frozenset()) -> tuple[list, list[str], set[str], list[str]]:
    """What a script needs, each once, with its source.

    Operator functions (`strict`) are inlined verbatim and must be self-contained. Glue (an executor
    mode's own function, or a writer a hook calls) is inlined verbatim too, with what it needs: other radlang
    functions and classes (recursively), radlang constants (as literals), and the modules and names its module
    imported (the script imports them). A `from radlang... import f` inside a body becomes `pass  # ...`: f is
    defined in the script. Diagnostics, RunError and the registry are the script runtime's stand-ins; a radlang
    decorator that only registers (`@mode`) is dropped. Returns (objects, sources, import lines, problems)."""
    out: list = []
    sources: list[str] = []
    imports: set[str] = set()
    problems: list[str] = []
    by_name: dict[str, object] = {}
    queue: list = [(getattr(f, "__name__", ""), f) for f in fns]

    def need(name, obj, where, home=None):
        """Resolve a name that glue uses to a module-level object of a radlang module."""
        q = _qualname(obj)
        if q in SHIMS and SHIMS[q] in runtime_names:
            if SHIMS[q] != name:
                problems.append(f"{where} uses radlang's `{q}` under the name `{name}`; the script knows it as `{SHIMS[q]}`")
        elif isinstance(obj, types.ModuleType):
            if _is_radlang(obj.__name__):
                problems.append(f"{where} uses the radlang module `{obj.__name__}`")
            else:
                imports.add(f"import {obj.__name__}" if obj.__name__ == name else f"import {obj.__name__} as {name}")
        elif isinstance(obj, (types.FunctionType, type)) and _is_radlang(obj.__module__):
            queue.append((name, obj))
        elif isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)) and getattr(obj, "__name__", None) == name:
            imports.add(f"from {obj.__module__} import {name}")
        elif obj is not None and _is_literal(obj) and name.isupper():
            queue.append((name, ("const", obj, home or where.rsplit(".", 1)[0])))
        else:
            problems.append(f"{where} uses `{name}` ({type(obj).__name__}), which a standalone script cannot hold")

    while queue:
        name, f = queue.pop(0)
        if name in runtime_names:
            continue
        if name in by_name:
            if by_name[name] is not f and not (isinstance(f, tuple) and by_name[name] == f):
                problems.append(f"two different things are called `{name}` in the script "
                                f"({_qualname(by_name[name])} and {_qualname(f)}); rename one")
            continue
        by_name[name] = f
        out.append(f)
        if isinstance(f, tuple):  # a constant
            sources.append(f"{name} = {pylit(f[1])}\n")
            continue
        if f in strict:
            sources.append(function_source(f))
            mg = sys.modules[f.__module__].__dict__
            for n in sorted(_annotation_names(sources[-1]) - _BUILTINS):  # names only annotations use
                if n in mg and not _is_radlang(getattr(mg[n], "__module__", None) or getattr(mg[n], "__name__", None)):
                    need(n, mg[n], _qualname(f))
            continue
        where = _qualname(f)
        if not isinstance(f, (types.FunctionType, type)) or getattr(f, "__closure__", None) or "." in f.__qualname__:
            problems.append(f"{where} is not a plain module-level function or class")
            sources.append("")
            continue
        src = function_source(f)
        if isinstance(f, types.FunctionType):
            src = _strip_radlang_decorators(src, f)
        lines = src.split("\n")
        module_globals = sys.modules[f.__module__].__dict__
        tree = ast.parse(src)
        parents = {}  # an import statement -> the statements of the block it sits in
        for block in ast.walk(tree):
            for field_ in ("body", "orelse", "finalbody", "handlers"):
                stmts = getattr(block, field_, None)
                if isinstance(stmts, list):
                    for x in stmts:
                        parents[x] = stmts
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(_is_radlang(a.name) for a in node.names):
                problems.append(f"{where} imports a radlang module; import what it needs by name")
            if not (isinstance(node, ast.ImportFrom) and _is_radlang(node.module)):
                continue
            mod = importlib.import_module(node.module)
            for a in node.names:
                obj = getattr(mod, a.name, None)
                if obj is None:
                    obj = importlib.import_module(f"{node.module}.{a.name}")
                need(a.asname or a.name, obj, where, node.module)
            indent = lines[node.lineno - 1][: node.col_offset]
            names = ", ".join(a.name for a in node.names)
            for k in range(node.lineno - 1, node.end_lineno):
                lines[k] = ""
            alone = all(_is_radlang(getattr(x, "module", None)) for x in parents.get(node, [node]))
            lines[node.lineno - 1] = f"{indent}{'pass  ' if alone else ''}# from {node.module} import {names}: defined in this script"
        sources.append("\n".join(lines))
        for n in sorted(_annotation_names(src) - _BUILTINS - set(runtime_names) - {name}):
            if n in module_globals and not _is_radlang(getattr(module_globals[n], "__module__", None)):
                need(n, module_globals[n], where)
        if isinstance(f, type):
            used = set()
            for v in f.__dict__.values():
                v = getattr(v, "__func__", v)
                v = getattr(v, "fget", v)
                if isinstance(v, types.FunctionType) and v.__code__.co_filename == inspect.getsourcefile(f):  # not dataclass-made
                    used |= global_names(v)
            cls_node = ast.parse(src).body[0]
            used |= {n.id for d in cls_node.decorator_list + cls_node.bases for n in ast.walk(d) if isinstance(n, ast.Name)}
        else:  # names only its (non-radlang) decorators use are looked up when the module runs, not in its code
            node = ast.parse(src).body[0]
            used = set(global_names(f)) | {n.id for d in node.decorator_list for n in ast.walk(d) if isinstance(n, ast.Name)}
        for n in sorted(used - _BUILTINS - {name} - set(runtime_names)):
            if n not in module_globals:
                problems.append(f"{where} uses `{n}`, which its module does not define")
                continue
            need(n, module_globals[n], where, f.__module__)
    return out, sources, imports, problems


# --------------------------------------------------------------------------- packages

def imported_modules(sources: list[str]) -> list[str]:
    """Top-level modules that the given code imports, third-party only, sorted."""
    mods = set()
    for src in sources:
        for n in ast.walk(ast.parse(src)):
            if isinstance(n, ast.Import):
                mods |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and not n.level and n.module:
                mods.add(n.module.split(".")[0])
    return sorted(m for m in mods if m not in sys.stdlib_module_names and m != "__future__")


# import name -> distribution, for the usual suspects (anything else: importlib.metadata finds it)
DISTRIBUTIONS = {"sklearn": "scikit-learn", "radiomics": "pyradiomics", "sksurv": "scikit-survival", "yaml": "PyYAML",
                 "SimpleITK": "SimpleITK", "PIL": "Pillow", "skimage": "scikit-image"}


def package_pins(modules: list[str]) -> dict[str, str]:
    """Distribution name -> installed version for each imported module (e.g. sklearn -> scikit-learn)."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    pins: dict[str, str] = {}
    dists = None
    for m in modules:
        names = [DISTRIBUTIONS.get(m, m)]
        try:
            pins[names[0]] = version(names[0])
            continue
        except PackageNotFoundError:
            pass
        dists = packages_distributions() if dists is None else dists
        for d in dists.get(m, [m]):
            try:
                pins[d] = version(d)
            except PackageNotFoundError:
                pins.setdefault(d, "unknown")
    return dict(sorted(pins.items(), key=lambda kv: kv[0].lower()))


# --------------------------------------------------------------------------- rendering

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
    """An operator's run-time glue: its `run`, per-case `case` and `on_cohort` functions (those it declares)."""
    return [f for f in (op.run, op.case, op.on_cohort) if f is not None]


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


def _runtime_needs() -> list[Callable]:
    """The radlang functions the runtime calls (imported at its top): inlined like executor glue."""
    from radlang.backends import render_runtime as _runtime

    tree = ast.parse(inspect.getsource(_runtime))
    return [getattr(_runtime, a.asname or a.name) for n in tree.body if isinstance(n, ast.ImportFrom) and _is_radlang(n.module)
            for a in n.names]


def _runtime_source() -> tuple[str, frozenset[str]]:
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
    runtime, runtime_names = _runtime_source()
    from radlang.backends.artefacts import write_artefact_manifest

    wanted: list[Callable] = [*_runtime_needs(), write_artefact_manifest]
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
        args += [f"{what}={fn.__name__}" for what, fn in (("run", op.run), ("case", op.case), ("on_cohort", op.on_cohort)) if fn is not None]
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

    env = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")), autoescape=False,
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


def lock_text(pins: dict[str, str]) -> str:
    return "".join(f"{k}=={v}\n" for k, v in pins.items())


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
