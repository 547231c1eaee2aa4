"""Image cohorts end to end (phantom -> mask -> PyRadiomics -> ICC under erosion/dilation -> logistic ->
CV + external site), and the image-content check: an external cohort holding the training images is an error."""

from __future__ import annotations

import pytest
from _validation_util import metrics, run_error_codes, run_spec

pytest.importorskip("radiomics")

BASE = """
study "images" {{ seed: 4 }}
cohort train = phantom(16) {{ size: [20, 20, 20], effect: 2.0, seed: 11 }}
cohort ext = phantom(8) {{ size: [20, 20, 20], effect: 2.0, {ext} }}
features rad = pyradiomics(train.image, train.mask) {{ bin_width: 25, classes: [firstorder] }}
select robust = icc(rad) {{ min: 0.8, perturb: [erode(1), dilate(1)] }}
model clf = logistic(robust, target: train.outcome)
validate v = evaluate(clf) {{ cv: stratified_kfold(3), external: ext, bootstrap: 100 }}
"""


@pytest.mark.slow
def test_phantom_icc_pipeline_and_external(tmp_path):
    run_spec(BASE.format(ext="seed: 12, site_shift: 20HU"), tmp_path / "a.rad", tmp_path / "a")
    m = metrics(tmp_path / "a")
    sel = m["selection"]["robust"]
    assert 1 <= min(sel["per_fold_count"]) and max(sel["per_fold_count"]) <= m["n_features"]
    assert m["external"]["n_predictions"] == 8 and m["cross_validation"]["n_predictions"] == 16
    assert m["external"]["auc"]["estimate"] > 0.75, m["external"]["auc"]   # effect 2.0: the lesion texture separates the classes


@pytest.mark.slow
def test_external_with_the_training_images_is_an_error(tmp_path):
    # same generator seed, other case ids: the same image files' content under other names
    diags = run_error_codes(BASE.format(ext='seed: 11, prefix: "copy"').replace("phantom(8)", "phantom(16)"), tmp_path / "b.rad", tmp_path / "b")
    codes = [d.code for d in diags]
    assert codes == ["E645"], codes
    assert "`train`" in diags[0].message and "`ext`" in diags[0].message and "16 case(s)" in diags[0].message
