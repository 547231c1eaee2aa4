"""`stack`: late fusion. Separate models (a radiomics logistic model, a network model on image patches, ...) each
refit on its own inputs, combined by a meta-model or a stated weighted average.

    model rad_clf = logistic(rad, target: train.outcome)
    model img_clf = cnn(img, target: train.outcome, network: enc)
    model late = stack(rad_clf, img_clf, target: train.outcome) { meta: logistic, cv: 5 }
    model avg  = stack(rad_clf, img_clf, target: train.outcome) { meta: average, weights: [0.3, 0.7] }

With `meta: logistic`, the meta-model (a logistic regression on the branches' class probabilities) is trained only on
out-of-fold predictions: inside each fit, the branches are refit on `cv` inner folds (stratified, a patient's cases
in one fold) and predict the inner fold they did not see; the branches are then refit on the whole training set.
A meta-model fit on in-fold predictions (the branches' predictions on their own training cases) would learn how well
they memorise; it cannot be written (`cv` below 2 is refused, E309). `meta: average` averages the branches'
probabilities with the stated weights and fits nothing on top.

`evaluate(late)` refits everything (each branch's selection, scaling, network, and the meta-model) inside every
training fold. The first section is self-contained (see radlang/registry.py); the estimator class is built on
first use and named `radlang.ops.late_fusion.RadStacker`, so the saved final model (skops) loads it by name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.ops.fitted_recipe import run_recipe
from radlang.ops.models import MODEL_HELPERS, assemble_pipeline
from radlang.ops.survival_models import SURVIVAL_HELPERS
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def stacker_class(_made={}):  # noqa: B006 -- one class per process, so fitted models pickle and load by name
    """The scikit-learn classifier that fits the branches and the meta-model (see the module doc)."""
    if "cls" in _made:
        return _made["cls"]
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin, clone

    class RadStacker(ClassifierMixin, BaseEstimator):
        """estimators: [(name, unfitted pipeline)]; meta: logistic | average; weights: one per branch (average);
        cv: inner folds of the out-of-fold predictions (logistic); fold_inputs: {"patients": {case id: patient id}}."""

        def __init__(self, estimators=None, meta="logistic", weights=None, cv=5, C=1.0, seed=0, fold_inputs=None):
            self.estimators = estimators
            self.meta = meta
            self.weights = weights
            self.cv = cv
            self.C = C
            self.seed = seed
            self.fold_inputs = fold_inputs

        def _stacked(self, models, X):
            """The branches' class probabilities side by side (without the first class: they sum to one)."""
            return np.hstack([np.asarray(m.predict_proba(X))[:, 1:] for m in models])

        def fit(self, X, y):
            from sklearn.linear_model import LogisticRegression
            from sklearn.model_selection import StratifiedGroupKFold

            y = np.asarray(y)
            self.classes_ = np.unique(y)
            if self.meta == "logistic":
                patients = (self.fold_inputs or {}).get("patients") or {}
                groups = np.asarray([patients.get(str(i), str(i)) for i in X.index])
                oof = np.zeros((len(y), len(self.estimators) * (len(self.classes_) - 1)))
                for a, b in StratifiedGroupKFold(int(self.cv), shuffle=True, random_state=int(self.seed)).split(np.zeros(len(y)), y, groups):
                    inner = [clone(est).fit(X.iloc[a], y[a]) for _, est in self.estimators]
                    oof[b] = self._stacked(inner, X.iloc[b])
                self.oof_ = oof
                self.meta_ = LogisticRegression(C=float(self.C), max_iter=1000, random_state=int(self.seed)).fit(oof, y)
            self.estimators_ = [clone(est).fit(X, y) for _, est in self.estimators]
            return self

        def predict_proba(self, X):
            if self.meta == "logistic":
                return self.meta_.predict_proba(self._stacked(self.estimators_, X))
            w = np.asarray(self.weights if self.weights else [1.0] * len(self.estimators_), float)
            P = sum(wi * np.asarray(m.predict_proba(X), float) for wi, m in zip(w, self.estimators_))
            return P / w.sum()

        def predict(self, X):
            return self.classes_[np.argmax(self.predict_proba(X), 1)]

    RadStacker.__module__ = "radlang.ops.late_fusion"
    RadStacker.__qualname__ = "RadStacker"
    _made["cls"] = RadStacker
    return RadStacker


def make_stack(params, seed, fold_inputs=None):
    """The unfitted late-fusion model of one fit. params["branches"]: for each branch model, [name, the recipe of its
    refit graph, the columns it reads, its operator, its split settings, its seed, its own factory or None]; each
    branch is its own pipeline (built like any model's) behind a selection of its columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    ests = []
    for name, graph, columns, op_name, mp, s, factory in params["branches"]:
        pick = ColumnTransformer([("columns", "passthrough", list(columns))], remainder="drop",
                                 verbose_feature_names_out=False).set_output(transform="pandas")
        ests.append((name, Pipeline([("columns", pick), ("pipeline", assemble_pipeline(graph, op_name, mp, s, factory, fold_inputs))])))
    h = params["hyper"]
    return stacker_class()(estimators=ests, meta=h["meta"], weights=h.get("weights"), cv=int(h["cv"]), C=float(h["C"]),
                           seed=seed, fold_inputs=fold_inputs)


# ----------------------------------------------------------------------------------------------
# declaration


class StackSettings(Settings):
    meta: Literal["logistic", "average"] = Field("logistic", description="a logistic meta-model on out-of-fold predictions, "
                                                 "or a weighted average of the branches' probabilities")
    cv: int = Field(5, description="inner folds of the out-of-fold predictions the meta-model is trained on (≥ 2)")
    C: float = Field(1.0, gt=0, description="inverse regularisation strength of the logistic meta-model")
    weights: list[float] | None = Field(None, description="`meta: average`: one weight per branch (default: equal)")

    _m = field_validator("meta", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


PORTS = ("model1", "model2", "model3", "model4")


def _stack_type(ctx) -> RType:
    s = ctx.settings
    tgt = ctx.inputs["target"]
    branches = [ctx.inputs[p] for p in PORTS if p in ctx.inputs]
    if s.meta == "logistic" and s.cv < 2:
        ctx.error("E309", f"`cv: {s.cv}` would train the meta-model on in-fold predictions: the branches' predictions on the "
                  "very cases they were fit on, which reward memorising", setting="cv",
                  hint="use `cv: 5` (out-of-fold predictions from inner folds), or `meta: average` with stated weights")
    if s.meta == "average" and s.weights is not None and (len(s.weights) != len(branches) or any(w < 0 for w in s.weights) or sum(s.weights) <= 0):
        ctx.error("E310", f"`weights` needs {len(branches)} non-negative numbers (one per branch) with a positive sum", setting="weights")
    if s.meta == "logistic" and s.weights is not None:
        ctx.error("E306", "`weights` belong to `meta: average`; a logistic meta-model learns them", setting="weights")
    if tgt.outcome not in ("binary", "multiclass"):
        ctx.error("E244", f"`stack` cannot fit a {tgt.outcome} outcome (`{tgt.detail}`)", port="target")
    for p in PORTS:
        b = ctx.inputs.get(p)
        if b is not None and tgt.cohort and b.cohort and b.cohort != tgt.cohort:
            ctx.error("E311", f"branch `{p}` is fit on cohort `{b.cohort}`, the target is `{tgt.detail}`", port=p,
                      hint="stack models of one cohort")
    image = next((b.patch for b in branches if b.patch is not None), None)      # a network branch's patch (SHAP reads it)
    return RType("Model", cohort=tgt.cohort, outcome=tgt.outcome, patch=image, detail="stacked model")


def _stack_plan(stage, memory, study=None):
    p = stage.params
    names = [stage.inputs[q].stage for q in PORTS if q in stage.inputs]
    lines = []
    if study is not None:
        by = study.by_name()
        lines.append(("info", "branches, each refit on its own inputs: " + ", ".join(f"{n} ({by[n].op})" for n in names)))
    if p["meta"] == "logistic":
        lines.append(("info", (f"meta-model: logistic regression on the branches' out-of-fold probabilities from {p['cv']} inner folds; "
                              f"each fit trains every branch {p['cv'] + 1} times")))
    else:
        w = p.get("weights") or [1.0] * len(names)
        lines.append(("info", "weighted average of the branches' probabilities: " + ", ".join(f"{n} {x:g}" for n, x in zip(names, w))))
    return lines


register(Operator(
    name="stack", kind="model", output="Model", settings=StackSettings,
    inputs=tuple(Port(p, ("Model",), optional=i >= 2, doc="a branch model (`model` stage)") for i, p in enumerate(PORTS))
    + (Port("target", ("Outcome",), doc="the training cohort's outcome"),),
    positional=PORTS, fit="outcome", behaviour="fitted", run=run_recipe, impl=make_stack,
    helpers=(stacker_class,) + MODEL_HELPERS + SURVIVAL_HELPERS,
    infer=_stack_type, plan=_stack_plan, version="1",
    doc="Late fusion: branch models (each refit on its own inputs) combined by a logistic meta-model trained only on "
        "out-of-fold predictions from inner folds, or by a stated weighted average of their probabilities.",
    examples=("model late = stack(a, b, target: train.outcome) { meta: logistic, cv: 5 }",
              "model avg = stack(a, b, target: train.outcome) { meta: average, weights: [0.4, 0.6] }"),
))


def __getattr__(name):
    """`radlang.ops.late_fusion.RadStacker`: the estimator class, built on first use (see stacker_class)."""
    if name == "RadStacker":
        return stacker_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
