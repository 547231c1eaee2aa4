"""radlang's lexer is Lark's basic lexer with the per-token call chain folded into one loop
(radlang.syntax.parser._Lexer). It must produce exactly Lark's tokens — types, keyword retyping,
positions, line/column bookkeeping — and fail at exactly the same place on text Lark cannot lex."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Lark
from lark.exceptions import UnexpectedCharacters
from lark.lexer import LexerThread

from radlang.resources import grammar_path
from radlang.syntax.parser import _Lexer, _parser

REPO = Path(__file__).resolve().parents[1]
LARK_BASIC = Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", lexer="basic", keep_all_tokens=True,
                  maybe_placeholders=False)
TEXTS = [f.read_text(encoding="utf-8") for f in sorted(REPO.glob("examples/*.rad")) + sorted(REPO.glob("stdlib/*.rad"))]
PIECES = ["study", "use", "like", "as", "true", "false", "none", "studyx", "as_", "{", "}", "(", ")", "[", "]", ",",
          ":", "=", ".", "-", ">=", "<", "==", "!", "#c\n", '"s"', '"a\\"b"', '"open', "\n", "\r\n", " ", "\t", "1",
          "2.5", "1e3", "1e", "25HU", "2mm", "10%", ".5", "3.", "x", "a.b", "é", "'", "@"]


def _tokens(lexer, text):
    """Every token, or where and why lexing stopped."""
    out = []
    try:
        for t in LexerThread.from_text(lexer, text).lex(None):
            out.append((t.type, str(t), t.start_pos, t.line, t.column, t.end_line, t.end_column, t.end_pos))
    except UnexpectedCharacters as e:
        out.append(("<error>", e.pos_in_stream, e.line, e.column, sorted(e.allowed)))
    return out


def test_radlang_parser_uses_the_folded_lexer():
    assert isinstance(_parser().parser.lexer, _Lexer)


@pytest.mark.parametrize("i", range(len(TEXTS)))
def test_same_tokens_as_lark_on_examples_and_stdlib(i):
    ours = _tokens(_parser().parser.lexer, TEXTS[i])
    assert len(ours) > 20
    assert ours == _tokens(LARK_BASIC.parser.lexer, TEXTS[i])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_same_tokens_as_lark_on_any_text(pieces):
    text = "".join(pieces)
    assert _tokens(_parser().parser.lexer, text) == _tokens(LARK_BASIC.parser.lexer, text)
