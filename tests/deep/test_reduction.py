"""2D slices of 3D volumes with a stated reduction (`patches { dims: 2, slices: center | max_area | mip }`), and image
branches fused by a join (stacked as channels of one patch).

- a volume constant along z reduces to its slice, whatever the reduction;
- `max_area` picks the ROI's largest cross-section, `center` the middle of its z-extent, `mip` the voxel-wise maximum
  over that extent (checked against NumPy on a planted volume);
- a network model reads two joined 2D branches (a middle slice and a maximum intensity projection) as two channels:
  the model's input array is exactly the two patch tables side by side, and the fit is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from radlang.ops.image_patches import reduce_to_slice
from radlang.ops.net_models import split_columns


def _planted(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(2, 9, 6, 7)).astype(np.float32)
    label = np.zeros((1, 9, 6, 7), np.uint8)
    label[0, 2, 1:3, 1:3] = 1          # 4 voxels
    label[0, 3, 1:5, 1:5] = 1          # 16 voxels: the largest cross-section
    label[0, 6, 2:4, 2:4] = 1          # 4 voxels; the ROI's z-extent is 2..6, its middle 4
    return image, label


@pytest.mark.parametrize("how", ["center", "max_area", "mip"])
def test_a_volume_constant_along_z_reduces_to_its_slice(how):
    image, label = _planted()
    flat = np.repeat(image[:, :1], 9, axis=1)
    got, _ = reduce_to_slice(flat, label, how)
    assert np.array_equal(got, flat[:, 0])


def test_each_reduction_picks_what_it_states():
    image, label = _planted()
    assert np.array_equal(reduce_to_slice(image, label, "center")[0], image[:, 4])
    assert np.array_equal(reduce_to_slice(image, label, "max_area")[0], image[:, 3])
    mip, mask = reduce_to_slice(image, label, "mip")
    assert np.array_equal(mip, image[:, 2:7].max(axis=1))
    assert np.array_equal(mask, label[:, 2:7].max(axis=1))
    assert np.array_equal(reduce_to_slice(image, None, "mip")[0], image.max(axis=1))   # no ROI: the whole volume
    assert np.array_equal(reduce_to_slice(image, None, "max_area")[0], image[:, 4])    # no ROI: the middle slice


SPEC = '''
study "two slices" {{ seed: 3 }}
cohort train = manifest("{m}") {{ image: t1, mask: seg, outcome: label as binary }}
features mid = patches(train) {{ dims: 2, patch: [8, 8], slices: center }}
features proj = patches(train) {{ dims: 2, patch: [8, 8], slices: mip }}
features both = join(mid, proj) {{ prefix: true }}
network enc = segresnet(dims: 2, in_channels: 2, out_channels: 2) {{ init_filters: 4, blocks_down: [1, 1], blocks_up: [1], norm: batch }}
model m = cnn(both, target: train.outcome, network: enc) {{ epochs: 1, batch: 2, hidden: 4, validation: 0 }}
validate v = evaluate(m) {{ cv: kfold(2), bootstrap: 0, metrics: [auc] }}
'''


def test_joined_slices_are_the_channels_of_one_patch(cohorts, tmp_path):
    from radlang.backends.executor import run_study
    from tests.deep.conftest import compile_spec

    study = compile_spec(SPEC.format(m=cohorts["train"]), tmp_path)
    both = study.by_name()["both"].type
    assert (both.channels, both.patch, both.dims) == (2, (8, 8), 2)
    ctx = run_study(study, out=tmp_path / "o", workers=1, quiet=True)
    mid, proj, table = ctx.results["mid"], ctx.results["proj"], ctx.results["both"]
    cols, shape, tab = split_columns(list(table.columns))
    assert shape == [2, 8, 8] and tab == []
    x = table[cols].to_numpy().reshape((len(table), 2, 8, 8))
    assert np.array_equal(x[:, 0], mid.to_numpy().reshape(-1, 8, 8)) and np.array_equal(x[:, 1], proj.to_numpy().reshape(-1, 8, 8))
    assert not np.array_equal(x[:, 0], x[:, 1])
    again = run_study(study, out=tmp_path / "o2", workers=1, quiet=True)
    assert (tmp_path / "o" / "predictions" / "v.csv").read_bytes() == (tmp_path / "o2" / "predictions" / "v.csv").read_bytes()
    assert again.results["v"]["metrics"]["cross_validation"]["n_predictions"] == 6
