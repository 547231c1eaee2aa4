"""The command line: check, plan, graph (dot | mermaid | json), ops, parse, and `python -m radlang`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_cli as run
from radlang import registry

REPO = Path(__file__).resolve().parents[1]
SPEC = """# A small study on a dataset shipped with scikit-learn
study "CLI" {
  seed: 11
  out: "runs/cli"
}
cohort dev = dataset("breast_cancer") { stop: 400 }
cohort ext = dataset("breast_cancer") { start: 400 }
features feats = tabular(dev)
select keep = variance(feats) { min: 0.0 }
select sig = lasso(keep, target: dev.outcome)
model clf = logistic(sig, target: dev.outcome) { C: 1.0 }
validate v = evaluate(clf) {
  cv: stratified_kfold(3)
  external: ext
  metrics: [auc, brier]
}
"""
STAGES = ["dev", "ext", "feats", "keep", "sig", "clf", "v"]


@pytest.fixture
def spec(tmp_path) -> Path:
    f = tmp_path / "study.rad"
    f.write_text(SPEC)
    return f


def test_check_ok(spec):
    rc, out, err = run(["check", spec])
    assert rc == 0 and out == ""
    assert err.strip() == f"{spec}: ok (7 stages)"


def test_check_json_on_stdout(spec):
    bad = spec.with_name("bad.rad")
    bad.write_text(SPEC.replace("C: 1.0", "C: -1.0").replace("lasso(", "lasoo("))
    rc, out, err = run(["check", bad, "--format", "json"])
    assert rc == 1 and err == ""
    diags = json.loads(out)["diagnostics"]
    assert [d["code"] for d in diags] == ["E103"] or {d["code"] for d in diags} >= {"E103"}
    d = next(x for x in diags if x["code"] == "E103")
    assert d == {"code": "E103", "severity": "error", "phase": "names", "message": "unknown operator `lasoo`",
                 "span": {"file": str(bad), "line": 10, "col": 14, "end_line": 10, "end_col": 19},
                 "hint": "did you mean `lasso`?", "related": []}


def test_plan_text_orders_stages_and_shows_fit_boundaries(spec):
    rc, out, err = run(["plan", spec])
    assert rc == 0
    listed = re.findall(r"^\s*\d+\. \w+ (\w+) = ", out, re.M)
    assert listed == STAGES                                     # lexicographic topological order
    assert "consumes: input=keep, target=dev.outcome" in out    # what each stage consumes
    assert "produces: Model (binary, logistic model)" in out    # ... and produces
    # every fitted stage upstream of the validation is fit inside its training folds
    for name, how in (("keep", "data statistics"), ("sig", "outcomes"), ("clf", "outcomes")):
        block = re.split(r"\n\s*\d+\. ", out.split(f" {name} = ", 1)[1], maxsplit=1)[0]
        assert f"fit on {how}: inside the training folds of v" in block, block


def test_plan_json(spec):
    rc, out, err = run(["plan", spec, "--format", "json"])
    assert rc == 0
    p = json.loads(out)
    assert p["study"] == "CLI" and p["seed"] == 11 and p["out"] == "runs/cli"
    by = {s["name"]: s for s in p["stages"]}
    assert [s["name"] for s in p["stages"]] == STAGES
    assert by["sig"]["consumes"] == {"input": "keep", "target": "dev.outcome"}
    assert by["sig"]["fit"] == "outcome" and by["sig"]["fit_within"] == ["v"]
    assert by["dev"]["fit"] == "none" and by["dev"]["fit_within"] == []
    assert by["clf"]["settings"]["C"] == 1.0
    assert len({s["seed"] for s in p["stages"]}) == len(STAGES)


def test_plan_bad_memory_is_a_usage_error(spec):
    rc, out, err = run(["plan", spec, "--memory", "lots"])
    assert rc == 2 and "E701" in err and "Traceback" not in err


def test_plan_of_a_broken_spec(spec):
    spec.write_text(SPEC + "model clf = logistic(sig)\n")
    rc, out, err = run(["plan", spec])
    assert rc == 1 and "error[E102]" in err and out == ""


def test_graph_dot(spec):
    rc, out, err = run(["graph", spec, "--format", "dot"])
    assert rc == 0
    assert out.startswith("digraph study {") and out.rstrip().endswith("}")
    for s in STAGES:
        assert f'"{s}" [label=' in out
    assert '"sig" -> "clf" [label="input"];' in out
    assert '"dev" -> "clf" [label="target (outcome)"];' in out
    assert '"ext" -> "v" [label="external"];' in out


def test_graph_mermaid(spec):
    rc, out, err = run(["graph", spec, "--format", "mermaid"])
    assert rc == 0
    lines = out.strip().splitlines()
    assert lines[0] == "flowchart LR"
    assert "  clf -->|model| v" in lines
    assert sum("-->" in ln for ln in lines) == 8                # one edge per consumed input


def test_graph_json(spec):
    rc, out, err = run(["graph", spec, "--format", "json"])
    assert rc == 0
    g = json.loads(out)
    assert sorted(n["name"] for n in g["nodes"]) == sorted(STAGES)
    edges = {(e["from"], e["to"]) for e in g["edges"]}
    assert edges == {("dev", "feats"), ("feats", "keep"), ("keep", "sig"), ("dev", "sig"), ("sig", "clf"), ("dev", "clf"),
                     ("clf", "v"), ("ext", "v")}
    fit = {n["name"]: n["fit"] for n in g["nodes"]}
    assert fit["keep"] == "data" and fit["sig"] == "outcome" and fit["feats"] == "none"


def test_graph_default_is_dot(spec):
    assert run(["graph", spec])[1].startswith("digraph")


def test_graph_of_a_broken_spec(spec):
    spec.write_text("cohort a = manifest(\n")
    rc, out, err = run(["graph", spec])
    assert rc == 1 and "error[E001]" in err and out == ""


def test_parse_text_and_json(spec):
    rc, out, err = run(["parse", spec])
    assert rc == 0
    assert out.splitlines()[0] == f'module "{spec}"'
    assert 'model clf = logistic(sig, target: dev.outcome)  @11:1' in out
    assert "  C: 1.0  @11:50" in out
    rc, out, err = run(["parse", spec, "--format", "json"])
    m = json.loads(out)
    assert m["study"]["title"] == "CLI" and len(m["stmts"]) == 7
    clf = m["stmts"][5]
    assert clf["op"]["name"] == "logistic" and clf["settings"][0]["key"] == "C"
    assert clf["span"]["line"] == 11


def test_parse_syntax_error(spec):
    spec.write_text('cohort a = manifest("a.csv") {\n')
    rc, out, err = run(["parse", spec])
    assert rc == 1 and "error[E001]" in err and "unexpected end of file" in err


def test_ops_lists_every_registered_operator():
    rc, out, err = run(["ops"])
    assert rc == 0
    for op in registry.all_ops():
        assert f"  {op.name}(" in out, op.name
    kinds = re.findall(r"^== (\w+)$", out, re.M)
    assert kinds == sorted(kinds) and set(kinds) == {o.kind for o in registry.all_ops()}


def test_ops_one_operator_with_settings():
    rc, out, err = run(["ops", "logistic"])
    assert rc == 0
    assert "logistic(input: Features, target: Outcome) -> Model" in out
    for name in registry.get("logistic").settings.model_fields:
        assert f"      {name}: " in out


def test_ops_json_and_markdown():
    rc, out, err = run(["ops", "--format", "json"])
    ops = json.loads(out)["operators"]
    assert [o["name"] for o in ops] == [o.name for o in registry.all_ops()]
    manifest = next(o for o in ops if o["name"] == "manifest")
    path = next(s for s in manifest["settings"] if s["name"] == "path")
    assert path["required"] is True and manifest["kind"] == "cohort" and manifest["output"] == "Cohort"
    rc, out, err = run(["ops", "--format", "markdown"])
    assert rc == 0 and "#### `manifest`" in out and "| `path` |" in out
    import re

    rows = [line for line in out.splitlines() if line.startswith("| `")]
    cells = {line: len(re.split(r"(?<!\\)\|", line)) - 2 for line in rows}    # unescaped bars split the cells
    assert rows and all(n == 5 for n in cells.values()), [line for line, n in cells.items() if n != 5][:3]


def test_version():
    rc, out, err = run(["--version"])
    from radlang import __version__

    assert rc == 0 and out.strip() == f"radlang {__version__}"


def test_python_dash_m_matches_the_console_script(spec, tmp_path):
    """`python -m radlang` and the `radlang` console script behave the same (output and exit code)."""
    exe = Path(sys.executable).with_name("radlang")
    if not exe.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    for argv in (["graph", str(spec), "--format", "mermaid"], ["check", str(tmp_path / "none.rad")]):
        a = subprocess.run([sys.executable, "-m", "radlang", *argv], capture_output=True, text=True, cwd=tmp_path)
        b = subprocess.run([str(exe), *argv], capture_output=True, text=True, cwd=tmp_path)
        assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)
    assert a.returncode == 2


def test_examples_check_clean():
    """Every shipped example compiles without errors."""
    examples = sorted((REPO / "examples").glob("*.rad"))
    if not examples:
        pytest.skip("no examples yet")
    for ex in examples:
        rc, out, err = run(["check", ex], cwd=ex.parent)
        assert rc == 0, err
