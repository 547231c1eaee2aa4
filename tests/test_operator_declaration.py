"""How an operator runs is part of its declaration (radlang/registry.py), and the registry refuses a
declaration that leaves it open: no behaviour, no `run`, a per-case operator without its per-case function."""

from __future__ import annotations

import pytest

from radlang import registry
from radlang.registry import Operator
from radlang.values import Settings


def _run(stage, ctx):
    return None


@pytest.mark.parametrize("fields, needle", [
    ({"run": _run}, "`behaviour` must be one of"),
    ({"behaviour": "sometimes", "run": _run}, "`behaviour` must be one of"),
    ({"behaviour": "stateless"}, "declares no `run`"),
    ({"behaviour": "per_case", "run": _run}, "declare the per-case function as `case`"),
])
def test_an_operator_must_declare_how_it_runs(fields, needle):
    with pytest.raises(ValueError, match=needle):
        Operator(name="x", kind="cohort", doc="", settings=Settings, output="Cohort", **fields)


def test_a_networks_run_value_and_its_type_agree_on_its_head():
    """Training, inference and Grad-CAM read the head from the network stage's value; the checker reads it from
    its type. Both come from the network's own module, so a segmenter is never trained as a classifier."""
    from radlang.compiler import compile_source

    nets = [op for op in registry.all_ops() if op.kind == "network"]
    assert nets
    for op in nets:
        res = compile_source(op.examples[0] + "\n", "<net>", passes=False)   # no pruning: the network is the whole study
        assert res.study is not None, [d.message for d in res.diagnostics]
        (stage,) = res.study.stages
        value = op.run(stage, None)
        assert value["head"] == stage.type.head and value["head"] in ("segmentation", "classification"), op.name
        assert value["arch"] == op.name and value["divisor"] >= 1
