"""One code, one meaning: every diagnostic code in radlang/ is in the registry (radlang/codes.py), raised only
from the modules its line names, and no two numbers share a meaning."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from radlang.codes import CODES, PHASES, Code

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "radlang"

# a raise site: the code as a whole string literal ("E604", 'E604') or as printed by hand (`error[E701]`)
RAISED = re.compile(r"""["'\[]([EW]\d{3})["'\]]""")
# any mention: docstrings, comments, messages, docs
MENTIONED = re.compile(r"\b[EW]\d{3}\b")


def raise_sites(root: Path = PKG) -> dict[str, set[str]]:
    """Module (path under radlang/) -> the codes it raises; the registry itself excluded."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).as_posix()
        if rel == "codes.py":
            continue
        codes = set(RAISED.findall(f.read_text(encoding="utf-8")))
        if codes:
            out[rel] = codes
    return out


def misuses(sites: dict[str, set[str]], registry: dict[str, Code] = CODES) -> list[str]:
    """Codes raised but not registered, or raised from a module that their registry line does not name."""
    bad = []
    for module, codes in sorted(sites.items()):
        for code in sorted(codes):
            if code not in registry:
                bad.append(f"{module}: {code} is not in radlang/codes.py")
            elif module not in registry[code].modules:
                bad.append(f"{module}: raises {code} ({registry[code].meaning!r}), which radlang/codes.py allows only in "
                           f"{', '.join(registry[code].modules)}: a second meaning? give it a code of its own")
    return bad


def test_every_code_in_radlang_is_registered_and_raised_where_the_registry_says():
    sites = raise_sites()
    assert len(sites) > 20, sorted(sites)       # the scan finds the call sites
    assert misuses(sites) == []


def test_every_registered_module_raises_its_code():
    """No stale line: each module a code's line names does raise it, so the `modules` column stays true."""
    sites = raise_sites()
    stale = [f"{c.code}: {m}" for c in CODES.values() for m in c.modules if c.code not in sites.get(m, ())]
    assert stale == []


def test_a_second_meaning_in_another_module_is_caught():
    """The situation this registry ended: radlang/backends/modes/deep.py raised E603-E608 for network data
    problems while case.py used the same codes for radiomics extraction. Its lines, as they were, fail."""
    old_deep = '''
            diags.append(Diagnostic("E603", f"`{stage.name}`: case `{cid}`, column ...: {msg}", stage.span,
            diags.append(Diagnostic("E604", f"`{stage.name}`: case `{cid}` has no mask", stage.span))
            diags.append(Diagnostic("E605", f"`{stage.name}`: case `{cid}`, column ...: label {mx} found", stage.span))
            diags.append(Diagnostic("E606", f"`{stage.name}`: case `{cid}` has no outcome value", stage.span))
            raise RunError([Diagnostic("E607", f"`{stage.name}`: patch {params['patch']} is not divisible", stage.span)])
        raise RunError([Diagnostic("E608", f"`{stage.name}`: the network has no layer `{layer}`", stage.span)])
    '''
    codes = set(RAISED.findall(old_deep))
    assert codes == {"E603", "E604", "E605", "E606", "E607", "E608"}
    bad = misuses({"backends/modes/deep.py": codes})
    assert [b.split(" ")[2] for b in bad] == ["E603", "E604", "E605", "E606", "E607", "E608"], bad
    assert misuses({"backends/modes/deep.py": {"E699"}}) == ["backends/modes/deep.py: E699 is not in radlang/codes.py"]


def test_one_meaning_per_number():
    """Distinct numbers have distinct meanings; the E and the W of one number are one meaning at two severities."""
    by_meaning: dict[str, set[str]] = {}
    for c in CODES.values():
        by_meaning.setdefault(c.meaning.lower().rstrip("."), set()).add(c.code[1:])
    shared = {m: sorted(n) for m, n in by_meaning.items() if len(n) > 1}
    assert shared == {}
    by_number: dict[str, set[str]] = {}
    for c in CODES.values():
        by_number.setdefault(c.code[1:], set()).add(c.meaning)
    assert {n: m for n, m in by_number.items() if len(m) > 1} == {}


def test_registry_entries_are_well_formed():
    for key, c in CODES.items():
        assert key == c.code and re.fullmatch(r"[EW]\d{3}", key), key
        assert c.code[1] in PHASES, key
        assert c.meaning and "\n" not in c.meaning and "\n" not in c.doc, key
        assert c.modules and all((PKG / m).is_file() for m in c.modules), (key, c.modules)
    assert list(CODES) == sorted(CODES, key=lambda k: (k[1:], k[0])), "keep radlang/codes.py in numeric order"


@pytest.mark.parametrize("where", ["radlang", "docs", "README.md"])
def test_every_mentioned_code_exists(where):
    """A code named in a docstring, a comment, a message or the docs is one the registry knows."""
    root = REPO / where
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in (".py", ".md", ".j2", ".lark"))
    unknown = {f"{f.relative_to(REPO)}: {m}" for f in files for m in MENTIONED.findall(f.read_text(encoding="utf-8"))
               if m not in CODES}
    assert unknown == set()
