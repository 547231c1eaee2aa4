"""Feature selection. Every selector is a scikit-learn transformer (fit / transform / get_support),
so the `evaluate` stage refits it inside each training fold; run on its own, a `select` stage fits
nothing (estimator mode).

    select keep   = variance(rad) { min: 0.0 }                         # data statistics
    select nored  = correlation(keep) { max: 0.9 }                    # data statistics
    select robust = icc(nored) { min: 0.75, form: "ICC(1,1)", perturb: [erode(1), dilate(1), noise(10HU)] }
    select sig    = univariate(robust, target: train.outcome) { fdr: 0.05 }
    select las    = lasso(robust, target: train.outcome)               # L1 model with internal CV
    select mi     = kbest(robust, target: train.outcome) { k: 10 }     # mutual information

The functions below are self-contained (the renderer inlines them): `make_<op>(params, seed, raters)`
returns an unfitted transformer; `select_support` holds every decision about which features stay.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.ops.fitted_recipe import run_recipe
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.units import Intensity
from radlang.values import Settings, Sym, Variant, variants

# ----------------------------------------------------------------------------------------------
# self-contained implementation (inlined by the renderer)


def icc_values(stack, form):
    """ICC of every feature at once. stack: array (n targets, k raters, p features). form: a pingouin
    type ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k") or its label ("ICC(1,1)", "ICC(A,1)", "ICC(C,1)",
    "ICC(1,k)", "ICC(A,k)", "ICC(C,k)"). The same two-way ANOVA formulas as pingouin.intraclass_corr."""
    import numpy as np

    labels = {"ICC(1,1)": "ICC1", "ICC(A,1)": "ICC2", "ICC(C,1)": "ICC3", "ICC(1,k)": "ICC1k", "ICC(A,k)": "ICC2k", "ICC(C,k)": "ICC3k"}
    form = labels.get(form, form)
    x = np.asarray(stack, dtype=float)
    n, k = x.shape[0], x.shape[1]
    grand = x.mean(axis=(0, 1))
    ss_t = k * ((x.mean(axis=1) - grand) ** 2).sum(axis=0)
    ss_r = n * ((x.mean(axis=0) - grand) ** 2).sum(axis=0)
    ss_tot = ((x - grand) ** 2).sum(axis=(0, 1))
    ss_e = ss_tot - ss_t - ss_r
    msb = ss_t / (n - 1)
    msj = ss_r / (k - 1)
    mse = ss_e / ((n - 1) * (k - 1))
    msw = (ss_r + ss_e) / (n * (k - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "ICC1": (msb - msw) / (msb + (k - 1) * msw),
            "ICC2": (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n),
            "ICC3": (msb - mse) / (msb + (k - 1) * mse),
            "ICC1k": (msb - msw) / msb,
            "ICC2k": (msb - mse) / (msb + (msj - mse) / n),
            "ICC3k": (msb - mse) / msb,
        }[form]
    return np.where(np.isfinite(out), out, np.nan)


def icc_values_pingouin(stack, form):
    """The same as icc_values, one pingouin.intraclass_corr call per feature (slow; the reference)."""
    import numpy as np
    import pandas as pd
    import pingouin as pg

    names = {"ICC1": "ICC(1,1)", "ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)", "ICC1k": "ICC(1,k)", "ICC2k": "ICC(A,k)", "ICC3k": "ICC(C,k)"}
    form = names.get(form, form)
    x = np.asarray(stack, dtype=float)
    n, k, p = x.shape
    out = np.full(p, np.nan)
    targets = np.repeat(np.arange(n), k)
    raters = np.tile(np.arange(k), n)
    for j in range(p):
        df = pd.DataFrame({"t": targets, "r": raters, "v": x[:, :, j].reshape(-1)})
        if np.ptp(df["v"].to_numpy()) == 0:
            continue
        res = pg.intraclass_corr(df, targets="t", raters="r", ratings="v").set_index("Type")
        short = {v: k for k, v in names.items()}
        out[j] = float(res.loc[form if form in res.index else short[form], "ICC"])
    return out


def select_support(kind, params, seed, X, y=None, index=None, columns=None, raters=None, groups=None, outcome="binary"):
    """Which columns of X (n x p, float) stay: a boolean mask. Every selection decision lives here.
    index: the case ids of X's rows; columns: X's column names; raters: {name: DataFrame case_id x feature}
    of re-extracted features for `icc`; groups: each row's patient (inner CV keeps a patient in one inner fold);
    outcome: the outcome kind (binary, multiclass, continuous)."""
    import numpy as np

    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    keep_min = int(params.get("min_features") or 0)

    def top(scores, m):
        # the m best columns by score (ties: the first column wins) when a rule keeps fewer than m
        order = np.lexsort((np.arange(p), -np.nan_to_num(scores, nan=-np.inf)))
        mask = np.zeros(p, bool)
        mask[order[:m]] = True
        return mask

    if kind == "variance":
        var = X.var(axis=0)
        return var > float(params["min"])
    if kind == "correlation":
        if params.get("method", "pearson") == "spearman":
            from scipy.stats import rankdata

            Z = np.apply_along_axis(rankdata, 0, X)
        else:
            Z = X
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.corrcoef(Z, rowvar=False) if p > 1 else np.ones((1, 1))
        r = np.abs(np.nan_to_num(np.atleast_2d(r), nan=0.0))
        mask = np.zeros(p, bool)
        kept = []
        for j in range(p):  # greedy in column order: keep a feature unless it is redundant with one already kept
            if not kept or r[j, kept].max() <= float(params["max"]):
                kept.append(j)
                mask[j] = True
        return mask
    if kind == "icc":
        names = list(columns)
        ids = [str(i) for i in index]
        mats = [X]
        for name in sorted(raters):
            t = raters[name]
            missing = [c for c in ids if c not in t.index]
            if missing:
                raise ValueError(f"rater `{name}` lacks cases: {', '.join(missing[:5])}")
            mats.append(t.reindex(index=ids, columns=names).to_numpy(dtype=float))
        stack = np.stack(mats, axis=1)
        fn = icc_values_pingouin if params.get("engine") == "pingouin" else icc_values
        icc = fn(stack, params["form"])
        mask = np.nan_to_num(icc, nan=-np.inf) >= float(params["min"])
        return mask if mask.sum() >= keep_min else top(icc, keep_min)
    y = np.asarray(y)
    task = outcome
    if kind == "univariate":
        from scipy import stats

        test = params.get("test", "auto")
        classes = np.unique(y)
        groups = [X[y == c] for c in classes]
        if task == "continuous":
            from sklearn.feature_selection import f_regression

            pvals = f_regression(X, y)[1]
        elif test in ("auto", "mann_whitney", "kruskal"):
            if len(classes) == 2:
                pvals = stats.mannwhitneyu(groups[0], groups[1], axis=0, alternative="two-sided").pvalue
            else:
                pvals = stats.kruskal(*groups, axis=0).pvalue
        elif len(classes) == 2:
            pvals = stats.ttest_ind(groups[0], groups[1], axis=0, equal_var=False).pvalue
        else:
            pvals = stats.f_oneway(*groups, axis=0).pvalue
        pvals = np.where(np.isfinite(pvals), pvals, 1.0)
        if params.get("correction", "bh") == "none":
            q = pvals
        else:
            q = stats.false_discovery_control(pvals, method=params.get("correction", "bh"))
        mask = q <= float(params["fdr"])
        return mask if mask.sum() >= keep_min else top(-pvals, keep_min)
    if kind == "lasso":
        from sklearn.preprocessing import StandardScaler

        Z = StandardScaler().fit_transform(X)
        if task == "continuous":
            from sklearn.linear_model import LassoCV
            from sklearn.model_selection import KFold

            splitter = KFold(int(params["cv"]), shuffle=True, random_state=seed)
            if groups is not None and len(set(groups)) < len(groups):   # several cases per patient: keep each patient in one inner fold
                from sklearn.model_selection import GroupKFold

                splitter = list(GroupKFold(int(params["cv"]), shuffle=True, random_state=seed).split(Z, y, groups))
            m = LassoCV(alphas=int(params["n_alphas"]), cv=splitter, random_state=seed, max_iter=5000).fit(Z, y)
            coef = np.abs(m.coef_)
        else:
            from sklearn.linear_model import LogisticRegressionCV
            from sklearn.model_selection import StratifiedKFold

            solver = "liblinear" if len(np.unique(y)) == 2 else "saga"
            splitter = StratifiedKFold(int(params["cv"]), shuffle=True, random_state=seed)
            if groups is not None and len(set(groups)) < len(groups):   # several cases per patient: keep each patient in one inner fold
                from sklearn.model_selection import StratifiedGroupKFold

                splitter = list(StratifiedGroupKFold(int(params["cv"]), shuffle=True, random_state=seed).split(Z, y, groups))
            m = LogisticRegressionCV(Cs=int(params["n_alphas"]), l1_ratios=(1.0,), solver=solver, scoring=params.get("scoring", "neg_log_loss"),
                                     cv=splitter,
                                     max_iter=2000, tol=1e-3, random_state=seed, use_legacy_attributes=False).fit(Z, y)
            coef = np.abs(np.atleast_2d(m.coef_)).max(axis=0)
        mask = coef > 1e-10
        if params.get("max_features"):
            mask &= top(coef, int(params["max_features"]))
        return mask if mask.sum() >= keep_min else top(coef, keep_min)
    if kind == "kbest":
        if task == "continuous":
            from sklearn.feature_selection import mutual_info_regression as mi
        else:
            from sklearn.feature_selection import mutual_info_classif as mi
        scores = mi(X, y, random_state=seed)
        return top(scores, min(int(params["k"]), p))
    raise ValueError(f"unknown selector {kind!r}")


def selector_class(_made={}):  # noqa: B006 -- one class per process, so fitted selectors pickle and load by name
    """The scikit-learn selector class (fit / transform / get_support) that calls select_support. It is built on
    first use (scikit-learn is imported then, not when radlang checks a spec) and named `radlang.ops.select.RadSelector`
    (this module resolves that name to it), so a saved model (skops) loads it by name."""
    if "cls" in _made:
        return _made["cls"]
    import numpy as np
    from sklearn.base import BaseEstimator
    from sklearn.feature_selection import SelectorMixin
    from sklearn.utils.validation import validate_data

    class RadSelector(SelectorMixin, BaseEstimator):
        """fold_inputs: {"outcome": the outcome kind, "patients": {case id: patient id}, "raters": {name: table}}
        (all optional); the patients of the training rows become the inner-CV groups when a patient has several cases."""

        def __init__(self, kind="variance", params=None, seed=0, fold_inputs=None):
            self.kind = kind
            self.params = params
            self.seed = seed
            self.fold_inputs = fold_inputs

        def fit(self, X, y=None):
            index = [str(i) for i in X.index] if hasattr(X, "index") else None
            Xa = validate_data(self, X, reset=True, ensure_all_finite="allow-nan", dtype=float)
            cols = list(getattr(self, "feature_names_in_", [f"x{j}" for j in range(Xa.shape[1])]))
            info = self.fold_inputs or {}
            patients = info.get("patients") or {}
            groups = [patients.get(i, i) for i in index] if index is not None and patients else None
            if groups is not None and len(set(groups)) == len(groups):
                groups = None
            self.support_ = np.asarray(select_support(self.kind, self.params, self.seed, Xa, y, index, cols, info.get("raters"), groups,
                                                      info.get("outcome", "binary")), bool)
            return self

        def _get_support_mask(self):
            return self.support_

    RadSelector.__module__ = "radlang.ops.select"
    RadSelector.__qualname__ = "RadSelector"
    _made["cls"] = RadSelector
    return RadSelector


def make_selector(kind, params, seed, fold_inputs):
    """An unfitted selector for one fold (see selector_class)."""
    return selector_class()(kind=kind, params=params, seed=seed, fold_inputs=fold_inputs)


def make_variance(params, seed, fold_inputs):
    return make_selector("variance", params, seed, fold_inputs)


def make_correlation(params, seed, fold_inputs):
    return make_selector("correlation", params, seed, fold_inputs)


def make_icc(params, seed, fold_inputs):
    return make_selector("icc", params, seed, fold_inputs)


def make_univariate(params, seed, fold_inputs):
    return make_selector("univariate", params, seed, fold_inputs)


def make_lasso(params, seed, fold_inputs):
    return make_selector("lasso", params, seed, fold_inputs)


def make_kbest(params, seed, fold_inputs):
    return make_selector("kbest", params, seed, fold_inputs)


# ----------------------------------------------------------------------------------------------
# declarations

FEATURES = Port("input", ("Features",), doc="a feature table (a `features` or `select` stage)")
TARGET = Port("target", ("Outcome",), doc="the training cohort's outcome, e.g. `train.outcome`")


def _sym(v):
    return str(v) if isinstance(v, Sym) else v


def _features_out(ctx, supervised: bool, tasks=("binary", "multiclass", "continuous")):
    src = ctx.inputs["input"]
    tgt = ctx.inputs.get("target")
    if supervised and tgt is not None:
        if tgt.outcome not in tasks:
            ctx.error("E241", f"`{ctx.stmt.op.name}` selects on a {', '.join(tasks)} outcome, but `{tgt.detail}` is {tgt.outcome}",
                      port="target", hint="use an unsupervised selector (variance, correlation, icc) before a survival model")
        ctx.mixed_cohorts(src, tgt)
    return RType("Features", cohort=src.cohort, outcome=(tgt.outcome if tgt is not None else src.outcome), detail=f"{ctx.stmt.op.name} selection")


class VarianceSettings(Settings):
    min: float = Field(0.0, ge=0, description="keep features whose training-fold variance is above this")


class CorrelationSettings(Settings):
    max: float = Field(0.9, gt=0, le=1, description="drop a feature whose |r| with an already kept one (column order) is above this")
    method: Literal["pearson", "spearman"] = "pearson"

    _m = field_validator("method", mode="before")(lambda cls, v: _sym(v))


class Erode(Variant):
    call_name = "erode"
    positional = ("radius",)
    radius: int = Field(1, ge=1, description="voxels")


class Dilate(Variant):
    call_name = "dilate"
    positional = ("radius",)
    radius: int = Field(1, ge=1, description="voxels")


class Noise(Variant):
    call_name = "noise"
    positional = ("sigma",)
    sigma: Intensity = Field(gt=0, description="Gaussian noise SD in image intensity units (e.g. 10HU)")


Perturbation = Erode | Dilate | Noise


class IccSettings(Settings):
    min: float = Field(0.75, ge=-1, le=1, description="keep features whose ICC is at or above this")
    form: Literal["ICC(1,1)", "ICC(A,1)", "ICC(C,1)", "ICC(1,k)", "ICC(A,k)", "ICC(C,k)",
                  "ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k"] = Field("ICC(1,1)", description="pingouin's ICC type")
    perturb: list[Perturbation] = Field(default_factory=list, description="erode(r), dilate(r), noise(sd): each re-extracts every case once")
    engine: Literal["numpy", "pingouin"] = Field("numpy", description="numpy: pingouin's formulas vectorised over features; pingouin: one call per feature")
    min_features: int = Field(1, ge=0, description="if fewer pass, keep this many with the highest ICC")

    _p = field_validator("perturb", mode="before")(lambda cls, v: [variants(Erode, Dilate, Noise).func(x) for x in (v if isinstance(v, list) else [v])])
    _e = field_validator("engine", mode="before")(lambda cls, v: _sym(v))


class UnivariateSettings(Settings):
    test: Literal["auto", "mann_whitney", "kruskal", "t_test", "anova"] = Field("auto", description="auto: Mann-Whitney (2 classes) / Kruskal-Wallis; F test for continuous outcomes")
    fdr: float = Field(0.05, gt=0, le=1, description="keep features whose FDR-adjusted p-value is at or below this")
    correction: Literal["bh", "by", "none"] = Field("bh", description="Benjamini-Hochberg, Benjamini-Yekutieli, or none")
    min_features: int = Field(1, ge=0, description="if fewer pass, keep this many with the smallest p-values")

    _s = field_validator("test", "correction", mode="before")(lambda cls, v: _sym(v))


class LassoSettings(Settings):
    cv: int = Field(5, ge=2, description="internal CV folds that choose the L1 penalty")
    n_alphas: int = Field(10, ge=2, description="penalties tried along the path")
    scoring: Literal["neg_log_loss", "roc_auc", "accuracy"] = Field("neg_log_loss", description="what the internal CV maximises to choose the penalty")
    max_features: int | None = Field(None, ge=1, description="keep at most this many (largest |coef|)")
    min_features: int = Field(1, ge=0, description="if the penalty zeroes everything, keep this many (largest |coef|)")

    _s = field_validator("scoring", mode="before")(lambda cls, v: _sym(v))


class KBestSettings(Settings):
    k: int = Field(10, ge=1, description="features with the highest mutual information with the outcome")


def _icc_infer(ctx):
    s = ctx.settings
    src = ctx.inputs["input"]
    if not s.perturb and "retest" not in ctx.inputs:
        ctx.error("E305", "`icc` needs perturbations (`perturb: [erode(1), dilate(1), noise(10HU)]`) or a `retest` cohort",
                  hint="add `perturb: [erode(1), dilate(1)]`")
    if s.perturb and src.detail == "tabular":
        ctx.error("E243", "`icc` perturbations re-extract features from images, but the input is a tabular feature table", setting="perturb",
                  hint="give a `retest` cohort instead, or use image features")
    return _features_out(ctx, False)


def _register(name, settings, impl, fit, supervised, doc, infer=None, extra_ports=(), examples=(), raters=False, inner_cv=None):
    ports = (FEATURES,) + ((TARGET,) if supervised else ()) + tuple(extra_ports)
    register(Operator(
        name=name, kind="select", output="Features", settings=settings, inputs=ports,
        positional=("input", "target") if supervised else ("input",), fit=fit, behaviour="fitted", run=run_recipe,
        impl=impl, helpers=(make_selector, selector_class, select_support, icc_values, icc_values_pingouin),
        infer=infer or (lambda ctx: _features_out(ctx, supervised)), doc=doc, examples=examples, raters=raters, inner_cv=inner_cv,
    ))


_register("variance", VarianceSettings, make_variance, "data", False,
          "Drop features whose variance (on the training fold) is at or below `min`.",
          examples=("select keep = variance(rad) { min: 0.0 }",))
_register("correlation", CorrelationSettings, make_correlation, "data", False,
          "Correlation redundancy: walking the columns in order, drop each feature whose |r| with an already kept one exceeds `max`.",
          examples=("select nored = correlation(keep) { max: 0.9 }",))
_register("icc", IccSettings, make_icc, "data", False,
          "Robustness: keep features whose ICC (pingouin's forms) across the original extraction, each perturbation "
          "(mask erosion, dilation, intensity noise) and an optional test-retest cohort is at least `min`; computed on training cases only.",
          infer=_icc_infer, raters=True,
          extra_ports=(Port("retest", ("Cohort",), optional=True, doc="a test-retest cohort: the same case ids, re-imaged"),),
          examples=("select robust = icc(rad) { min: 0.75, perturb: [erode(1), dilate(1), noise(10HU)] }",))
_register("univariate", UnivariateSettings, make_univariate, "outcome", True,
          "Univariate tests (Mann-Whitney / Kruskal-Wallis / t / ANOVA; F for continuous outcomes) with FDR correction.",
          examples=("select sig = univariate(robust, target: train.outcome) { fdr: 0.05 }",))
_register("lasso", LassoSettings, make_lasso, "outcome", True,
          "LASSO: an L1-penalised model (logistic, or linear for continuous outcomes) with internal CV on standardised "
          "features; keeps the features with non-zero coefficients.",
          infer=lambda ctx: _features_out(ctx, True, ("binary", "multiclass", "continuous")), inner_cv="cv",
          examples=("select las = lasso(robust, target: train.outcome) { cv: 5, max_features: 10 }",))
_register("kbest", KBestSettings, make_kbest, "outcome", True,
          "The k features with the highest mutual information with the outcome.",
          examples=("select mi = kbest(robust, target: train.outcome) { k: 10 }",))


def __getattr__(name):
    """`radlang.ops.select.RadSelector`: the selector class, built on first use (see selector_class)."""
    if name == "RadSelector":
        return selector_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
