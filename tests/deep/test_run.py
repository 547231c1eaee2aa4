"""Running deep-learning stages end to end on tiny cohorts: deterministic, cached, habitat outputs, Grad-CAM."""

import io
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from radlang.backends.executor import RunError, run_study
from tests.deep.conftest import compile_spec, write_cohort

SEG = '''
study "tiny" {{ seed: 11 }}
cohort train = manifest("{train}") {{ image: [t1, t2], mask: seg }}
cohort test = manifest("{test}") {{ image: [t1, t2], mask: seg }}
network net = unet(dims: 3, in_channels: 2, out_channels: 3) {{ channels: [4, 8], strides: [2], num_res_units: 0 }}
train fit = supervised(net, train) {{ loss: dice_ce, epochs: 2, batch: 2, patch: [8, 8, 8], samples: 2, validate_every: 1, lr: 0.01 }}
segment habitats = predict_mask(fit, test)
validate seg = segmentation_metrics(fit, test)
'''


def test_training_is_deterministic_and_cached(cohorts, tmp_path, monkeypatch):
    study = compile_spec(SEG.format(**cohorts), tmp_path)
    a = run_study(study, out=tmp_path / "a", workers=1, quiet=True)
    b = run_study(study, out=tmp_path / "b", workers=1, quiet=True)
    wa, wb = (tmp_path / "a" / "models" / "fit.pt").read_bytes(), (tmp_path / "b" / "models" / "fit.pt").read_bytes()
    assert wa == wb                                              # identical weights from two independent runs
    ma, mb = (tmp_path / "a" / "metrics" / "seg.json").read_text(), (tmp_path / "b" / "metrics" / "seg.json").read_text()
    assert ma == mb
    assert a.results["fit"]["history"] == b.results["fit"]["history"]
    # weights only: loads with weights_only=True into the same MONAI network
    state = torch.load(io.BytesIO(wa), weights_only=True)
    from radlang.ops.networks import build_network

    build_network(a.results["fit"]["spec"]).load_state_dict(state)
    # re-run: the trained network comes from the cache, training is not called again
    import radlang.ops.supervised as tr

    def boom(*args, **kw):
        raise AssertionError("trained again")

    monkeypatch.setattr(tr, "train_network", boom)
    c = run_study(study, out=tmp_path / "a", workers=1, quiet=True)
    assert c.cache.hits >= 3
    assert (tmp_path / "a" / "models" / "fit.pt").read_bytes() == wa
    assert (tmp_path / "a" / "metrics" / "seg.json").read_text() == ma
    # per case and per class, both metrics
    rep = json.loads(ma)
    assert {(r["case"], r["class"]) for r in rep["per_case"]} == {(f"c{i:02d}", k) for i in range(3) for k in (1, 2)}
    assert all({"dice", "hd95"} <= set(r) for r in rep["per_case"]) and set(rep["per_class"]) == {"1", "2"}
    hist = a.results["fit"]["history"]
    assert [h["epoch"] for h in hist] == [1, 2] and all("val_dice" in h for h in hist)


def test_habitat_masks_per_class_in_image_geometry(cohorts, tmp_path):
    study = compile_spec(SEG.format(**cohorts), tmp_path)
    ctx = run_study(study, out=tmp_path / "o", workers=1, quiet=True)
    table = ctx.results["habitats"]
    assert list(table["case_id"]) == ["c00", "c01", "c02"]
    assert {"mask", "mask.class1", "mask.class2"} <= set(table.columns)
    img = sitk.ReadImage(str(cohorts["test"].parent / "c00_t1.nii.gz"))
    for col in ("mask", "mask.class1", "mask.class2"):
        m = sitk.ReadImage(table.loc[0, col])
        assert m.GetSize() == img.GetSize() and m.GetSpacing() == pytest.approx(img.GetSpacing())
        assert m.GetOrigin() == pytest.approx(img.GetOrigin())
    lab = sitk.GetArrayFromImage(sitk.ReadImage(table.loc[0, "mask"]))
    for k in (1, 2):
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(table.loc[0, f"mask.class{k}"])), (lab == k).astype(np.uint8))


def test_channels_with_different_geometry_are_all_reported(tmp_path):
    bad = write_cohort(tmp_path / "bad", 4, 3, bad_spacing=("c01", "c03"))
    study = compile_spec(SEG.format(train=bad, test=bad).replace("segment habitats = predict_mask(fit, test)\n", "")
                         .replace("cohort test = manifest", "cohort test = manifest").replace("segmentation_metrics(fit, test)",
                                                                                            "segmentation_metrics(fit, held)")
                         + f'cohort held = manifest("{bad}") {{ image: [t1, t2], mask: seg }}\n', tmp_path)
    with pytest.raises(RunError) as e:
        run_study(study, out=tmp_path / "o", workers=1, quiet=True)
    diags = e.value.diagnostics
    assert [d.code for d in diags] == ["E620", "E620"]
    assert "c01" in diags[0].message and "`t2`" in diags[0].message and "c01_t2.nii.gz" in diags[0].message
    assert "c03" in diags[1].message


def test_slice_wise_2d_training_on_volumes(cohorts, tmp_path):
    spec = f'''
study "slices" {{ seed: 5 }}
cohort train = manifest("{cohorts['train']}") {{ image: t1, mask: seg }}
cohort test = manifest("{cohorts['test']}") {{ image: t1, mask: seg }}
network net = unet(dims: 2, in_channels: 1, out_channels: 3) {{ channels: [4, 8], strides: [2], num_res_units: 0 }}
train fit = supervised(net, train) {{ slices: true, epochs: 1, batch: 4, patch: [16, 16], samples: 4, loss: dice }}
validate seg = segmentation_metrics(fit, test)
'''
    ctx = run_study(compile_spec(spec, tmp_path), out=tmp_path / "o", workers=1, quiet=True)
    rep = ctx.results["seg"]
    assert len(rep["per_case"]) == 6 and all(0.0 <= r["dice"] <= 1.0 for r in rep["per_case"])


def test_gradcam_heatmaps_in_image_geometry(tmp_path):
    import csv

    folder = tmp_path / "cls"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        y = i % 2
        arr = rng.normal(0, 1, (40, 40)).astype(np.float32)
        arr[16:24, 16:24] += 3.0 if y else -3.0
        mk = np.zeros((40, 40), np.uint8)
        mk[16:24, 16:24] = 1
        for name, a in (("img", arr), ("msk", mk)):
            im = sitk.GetImageFromArray(a)
            im.SetSpacing((0.7, 0.7))
            im.SetOrigin((1.0, 2.0))
            sitk.WriteImage(im, str(folder / f"k{i}_{name}.nii.gz"))
        rows.append([f"k{i}", f"k{i}_img.nii.gz", f"k{i}_msk.nii.gz", y])
    with open(folder / "m.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["case_id", "image", "mask", "y"])
        w.writerows(rows)
    spec = f'''
study "cam" {{ seed: 1 }}
cohort c = manifest("{folder / 'm.csv'}") {{ mask: mask, outcome: y as binary, dims: 2 }}
network cnn = resnet(dims: 2, in_channels: 1, out_channels: 2) {{ depth: 10 }}
train fit = supervised(cnn, c) {{ loss: cross_entropy, epochs: 2, batch: 3, patch: [32, 32], validate_every: 1 }}
explain cam = gradcam(fit, c) {{ cases: 2, layer: "layer3" }}
'''
    ctx = run_study(compile_spec(spec, tmp_path), out=tmp_path / "o", workers=1, quiet=True)
    out = tmp_path / "o" / "explain" / "cam"
    img = sitk.ReadImage(str(folder / "k0_img.nii.gz"))
    heat = sitk.ReadImage(str(out / "k0_gradcam.nii.gz"))
    assert heat.GetSize() == img.GetSize() and heat.GetSpacing() == pytest.approx(img.GetSpacing())
    assert heat.GetOrigin() == pytest.approx(img.GetOrigin())
    h = sitk.GetArrayFromImage(heat)
    assert h.min() >= 0.0 and h.max() <= 1.0 + 1e-6
    # the 32x32 crop centred on the mask spans rows/columns 3..34: no map outside it, a non-constant map inside
    assert h[:3, :].max() == 0.0 and h[35:, :].max() == 0.0 and h[:, :3].max() == 0.0
    assert h[3:35, 3:35].std() > 0.01
    assert (out / "k0_gradcam.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["case"] for r in ctx.results["cam"]] == ["k0", "k1"]
    hist = ctx.results["fit"]["history"]
    assert all("val_loss" in h for h in hist) and ctx.results["fit"]["best_epoch"] in (1, 2)


def test_habitat_mask_feeds_per_habitat_radiomics(cohorts, tmp_path):
    """A network's per-class output (here the core habitat, label 2) is a mask that `pyradiomics` extracts on."""
    spec = SEG.format(**cohorts).replace(
        "segment habitats = predict_mask(fit, test)",
        "segment core = predict_mask(fit, test) { label: 2 }\n"
        "features core_rad = pyradiomics(test.image, core) { bin_width: 10, classes: [firstorder, shape] }")
    study = compile_spec(spec, tmp_path)
    ctx = run_study(study, out=tmp_path / "o", workers=1, quiet=True)
    feats = ctx.results["core_rad"]
    masks = ctx.results["core"].set_index("case_id")["mask"]
    assert list(feats.index) == ["c00", "c01", "c02"]
    for cid in feats.index:
        m = sitk.GetArrayFromImage(sitk.ReadImage(masks[cid]))
        assert m.sum() > 0
        # shape voxel volume is the habitat's voxel count x the voxel volume (1 x 1 x 1.2 mm)
        assert feats.loc[cid, "t1_original_shape_VoxelVolume"] == pytest.approx(m.sum() * 1.2)
