"""Adding a segmenter is one module: `extra_segmenter.py` declares settings, a per-case function and `run`, and
nothing in the compiler, the executor or the renderer changes. The new operator checks, runs, and renders
into a script whose outputs equal `radlang run`'s to the byte."""

from __future__ import annotations

import pytest
from extra_segmenter import ABOVE_MEAN
from render_helpers import compile_text
from test_equivalence import equivalent

from radlang import registry


@pytest.fixture
def above_mean():
    registry.register(ABOVE_MEAN)
    yield ABOVE_MEAN
    registry._REGISTRY.pop(ABOVE_MEAN.name, None)


def test_a_segmenter_in_one_module_runs_and_renders_byte_identically(tmp_path, above_mean):
    import numpy as np
    import pandas as pd
    import SimpleITK as sitk

    spec = tmp_path / "study.rad"
    study = compile_text("""study "new segmenter" { seed: 5 }
cohort train = phantom(4) { size: [16, 16, 16] }
segment roi = above_mean(train.image) { shift: 5 }
features f = pyradiomics(train.image, roi) { classes: [firstorder(Mean), shape(VoxelVolume)] }
""", spec)
    out = equivalent(study, tmp_path)
    feats = pd.read_csv(pd.io.common.BytesIO(out["features/f.csv"]), index_col="case_id")
    (data,) = (tmp_path / "run" / "data").glob("train-*")          # the phantom's folder, named by its settings
    manifest = pd.read_csv(data / "manifest.csv")
    assert len(feats) == 4
    for case, path in zip(manifest["case_id"], manifest["image"]):
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(data / path)))
        # PyRadiomics measured exactly the voxels the new segmenter selected (1 mm voxels)
        assert feats.loc[case, "original_shape_VoxelVolume"] == np.count_nonzero(arr > arr.mean() + 5)
