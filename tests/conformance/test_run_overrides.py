"""Conformance for the operators in OVERRIDES: the generic run cannot pass for them by design, so the harness asserts
their documented behaviour instead (today: `fed_tcga_brca` reads FLamby's files, which no fixture has, so both
`radlang run` and the rendered script stop at it with E640 naming the stage and the file, after writing identical
upstream outputs)."""

from __future__ import annotations

import pytest
from conformance_harness import OVERRIDES, ExpectRunError, all_files, compile_spec, run_fixtures, run_script, write_spec

from radlang.backends.executor import RunError, run_study
from radlang.backends.render.script import render_to_file

RUN_ERRORS = sorted(name for name, o in OVERRIDES.items() if isinstance(o, ExpectRunError))


@pytest.mark.parametrize("name", RUN_ERRORS)
def test_documented_run_error(name, tmp_path):
    expect = OVERRIDES[name]
    fx = run_fixtures()[name]
    study = compile_spec(write_spec(tmp_path, [fx], f"override {name}"))
    assert fx.stage in {s.name for s in study.stages}
    with pytest.raises(RunError) as e:
        run_study(study, out=tmp_path / "run", workers=1, quiet=True)
    diags = e.value.diagnostics
    assert [d.code for d in diags] == list(expect.codes), f"`{name}`: expected {expect.codes} ({expect.why}), got {diags}"
    assert all(f"`{fx.stage}`" in d.message for d in diags)
    script = render_to_file(study, tmp_path / "study.py")
    proc = run_script(script, "--out", str(tmp_path / "script"))
    assert proc.returncode == 1, proc.stderr[-2000:]
    for code in expect.codes:
        assert f"error[{code}]: `{fx.stage}`" in proc.stderr, proc.stderr[-2000:]
    ran, scripted = all_files(tmp_path / "run"), all_files(tmp_path / "script")
    assert ran.keys() == scripted.keys() and all(ran[k] == scripted[k] for k in ran)
