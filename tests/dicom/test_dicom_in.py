"""Clinical DICOM in (radlang/ops/dicom.py through the manifest cohort): masks from RTSTRUCT and DICOM-SEG written
here with rt-utils and highdicom from known phantom masks, series selection, scanner columns, bad input (one E6xx
per case, naming case and file), pydicom's bundled files, and no patient identifier in anything radlang writes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).parent))
from _series import phantom_volume, sphere, write_series

from radlang.ops.cohorts import load_manifest

PARAMS = {"id": "case_id", "patient": None, "image": "image", "mask": "mask", "outcome": None, "site": None,
          "clinical": [], "dims": 3, "modality": None, "series_description": None, "roi": None, "fraction": 0.5,
          "scanner": [], "thickness_tolerance": 0.5}


def manifest(tmp: Path, rows: list[dict], **settings):
    p = tmp / "m.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    return load_manifest({**PARAMS, "path": str(p), **settings}, str(p), "c", derived_dir=str(tmp / "derived"))


def mask_array(df, case):
    return sitk.GetArrayFromImage(sitk.ReadImage(df.set_index("case_id").loc[case, "mask"])) > 0


def rtstruct(series: Path, out: Path, rois: dict[str, np.ndarray]) -> Path:
    from rt_utils import RTStructBuilder

    rt = RTStructBuilder.create_new(dicom_series_path=str(series))
    for name, m in rois.items():
        rt.add_roi(mask=np.transpose(m, (1, 2, 0)), name=name)   # rt-utils: [rows, columns, slices]
    rt.save(str(out))
    return out


def seg(series: Path, out: Path, segments: dict[str, np.ndarray], fractional=False) -> Path:
    import highdicom as hd
    import pydicom
    import SimpleITK as sitk
    from pydicom.sr.codedict import codes

    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series))
    sources = [pydicom.dcmread(f) for f in files]
    algo = hd.AlgorithmIdentificationSequence(name="test", version="1", family=codes.cid7162.ArtificialIntelligence)
    desc = [hd.seg.SegmentDescription(segment_number=i + 1, segment_label=name, segmented_property_category=codes.cid7150.Tissue,
                                      segmented_property_type=codes.cid7166.ConnectiveTissue,
                                      algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algo)
            for i, name in enumerate(segments)]
    arr = np.stack(list(segments.values()), axis=-1)
    s = hd.seg.Segmentation(source_images=sources, pixel_array=arr.astype(np.float32 if fractional else np.uint8),
                            segmentation_type="FRACTIONAL" if fractional else "BINARY", segment_descriptions=desc,
                            series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(), instance_number=1,
                            manufacturer="radlang tests", manufacturer_model_name="t", software_versions="1", device_serial_number="1",
                            omit_empty_frames=False)
    s.save_as(out)
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One CT series with a smooth ellipsoid lesion, its RTSTRUCT (GTV, plus GTV_b and Liver) and SEG."""
    tmp = tmp_path_factory.mktemp("dicom")
    m = sphere()
    write_series(tmp / "ct", phantom_volume(m))
    small = sphere(centre=[8, 20, 44], radius=(3, 6, 6))
    rtstruct(tmp / "ct", tmp / "rs.dcm", {"GTV": m, "GTV_b": small, "Liver": small})
    seg(tmp / "ct", tmp / "seg.dcm", {"Lesion": m, "Small": small})
    return tmp, m, small


def test_rtstruct_round_trip_matches_the_mask(study, tmp_path):
    tmp, m, small = study
    df, problems = manifest(tmp_path, [{"case_id": "a", "image": str(tmp / "ct"), "mask": str(tmp / "rs.dcm") + "#gtv"},
                                       {"case_id": "b", "image": str(tmp / "ct"), "mask": str(tmp / "rs.dcm")}], roi="liv*|organ")
    assert problems == []
    a, b = mask_array(df, "a"), mask_array(df, "b")
    # rt-utils traces the outline through the edge voxels' centres; the centre-inside-or-on-the-outline rule gets them
    # all on the large smooth ellipsoid; on the small one (radius 6 voxels) its traced outline differs by 2 voxels
    assert (a != m).sum() == 0
    assert 2 * (b & small).sum() / (b.sum() + small.sum()) >= 0.98
    img = sitk.ReadImage(df.loc[0, "mask"])
    ref = sitk.ReadImage(str(next((tmp / "ct").iterdir())))
    assert img.GetSize()[:2] == ref.GetSize()[:2]


def test_seg_round_trip_is_voxel_exact(study, tmp_path):
    tmp, m, small = study
    df, problems = manifest(tmp_path, [{"case_id": "num", "image": str(tmp / "ct"), "mask": str(tmp / "seg.dcm") + "#2"},
                                       {"case_id": "lab", "image": str(tmp / "ct"), "mask": str(tmp / "seg.dcm") + "#les*"}])
    assert problems == []
    assert np.array_equal(mask_array(df, "num"), small) and np.array_equal(mask_array(df, "lab"), m)


def test_fractional_seg_is_thresholded_at_the_fraction(study, tmp_path):
    tmp, m, _ = study
    z, y, x = np.indices(m.shape)
    prob = np.clip(1.0 - np.sqrt(((z - 7.5) / 6) ** 2 + ((y - 31.5) / 26) ** 2 + ((x - 31.5) / 26) ** 2), 0, 1)
    prob = np.round(prob * 255) / 255                    # values the SEG stores exactly (max fractional value 255)
    seg(tmp / "ct", tmp_path / "frac.dcm", {"P": prob}, fractional=True)
    for fraction in (0.5, 0.2):
        df, problems = manifest(tmp_path, [{"case_id": "f", "image": str(tmp / "ct"), "mask": str(tmp_path / "frac.dcm") + "#1"}],
                                fraction=fraction)
        assert problems == []
        assert np.array_equal(mask_array(df, "f"), prob >= fraction - 1e-9)


def test_series_selection_and_scanner_columns(tmp_path):
    m = sphere(shape=(6, 32, 32), radius=(2, 8, 8))
    ids_ct = write_series(tmp_path / "study", phantom_volume(m), seed="ct", description="AX 2mm", thickness=2.0)
    ids_mr = write_series(tmp_path / "study", phantom_volume(m, 1), seed="mr", modality="MR", description="T2 AX", manufacturer="Other")
    rtstruct_dir = tmp_path / "ctonly"
    write_series(rtstruct_dir, phantom_volume(m), seed="ct")       # the same CT series alone, for rt-utils
    rtstruct(rtstruct_dir, tmp_path / "study" / "rs.dcm", {"GTV": m})
    rows = [{"case_id": "s", "image": str(tmp_path / "study"), "mask": str(tmp_path / "study" / "rs.dcm") + "#GTV"}]
    _, problems = manifest(tmp_path, rows)
    assert [p["code"] for p in problems] == ["E631"] and problems[0]["case"] == "s" and problems[0]["file"] == str(tmp_path / "study")
    assert ids_ct["series"] in problems[0]["message"] and ids_mr["series"] in problems[0]["message"]
    _, problems = manifest(tmp_path, rows, series_description="sag*")
    assert [p["code"] for p in problems] == ["E632"]
    scanner = ["manufacturer", "model", "kvp", "kernel", "slice_thickness", "pixel_spacing", "field_strength"]
    df, problems = manifest(tmp_path, rows, modality="ct", scanner=scanner, site="scanner.manufacturer")
    assert problems == []
    assert df.loc[0, "image"] == f"{tmp_path / 'study'}#{ids_ct['series']}"
    assert np.array_equal(mask_array(df, "s"), m)
    assert df.loc[0, ["scanner.manufacturer", "scanner.model", "scanner.kvp", "scanner.kernel", "scanner.slice_thickness",
                      "scanner.pixel_spacing"]].tolist() == ["Acme Medical", "Model 9", 120.0, "B30f", 2.0, 1.0]
    assert np.isnan(df.loc[0, "scanner.field_strength"]) and df.loc[0, "site"] == "Acme Medical"
    df, problems = manifest(tmp_path, [{"case_id": "u", "image": f"{tmp_path / 'study'}#{ids_mr['series']}", "mask": ""}],
                            mask=None, scanner=["field_strength", "manufacturer"])
    assert problems == [] and df.loc[0, ["scanner.field_strength", "scanner.manufacturer"]].tolist() == [3.0, "Other"]
    from radlang.ops.segment import load_image

    assert load_image(df.loc[0, "image"]).GetSize() == (32, 32, 6)
    # a site taken from a scanner attribute: an image without it (a NIfTI) is a case problem, not a site "None"
    sitk.WriteImage(sitk.GetImageFromArray(phantom_volume(m)), str(tmp_path / "n.nii.gz"))
    _, problems = manifest(tmp_path, [{"case_id": "n", "image": str(tmp_path / "n.nii.gz"), "mask": ""}], mask=None,
                           site="scanner.manufacturer")
    assert [(p["case"], p.get("code"), p["column"]) for p in problems] == [("n", None, "scanner.manufacturer")]


def test_bad_input_each_names_the_case_and_the_file(study, tmp_path):
    import pydicom

    tmp, m, _ = study
    other = tmp_path / "other"
    write_series(other, phantom_volume(m), seed="other")           # another series: another frame of reference
    gap, tilt = tmp_path / "gap", tmp_path / "tilt"
    write_series(gap, phantom_volume(m), seed="gap", skip=(5,))
    write_series(tilt, phantom_volume(m), seed="tilt", tilted=(3,))
    empty = pydicom.dcmread(tmp / "rs.dcm")
    empty.ROIContourSequence[0].ContourSequence = []
    empty.save_as(tmp_path / "empty.dcm")
    outside = pydicom.dcmread(tmp / "rs.dcm")
    c = outside.ROIContourSequence[0].ContourSequence[0]
    c.ContourData = [v + 500.0 if i % 3 == 0 else v for i, v in enumerate(c.ContourData)]
    outside.save_as(tmp_path / "outside.dcm")
    between = pydicom.dcmread(tmp / "rs.dcm")
    c = between.ROIContourSequence[0].ContourSequence[0]
    c.ContourData = [v + 0.7 if i % 3 == 2 else v for i, v in enumerate(c.ContourData)]
    between.save_as(tmp_path / "between.dcm")
    ct, rsf = str(tmp / "ct"), str(tmp / "rs.dcm")
    cases = {
        "elsewhere": (str(other), rsf + "#GTV", "E626", rsf),
        "seg_for": (str(other), str(tmp / "seg.dcm") + "#1", "E626", str(tmp / "seg.dcm")),
        "nomatch": (ct, rsf + "#CTV*", "E627", rsf),
        "twice": (ct, rsf + "#GTV*", "E628", rsf),
        "empty": (ct, str(tmp_path / "empty.dcm") + "#GTV", "E629", str(tmp_path / "empty.dcm")),
        "outside": (ct, str(tmp_path / "outside.dcm") + "#GTV", "E630", str(tmp_path / "outside.dcm")),
        "between": (ct, str(tmp_path / "between.dcm") + "#GTV", "E635", str(tmp_path / "between.dcm")),
        "gap": (str(gap), "", "E651", str(gap)),
        "tilt": (str(tilt), "", "E633", str(tilt)),
        "notamask": (ct, str(next((tmp / "ct").iterdir())), "E634", str(next((tmp / "ct").iterdir()))),
    }
    rows = [{"case_id": k, "image": img, "mask": msk or str(tmp_path / "none.nii.gz")} for k, (img, msk, _, _) in cases.items()]
    _, problems = manifest(tmp_path, rows)
    got = {p["case"]: (p.get("code"), p["file"]) for p in problems if p["message"] != "file not found"}
    assert got == {k: (code, f) for k, (_, _, code, f) in cases.items()}
    by = {p["case"]: p["message"] for p in problems}
    assert "CTV*" in by["nomatch"] and "GTV, GTV_b, Liver" in by["nomatch"]
    assert "GTV, GTV_b" in by["twice"]


def test_pydicom_bundled_files(tmp_path):
    """CT_small.dcm, MR_small.dcm and rtstruct.dcm ship inside pydicom's wheel (pydicom/data/test_files)."""
    import pydicom
    from pydicom.data import get_testdata_file

    rows = []
    for name in ("CT_small.dcm", "MR_small.dcm"):
        folder = tmp_path / name.split("_")[0]
        folder.mkdir()
        shutil.copy(get_testdata_file(name), folder / name)
        rows.append({"case_id": name.split("_")[0], "image": str(folder), "mask": ""})
    scanner = ["manufacturer", "model", "field_strength", "kvp", "kernel", "slice_thickness", "pixel_spacing"]
    df, problems = manifest(tmp_path, rows, mask=None, scanner=scanner)
    assert problems == []
    ct, mr = pydicom.dcmread(get_testdata_file("CT_small.dcm")), pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    t = df.set_index("case_id")
    assert t.loc["CT", "scanner.manufacturer"] == ct.Manufacturer and t.loc["CT", "scanner.kvp"] == float(ct.KVP)
    assert t.loc["CT", "scanner.slice_thickness"] == float(ct.SliceThickness)
    assert t.loc["CT", "scanner.pixel_spacing"] == pytest.approx(sum(map(float, ct.PixelSpacing)) / 2)
    assert "MagneticFieldStrength" not in mr and np.isnan(t.loc["MR", "scanner.field_strength"])
    assert t.loc["MR", "scanner.manufacturer"] == mr.Manufacturer
    # pydicom's RTSTRUCT lists its ROIs, and was drawn on a series that is not CT_small's
    rs = get_testdata_file("rtstruct.dcm")
    _, problems = manifest(tmp_path, [{"case_id": "r", "image": str(tmp_path / "CT"), "mask": rs + "#nothing"}])
    assert [p["code"] for p in problems] == ["E627"]
    names = [r.ROIName for r in pydicom.dcmread(rs, force=True).StructureSetROISequence]
    assert all(n in problems[0]["message"] for n in names)
    _, problems = manifest(tmp_path, [{"case_id": "r", "image": str(tmp_path / "CT"), "mask": rs + "#" + names[0]}])
    assert [p["code"] for p in problems] == ["E626"] and problems[0]["file"] == rs


def test_slice_thickness_warning_unless_the_features_resample(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from cli_runner import run_cli

    m = sphere(shape=(8, 24, 24), radius=(3, 7, 7))
    rows = []
    for i, thick in enumerate((1.0, 1.2, 3.0)):
        write_series(tmp_path / f"c{i}", phantom_volume(m, i), seed=f"t{i}", spacing=(1.0, 1.0, thick), thickness=thick)
        rows.append({"case_id": f"c{i}", "image": f"c{i}", "mask": ""})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    spec = ('study "t" {{ seed: 1, out: "out{n}" }}\ncohort c = manifest("m.csv") {{ thickness_tolerance: {tol} }}\n'
            'segment roi = threshold(c.image, 40HU, 200HU)\n'
            'features f = pyradiomics(c.image, roi) {{ classes: [firstorder]{extra} }}\n')
    warned = []
    for n, (tol, extra) in enumerate((("0.5mm", ""), ("2.5mm", ""), ("0.5mm", ", resample: [1mm, 1mm, 1mm]"))):
        (tmp_path / "s.rad").write_text(spec.format(n=n, tol=tol, extra=extra))
        rc, out, err = run_cli(["run", tmp_path / "s.rad"])
        assert rc == 0, out + err
        warned.append("W636" in err)
        if warned[-1]:
            assert "1 mm (case c0) to 3 mm (case c2)" in err
    assert warned == [True, False, False]
