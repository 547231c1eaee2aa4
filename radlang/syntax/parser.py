"""Text -> parse tree -> IR. Lark's exceptions never escape: they become diagnostics."""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

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


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,
    )


def _span(file: str, meta_or_tok) -> Span:
    m = meta_or_tok
    if isinstance(m, Token):
        return Span(file, m.line, m.column, m.end_line or m.line, m.end_column or m.column + len(m), m.start_pos or 0, m.end_pos or 0)
    return Span(file, m.line, m.column, m.end_line, m.end_column, m.start_pos, m.end_pos)


_ESC = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}


class _StringEscapeError(Exception):
    def __init__(self, message, tok):
        self.message, self.tok = message, tok


def _unquote(tok: Token) -> str:
    s = tok[1:-1]
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
            out.append(chr(int(s[i + 2:i + 6], 16)))
            i += 6
        else:
            raise _StringEscapeError(f"unknown escape `\\{nxt}` in string", tok)
    return "".join(out)


@v_args(meta=True)
class _ToIR(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def sp(self, meta) -> Span:
        return _span(self.file, meta)

    # values
    def quantity(self, meta, ch):
        tok = ch[0]
        m = re.fullmatch(r"((?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)([A-Za-z%]+)", str(tok))
        return Num(value=_num(m.group(1)), unit=m.group(2), span=self.sp(meta))

    def number(self, meta, ch):
        return Num(value=_num(str(ch[0])), span=self.sp(meta))

    def string(self, meta, ch):
        return Str(value=_unquote(ch[0]), span=self.sp(meta))

    def true(self, meta, ch):
        return Bool(value=True, span=self.sp(meta))

    def false(self, meta, ch):
        return Bool(value=False, span=self.sp(meta))

    def none(self, meta, ch):
        return NoneV(span=self.sp(meta))

    def neg(self, meta, ch):
        v = ch[0]
        if isinstance(v, Num):
            return Num(value=-v.value, unit=v.unit, span=self.sp(meta))
        raise _StringEscapeError("only numbers can be negated", None)

    def list(self, meta, ch):
        return ListV(items=tuple(ch), span=self.sp(meta))

    def ref(self, meta, ch):
        return Ref(parts=tuple(str(t) for t in ch), span=self.sp(meta))

    def comparison(self, meta, ch):
        return Compare(op=str(ch[1]), left=ch[0], right=ch[2], span=self.sp(meta))

    def cast(self, meta, ch):
        return Cast(value=ch[0], kind=ch[1], span=self.sp(meta))

    def posarg(self, meta, ch):
        return ArgV(name=None, value=ch[0], span=self.sp(meta))

    def kwarg(self, meta, ch):
        return ArgV(name=str(ch[0]), value=ch[1], span=self.sp(meta))

    def call(self, meta, ch):
        name = ch[0]
        return CallV(name=str(name), name_span=_span(self.file, name), args=tuple(ch[1:]), span=self.sp(meta))

    # statements
    def setting(self, meta, ch):
        return Setting(key=str(ch[0]), key_span=_span(self.file, ch[0]), value=ch[1], span=self.sp(meta))

    def block(self, meta, ch):
        return list(ch)

    def like(self, meta, ch):
        return ch[0]

    def stmt(self, meta, ch):
        kind, name, op = ch[0], ch[1], ch[2]
        like = None
        entries: list = []
        for extra in ch[3:]:
            if isinstance(extra, Token):
                like = extra
            else:
                entries = extra
        return Stmt(
            kind=str(kind), kind_span=_span(self.file, kind), name=str(name), name_span=_span(self.file, name),
            op=op, like=str(like) if like else None, like_span=_span(self.file, like) if like else None,
            settings=tuple(e for e in entries if isinstance(e, Setting)),
            children=tuple(e for e in entries if isinstance(e, Stmt)),
            span=self.sp(meta),
        )

    def study(self, meta, ch):
        settings = ch[1] if len(ch) > 1 else []
        return Study(title=_unquote(ch[0]), settings=tuple(s for s in settings if isinstance(s, Setting)), span=self.sp(meta))

    def use(self, meta, ch):
        return Use(path=_unquote(ch[0]), span=self.sp(meta))

    def start(self, meta, ch):
        return list(ch)


def _num(text: str):
    if re.fullmatch(r"\d+", text):
        return int(text)
    return float(text)


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    val = str(tok)
    if len(val) > 30:
        val = val[:27] + "..."
    return f"`{val}`"


def _expected(names) -> str:
    pretty = sorted({TERMINAL_NAMES.get(n, f"`{n.lower()}`" if n.isalpha() else n) for n in names})
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


def _depth_check(file: str, text: str) -> Diagnostic | None:
    depth, in_str, in_comment, line, col = 0, False, False, 1, 0
    esc = False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, in_comment, in_str = line + 1, 0, False, False
            continue
        if in_comment:
            continue
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == "#":
            in_comment = True
        elif ch == '"':
            in_str = True
        elif ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                return Diagnostic("E005", f"brackets nested more than {MAX_DEPTH} deep", Span(file, line, col, line, col + 1),
                                  hint="flatten the value; no radlang setting needs this much nesting")
        elif ch in ")]}":
            depth = max(0, depth - 1)
    return None


_STMT_START = re.compile(r"^[ \t]*(?:study\b|use\b|[A-Za-z_]\w*[ \t]+[A-Za-z_]\w*[ \t]*=)", re.M)


def _parse_tree(file: str, text: str):
    return _parser().parse(text)


def _chunks(text: str):
    """Split at lines that look like top-level statement starts, for error recovery."""
    starts = [m.start() for m in _STMT_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    starts.append(len(text))
    for a, b in zip(starts, starts[1:]):
        if text[a:b].strip():
            yield a, text[a:b]


def _transform(file: str, tree):
    try:
        return _ToIR(file).transform(tree), []
    except VisitError as ve:
        orig = ve.orig_exc
        if isinstance(orig, _StringEscapeError):
            tok = orig.tok
            span = _span(file, tok) if tok is not None else Span(file, 1, 1, 1, 2)
            return None, [Diagnostic("E003", orig.message, span, hint='valid escapes are \\" \\\\ \\n \\t \\r \\uXXXX')]
        raise


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
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SourceError([_too_big(file, len(text))])
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

    comments: list[Token] = []
    try:
        tree = _parser().parse(text, on_error=None)
        items, diags = _transform(file, tree)
        if diags:
            raise SourceError(diags)
    except UnexpectedInput:
        diags = []
        for offset, chunk in _chunks(text):
            pad = "\n" * text.count("\n", 0, offset)
            try:
                _, d = _transform(file, _parser().parse(pad + chunk))
                diags += d
            except UnexpectedInput as e:
                diags.append(_syntax_diag(file, pad + chunk, e))
        if not diags:  # the chunks parse alone but not together: report the whole-file error
            try:
                _parser().parse(text)
            except UnexpectedInput as e:
                diags.append(_syntax_diag(file, text, e))
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
    stmts = _attach_comments(stmts, comments)
    return Module(file=file, study=study, uses=tuple(uses), stmts=tuple(stmts))


def _too_big(file, n):
    return Diagnostic("E005", f"the spec is {n / 1e6:.1f} MB; the limit is {MAX_BYTES // (1024 * 1024)} MiB",
                      Span(file, 1, 1, 1, 1), hint="a study spec is a page of text; split it or generate less")


def _comments(text: str) -> list[tuple[int, str]]:
    """(line, text) of every `#` comment outside strings."""
    out = []
    for lineno, line in enumerate(text.split("\n"), 1):
        in_str, esc = False, False
        for i, ch in enumerate(line):
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "#":
                out.append((lineno, line[i + 1:].strip()))
                break
    return out


def _attach_comments(stmts, comments):
    """Give each top-level statement the comments above it and inside it."""
    if not comments:
        return stmts
    out, prev_end = [], 0
    for s in stmts:
        mine = tuple(c for ln, c in comments if prev_end < ln <= s.span.end_line and c)
        prev_end = s.span.end_line
        out.append(s.model_copy(update={"comments": mine}) if mine else s)
    return out


def parse_file(path) -> Module:
    from pathlib import Path

    p = Path(path)
    return parse(p.read_bytes(), file=str(path))
