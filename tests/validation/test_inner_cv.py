"""A lasso whose inner CV cannot be split inside the training folds: named by stage and setting, with the
numbers and the largest value that works, before any fold runs (E652); `radlang check` finds it from the
cohort's size where that is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _validation_util import run_error_codes, run_spec, write_table

SRC = """
study "inner cv" { seed: 3 }
cohort c = table("t.csv") { id: case, outcome: y as binary }
features f = tabular(c)
select sig = lasso(f, target: c.outcome) { cv: 5 }
model clf = logistic(sig, target: c.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(2), threshold_cv: 0 }
"""


def _table(tmp_path, n0=8, n1=8):
    rng = np.random.default_rng(0)
    write_table(tmp_path / "t.csv", rng.normal(size=(n0 + n1, 4)), [0] * n0 + [1] * n1)


def test_lasso_cv_larger_than_a_training_fold_names_the_setting_and_the_numbers(tmp_path):
    _table(tmp_path)
    [d] = run_error_codes(SRC, tmp_path / "s.rad", tmp_path / "out")
    assert d.code == "E652"
    # 16 cases, 8 per class, two stratified folds: each training fold holds 4 of each class
    assert d.message.startswith("`sig.cv` is 5, but fold 1 of repeat 1 of `v` trains `sig` on cohort `c` with only 4 of class `0` "
                                "and 4 of class `1`")
    assert "scikit-learn" not in d.message and "n_splits" not in d.message and "`clf`" not in d.message
    assert d.hint.startswith("set `cv: 4` on `sig`")
    assert d.span is not None and d.span.line == 5                       # the lasso statement


def _suggested(d) -> int:
    return int(d.hint.split("`cv: ")[1].split("`")[0])


@pytest.mark.parametrize("threshold_cv", [0, 3])
def test_the_suggested_value_is_the_largest_that_runs(tmp_path, threshold_cv):
    """The inner folds that choose the threshold (threshold_cv: 3, the default) refit `sig` on part of each training fold."""
    _table(tmp_path)
    src = SRC.replace("threshold_cv: 0", f"threshold_cv: {threshold_cv}")
    [d] = run_error_codes(src, tmp_path / "s.rad", tmp_path / "o1")
    best = _suggested(d)
    assert best == (4 if threshold_cv == 0 else 3)
    if threshold_cv:
        assert "choosing the threshold (`threshold_cv`) in fold" in d.message
    ctx = run_spec(src.replace("cv: 5", f"cv: {best}"), tmp_path / "s.rad", tmp_path / "o2")
    assert "auc" in json.dumps(ctx.results["v"]["metrics"])
    [d2] = run_error_codes(src.replace("cv: 5", f"cv: {best + 1}"), tmp_path / "s.rad", tmp_path / "o3")
    assert d2.code == "E652" and _suggested(d2) == best


def test_the_final_model_before_an_external_cohort_is_checked_too(tmp_path):
    _table(tmp_path, 3, 3)
    rng = np.random.default_rng(1)
    write_table(tmp_path / "e.csv", rng.normal(size=(6, 4)), [0, 1] * 3, prefix="e")
    src = SRC.replace("stratified_kfold(2)", "none, external: e").replace(
        'features f = tabular(c)', 'cohort e = table("e.csv") { id: case, outcome: y as binary }\nfeatures f = tabular(c)')
    [d] = run_error_codes(src, tmp_path / "s.rad", tmp_path / "out")
    assert d.code == "E652" and "the final model (all cases) of `v`" in d.message and "only 3 of class `0` and 3 of class `1`" in d.message
    assert d.hint.startswith("set `cv: 3` on `sig`")
