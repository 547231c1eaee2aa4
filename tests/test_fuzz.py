"""Property-based fuzzing of the compiler front to back: mutated examples and golden inputs
(deletions, insertions, random bytes, truncation, shuffled lines) must only ever produce
diagnostics, never a Python exception, and the CLI must never print a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radlang import cli
from radlang.compiler import compile_source
from radlang.diagnostics import render_json, render_text

REPO = Path(__file__).resolve().parents[1]
CODE = re.compile(r"^[EW]\d{3}$")


def _seeds() -> list[bytes]:
    files = sorted(REPO.glob("examples/**/*.rad")) + sorted(REPO.glob("tests/golden/**/*.rad")) + sorted(REPO.glob("stdlib/*.rad"))
    out = [f.read_bytes() for f in files]
    assert out, "no .rad files to mutate"
    return out


SEEDS = _seeds()
# pieces of the language, so that insertions often make near-valid specs rather than plain noise
TOKENS = ["study", "use", "like", "as", "true", "false", "none", "{", "}", "(", ")", "[", "]", ",", ":", "=", ".", "-",
          ">=", "<=", "==", "!=", "<", ">", "#", "\"", "\\", "\n", " ", "\t", "1", "2.5", "1e3", "25HU", "2mm", "10%",
          "x", "train", "cohort", "features", "select", "model", "validate", "network", "train", "manifest", "dataset",
          "pyradiomics", "lasso", "logistic", "evaluate", "unet", "supervised", "gradcam", "outcome", "image", "mask",
          "train.outcome", "train.image", "\"a.csv\"", "stratified_kfold(5)", "\u00e9", "\u202e", "\ufeff"]

mutation = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 200)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.lists(st.sampled_from(TOKENS), min_size=1, max_size=8).map("".join)),
    st.tuples(st.just("insert_text"), st.integers(0, 10**6), st.text(max_size=20)),
    st.tuples(st.just("bytes"), st.integers(0, 10**6), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(None)),
    st.tuples(st.just("swap_lines"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 10**6), st.just(None)),
)


def mutate(data: bytes, muts) -> bytes:
    for kind, pos, arg in muts:
        n = len(data)
        i = pos % (n + 1)
        if kind == "delete":
            data = data[:i] + data[i + arg:]
        elif kind == "insert":
            data = data[:i] + arg.encode("utf-8") + data[i:]
        elif kind == "insert_text":
            data = data[:i] + arg.encode("utf-8", "surrogatepass") + data[i:]
        elif kind == "bytes":
            data = data[:i] + arg + data[i + len(arg):]
        elif kind == "truncate":
            data = data[:i]
        else:
            lines = data.split(b"\n")
            a = pos % len(lines)
            if kind == "swap_lines":
                b = arg % len(lines)
                lines[a], lines[b] = lines[b], lines[a]
            else:
                lines.insert(a, lines[a])
            data = b"\n".join(lines)
    return data


def assert_only_diagnostics(data: bytes, file: str = "fuzz.rad"):
    res = compile_source(data, file)             # must not raise
    for d in res.diagnostics:
        assert CODE.match(d.code), d
        assert d.severity in ("error", "warning")
        assert d.message
    if not res.ok:
        assert any(d.is_error for d in res.diagnostics), "a failed compile must say why"
    else:
        assert res.study is not None
    render_text(res.diagnostics, res.sources)    # renderers must cope with any span
    json.loads(render_json(res.diagnostics))
    return res


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(range(len(SEEDS))), muts=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_specs_give_diagnostics_not_exceptions(seed, muts):
    assert_only_diagnostics(mutate(SEEDS[seed], muts))


@settings(max_examples=150, deadline=None)
@given(text=st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_token_soup(text):
    assert_only_diagnostics(text.encode("utf-8"))


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes(data):
    assert_only_diagnostics(data)


def _cli(argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as e:       # argparse usage errors
            rc = e.code
    return rc, out.getvalue() + err.getvalue()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(range(len(SEEDS))), muts=st.lists(mutation, min_size=1, max_size=3),
       cmd=st.sampled_from(["check", "plan", "parse", "graph"]), fmt=st.sampled_from(["text", "json"]))
def test_cli_never_prints_a_traceback(seed, muts, cmd, fmt, fuzz_dir):
    f = fuzz_dir / "spec.rad"
    f.write_bytes(mutate(SEEDS[seed], muts))
    argv = [cmd, str(f)] + (["--format", fmt] if cmd != "graph" else ["--format", "json" if fmt == "json" else "dot"])
    rc, out = _cli(argv)
    assert rc in (0, 1), (rc, out)
    assert "Traceback" not in out
    if rc == 1 and fmt == "text" and cmd != "graph":
        assert re.search(r"error\[E\d{3}\]", out), out


def test_every_seed_is_fuzzable():
    """The unmutated inputs compile without exceptions too (a baseline for the properties above)."""
    for data in SEEDS:
        assert_only_diagnostics(data)
