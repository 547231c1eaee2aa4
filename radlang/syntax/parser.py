"""Text -> parse tree -> IR. Lark's exceptions never escape: they become diagnostics."""

from __future__ import annotations

import gc
import re
from functools import lru_cache

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import BasicLexer, UnlessCallback

from radlang.diagnostics import Diagnostic, Span
from radlang.ir.nodes import ArgV, Bool, CallV, Cast, Compare, ListV, Module, NoneV, Num, Ref, Setting, Stmt, Str, Study, Use
from radlang.resources import grammar_path

MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64

TERMINAL_NAMES = {
    "NAME": "a name", "STRING": "a string", "NUMBER": "a number", "QUANTITY": "a number with a unit",
    "LBRACE": "`{`", "RBRACE": "`}`", "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`",
    "COLON": "`:`", "COMMA": "`,`", "EQUAL": "`=`", "DOT": "`.`", "MINUS": "`-`", "CMP_OP": "a comparison",
    "$END": "end of file", "STUDY": "`study`", "USE": "`use`", "LIKE": "`like`", "AS": "`as`",
    "TRUE": "`true`", "FALSE": "`false`", "NONE": "`none`",
}


class SourceError(Exception):
    def __init__(self, diagnostics):
        self.diagnostics = diagnostics


class _ValueError(Exception):
    """A value the grammar accepts but the language does not (bad escape, negated name)."""

    def __init__(self, code, message, span, hint=None):
        self.code, self.message, self.span, self.hint = code, message, span, hint


def _span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + len(tok),
                tok.start_pos or 0, tok.end_pos or 0)


_ESC = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _unquote(tok: Token, file: str = "<input>") -> str:
    s = tok[1:-1]
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = s[i + 1] if i + 1 < len(s) else ""
        if nxt in _ESC:
            out.append(_ESC[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2:i + 6] or ""):
            code = int(s[i + 2:i + 6], 16)
            if 0xD800 <= code <= 0xDFFF:
                raise _ValueError("E003", f"`\\u{s[i + 2:i + 6]}` is a UTF-16 surrogate, not a character", _span(file, tok),
                                  hint="a string holds Unicode characters: write the character itself (specs are UTF-8)")
            out.append(chr(code))
            i += 6
        else:
            raise _ValueError("E003", f"unknown escape `\\{nxt}` in string", _span(file, tok),
                              hint='valid escapes are \\" \\\\ \\n \\t \\r \\0 \\uXXXX')
    return "".join(out)


def _start(c):
    if isinstance(c, Token):
        return c.line, c.column, c.start_pos or 0
    sp = c.span
    return sp.line, sp.col, sp.start


def _end(c):
    if isinstance(c, Token):
        return (c.end_line or c.line), (c.end_column or c.column + len(c)), (c.end_pos or 0)
    sp = c.span
    return sp.end_line, sp.end_col, sp.end


_FIELDS: dict = {}


def _mk(cls, **kw):
    """Build a frozen IR node without re-validating what the parser just built (the parser is the
    only producer, and this is its hot loop). Equivalent to `cls.model_construct(**kw)`, faster."""
    base = _FIELDS.get(cls)
    if base is None:
        base = _FIELDS[cls] = {n: (None if f.is_required() else f.get_default(call_default_factory=True)) for n, f in cls.model_fields.items()}
    d = base.copy()
    d.update(kw)
    o = _new(cls)
    _set(o, "__dict__", d)
    _set(o, "__pydantic_fields_set__", set(kw))
    _set(o, "__pydantic_extra__", None)
    _set(o, "__pydantic_private__", None)
    return o


_new, _set = object.__new__, object.__setattr__


class _Block:
    __slots__ = ("entries", "span")

    def __init__(self, entries, span):
        self.entries, self.span = entries, span


class _ToIR(Transformer):
    """Builds the IR while the LALR parser reduces (no intermediate parse tree).

    The parser keeps every token (keep_all_tokens), so a node's span runs from the start of its
    first child to the end of its last one, brackets and keywords included."""

    file = "<input>"

    def __init__(self):
        super().__init__(visit_tokens=False)

    def _sp(self, ch) -> Span:
        l1, c1, p1 = _start(ch[0])
        l2, c2, p2 = _end(ch[-1])
        return Span(self.file, l1, c1, l2, c2, p1, p2)

    def _tok(self, t) -> Span:
        return _span(self.file, t)

    # values
    def quantity(self, ch):
        tok = ch[0]
        m = re.fullmatch(r"((?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)([A-Za-z%]+)", str(tok))
        return _mk(Num, value=_num(m.group(1), self._tok(tok)), unit=m.group(2), span=self._tok(tok))

    def number(self, ch):
        return _mk(Num, value=_num(str(ch[0]), self._tok(ch[0])), span=self._tok(ch[0]))

    def string(self, ch):
        return _mk(Str, value=_unquote(ch[0], self.file), span=self._tok(ch[0]))

    def true(self, ch):
        return _mk(Bool, value=True, span=self._tok(ch[0]))

    def false(self, ch):
        return _mk(Bool, value=False, span=self._tok(ch[0]))

    def none(self, ch):
        return _mk(NoneV, span=self._tok(ch[0]))

    def neg(self, ch):
        v = ch[1]
        if isinstance(v, Num):
            return _mk(Num, value=-v.value, unit=v.unit, span=self._sp(ch))
        raise _ValueError("E001", "only numbers can be negated", self._sp(ch), hint="write `-` directly before a number: `-3`, `-1000HU`")

    def atom(self, ch):  # "(" value ")"
        return ch[1]

    def list(self, ch):
        return _mk(ListV, items=tuple(c for c in ch if not isinstance(c, Token)), span=self._sp(ch))

    def ref(self, ch):
        return _mk(Ref, parts=tuple([str(t) for t in ch if t.type == "NAME"]), span=self._sp(ch))

    def comparison(self, ch):
        return _mk(Compare, op=str(ch[1]), left=ch[0], right=ch[2], span=self._sp(ch))

    def cast(self, ch):
        return _mk(Cast, value=ch[0], kind=ch[2], span=self._sp(ch))

    def negcast(self, ch):  # `-3 as x`: the cast of a negated number
        return _mk(Cast, value=self.neg(ch[:2]), kind=ch[3], span=self._sp(ch))

    def posarg(self, ch):
        return _mk(ArgV, name=None, value=ch[0], span=self._sp(ch))

    def kwarg(self, ch):
        return _mk(ArgV, name=str(ch[0]), value=ch[2], span=self._sp(ch))

    def call(self, ch):
        name = ch[0]
        return _mk(CallV, name=str(name), name_span=self._tok(name),
                                     args=tuple(c for c in ch[2:] if not isinstance(c, Token)), span=self._sp(ch))

    # statements
    def setting(self, ch):
        return _mk(Setting, key=str(ch[0]), key_span=self._tok(ch[0]), value=ch[2], span=self._sp(ch))

    def block(self, ch):
        return _Block([c for c in ch if not isinstance(c, Token)], self._sp(ch))

    def like(self, ch):
        return ("like", ch[1])

    def stmt(self, ch):
        kind, name, op = ch[0], ch[1], ch[3]
        like = None
        entries: list = []
        for extra in ch[4:]:
            if isinstance(extra, tuple):
                like = extra[1]
            else:
                entries = extra.entries
        last = ch[-1]
        if isinstance(last, tuple):
            last = last[1]
        return _mk(Stmt, 
            kind=str(kind), kind_span=self._tok(kind), name=str(name), name_span=self._tok(name),
            op=op, like=str(like) if like else None, like_span=self._tok(like) if like else None,
            settings=tuple(e for e in entries if isinstance(e, Setting)),
            children=tuple(e for e in entries if isinstance(e, Stmt)),
            comments=(), span=self._sp([ch[0], last]),
        )

    def study(self, ch):
        entries = ch[2].entries if len(ch) > 2 else []
        for e in entries:
            if isinstance(e, Stmt):
                raise _ValueError("E001", f"a statement (`{e.kind} {e.name}`) inside the `study` block", e.span,
                                  hint="the `study` block holds settings only (seed, out, workers, on_error); move the statement below it")
        return _mk(Study, title=_unquote(ch[1], self.file), settings=tuple(entries), span=self._sp(ch))

    def use(self, ch):
        return _mk(Use, path=_unquote(ch[1], self.file), span=self._sp(ch))

    def start(self, ch):
        return list(ch)


_TRANSFORMER = _ToIR()


class _Lexer(BasicLexer):
    """Lark's basic lexer, same terminals in the same order and the same keyword rule, with its
    per-token call chain (Scanner.match, LineCounter.feed, UnlessCallback) folded into one loop.
    Lark's contextual lexer is not needed: no terminal of this grammar overlaps another in a way
    the parser state would have to resolve. tests/test_lexer.py holds it equal to Lark's own."""

    __future_interface__ = 2
    _union = None

    def lex(self, state, parser_state):
        scanner = self.scanner  # builds self.callback: the NAME -> keyword retyping, as BasicLexer does
        if not all(isinstance(cb, UnlessCallback) for cb in self.callback.values()):
            yield from super().lex(state, parser_state)  # user callbacks: Lark's own loop
            return
        if self._union is None:  # Lark's Scanner builds the same alternation (named groups, same order)
            self._union = re.compile("|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in scanner.terminals),
                                     self.g_regex_flags)
        match = self._union.match
        keywords = {type_: {t.pattern.value: t.name for t in cb.scanner.terminals} for type_, cb in self.callback.items()}
        ignore, newline = self.ignore_types, self.newline_types
        text, end = state.text.text, state.text.end
        ctr = state.line_ctr
        pos, line, line_start = ctr.char_pos, ctr.line, ctr.line_start_pos
        new = str.__new__
        last = state.last_token
        try:
            while pos < end:
                m = match(text, pos, end)
                if m is None:
                    allowed = scanner.allowed_types - ignore or {"<END-OF-FILE>"}
                    raise UnexpectedCharacters(text, pos, line, pos - line_start + 1, allowed=allowed,
                                               token_history=last and [last], state=parser_state,
                                               terminals_by_name=self.terminals_by_name)
                type_ = m.lastgroup
                value = m.group()
                stop = m.end()
                if type_ in ignore:
                    if type_ in newline:
                        n = value.count("\n")
                        if n:
                            line += n
                            line_start = pos + value.rindex("\n") + 1
                    pos = stop
                    continue
                kw = keywords.get(type_)
                if kw is not None:
                    type_ = kw.get(value, type_)
                t = new(Token, value)
                t.type, t.value, t.start_pos, t.line, t.column = type_, value, pos, line, pos - line_start + 1
                if type_ in newline and "\n" in value:
                    line += value.count("\n")
                    line_start = pos + value.rindex("\n") + 1
                t.end_line, t.end_column, t.end_pos = line, stop - line_start + 1, stop
                pos = stop
                last = t
                yield t
        finally:  # where Lark's LineCounter would be, however the scan ends
            ctr.char_pos, ctr.line, ctr.column, ctr.line_start_pos = pos, line, pos - line_start + 1, line_start
            state.last_token = last


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer=_Lexer,
        keep_all_tokens=True,
        maybe_placeholders=False,
        transformer=_TRANSFORMER,
        cache=True,
    )


def _num(text: str, span: Span | None = None):
    if len(text) > 100:
        raise _ValueError("E005", f"a number with {len(text)} characters", span, hint="numbers in a spec have at most 100 digits")
    if re.fullmatch(r"\d+", text):
        return int(text)
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise _ValueError("E005", f"`{text}` is too large for a number", span, hint="numbers must be below 1.8e308")
    return v


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    val = str(tok)
    if len(val) > 30:
        val = val[:27] + "..."
    return f"`{val}`"


_VALUE_START = frozenset({"QUANTITY", "NUMBER", "STRING", "TRUE", "FALSE", "NONE", "LSQB", "NAME", "LPAR"})


def _expected(names) -> str:
    names = set(names)
    pretty = set()
    if _VALUE_START <= names:  # where any value may start, say so instead of listing every way to write one
        names -= _VALUE_START | {"MINUS"}
        pretty.add("a value")
    pretty = sorted(pretty | {TERMINAL_NAMES.get(n, f"`{n.lower()}`" if n.isalpha() else n) for n in names})
    if len(pretty) > 6:
        pretty = pretty[:6] + ["…"]
    return ", ".join(pretty)


def _syntax_diag(file: str, text: str, e: UnexpectedInput) -> Diagnostic:
    line, col = e.line if e.line > 0 else 1, e.column if e.column > 0 else 1
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        span = Span(file, line, col, line, col + 1)
        if ch == '"':
            return Diagnostic("E002", "unterminated string", span, hint='close the string with `"` on the same line')
        if ch == "'":
            return Diagnostic("E001", "single quotes are not strings in radlang", span, hint='use double quotes: "..."')
        return Diagnostic("E001", f"unexpected character {ch!r}", span, hint="remove it, or check the line above for a missing bracket")
    if isinstance(e, UnexpectedToken):
        tok = e.token
        tl = tok.line if getattr(tok, "line", None) else line
        tc = tok.column if getattr(tok, "column", None) else col
        width = max(1, len(str(tok))) if tok.type != "$END" else 1
        span = Span(file, tl, tc, tl, tc + width)
        exp = _expected(e.expected or e.accepts or [])
        hint = f"expected {exp}" if exp else None
        if tok.type == "$END":
            return Diagnostic("E001", "unexpected end of file", span, hint=(hint + " — is a `}` or `)` missing?") if hint else None)
        return Diagnostic("E001", f"unexpected {_describe_token(tok)}", span, hint=hint)
    if isinstance(e, UnexpectedEOF):
        return Diagnostic("E001", "unexpected end of file", Span(file, line, col, line, col + 1))
    return Diagnostic("E001", "syntax error", Span(file, line, col, line, col + 1))


# strings (possibly unterminated at the end of a line), comments, and brackets: what the scanners below need
_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[()\[\]{}]')


def _depth_check(file: str, text: str) -> Diagnostic | None:
    depth = 0
    for m in _SCAN.finditer(text):
        ch = m.group()
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                i = m.start()
                line = text.count("\n", 0, i) + 1
                col = i - (text.rfind("\n", 0, i) + 1) + 1
                return Diagnostic("E005", f"brackets nested more than {MAX_DEPTH} deep", Span(file, line, col, line, col + 1),
                                  hint="flatten the value; no radlang setting needs this much nesting")
        elif ch in ")]}":
            depth = max(0, depth - 1)
    return None


_STMT_START = re.compile(r"^[ \t]*(?:study\b|use\b|[A-Za-z_]\w*[ \t]+[A-Za-z_]\w*[ \t]*=)", re.MULTILINE)


def _chunks(text: str):
    """Split at lines that look like top-level statement starts, for error recovery."""
    starts = [m.start() for m in _STMT_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    starts.append(len(text))
    for a, b in zip(starts, starts[1:]):
        if text[a:b].strip():
            yield a, text[a:b]


def _parse_items(file: str, text: str) -> list:
    """Parse straight into IR nodes. Raises UnexpectedInput or _ValueError."""
    _TRANSFORMER.file = file
    # The parse allocates tens of thousands of small acyclic objects; the cyclic collector's passes over them
    # cost a third of the parse time of a big spec and can never free anything here.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _parser().parse(text)
    finally:
        if enabled:
            gc.enable()


def _value_diag(e: _ValueError) -> Diagnostic:
    return Diagnostic(e.code, e.message, e.span, hint=e.hint)


def parse(text: str | bytes, file: str = "<input>") -> Module:
    """Parse a spec. Raises SourceError with every syntax diagnostic found."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise SourceError([_too_big(file, len(text))])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            prefix = text[: e.start].decode("utf-8", "replace")
            line = prefix.count("\n") + 1
            col = len(prefix) - (prefix.rfind("\n") + 1) + 1
            raise SourceError([Diagnostic("E003", f"invalid UTF-8 at byte {e.start}", Span(file, line, col, line, col + 1),
                                          hint="save the spec as UTF-8 text")]) from None
    if text.startswith("\ufeff"):  # a byte-order mark (some editors write one): a space keeps every column in place
        text = " " + text[1:]
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SourceError([_too_big(file, len(text.encode("utf-8", "surrogatepass")))])
    if "\x00" in text:
        i = text.index("\x00")
        line = text.count("\n", 0, i) + 1
        col = i - (text.rfind("\n", 0, i) + 1) + 1
        raise SourceError([Diagnostic("E003", "binary data (a NUL byte) in the spec", Span(file, line, col, line, col + 1),
                                      hint="a .rad file is plain UTF-8 text")])
    if not re.sub(r"#[^\n]*", "", text).strip():
        raise SourceError([Diagnostic("E004", "the spec is empty", Span(file, 1, 1, 1, 1),
                                      hint='start with `study "Title" { seed: 1 }` and a `cohort` statement')])
    deep = _depth_check(file, text)
    if deep:
        raise SourceError([deep])

    try:
        items = _parse_items(file, text)
    except _ValueError as e:
        items = None
        first = e
    except UnexpectedInput:
        items = None
        first = None
    if items is None:
        diags = []
        for offset, chunk in _chunks(text):
            pad = "\n" * text.count("\n", 0, offset)
            try:
                _parse_items(file, pad + chunk)
            except _ValueError as e:
                diags.append(_value_diag(e))
            except UnexpectedInput as e:
                diags.append(_syntax_diag(file, pad + chunk, e))
        if not diags:  # the chunks parse alone but not together: report the whole-file error
            if first is not None:
                diags.append(_value_diag(first))
            else:
                try:
                    _parse_items(file, text)
                except UnexpectedInput as e:
                    diags.append(_syntax_diag(file, text, e))
                except _ValueError as e:
                    diags.append(_value_diag(e))
        raise SourceError(diags) from None

    comments = _comments(text)
    study = None
    uses, stmts, diags = [], [], []
    for it in items:
        if isinstance(it, Study):
            if study is not None:
                diags.append(Diagnostic("E102", "a second `study` block", it.span, hint="one spec describes one study; merge the blocks"))
            else:
                study = it
        elif isinstance(it, Use):
            uses.append(it)
        else:
            stmts.append(it)
    if diags:
        raise SourceError(diags)
    header_end = max([u.span.end_line for u in uses] + ([study.span.end_line] if study else []) + [0])
    stmts = _attach_comments(stmts, comments, header_end)
    return _mk(Module, file=file, study=study, uses=tuple(uses), stmts=tuple(stmts))


def _too_big(file, n):
    return Diagnostic("E005", f"the spec is {n / 1e6:.1f} MB; the limit is {MAX_BYTES // (1024 * 1024)} MiB",
                      Span(file, 1, 1, 1, 1), hint="a study spec is a page of text; split it or generate less")


def _comments(text: str) -> list[tuple[int, str]]:
    """(line, text) of every `#` comment outside strings."""
    out, line, pos = [], 1, 0
    for m in _SCAN.finditer(text):
        if m.group().startswith("#"):
            line += text.count("\n", pos, m.start())
            pos = m.start()
            out.append((line, m.group()[1:].strip()))
    return out


def _attach_comments(stmts, comments, header_end=0):
    """Give each top-level statement the comments above it and inside it (not those of the study header)."""
    if not comments:
        return stmts
    out, prev_end = [], 0
    for s in stmts:
        lo = header_end if prev_end == 0 and header_end < s.span.line else prev_end
        mine = tuple(c for ln, c in comments if lo < ln <= s.span.end_line and c)
        prev_end = s.span.end_line
        out.append(s.model_copy(update={"comments": mine}) if mine else s)
    return out


def parse_file(path) -> Module:
    from pathlib import Path

    p = Path(path)
    return parse(p.read_bytes(), file=str(path))
