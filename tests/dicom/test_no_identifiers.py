"""No patient identifier in anything radlang writes: a study on DICOM series and RTSTRUCT masks whose headers carry
synthetic identifiers (tests/dicom/_series.py IDENTIFIERS) is run, validated, predicted and rendered; every file it
writes is searched for each identifier."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _series import IDENTIFIERS, phantom_volume, sphere, write_series

sys.path.insert(0, str(Path(__file__).parents[1]))
from cli_runner import run_cli


def test_outputs_carry_no_patient_identifier(tmp_path):
    from rt_utils import RTStructBuilder

    rows = []
    for i in range(6):
        m = sphere(shape=(8, 32, 32), radius=(3, 8 + i % 3, 9))
        case = tmp_path / "data" / f"c{i}"
        write_series(case / "ct", phantom_volume(m, seed=i) + 15 * (i % 2), seed=f"case{i}", spacing=(1.0, 1.0, 2.0),
                     manufacturer="Acme" if i < 3 else "Zenith")
        rt = RTStructBuilder.create_new(dicom_series_path=str(case / "ct"))
        rt.add_roi(mask=m.transpose(1, 2, 0), name="GTV")
        rt.save(str(case / "rs.dcm"))
        rows.append({"case_id": f"c{i}", "image": f"data/c{i}/ct", "mask": f"data/c{i}/rs.dcm", "label": i % 2})
    pd.DataFrame(rows).to_csv(tmp_path / "cases.csv", index=False)
    (tmp_path / "s.rad").write_text(
        'study "DICOM identifiers" { seed: 3, out: "out" }\n'
        'cohort train = manifest("cases.csv") { image: image, mask: mask, roi: "gtv", outcome: label as binary,\n'
        '  scanner: [manufacturer, kvp, kernel, slice_thickness], site: "scanner.manufacturer" }\n'
        'features rad = pyradiomics(train.image, train.mask) { classes: [firstorder], bin_width: 25 }\n'
        'model clf = logistic(rad, target: train.outcome) { C: 1.0 }\n'
        'validate v = evaluate(clf) { cv: stratified_kfold(2), metrics: [auc] }\n')
    rc, out, err = run_cli(["run", tmp_path / "s.rad"])
    assert rc == 0, out + err
    rc, out, err = run_cli(["predict", tmp_path / "s.rad", "v", tmp_path / "cases.csv", "-o", tmp_path / "out" / "pred.csv"])
    assert rc == 0, out + err
    rc, out, err = run_cli(["render", tmp_path / "s.rad", "-o", tmp_path / "out" / "script.py"])
    assert rc == 0, out + err
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == "run.json" for p in written) and any(p.suffix == ".nii.gz" or p.name.endswith(".nii.gz") for p in written)
    assert (tmp_path / "out" / "pred.csv").exists() and (tmp_path / "out" / "script.py").exists()
    feats = pd.read_csv(tmp_path / "out" / "features" / "rad.csv")
    assert list(feats["case_id"]) == [f"c{i}" for i in range(6)]
    needles = [v for v in IDENTIFIERS.values()] + IDENTIFIERS["PatientName"].split("^")
    leaks = []
    for p in written:
        data = p.read_bytes()
        if p.name.endswith(".gz"):
            import gzip

            data += gzip.decompress(data)
        leaks += [f"{p.relative_to(tmp_path)}: {n}" for n in needles if n.encode() in data or n.encode("utf-16-le") in data]
    assert leaks == []
    # the identifiers are in the inputs: the search would find them
    assert IDENTIFIERS["PatientName"].encode() in next((tmp_path / "data" / "c0" / "ct").iterdir()).read_bytes()
