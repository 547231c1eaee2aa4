"""The executor, its modes and the renderer never name an operator: operators own their run-time behaviour
(radlang/registry.py: `behaviour`, `run`, `case`, `on_cohort`, `cli_paths`). A module under radlang/backends/
that dispatches on an operator's name (a comparison or `match` with it, `registry.get("<name>")`) or imports an
operator module's internals (`from radlang.ops.<module> import ...`) fails here, listed as file:line, so adding
an operator stays one module under radlang/ops/.

Operator names that are also ordinary words (`threshold` is a setting of `evaluate`, `pyradiomics` a package,
`evaluate` a mode's name) are flagged only where code dispatches on them, never in docstrings or comments."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from radlang import registry

BACKENDS = Path(__file__).resolve().parents[1] / "radlang" / "backends"


def _dispatch_constants(tree):
    """String constants that code dispatches on: comparison operands (also inside a tuple, list or set operand),
    `match` case values, and the arguments of a `.get(...)` or `get(...)` call on the registry."""
    for node in ast.walk(tree):
        operands = []
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.MatchValue):
            operands = [node.value]
        elif isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "get" and isinstance(f.value, ast.Name) and f.value.id == "registry") or (
                    isinstance(f, ast.Name) and f.id == "get_op"):
                operands = list(node.args)
        for o in operands:
            for x in ([o] if not isinstance(o, (ast.Tuple, ast.List, ast.Set)) else o.elts):
                if isinstance(x, ast.Constant) and isinstance(x.value, str):
                    yield x


def operator_mentions(source: str, names: set[str], where: str) -> list[str]:
    """file:line entries for code that dispatches on an operator name and for imports from radlang.ops modules
    (the registry is radlang.registry)."""
    tree = ast.parse(source)
    found = [f"{where}:{c.lineno}: dispatches on operator `{c.value}`" for c in _dispatch_constants(tree) if c.value in names]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (node.module == "radlang.ops" or node.module.startswith("radlang.ops.")):
            found.append(f"{where}:{node.lineno}: imports from `{node.module}` ({', '.join(a.name for a in node.names)})")
        elif isinstance(node, ast.Import) and any(a.name.startswith("radlang.ops") for a in node.names):
            found.append(f"{where}:{node.lineno}: imports an operator module")
    return found


def test_the_check_finds_operator_names_and_operator_imports():
    src = '''"""Mode for `manifest` cohorts (a docstring may name one)."""
# a comment may too: phantom
def run(stage, params):
    from radlang.ops.cohorts import load_manifest
    if stage.op == "manifest":
        return params.get("otsu")
    if stage.op in ("phantom", "table"):
        return registry.get("otsu")
    return "phantom"
'''
    found = sorted(operator_mentions(src, {"manifest", "phantom", "otsu"}, "x.py"))
    assert found == ["x.py:4: imports from `radlang.ops.cohorts` (load_manifest)", "x.py:5: dispatches on operator `manifest`",
                     "x.py:7: dispatches on operator `phantom`", "x.py:8: dispatches on operator `otsu`"], found


def _mentions() -> list[str]:
    names = {op.name for op in registry.all_ops()}
    found = []
    for path in sorted(BACKENDS.rglob("*.py")):
        found += operator_mentions(path.read_text(encoding="utf-8"), names, str(path.relative_to(BACKENDS.parents[1])))
    return found


HINT = ("radlang/backends/ must not name operators nor import their modules; move the operator-specific glue into the "
        "operator's `run` (radlang/ops/) and declare what the executor needs:\n  ")


def test_no_backend_module_names_an_operator():
    found = _mentions()
    assert not found, HINT + "\n  ".join(found)
