"""Predicted masks (<out>/masks/<stage>/) feed later stages: one edited by hand is detected (W672) on the next run
and predicted again from the cached network, so downstream numbers never come from an edited file."""

from __future__ import annotations

import pytest

from radlang.backends.executor import run_study

pytest.importorskip("torch")

SEG = '''
study "tiny" {{ seed: 11 }}
cohort train = manifest("{train}") {{ image: [t1, t2], mask: seg }}
cohort test = manifest("{test}") {{ image: [t1, t2], mask: seg }}
network net = unet(dims: 3, in_channels: 2, out_channels: 3) {{ channels: [4, 8], strides: [2], num_res_units: 0 }}
train fit = supervised(net, train) {{ loss: dice_ce, epochs: 1, batch: 2, patch: [8, 8, 8], samples: 1, validate_every: 0, lr: 0.01 }}
segment habitats = predict_mask(fit, test) {{ label: 1 }}
features f = pyradiomics(test.image, habitats) {{ classes: [shape(VoxelVolume)] }}
'''


def test_an_edited_predicted_mask_is_predicted_again(tmp_path, monkeypatch):
    import numpy as np
    import SimpleITK as sitk

    from tests.deep.conftest import compile_spec, write_cohort

    cohorts = {"train": write_cohort(tmp_path / "train", 4, 1), "test": write_cohort(tmp_path / "test", 2, 2)}
    study = compile_spec(SEG.format(**cohorts), tmp_path)
    out = tmp_path / "out"
    first = run_study(study, out=out, workers=1, quiet=True)
    masks = sorted((out / "masks" / "habitats").glob("*.nii.gz"))
    assert masks
    want = {p: p.read_bytes() for p in masks}
    feats = (out / "features" / "f.csv").read_bytes()
    img = sitk.ReadImage(str(masks[0]))
    edited = sitk.GetImageFromArray(1 - sitk.GetArrayFromImage(img).astype(np.uint8))
    edited.CopyInformation(img)
    sitk.WriteImage(edited, str(masks[0]), True)

    import radlang.ops.training as tr

    def boom(*args, **kw):
        raise AssertionError("trained again")

    monkeypatch.setattr(tr, "train_network", boom)              # the network itself comes from the cache
    again = run_study(study, out=out, workers=1, quiet=True)
    notes = [w for w in again.warnings if w.startswith("W672")]
    assert len(notes) == 1 and "`habitats`" in notes[0]
    assert {p: p.read_bytes() for p in masks} == want
    assert (out / "features" / "f.csv").read_bytes() == feats
    assert again.results["f"].equals(first.results["f"])
