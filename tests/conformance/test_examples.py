"""Conformance, step 1: every registered operator has doc examples, and each example, embedded in a fixture study
generated from the operator's declaration, passes `radlang check` and `radlang plan` with the example's stage planned."""

from __future__ import annotations

import json

import pytest
from conformance_fixtures import DATA, fixture, study_text, write_data, write_example_file
from conformance_harness import GROUPS, OVERRIDES, members, run_fixtures

from radlang.registry import all_ops
from tests.cli_runner import run_cli

OPS = all_ops()
EXAMPLES = [(op, i) for op in OPS for i in range(len(op.examples))]


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_operator_has_examples(op):
    assert op.examples, f"operator `{op.name}` has no doc examples: add `examples=(...)` to its registration in radlang/ops/"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One folder for every example's spec, with the fixture cohorts' data (`radlang check` reads the data a spec names)."""
    folder = tmp_path_factory.mktemp("examples")
    return folder, write_data(folder)


@pytest.mark.parametrize("op,i", EXAMPLES, ids=[f"{op.name}-{i}" for op, i in EXAMPLES])
def test_example_checks_and_plans(op, i, data):
    folder, rows = data
    spec = folder / f"{op.name}-{i}.rad"
    fx = fixture(op, op.examples[i], "ex", tiny=False, spec=spec)
    for rel, params in fx.files:
        write_example_file(folder, rel, params, rows["dev"], folder / DATA / "dev")
    for rel, text in fx.texts:
        (folder / rel).write_text(text, encoding="utf-8")
    spec.write_text(study_text(f"example {i} of {op.name}", [fx.text]), encoding="utf-8")
    rc, out, err = run_cli(["check", spec, "--format", "json"])
    assert rc == 0, f"`{op.name}` example {op.examples[i]!r} does not check:\n{out}{err}"
    rc, out, err = run_cli(["plan", spec, "--format", "json"])
    assert rc == 0, f"`{op.name}` example {op.examples[i]!r} does not plan:\n{out}{err}"
    planned = {s["name"]: s for s in json.loads(out)["stages"]}
    assert fx.stage in planned, f"`{op.name}` example's stage `{fx.stage}` is not in the plan: {sorted(planned)}"
    assert planned[fx.stage]["op"] == op.name


def test_every_operator_is_run_once():
    """Each operator is in exactly one run group or has a documented override: none is left out silently."""
    placed = [name for g in GROUPS for name in members(g)] + list(OVERRIDES)
    assert sorted(placed) == sorted(op.name for op in OPS)
    assert set(OVERRIDES) <= set(run_fixtures())
