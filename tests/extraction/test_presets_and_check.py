"""stdlib presets written in radlang, and `radlang check` staying free of heavy imports."""

from __future__ import annotations

import subprocess
import sys

from _extraction_util import write_spec


def test_presets_compile_and_override(tmp_path):
    from radlang.compiler import compile_file
    from radlang.ops.features import pyradiomics_config

    spec = write_spec(tmp_path, """
        use "ibsi_ct"
        use "mr"
        cohort train = phantom(8)
        features a = pyradiomics(train.image, train.mask) like ibsi_ct { bin_width: 10HU, filters: [original, log(sigma: [1mm, 3mm])] }
        features b = pyradiomics(train.image, train.mask) like mr
    """)
    res = compile_file(spec)
    assert res.ok, [d.message for d in res.diagnostics]
    a = pyradiomics_config(res.study.stage("a").params)
    assert a["setting"]["binWidth"] == 10.0 and a["setting"]["resegmentRange"] == [-1000.0, 400.0]
    assert a["setting"]["interpolator"] == "sitkLinear" and a["setting"]["voxelArrayShift"] == 1000
    assert a["imageType"] == {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}}
    b = pyradiomics_config(res.study.stage("b").params)
    assert b["setting"]["normalize"] is True and b["setting"]["normalizeScale"] == 100.0 and b["setting"]["binWidth"] == 5.0


def test_check_imports_no_heavy_library(tmp_path):
    spec = write_spec(tmp_path, """
        use "ibsi_ct"
        cohort train = phantom(8) { sites: 2 }
        cohort ext = manifest("x.csv") { mask: m, outcome: y as binary }
        segment roi = otsu(train.image) { smooth: 1mm }
        features a = pyradiomics(train.image, roi) like ibsi_ct
        features b = pyradiomics(ext.image, ext.mask) { classes: [glcm(Contrast)] }
    """)
    # the manifest it names, so that check's data checks run too (they never open an image: empty files do)
    (tmp_path / "x.csv").write_text("case_id,image,m,y\n" + "".join(f"e{i},e{i}.nii.gz,e{i}m.nii.gz,{i % 2}\n" for i in range(4)))
    for i in range(4):
        (tmp_path / f"e{i}.nii.gz").touch()
        (tmp_path / f"e{i}m.nii.gz").touch()
    code = (f"import sys\nfrom radlang.cli import main\nrc = main(['check', {str(spec)!r}])\n"
            "heavy = sorted(m for m in ('torch', 'monai', 'radiomics', 'shap', 'sklearn', 'SimpleITK', 'pandas') if m in sys.modules)\n"
            "print(rc, heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.stdout.strip().splitlines()[-1] == "0 []", r.stdout + r.stderr


def test_own_setting_replaces_the_inherited_settings_it_excludes(tmp_path):
    """`bin_count` and `bin_width` exclude each other: a statement's own `bin_count` replaces the preset's `bin_width`
    (and vice versa down a `like` chain); both in one statement is one E306."""
    from radlang.compiler import compile_file
    from radlang.ops.features import pyradiomics_config

    spec = write_spec(tmp_path, """
        use "mr"
        cohort train = phantom(8)
        features a = pyradiomics(train.image, train.mask) like mr { bin_count: 32 }
        features b = pyradiomics(train.image, train.mask) like a { bin_width: 3 }
    """)
    res = compile_file(spec)
    assert res.ok, [f"{d.code} {d.message}" for d in res.diagnostics]
    a = pyradiomics_config(res.study.stage("a").params)["setting"]
    b = pyradiomics_config(res.study.stage("b").params)["setting"]
    assert a["binCount"] == 32 and "binWidth" not in a and a["normalizeScale"] == 100.0     # the rest still from `mr`
    assert b["binWidth"] == 3.0 and "binCount" not in b and b["normalizeScale"] == 100.0
    spec = write_spec(tmp_path, """
        cohort train = phantom(8)
        features a = pyradiomics(train.image, train.mask) { bin_count: 32, bin_width: 5 }
    """)
    assert [d.code for d in compile_file(spec).diagnostics if d.is_error] == ["E306"]


def test_a_stage_named_like_a_used_preset_is_one_diagnostic(tmp_path):
    from radlang.compiler import compile_file

    spec = write_spec(tmp_path, """
        use "mr"
        cohort mr = phantom(8)
        features rad = pyradiomics(mr.image, mr.mask) like mr
        model clf = logistic(rad, target: mr.outcome)
        validate v = evaluate(clf) { cv: stratified_kfold(2), bootstrap: 0 }
    """)
    diags = compile_file(spec).diagnostics
    assert [d.code for d in diags] == ["E102"], [f"{d.code} {d.message}" for d in diags]
    assert "preset" in diags[0].message and "cohort `mr`" in diags[0].message and diags[0].span.line == 2
    assert "rename the cohort" in diags[0].hint
