"""`radlang check` finds data mistakes without running: a misspelt manifest column, a missing image, a missing
or invalid PyRadiomics params file, a lasso `cv` the folds cannot hold; `--no-data` turns it off. The codes
are those `radlang run` gives the same problems."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _extraction_util import run_spec, write_spec

from radlang.backends.executor import RunError
from radlang.checks.pyradiomics_params import params_problems, schema_file
from radlang.compiler import compile_file
from tests.cli_runner import run_cli

PARAMS = Path("/work/shared/data/pyradiomics/params")
MR3 = {"imageType": {"Original": {}, "LoG": {"sigma": [2.0, 3.0, 4.0, 5.0]}, "Wavelet": {}},
       "featureClass": {"shape": None, "firstorder": None, "glcm": ["Contrast", "Idm"]},
       "setting": {"normalize": True, "normalizeScale": 100, "interpolator": "sitkBSpline", "resampledPixelSpacing": [2, 2, 2],
                   "binWidth": 5, "voxelArrayShift": 300, "label": 1}}


def _cohort(tmp_path, tiny_cohort):
    m = pd.read_csv(tiny_cohort)
    m = m.rename(columns={"image": "t2w"})
    m["t2w"] = [str(tiny_cohort.parent / p) for p in m["t2w"]]
    m["mask"] = [str(tiny_cohort.parent / p) for p in m["mask"]]
    m.to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "mr.yaml").write_text(yaml.safe_dump(MR3))
    return m


def _check(spec, *flags):
    rc, _, err = run_cli(["check", *flags, "--format", "json", spec])
    return rc, json.loads(_)["diagnostics"] if _ else [], err


SPEC = """
    cohort train = manifest("m.csv") { image: t2w, mask: mask, outcome: malignant as binary }
    features f = pyradiomics(train.image, train.mask) { params: from_params("mr.yaml") }
"""


def test_a_clean_spec_with_data_passes(tmp_path, tiny_cohort):
    _cohort(tmp_path, tiny_cohort)
    rc, diags, _ = _check(write_spec(tmp_path, SPEC))
    assert rc == 0 and diags == []


def test_a_misspelt_manifest_column(tmp_path, tiny_cohort):
    _cohort(tmp_path, tiny_cohort)
    spec = write_spec(tmp_path, SPEC.replace("image: t2w", "image: t2"))
    rc, [d], _ = _check(spec)
    assert rc == 1 and d["code"] == "E601" and d["hint"] == "did you mean `t2w`?"
    assert "the manifest has no column `t2` (the image column)" in d["message"] and str(tmp_path / "m.csv") in d["message"]
    line = spec.read_text().splitlines()[0]
    assert (d["span"]["line"], d["span"]["col"], d["span"]["end_col"] - d["span"]["col"]) == (1, line.index("t2,") + 1, 2)   # under `t2`
    assert _check(spec, "--no-data")[0] == 0
    with pytest.raises(RunError) as ei:                                   # run reports it with the same code
        run_spec(spec)
    assert [x.code for x in ei.value.diagnostics] == ["E601"]


def test_a_missing_image_names_the_case_and_file(tmp_path, tiny_cohort):
    m = _cohort(tmp_path, tiny_cohort)
    m.loc[3, "mask"] = str(tmp_path / "gone.nii.gz")
    m.to_csv(tmp_path / "m.csv", index=False)
    rc, [d], _ = _check(write_spec(tmp_path, SPEC))
    assert rc == 1 and d["code"] == "E601"
    assert f"column `mask`: 1 of 8 file(s) not found: case `{m.loc[3, 'case_id']}` (`{tmp_path / 'gone.nii.gz'}`)" in d["message"]


def test_a_missing_params_file(tmp_path, tiny_cohort):
    _cohort(tmp_path, tiny_cohort)
    rc, [d], _ = _check(write_spec(tmp_path, SPEC.replace("mr.yaml", "mr.yml")))
    assert rc == 1 and d["code"] == "E602" and d["hint"] == "did you mean `mr.yaml`?"


def test_a_params_file_against_pyradiomics_schema_at_check_and_run(tmp_path, tiny_cohort):
    _cohort(tmp_path, tiny_cohort)
    bad = copy.deepcopy(MR3)
    bad["setting"]["binWidht"] = bad["setting"].pop("binWidth")
    (tmp_path / "mr.yaml").write_text(yaml.safe_dump(bad))
    spec = write_spec(tmp_path, SPEC)
    rc, [d], _ = _check(spec)
    assert rc == 1 and d["code"] == "E653" and "`setting.binWidht` is not a PyRadiomics setting; did you mean `binWidth`?" in d["message"]
    with pytest.raises(RunError) as ei:
        run_spec(spec)
    [r] = ei.value.diagnostics
    assert r.code == "E653" and "binWidht" in r.message and str(tmp_path / "mr.yaml") in r.message


def _pyradiomics_accepts(d) -> bool:
    import radiomics
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.CRITICAL)
    logging.getLogger("pykwalify").setLevel(logging.CRITICAL)
    try:
        featureextractor.RadiomicsFeatureExtractor(copy.deepcopy(d))
    except Exception:  # noqa: BLE001 -- any refusal counts
        return False
    return True


MUTATIONS = [
    (("setting", "binWidht"), 5), (("setting", "binWidth"), -1), (("setting", "binWidth"), "x"), (("setting", "binWidth"), "5"),
    (("setting", "label"), 0), (("setting", "label"), 1.5), (("setting", "normalize"), 1), (("setting", "interpolator"), "sitkLinea"),
    (("setting", "interpolator"), 11), (("setting", "interpolator"), 3), (("imageType", "Wavlet"), {}), (("featureClass", "glcmm"), None),
    (("featureClass", "glcm"), ["Contrastt"]), (("featureClass", "glcm"), "Contrast"), (("settings",), {}),
    (("setting", "resampledPixelSpacing"), "2"), (("setting", "resampledPixelSpacing"), [-1, 2, 2]), (("setting", "resegmentMode"), "abs"),
    (("setting", "force2Ddimension"), 3), (("imageType", "LoG"), {"sigma": [0, 1]}), (("imageType", "LoG"), {"sigmas": [1]}),
    (("voxelSetting",), {"kernelRadius": 0}), (("setting", "weightingNorm"), "eucl"), (("setting", "weightingNorm"), None),
    (("setting",), None), (("imageType", "Original"), None),
]


@pytest.mark.parametrize("path,value", MUTATIONS, ids=[f"{'.'.join(p)}={v!r}" for p, v in MUTATIONS])
def test_schema_verdicts_equal_pyradiomics(path, value):
    assert schema_file() is not None
    d = copy.deepcopy(MR3)
    node = d
    for k in path[:-1]:
        node = node.setdefault(k, {})
    node[path[-1]] = value
    assert (params_problems(d) == []) == _pyradiomics_accepts(d), params_problems(d)


@pytest.mark.skipif(not PARAMS.is_dir(), reason="the shared PyRadiomics parameter files are not here")
def test_pyradiomics_own_parameter_files_pass():
    files = sorted(f for f in PARAMS.glob("*.yaml") if f.name != "paramSchema.yaml")
    assert files
    for f in files:
        d = yaml.safe_load(f.read_text())
        assert params_problems(d) == [] and _pyradiomics_accepts(d), f.name


LASSO = """
    study "s" { seed: 1 }
    cohort train = phantom(10) { size: [16, 16, 16] }
    features f = pyradiomics(train.image, train.mask) { classes: [firstorder(Mean)] }
    select sig = lasso(f, target: train.outcome) { cv: 5 }
    model clf = logistic(sig, target: train.outcome)
    validate v = evaluate(clf) { cv: stratified_kfold(2), threshold_cv: 0 }
"""


def test_check_finds_a_lasso_cv_the_folds_cannot_hold(tmp_path):
    spec = write_spec(tmp_path, LASSO)
    rc, [d], _ = _check(spec)
    # 10 phantom cases, 5 per class; two stratified folds train on 2-3 of each class
    assert rc == 1 and d["code"] == "E652" and d["message"].startswith("`sig.cv` is 5, but `sig` is refit in the training folds of `v`")
    assert "each of which holds at most 3 of class `0` and 3 of class `1`" in d["message"]
    assert d["hint"].startswith("set `cv: 2` on `sig`") and d["span"]["line"] == 4
    assert _check(spec, "--no-data")[0] == 0
    assert _check(write_spec(tmp_path, LASSO.replace("cv: 5", "cv: 3")))[0] == 0    # 3 fits every training fold
    assert compile_file(spec).ok                                                    # run, plan, render: the run checks it


def test_check_counts_a_manifests_rows_and_classes(tmp_path, tiny_cohort):
    _cohort(tmp_path, tiny_cohort)
    spec = write_spec(tmp_path, SPEC.replace('{ params: from_params("mr.yaml") }', "") + """
    select sig = lasso(f, target: train.outcome) { cv: 4 }
    model clf = logistic(sig, target: train.outcome)
    validate v = evaluate(clf) { cv: stratified_kfold(2) }
    """)
    rc, [d], _ = _check(spec)
    assert rc == 1 and d["code"] == "E652" and "(8 cases: 4 of class `0` and 4 of class `1`)" in d["message"]


def test_a_spec_not_read_from_a_file_reads_no_data(tmp_path, monkeypatch):
    """Paths are relative to the spec file: a spec given as text has none, so nothing is read (no E601)."""
    from radlang.compiler import compile_source

    monkeypatch.chdir(tmp_path)
    res = compile_source('cohort a = manifest("nowhere.csv") { mask: roi }\nfeatures f = pyradiomics(a.image, a.mask)', data=True)
    assert res.ok, [d.message for d in res.diagnostics]
    assert compile_file(write_spec(tmp_path, res.study.source), data=True).diagnostics[0].code == "E601"


def test_a_table_cohort_is_checked_like_a_manifest(tmp_path):
    pd.DataFrame({"case": [f"t{i}" for i in range(8)], "malignant": [0, 1] * 4, "size_mm": range(8)}).to_csv(tmp_path / "t.csv", index=False)
    spec = write_spec(tmp_path, """
        cohort t = table("t.csv") { id: case, outcome: malignent as binary, columns: [size] }
        features f = tabular(t)
        select sig = lasso(f, target: t.outcome) { cv: 4 }
        model m = logistic(sig, target: t.outcome)
        validate v = evaluate(m) { cv: stratified_kfold(2), threshold_cv: 0 }
    """)
    rc, diags, _ = _check(spec)
    assert rc == 1 and [(d["code"], d["hint"]) for d in diags] == [("E640", "did you mean `malignant`?"), ("E640", "did you mean `size_mm`?")]
    fixed = write_spec(tmp_path, spec.read_text().replace("malignent", "malignant").replace("[size]", "[size_mm]"))
    rc, [d], _ = _check(fixed)                          # 8 cases, 4 per class: a training fold of 2 holds 2 of each
    assert d["code"] == "E652" and d["hint"].startswith("set `cv: 2` on `sig`")


@pytest.mark.parametrize("path,content", [("enc.yaml", b"\xff\xfe"), ("dir.yaml", None), ("nul\\u0000.yaml", None)],
                         ids=["not utf-8", "a folder", "a NUL byte"])
def test_an_unreadable_params_file_or_manifest_is_a_diagnostic(tmp_path, path, content):
    if content is not None:
        (tmp_path / path).write_bytes(content)
    elif "\\" not in path:
        (tmp_path / path).mkdir()
    spec = write_spec(tmp_path, f"""
        cohort a = manifest("{path.replace('yaml', 'csv')}") {{ mask: roi }}
        features f = pyradiomics(a.image, a.mask) {{ params: from_params("{path}") }}
    """)
    if content is not None:
        (tmp_path / path.replace("yaml", "csv")).write_bytes(content)
    elif "\\" not in path:
        (tmp_path / path.replace("yaml", "csv")).mkdir()
    rc, diags, err = _check(spec)
    assert rc == 1 and sorted(d["code"] for d in diags) == ["E601", "E602"], (diags, err)
    assert all("cannot read" in d["message"] for d in diags) and "internal error" not in err


def test_only_the_data_of_stages_that_run_is_read(tmp_path):
    """A cohort no output needs is W402 (it will not run): its missing manifest is not an error."""
    spec = write_spec(tmp_path, """
        cohort train = phantom(8)
        cohort spare = manifest("nowhere.csv") { mask: roi }
        features f = pyradiomics(train.image, train.mask)
    """)
    rc, diags, _ = _check(spec)
    assert rc == 0 and [d["code"] for d in diags] == ["W402"]
    rc, diags, _ = _check(write_spec(tmp_path, spec.read_text() + "features g = pyradiomics(spare.image, spare.mask)\n"))
    assert rc == 1 and [d["code"] for d in diags] == ["E601"]
