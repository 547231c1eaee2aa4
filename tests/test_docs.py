"""docs/language.md: its operator reference and its table of diagnostic codes are generated from the
registries and must be up to date; the examples it shows must compile."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from radlang import registry
from radlang.codes import CODES

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "language.md"


def _gen(name="gen_ops"):
    spec = importlib.util.spec_from_file_location(name, REPO / "docs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_operator_reference_is_up_to_date():
    gen = _gen()
    text = DOC.read_text(encoding="utf-8")
    assert gen.render(text) == text, "docs/language.md is out of date: run `.venv/bin/python docs/gen_ops.py`"
    assert gen.main(["--check"]) == 0


def test_every_operator_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for op in registry.all_ops():
        assert f"#### `{op.name}`" in text, op.name


def test_generated_codes_table_is_up_to_date():
    gen = _gen("gen_codes")
    text = DOC.read_text(encoding="utf-8")
    assert gen.render(text) == text, "docs/language.md is out of date: run `.venv/bin/python docs/gen_codes.py`"
    assert gen.main(["--check"]) == 0


def test_every_diagnostic_code_is_documented():
    """Each registered code has its row, with its meaning, in section 6 (tests/test_codes.py holds the registry
    to the code)."""
    section = DOC.read_text(encoding="utf-8").split("## 6. Diagnostics", 1)[1].split("## 7.", 1)[0]
    missing = [c.code for c in CODES.values() if f"| {c.code} | {c.meaning} |" not in section]
    assert missing == []


def test_the_first_example_compiles(tmp_path, monkeypatch):
    """The opening example of the reference checks clean (given its preset file)."""
    from radlang.compiler import compile_source

    text = DOC.read_text(encoding="utf-8")
    example = re.search(r"```\n(study \"Lung nodule malignancy\".*?)```", text, re.S).group(1)
    (tmp_path / "lib").mkdir()
    preset = re.search(r"```\n(preset ct_fixed = .*?\n})", text, re.S).group(1)
    (tmp_path / "lib" / "ct_preset.rad").write_text(preset + "\n")
    monkeypatch.chdir(tmp_path)
    res = compile_source(example, "study.rad")
    assert res.ok, [f"{d.code} {d.message}" for d in res.diagnostics]
    assert [s.name for s in res.study.stages] == ["external", "train", "roi", "rad", "sig", "clf", "v"]


# The code registry (radlang/codes.py, and the table of docs/language.md, section 6, generated from it) gives each settings
# code one meaning; these specs hold the code to it.
CODE_MEANINGS = [
    ("E302", "out of range", 'cohort t = phantom(8) { size: [8, 40, 40] }'),
    ("E302", "out of range", 'cohort t = phantom(8) { spacing: [0mm, 1mm, 1mm] }'),
    ("E302", "out of range", 'cohort t = phantom(8)\nfeatures f = pyradiomics(t.image, t.mask) { distances: [0] }'),
    ("E302", "out of range", 'cohort t = phantom(8)\nfeatures f = pyradiomics(t.image, t.mask) { filters: [log(sigma: 0mm)] }'),
    ("E302", "out of range", ('cohort t = phantom(8)\nfeatures f = tabular(t)\nmodel m = logistic(f, target: t.outcome)\n'
                              'validate v = evaluate(m) { threshold: sensitivity >= 1.5 }')),
    ("E306", "settings that contradict each other", 'cohort t = phantom(8)\nfeatures f = pyradiomics(t.image, t.mask) { bin_width: 5, bin_count: 32 }'),
    ("E306", "settings that contradict each other", 'cohort t = phantom(8)\nsegment s = threshold(t.image) { lo: 100HU, hi: 0HU }'),
    ("E303", "wrong or missing unit", 'cohort t = phantom(8) { site_shift: 3mm }'),
]


@pytest.mark.parametrize("code,meaning,spec", CODE_MEANINGS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CODE_MEANINGS)])
def test_each_settings_code_means_what_the_table_says(code, meaning, spec):
    from radlang.compiler import compile_source

    from radlang.codes import CODES

    text = DOC.read_text(encoding="utf-8")
    assert meaning in CODES[code].meaning and f"| {code} | {CODES[code].meaning} |" in text   # the table is generated from the registry
    errors = [d for d in compile_source(spec + "\n", "s.rad").diagnostics if d.is_error]
    assert [d.code for d in errors] == [code], [f"{d.code} {d.message}" for d in errors]
    assert " a intensity" not in errors[0].message and " a angle" not in errors[0].message


def test_ops_shows_ranges_of_list_items_and_units_of_plain_settings():
    from radlang.backends.opsdoc import ops_text

    text = ops_text("phantom")
    assert "size: list of int (default [40, 40, 40], each ≥ 16, ≤ 512)" in text
    assert "site_shift: float [HU] (default 0.0)" in text
