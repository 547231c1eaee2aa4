"""What the rendered script may hold, and how radlang's own code gets into it: the self-containedness check of
operator code (its bytecode and AST), and the inliner that copies run-time glue verbatim with every radlang
function, class and constant it reaches."""

from __future__ import annotations

import ast
import builtins
import dis
import functools
import importlib
import inspect
import sys
import textwrap
import types
from collections.abc import Callable

from radlang.backends.render.literals import RenderError, flat_literal, pylit

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


def is_radlang(module_name: str | None) -> bool:
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
        flat_literal(v)
        return not callable(v)
    except RenderError:
        return False


def _strip_radlang_decorators(src: str, fn) -> str:
    node = ast.parse(src).body[0]
    for d in getattr(node, "decorator_list", []):
        root = d.func if isinstance(d, ast.Call) else d
        while isinstance(root, ast.Attribute):
            root = root.value
        if not (isinstance(root, ast.Name) and is_radlang(getattr(fn.__globals__.get(root.id), "__module__", None))):
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
            if is_radlang(obj.__name__):
                problems.append(f"{where} uses the radlang module `{obj.__name__}`")
            else:
                imports.add(f"import {obj.__name__}" if obj.__name__ == name else f"import {obj.__name__} as {name}")
        elif isinstance(obj, (types.FunctionType, type)) and is_radlang(obj.__module__):
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
                if n in mg and not is_radlang(getattr(mg[n], "__module__", None) or getattr(mg[n], "__name__", None)):
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
            if isinstance(node, ast.Import) and any(is_radlang(a.name) for a in node.names):
                problems.append(f"{where} imports a radlang module; import what it needs by name")
            if not (isinstance(node, ast.ImportFrom) and is_radlang(node.module)):
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
            alone = all(is_radlang(getattr(x, "module", None)) for x in parents.get(node, [node]))
            lines[node.lineno - 1] = f"{indent}{'pass  ' if alone else ''}# from {node.module} import {names}: defined in this script"
        sources.append("\n".join(lines))
        for n in sorted(_annotation_names(src) - _BUILTINS - set(runtime_names) - {name}):
            if n in module_globals and not is_radlang(getattr(module_globals[n], "__module__", None)):
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
