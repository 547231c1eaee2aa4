"""Spec values become Python literals and comments that can never run as code."""

from __future__ import annotations

import ast
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from radlang.backends.render.literals import comment_text, pylit

NASTY = [
    'a"b', "a'b", '"""', "'''", "back\\slash", "new\nline", "cr\rlf", "{{ x }}", "{% if 1 %}", "{# c #}",
    '"); import os; os.system("touch PWNED', "\\x00\x00", "\u2028\u2029\x85", "tab\there", "emoji ✓ μ",
]

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text() | st.sampled_from(NASTY),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _same(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _eval_literal(src: str):
    tree = ast.parse(src, mode="eval")
    # only literals and float("nan"/"inf") calls: no names, attributes or other calls
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            assert isinstance(n.func, ast.Name) and n.func.id == "float" and isinstance(n.args[0], ast.Constant)
        else:
            assert not isinstance(n, (ast.Attribute, ast.Subscript, ast.Lambda, ast.NamedExpr))
    return eval(compile(tree, "<lit>", "eval"), {"__builtins__": {"float": float}})


@settings(max_examples=150, deadline=None)
@given(json_like, st.integers(min_value=0, max_value=12))
def test_literal_round_trips_and_is_inert(value, indent):
    src = pylit(value, indent=indent)
    assert _same(_eval_literal(src), value)


def test_nasty_strings_stay_strings():
    for s in NASTY:
        src = pylit({"k": s, "l": [s]})
        assert _eval_literal(src) == {"k": s, "l": [s]}


@settings(max_examples=150, deadline=None)
@given(st.text() | st.sampled_from(NASTY))
def test_comment_text_is_one_line(text):
    line = comment_text(text)
    # a comment line must not end early: the tokenizer sees one comment, nothing after it
    assert len(line.splitlines()) <= 1 and "\r" not in line and "\n" not in line
    tokens = list(ast.parse("# " + line + "\nx = 1\n").body)
    assert len(tokens) == 1
