"""Bad input gets a diagnostic and exit 1 (spec errors) or 2 (usage errors), never a traceback.

Most cases run the CLI in-process (fast); a few run it as a real subprocess, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from radlang.compiler import compile_source

REPO = Path(__file__).resolve().parents[1]
OK_SPEC = """study "Small" { seed: 1 }
cohort dev = dataset("breast_cancer")
features feats = tabular(dev)
model clf = logistic(feats, target: dev.outcome)
validate v = evaluate(clf)
"""


def check_file(tmp_path, data: bytes | str, name="spec.rad", fmt="text"):
    f = tmp_path / name
    f.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    rc, out, err = run_cli(["check", f, "--format", fmt])
    assert "Traceback" not in out + err
    return rc, out, err


def codes_of(out: str) -> list[str]:
    return [d["code"] for d in json.loads(out)["diagnostics"]]


# ------------------------------------------------------------------------------------ spec errors: exit 1

@pytest.mark.parametrize("data,code", [
    (b"", "E004"),
    (b"   \n\n  # only a comment\n", "E004"),
    (bytes(range(256)) * 4, "E003"),                                  # binary garbage (has NUL bytes)
    (b"\x89PNG\r\n\x1a\n" + bytes([0xFF, 0xFE, 0xFD]) * 50, "E003"),   # binary without NUL: invalid UTF-8
    ('study "T" { seed: 1 }\ncohort a = manifest("caf\u00e9.csv")\n'.encode("latin-1"), "E003"),  # invalid UTF-8 mid-file
    (b'cohort a = manifest("a.csv) {\n  image: ct\n}\n', "E002"),          # unterminated string
    (b"cohort a = manifest(\"a.csv\") { x: " + b"[" * 1000 + b"]" * 1000 + b" }\n", "E005"),   # lists nested 1,000 deep
    (b"cohort a = manifest(\"a.csv\") { x: " + b"[" * 1000 + b"\n", "E005"),                     # ... and never closed
], ids=["empty", "comment-only", "binary", "png-bytes", "latin1", "unterminated-string", "nested-1000", "nested-unclosed"])
def test_bad_bytes(tmp_path, data, code):
    rc, out, err = check_file(tmp_path, data)
    assert rc == 1
    assert f"error[{code}]" in err, err
    assert f"{tmp_path / 'spec.rad'}:" in err          # file:line:col
    rc, out, _ = check_file(tmp_path, data, fmt="json")
    assert rc == 1 and code in codes_of(out)


def test_invalid_utf8_points_at_the_line(tmp_path):
    data = b'study "T" { seed: 1 }\ncohort a = manifest("caf\xe9.csv")\n'
    rc, out, _ = check_file(tmp_path, data, fmt="json")
    d = json.loads(out)["diagnostics"][0]
    assert (d["code"], d["span"]["line"], d["span"]["col"]) == ("E003", 2, 25)


def test_ten_megabyte_spec(tmp_path):
    line = 'cohort c = manifest("a.csv") { clinical: [' + ", ".join(["age"] * 20) + "] }\n"
    data = (line * (10 * 1024 * 1024 // len(line) + 1)).encode()
    assert len(data) >= 10 * 1024 * 1024
    rc, out, err = check_file(tmp_path, data)
    assert rc == 1
    assert "error[E005]" in err and "MB" in err


def test_name_defined_twice(tmp_path):
    rc, out, err = check_file(tmp_path, OK_SPEC + 'cohort dev = dataset("breast_cancer")\n', fmt="json")
    assert rc == 1
    d = json.loads(out)["diagnostics"]
    dup = [x for x in d if x["code"] == "E102"]
    assert len(dup) == 1 and dup[0]["span"]["line"] == 6
    assert dup[0]["related"][0]["span"]["line"] == 2          # "first defined here"


def test_missing_preset(tmp_path):
    rc, out, err = check_file(tmp_path, 'use "no_such_preset"\n' + OK_SPEC)
    assert rc == 1 and "error[E105]" in err and "no_such_preset" in err


def test_missing_local_preset_file(tmp_path):
    rc, out, err = check_file(tmp_path, 'use "lib/nothing.rad"\n' + OK_SPEC)
    assert rc == 1 and "error[E105]" in err


def test_circular_use(tmp_path):
    (tmp_path / "a.rad").write_text('use "b.rad"\npreset pa = pyradiomics() { bin_width: 25 }\n')
    (tmp_path / "b.rad").write_text('use "a.rad"\npreset pb = pyradiomics() { bin_count: 16 }\n')
    rc, out, err = check_file(tmp_path, 'use "a.rad"\n' + OK_SPEC)
    assert rc == 1 and "error[E106]" in err and "circular" in err


def test_self_use(tmp_path):
    rc, out, err = check_file(tmp_path, 'use "spec.rad"\n' + OK_SPEC)
    assert rc == 1 and "error[E106]" in err


def test_preset_with_bad_bytes(tmp_path):
    (tmp_path / "p.rad").write_bytes(b"preset p = pyradiomics() { bin_width: \xff }\n")
    rc, out, err = check_file(tmp_path, 'use "p.rad"\n' + OK_SPEC)
    assert rc == 1 and "error[E003]" in err and "error[E105]" in err


def test_preset_file_with_a_study(tmp_path):
    (tmp_path / "p.rad").write_text('study "not a preset" { seed: 1 }\npreset p = pyradiomics() { bin_width: 25 }\n')
    rc, out, err = check_file(tmp_path, 'use "p.rad"\n' + OK_SPEC)
    assert rc == 1 and "error[E107]" in err


def test_all_errors_at_once(tmp_path):
    spec = OK_SPEC + ('cohort dev = dataset("breast_cancer")\n'          # E102
                      'features g = tabular(nothing)\n'                   # E101
                      'select s = lasoo(g, target: dev.outcome)\n'        # E103
                      'validate w = evaluate(clf) { bootstrap: -5 }\n')   # E302
    rc, out, _ = check_file(tmp_path, spec, fmt="json")
    assert rc == 1
    assert {"E101", "E102", "E103", "E302"} <= set(codes_of(out))


def test_syntax_errors_in_several_statements_reported_together(tmp_path):
    spec = 'cohort a = manifest("a.csv") { x: : 1 }\ncohort b = manifest("b.csv"\ncohort c = manifest("c.csv") { y: ] }\n'
    rc, out, _ = check_file(tmp_path, spec, fmt="json")
    lines = sorted(d["span"]["line"] for d in json.loads(out)["diagnostics"])
    assert rc == 1 and lines == [1, 2, 3]


def test_lark_exceptions_are_translated(tmp_path):
    rc, out, err = check_file(tmp_path, "cohort a = manifest(\"a.csv\") { image: ct @ }\n")
    assert rc == 1 and "error[E001]" in err and "unexpected character '@'" in err
    msg = err.split("spec.rad:", 1)[1]
    assert "lark" not in msg.lower() and "Unexpected" not in msg


def test_caret_under_the_span(tmp_path):
    rc, out, err = check_file(tmp_path, OK_SPEC.replace("logistic(feats", "logistik(feats"))
    lines = err.splitlines()
    i = next(k for k, ln in enumerate(lines) if "error[E103]" in ln)
    assert lines[i + 1].endswith("model clf = logistik(feats, target: dev.outcome)")
    caret = lines[i + 2]
    col = lines[i + 1].index("logistik")
    assert caret.index("^") == col and caret.count("^") == len("logistik")
    assert "did you mean `logistic`?" in lines[i + 3]


# ------------------------------------------------------------------------------------ exit codes 0 and 2

def test_clean_spec_exits_0(tmp_path):
    rc, out, err = check_file(tmp_path, OK_SPEC)
    assert rc == 0 and "ok (4 stages)" in err
    rc, out, _ = check_file(tmp_path, OK_SPEC, fmt="json")
    assert rc == 0 and json.loads(out) == {"diagnostics": []}


def test_warnings_alone_exit_0(tmp_path):
    rc, out, err = check_file(tmp_path, OK_SPEC + "select unused = variance(feats)\n")
    assert rc == 0 and "warning[W402]" in err


@pytest.mark.parametrize("argv", [
    [],                                   # no command
    ["frobnicate", "x.rad"],              # unknown command
    ["check"],                            # missing file
    ["check", "x.rad", "--format", "xml"],
    ["graph", "x.rad", "--format", "png"],
    ["check", "x.rad", "--bogus"],
], ids=["none", "unknown-cmd", "no-file", "bad-format", "bad-graph-format", "bad-flag"])
def test_usage_errors_exit_2(argv):
    rc, out, err = run_cli(argv)
    assert rc == 2
    assert "Traceback" not in out + err
    assert "usage:" in err


def test_missing_file_is_a_usage_error(tmp_path):
    for cmd in ("check", "plan", "parse", "graph"):
        rc, out, err = run_cli([cmd, tmp_path / "absent.rad"])
        assert rc == 2, (cmd, rc, err)
        assert "E701" in err and "absent.rad" in err and "Traceback" not in err


def test_directory_instead_of_file(tmp_path):
    rc, out, err = run_cli(["check", tmp_path])
    assert rc == 2 and "E701" in err and "Traceback" not in err


def test_unknown_operator_name_for_ops_is_exit_2():
    rc, out, err = run_cli(["ops", "no_such_operator"])
    assert rc == 2 and "no_such_operator" in err


# ------------------------------------------------------------------------------------ the real process

@pytest.mark.parametrize("data,code", [(b"", 1), (b"\xff\xfe\x00garbage", 1), (b"cohort a = manifest(\"a", 1), (OK_SPEC.encode(), 0)],
                         ids=["empty", "garbage", "unterminated", "ok"])
def test_subprocess_exit_codes(tmp_path, data, code):
    f = tmp_path / "s.rad"
    f.write_bytes(data)
    p = subprocess.run([sys.executable, "-m", "radlang", "check", str(f)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stdout + p.stderr


def test_subprocess_usage_error_exit_2(tmp_path):
    p = subprocess.run([sys.executable, "-m", "radlang", "check"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_compile_source_accepts_str_and_bytes():
    assert compile_source(OK_SPEC).ok and compile_source(OK_SPEC.encode()).ok


# ------------------------------------------------------------------------------------ found by poking at the edges

def test_byte_order_mark_is_accepted(tmp_path):
    """Some editors start UTF-8 files with a BOM; it is not a syntax error and columns stay right."""
    data = b"\xef\xbb\xbf" + OK_SPEC.replace("\n", "\r\n").encode()
    rc, out, err = check_file(tmp_path, data)
    assert rc == 0, err
    rc, out, err = check_file(tmp_path, b"\xef\xbb\xbf" + OK_SPEC.replace("logistic(", "logistik(").encode(), fmt="json")
    d = next(x for x in json.loads(out)["diagnostics"] if x["code"] == "E103")
    assert (d["span"]["line"], d["span"]["col"]) == (4, 13)


@pytest.mark.parametrize("number", ["9" * 5000, "1e999", "-1e999", "2e400mm"])
def test_absurd_numbers(tmp_path, number):
    rc, out, err = check_file(tmp_path, f'cohort a = manifest("a.csv") {{ x: {number} }}\n')
    assert rc == 1 and "error[E005]" in err
    f = tmp_path / "spec.rad"
    rc, out, err = run_cli(["parse", f])
    assert rc == 1 and "error[E005]" in err and "Traceback" not in err


def test_a_preset_is_not_a_stage(tmp_path):
    spec = OK_SPEC.replace("features feats = tabular(dev)", "preset pf = tabular()\nfeatures feats = tabular(pf)")
    rc, out, _ = check_file(tmp_path, spec, fmt="json")
    diags = json.loads(out)["diagnostics"]
    assert rc == 1 and [d["code"] for d in diags] == ["E202"]      # and no spurious "never used" warning for `dev`
    assert "is a preset" in diags[0]["message"]


# ------------------------------------------------------------------------------------ lone surrogates (issue 15.3)

@pytest.mark.parametrize("where", [
    lambda s: s.replace('study "Small"', 'study "Small \\uD800"'),
    lambda s: s.replace('validate v = evaluate(clf)', 'validate v = evaluate(clf) { threshold: "\\uDFFF" >= 0.9 }'),
    lambda s: s.replace('study "Small" { seed: 1 }', 'study "Small" { seed: 1, out: "r\\udbff" }'),
    lambda s: s.replace('study "Small"', 'study "\\uD83D\\uDE00"'),       # a UTF-16 pair is not a character either
], ids=["title", "threshold", "out", "pair"])
@pytest.mark.parametrize("cmd", [["check"], ["parse"], ["plan"], ["render", "-o", "s.py"], ["run"]])
def test_a_surrogate_escape_is_E003_at_the_string(tmp_path, where, cmd):
    """A `\\uXXXX` escape naming a UTF-16 surrogate is no Unicode character: one E003 on the string, exit 1, no internal error."""
    f = tmp_path / "spec.rad"
    f.write_text(where(OK_SPEC), encoding="utf-8")
    rc, _, err = run_cli([*cmd, f], cwd=tmp_path)
    assert rc == 1, err
    assert err.count("error[") == 1 and "error[E003]" in err and "surrogate" in err and "internal error" not in err
