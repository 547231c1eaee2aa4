"""Spec strings, comments and paths that hold quotes, triple quotes, backslashes, newlines, carriage
returns, Jinja syntax and Python code end up in the script only as inert literals and comments: the
script renders, parses, runs the study, and nothing else runs (no marker file appears)."""

from __future__ import annotations

import ast
import io
import json
import tokenize

import pytest
from render_helpers import compile_spec, run_script
from test_equivalence import equivalent

from radlang.backends.render.script import render_to_dir, render_to_file


def _payload(marker) -> str:
    # Python that would create the marker file if it ever ran, in the shapes an injection would take
    return f'"); import os; os.system("touch {marker}"); ("'


def test_nasty_spec_renders_inert_and_runs_only_the_study(tmp_path):
    marker = tmp_path / "PWNED"
    code = _payload(marker)
    esc = code.replace("\\", "\\\\").replace('"', '\\"')     # as a radlang string literal
    # a folder and a spec file name with quotes, braces, a newline and Jinja syntax
    folder = tmp_path / "we\"ird '{{ x }}' {% if %}\nfolder"
    folder.mkdir()
    spec = folder / 'sp"ec{{y}}.rad'
    spec.write_text(
        f"# {code}\n"
        "# triple quotes \"\"\" ''' a backslash \\ {{ jinja }} {% raw %} {# c #} and a carriage\rreturn in a comment\n"
        f'study "T\\"itle \\"\\"\\" \'\'\' \\\\ {{{{ x }}}} {{% if 1 %}} {esc}" {{\n'
        "  seed: 5\n"
        f'  out: "runs/o\\"ut\'\\\\ {{{{ y }}}} {esc}\\n"\n'
        "}\n"
        f'cohort dev = dataset("breast_cancer") {{ stop: 120, site: "s{esc}\\n\\"\\"\\"\\r" }}  # {code}\n'
        'cohort ext = dataset("breast_cancer") { start: 500 }\n'
        "features f = tabular(dev)\n"
        f"model clf = logistic(f, target: dev.outcome)   # }}}} {{% endif %}} {code}\n"
        'validate v = evaluate(clf) { cv: "none", external: ext, metrics: [auc], bootstrap: 0 }\n',
        encoding="utf-8", newline="")
    study = compile_spec(spec)
    script = render_to_file(study, folder / "study.py")
    text = script.read_text(encoding="utf-8")

    tree = ast.parse(text)   # valid Python
    # the payload never appears as code: every occurrence of it is inside a string constant or a comment
    calls = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call) and "system" in ast.unparse(n.func)]
    assert calls == [], calls
    for line in text.splitlines():
        if "os.system" in line:
            stripped = line.lstrip()
            assert stripped.startswith(("#", "'", '"')) or "'" in line.split("os.system")[0], line
    # the string settings reach the study intact
    consts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert f"s{code}\n\"\"\"\r" in consts and study.title in consts

    # the script runs the study (and gives `radlang run`'s bytes: this is also the equivalence test of an
    # external-cohort validation), and nothing else
    out = equivalent(study, tmp_path / "eq", script_path=script)
    assert not marker.exists(), "spec text ran as code"
    metrics = json.loads(out["metrics/v.json"])
    assert metrics["n_cases"] == 120 and 0.5 < metrics["external"]["auc"]["estimate"] <= 1.0
    # without --out the spec's nasty `out` folder is used, relative to the spec's folder, and still nothing runs
    proc = run_script(script)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (folder / study.config["out"] / "metrics" / "v.json").is_file()
    assert not marker.exists()


HOSTILE = ["-*- coding: utf_7 -*-", "vim: set fileencoding=latin-1 :", '"""', "a\rb", "a\u2028b\u2029c\x85d", "{{ x }} {% if 1 %}",
           "+AGkAbQBwAG8-rt os"]   # the last one is `import os` in UTF-7


@pytest.mark.parametrize("text", HOSTILE, ids=["coding-utf7", "vim-coding", "triple-quote", "cr", "u2028", "jinja", "utf7-payload"])
def test_spec_text_never_decides_how_python_decodes_the_script(tmp_path, text):
    """Python reads an encoding declaration from line 1 or 2 of a file: those two lines are fixed, whatever the
    title, comments and paths hold, and the script compiles from its bytes (as `python script.py` reads it)."""
    lit = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\u2028", "\\u2028") \
        .replace("\u2029", "\\u2029").replace("\x85", "\\u0085")
    comment = text.replace("\r", " ").replace("\u2028", " ").replace("\u2029", " ").replace("\x85", " ")
    folder = tmp_path / comment.replace("/", "_")
    folder.mkdir()
    spec = folder / "spec.rad"
    spec.write_text(
        f'# {comment}\nstudy "{lit}" {{ seed: 3, out: "runs/{lit}" }}\n# {comment}\ncohort dev = dataset("breast_cancer") {{ stop: 60 }}\n'
        f"features f = tabular(dev)   # {comment}\nmodel clf = logistic(f, target: dev.outcome)\n"
        'validate v = evaluate(clf) { cv: stratified_kfold(3), metrics: [auc], bootstrap: 0 }\n', encoding="utf-8", newline="")
    study = compile_spec(spec)
    script = render_to_file(study, folder / "study.py")
    raw = script.read_bytes()
    assert raw.split(b"\n")[:2] == [b"#!/usr/bin/env python3",
                                    b"# A standalone study script rendered by radlang (UTF-8; no spec text is on these two lines)."]
    assert tokenize.detect_encoding(io.BytesIO(raw).readline)[0] == "utf-8"
    tree = compile(raw, str(script), "exec", ast.PyCF_ONLY_AST)        # from bytes: honours a coding declaration
    consts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert study.title == text and text in consts and f"runs/{text}" in consts
    # a carriage return would end a comment line for Python: none is written, only its escape
    assert b"\r" not in raw
    review = render_to_dir(study, folder / "review")
    for name, head in (("study.py", [b"#!/usr/bin/env python3",
                                     b"# A study rendered by radlang for review (UTF-8; no spec text is on these two lines)."]),
                       ("radlang_runtime.py", [
                           b"# The runtime of a study rendered by radlang for review (UTF-8; no spec text is on these two lines).",
                           b"# study.py beside this file checks this file's sha256 before it imports it: do not edit it."])):
        raw = (review / name).read_bytes()
        assert raw.split(b"\n")[:2] == head, name
        assert tokenize.detect_encoding(io.BytesIO(raw).readline)[0] == "utf-8" and b"\r" not in raw
        compile(raw, name, "exec", ast.PyCF_ONLY_AST)
