"""Every operator that `radlang run` supports can be rendered: its declared run-time glue (`run`, `case`,
`on_cohort`) can be inlined with everything it reaches, and its implementation and helpers can be inlined
into a standalone script (no radlang, no module globals).

A new operator that `render` cannot write fails here, with the reason."""

from __future__ import annotations

import os

import pytest

from radlang import registry
from radlang.backends.render.inline import check_operator, global_names, self_contained_problems

GLOBAL_CONSTANT = 3


def _uses_global(x):
    return x * GLOBAL_CONSTANT


def _uses_module_import(path):
    return os.path.exists(path)


def _imports_radlang():
    from radlang.values import to_plain

    return to_plain({})


def _helper_a(x):
    return x + 1


def _calls_helper(x):
    return _helper_a(x) * 2


def _local_imports_and_nesting(values):
    import math
    from collections import Counter

    def inner(v):
        return math.floor(v)

    class Box:
        scale = 2

        def get(self, v):
            return v * self.scale

    counts = Counter(inner(v) for v in values)
    return sorted(counts.items()), [Box().get(v) for v in values], [lambda: len(values)][0]()


def _default_uses_global(x, k=GLOBAL_CONSTANT):
    return x + k


_MODULE_OBJECT = object()


def _glue_reads_a_module_object(stage, ctx):
    return _MODULE_OBJECT


def _closure_factory():
    y = 2

    def closed(x):
        return x + y

    return closed


@pytest.mark.parametrize("fn, needle", [
    (_uses_global, "GLOBAL_CONSTANT"),
    (_uses_module_import, "`os`"),
    (_imports_radlang, "imports `radlang.values`"),
    (_calls_helper, "`_helper_a`"),
    (_default_uses_global, "default value uses the global `GLOBAL_CONSTANT`"),
    (_closure_factory(), "closes over y"),
    (lambda x: x, "lambda"),
    (len, "not a plain function"),
])
def test_checker_rejects_code_that_needs_its_module(fn, needle):
    problems = self_contained_problems(fn)
    assert any(needle in p for p in problems), problems


def test_checker_accepts_local_imports_nested_code_and_listed_helpers():
    assert self_contained_problems(_local_imports_and_nesting) == []
    assert self_contained_problems(_calls_helper, {"_helper_a"}) == []
    assert global_names(_calls_helper) == {"_helper_a"}
    # builtins are looked up as globals but are always there
    assert "sorted" in global_names(_local_imports_and_nesting)


def test_every_operator_declares_how_it_runs_and_can_be_rendered():
    missing = [f"`{op.name}` ({op.impl.__module__ if op.impl else 'no impl'})" for op in registry.all_ops() if op.run is None]
    assert not missing, "operators that declare no `run`: " + ", ".join(missing)
    assert {op.behaviour for op in registry.all_ops()} <= {"stateless", "per_case", "fitted"}
    assert all(op.case is not None for op in registry.all_ops() if op.behaviour == "per_case")


def test_every_operator_run_function_can_be_inlined():
    """What `call_run` inlines: an operator's run-time glue and everything it reaches (radlang functions, classes,
    constants, the generic per-case map); anything the script cannot hold is reported here, before a user renders."""
    from radlang.backends.render.inline import inline_closure, op_functions
    from radlang.backends.render.script import run_functions, runtime_source

    strict = {f for op in registry.all_ops() for f in op_functions(op)}
    _, runtime_names = runtime_source()
    problems = {}
    for op in registry.all_ops():
        fns = run_functions(op)
        if not fns:
            continue
        objs, _, _, ps = inline_closure(fns, strict, runtime_names)
        assert all(any(f is o for o in objs) for f in fns)
        if ps:
            problems[op.name] = ps
    assert not problems, "operator run-time code a rendered script cannot hold:\n" + "\n".join(
        f"  {name}: {p}" for name, ps in problems.items() for p in dict.fromkeys(ps))


def test_inlining_reports_run_glue_that_needs_its_module():
    """The check above can fail: glue that reads a module-level object the script cannot hold is reported."""
    from radlang.backends.render.inline import inline_closure
    from radlang.backends.render.script import runtime_source

    _, runtime_names = runtime_source()
    _, _, _, problems = inline_closure([_glue_reads_a_module_object], set(), runtime_names)
    assert any("_MODULE_OBJECT" in p for p in problems), problems


def test_every_operator_implementation_is_self_contained():
    problems = {op.name: check_operator(op) for op in registry.all_ops()}
    bad = {k: v for k, v in problems.items() if v}
    assert not bad, "operator code that cannot be inlined into a rendered script:\n" + "\n".join(
        f"  {name}: {p}" for name, ps in sorted(bad.items()) for p in ps)


def test_no_two_operator_functions_share_a_name():
    seen: dict[str, object] = {}
    clashes = []
    for op in registry.all_ops():
        for f in ([op.impl] if op.impl else []) + list(op.helpers):
            prev = seen.setdefault(f.__name__, f)
            if prev is not f:
                clashes.append(f"`{f.__name__}`: {prev.__module__} and {f.__module__}")
    assert not clashes, "a rendered script holds every function once, by name; rename one of: " + "; ".join(clashes)
