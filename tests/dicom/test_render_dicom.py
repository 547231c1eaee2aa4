"""The rendered script reads DICOM as `radlang run` does: a study on an RTSTRUCT mask, a DICOM-SEG mask and a series
picked from a folder holding two, run by `radlang run` and by its rendered script (radlang unimportable), writes
byte-identical features, and neither writes a patient identifier."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "render"))
from _series import IDENTIFIERS, phantom_volume, sphere, write_series
from test_dicom_in import rtstruct, seg
from test_equivalence import equivalent


def test_rendered_script_reads_dicom_like_run(tmp_path):
    from radlang.compiler import compile_file

    m = sphere(shape=(8, 32, 32), radius=(3, 9, 10))
    write_series(tmp_path / "a", phantom_volume(m, 1), seed="a")
    rtstruct(tmp_path / "a", tmp_path / "a_rs.dcm", {"GTV": m})
    write_series(tmp_path / "b", phantom_volume(m, 2), seed="b")
    seg(tmp_path / "b", tmp_path / "b_seg.dcm", {"Lesion": m})
    write_series(tmp_path / "c", phantom_volume(m, 3), seed="c")                      # the CT of case c ...
    write_series(tmp_path / "c", phantom_volume(m, 4), seed="c_mr", modality="MR")     # ... beside an MR series
    rtstruct(tmp_path / "a", tmp_path / "c_rs.dcm", {"GTV": m})                      # drawn on a: c's must be its own
    write_series(tmp_path / "conly", phantom_volume(m, 3), seed="c")
    rtstruct(tmp_path / "conly", tmp_path / "c_rs.dcm", {"GTV": m})
    pd.DataFrame([{"case_id": "a", "image": "a", "mask": "a_rs.dcm#gtv"}, {"case_id": "b", "image": "b", "mask": "b_seg.dcm#1"},
                  {"case_id": "c", "image": "c", "mask": "c_rs.dcm"}]).to_csv(tmp_path / "m.csv", index=False)
    spec = tmp_path / "s.rad"
    spec.write_text('study "render DICOM" { seed: 2 }\n'
                    'cohort k = manifest("m.csv") { mask: mask, modality: CT, roi: "GTV*", scanner: [manufacturer, kvp] }\n'
                    'features f = pyradiomics(k.image, k.mask) { classes: [firstorder, shape] }\n')
    res = compile_file(spec)
    assert res.ok, [d.message for d in res.diagnostics]
    assert "features/f.csv" in equivalent(res.study, tmp_path)          # every CSV and JSON byte-identical
    feats = pd.read_csv(tmp_path / "run" / "features" / "f.csv").set_index("case_id")
    assert list(feats.index) == ["a", "b", "c"]
    assert (feats["original_shape_VoxelVolume"] == 2.0 * m.sum()).all()      # each mask is the ellipsoid: voxels of 2 mm^3
    written = [p for d in ("run", "script") for p in (tmp_path / d).rglob("*") if p.is_file()]
    leaks = [f"{p.name}: {v}" for p in written for v in IDENTIFIERS.values() if v.encode() in p.read_bytes()]
    assert leaks == []
