"""The JSON artefact of a `cox` / `survival_mlp` final model (survival_models.survival_artefact): read back as
`SavedSurvival`, it gives exactly the risk scores and survival probabilities of the fitted pipeline it was saved
from, for every plain step it accepts (imputation of missing values, standard / robust / min-max scaling); any other
pipeline is left to skops; the same model gives the same bytes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from radlang.ops.fold_engine import model_artefact
from radlang.ops.survival_models import SavedSurvival, survival_artefact, survival_estimator_class, survival_target
from radlang.predict import load_model


def _data(seed=0, n=80):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 5.0, 0.2, 3.0] + [0.0, 10.0, -1.0, 2.0]
    t = np.round(rng.exponential(10 * np.exp(-0.8 * X[:, 0])), 1) + 0.1
    e = rng.random(n) < 0.7
    X[rng.random(X.shape) < 0.08] = np.nan            # missing values: the imputer's fill is part of the model
    return pd.DataFrame(X, columns=["a", "b", "c", "d"]), survival_target(t, e)


def _pipe(scaler, kind="cox"):
    model = survival_estimator_class()(kind=kind, alpha=0.1, l1_ratio=0.5, hidden=(4,), epochs=20, lr=0.01, seed=3)
    return Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True))] + ([("scale", scaler)] if scaler else [])
                    + [("model", model)]).set_output(transform="pandas")


@pytest.mark.parametrize("kind, scaler", [("cox", StandardScaler()), ("cox", RobustScaler()), ("cox", MinMaxScaler()),
                                          ("cox", StandardScaler(with_mean=False)), ("cox", None), ("survival_mlp", StandardScaler())])
def test_saved_survival_equals_the_pipeline(kind, scaler):
    X, y = _data()
    pipe = _pipe(scaler, kind).fit(X, y)
    saved = load_model(model_artefact(pipe, survival_artefact), None)
    assert isinstance(saved, SavedSurvival)
    Xn, _ = _data(seed=1, n=30)                        # new cases, with their own missing values
    assert np.array_equal(saved.predict(Xn), pipe.predict(Xn))
    times = [1.0, 5.0, 12.5, 40.0]
    assert np.array_equal(saved.survival_at(Xn, times), pipe[-1].survival_at(pipe[:-1].transform(Xn), times))
    # columns by name: the same cases with the columns in another order give the same risks
    assert np.array_equal(saved.predict(Xn[["d", "c", "b", "a"]]), pipe.predict(Xn))


def test_same_model_same_bytes_and_numbers_only():
    X, y = _data()
    a, b = (model_artefact(_pipe(StandardScaler()).fit(X, y), survival_artefact) for _ in range(2))
    assert a == b
    state = json.loads(a)
    assert state["format"] == "radlang-survival/1" and [op for op, _ in state["steps"]] == ["fill", "subtract", "divide"]
    assert state["columns"] == ["a", "b", "c", "d"] and len(state["coef"]) == 4 and state["weights"] is None


def test_other_pipelines_are_left_to_skops():
    X, y = _data()
    with_selector = Pipeline([("impute", SimpleImputer(keep_empty_features=True)), ("keep", VarianceThreshold()),
                              ("model", survival_estimator_class()(kind="cox", alpha=0.1))]).set_output(transform="pandas").fit(X, y)
    assert survival_artefact(with_selector) is None
    data = model_artefact(with_selector, survival_artefact)
    assert data[:2] == b"PK"                           # a skops archive
    assert np.array_equal(load_model(data, None).predict(X), with_selector.predict(X))
    assert survival_artefact(Pipeline([("impute", SimpleImputer(add_indicator=True)), ("model", survival_estimator_class()(kind="cox", alpha=0.1))])
                             .set_output(transform="pandas").fit(X, y)) is None        # the indicator columns are not plain arithmetic
