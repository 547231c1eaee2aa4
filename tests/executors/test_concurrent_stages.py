"""Independent stages run concurrently (radlang/backends/stages.py), with the outputs of a serial run.

The proof of concurrency is a rendezvous, not a timing: each of two independent stages puts one task into the local
pool that waits until the other stage's task has started; both see each other only if the two stages' tasks were in
the workers at the same time (run one after another, the first task gives up after its wait and returns False)."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from radlang import registry
from radlang.backends.cache import Cache
from radlang.backends.executor import RunContext, run_stages
from radlang.backends.executors.local import LocalPool
from radlang.compiled import InputRef, Stage
from tests.executors._util import rendezvous

WAIT_S = 60.0          # how long a rendezvous task waits for the other stage's (the test fails, never hangs, without it)


def _stage(name, *deps):
    return Stage(name=name, kind="features", op=f"fake_{name}", settings=None, params={},
                 inputs={f"in{i}": InputRef(d) for i, d in enumerate(deps)}, type=None, span=None)


def _fake_ops(monkeypatch, runs):
    """registry.get for the fake stages: `runs[name](stage, ctx)` is the stage's run-time code."""
    real = registry.get
    monkeypatch.setattr(registry, "get", lambda op: SimpleNamespace(run=runs[op[5:]], version="1") if op.startswith("fake_")
                        else real(op))


@pytest.fixture
def pool_ctx(tmp_path):
    ctx = RunContext(study=None, out=tmp_path / "out", cache=Cache(tmp_path / "out" / ".cache"), workers=2, quiet=True,
                     executor=LocalPool(2))
    ctx.warnings = ctx.cache.warnings
    yield ctx
    ctx.close()


def test_independent_stages_overlap_and_report_in_the_study_order(tmp_path, monkeypatch, capfd, pool_ctx):
    events, lock = [], threading.Lock()
    meet = tmp_path / "meet"
    meet.mkdir()

    def record(name, what):
        with lock:
            events.append((name, what, time.monotonic()))

    def meeting(me, other):
        def run(stage, ctx):
            record(me, "start")
            if me == "b":                 # b speaks before its task, a after: the warnings come in b-a time order
                ctx.warn("W001", "from b")
                ctx.summary.append("b")
            met = dict(ctx.executor.map(rendezvous, [(me, other, str(meet), WAIT_S)]))[0]
            if me == "a":
                ctx.warn("W001", "from a")
                ctx.summary.append("a")
            record(me, "end")
            return met
        return run

    def after(stage, ctx):
        record("c", "start")
        return [ctx.results["a"], ctx.results["b"]]

    _fake_ops(monkeypatch, {"a": meeting("a", "b"), "b": meeting("b", "a"), "c": after})
    run_stages(pool_ctx, [_stage("a"), _stage("b"), _stage("c", "a", "b")], concurrent=True)

    assert pool_ctx.results == {"a": True, "b": True, "c": [True, True]}     # each stage's task met the other's
    at = {(n, w): t for n, w, t in events}
    assert at["a", "start"] < at["b", "end"] and at["b", "start"] < at["a", "end"]     # the two intervals overlap
    assert at["c", "start"] > max(at["a", "end"], at["b", "end"])                   # c waited for both
    # what the stages add to the run comes in the study's order, not in the order it happened
    assert pool_ctx.warnings == ["W001: from a", "W001: from b"]
    assert pool_ctx.summary == ["a", "b"]
    err = capfd.readouterr().err
    assert err.index("warning[W001]: from a") < err.index("warning[W001]: from b")


def test_serial_stages_do_not_meet(tmp_path, monkeypatch, pool_ctx):
    """The same rendezvous, stages one after another: the first stage's task waits alone (the control experiment)."""
    meet = tmp_path / "meet"
    meet.mkdir()
    def meeting(me, other):
        return lambda stage, ctx: dict(ctx.executor.map(rendezvous, [(me, other, str(meet), 1.0)]))[0]

    _fake_ops(monkeypatch, {"a": meeting("a", "b"), "b": meeting("b", "a")})
    run_stages(pool_ctx, [_stage("a"), _stage("b")], concurrent=False)
    assert pool_ctx.results == {"a": False, "b": True}


def test_the_earliest_error_in_the_study_order_is_raised(tmp_path, monkeypatch, pool_ctx):
    """b fails; a, before it in the study's order, still runs to its own error, which is the one raised (the error a
    serial run stops at); d, independent and already running, gets its task's result only after b failed (the task
    waits for b's sign) and stops there, without a result; c, which reads d, never starts."""
    meet = tmp_path / "meet"
    meet.mkdir()

    def a(stage, ctx):
        list(ctx.executor.map(abs, [-1, -2]))
        raise ValueError("a failed")

    def b(stage, ctx):
        (meet / "b").touch()
        raise ValueError("b failed")

    def d(stage, ctx):
        return dict(ctx.executor.map(rendezvous, [("d", "b", str(meet), WAIT_S)]))[0]

    started = []
    _fake_ops(monkeypatch, {"a": a, "b": b, "d": d, "c": lambda stage, ctx: started.append("c")})
    with pytest.raises(ValueError, match="a failed"):
        run_stages(pool_ctx, [_stage("a"), _stage("b"), _stage("d"), _stage("c", "d")], concurrent=True)
    assert pool_ctx.results == {} and started == []


SPEC = """
study "two cohorts" { seed: 3 }
cohort a = phantom(6) { size: [16, 16, 16], effect: 2.0 }
cohort b = phantom(6, seed: 21) { size: [16, 16, 16], effect: 2.0 }
features ra = pyradiomics(a.image, a.mask) { bin_width: 25, classes: [firstorder, glcm] }
features rb = pyradiomics(b.image, b.mask) { bin_width: 25, classes: [firstorder, glcm] }
model ca = logistic(ra, target: a.outcome) { C: 1.0 }
model cb = logistic(rb, target: b.outcome) { C: 1.0 }
validate va = evaluate(ca) { cv: stratified_kfold(2), metrics: [auc, brier], bootstrap: 10 }
validate vb = evaluate(cb) { cv: stratified_kfold(2), metrics: [auc, brier], bootstrap: 10 }
"""


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "run.json" and ".cache" not in p.relative_to(out).parts}


def test_concurrent_stages_write_the_bytes_of_a_serial_run(tmp_path):
    """Two cohorts' extractions and evaluations, 2 workers: the same files (manifest.json included), the same
    warnings, excluded cases, cache counts and summary, and every stage run."""
    import json

    from radlang.backends.executor import run_study
    from radlang.compiler import compile_file

    spec = tmp_path / "s.rad"
    spec.write_text(textwrap.dedent(SPEC))
    res = compile_file(spec)
    assert res.ok, [d.message for d in res.diagnostics]
    serial = run_study(res.study, out=tmp_path / "serial", workers=2, quiet=True, concurrent=False)
    both = run_study(res.study, out=tmp_path / "concurrent", workers=2, quiet=True)         # concurrent by default
    one, two = _tree(tmp_path / "serial"), _tree(tmp_path / "concurrent")
    assert {"manifest.json", "features/ra.csv", "features/rb.csv", "metrics/va.json", "metrics/vb.json"} <= set(one)
    assert one.keys() == two.keys() and [k for k in one if one[k] != two[k]] == []
    runs = [json.loads((tmp_path / d / "run.json").read_text()) for d in ("serial", "concurrent")]
    for field in ("warnings", "excluded_cases", "cache", "inputs"):
        assert runs[0][field] == runs[1][field], field
    assert serial.summary == both.summary and len(both.summary) == 4
    assert set(both.timings) == {s.name for s in res.study.stages} | {"total"}
