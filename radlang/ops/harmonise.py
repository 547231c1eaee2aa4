"""ComBat harmonisation of feature tables across sites or scanners (combatlearn), refit inside every training fold.

    harmonise h = combat(rad) { batch: site, covariates: [age], unseen: refuse }
    select sig  = lasso(h, target: train.outcome)

A `combat` stage is fit on data statistics: `evaluate` refits it inside each training fold (the refit graph,
radlang/passes/fit_boundaries.py), like a selector, so the held-out fold's features never enter its location and
scale estimates. The batch is a cohort column: its site column (`batch: site`, the default) or a clinical column
(`batch: scanner`). Covariates (clinical columns) keep their effect on the features; the outcome is never one: the
held-out cases' outcomes are unknown when their features are harmonised, so preserving it would need the test labels.

A held-out case from a site the training fold has not seen (leave-one-site-out, an external cohort) needs a stated
policy: `unseen: refuse` (the default: a diagnostic that names the site) or `unseen: transductive`: that site's
location and scale are estimated from its own held-out cases' features (never their outcomes), on the training
fold's standardisation. A transductive stage is recorded in the validation's refit graph, in manifest.json and by
`radlang plan`.

The fit is combatlearn's (its Fortin/neuroCombat engine: the design of batch and covariates, least squares, the
standardisation); its empirical-Bayes step is replaced by Johnson et al. (2007)'s as sva's ComBat and neuroCombat
compute it: each batch's priors are pooled across the features. combatlearn 2.3 pools them across batches,
feature by feature, which neuroCombat does not (tests/validation/test_combat.py checks the result against
neuroCombat). The functions below are self-contained (the renderer inlines them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.ops.fitted_recipe import run_recipe
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym

# ----------------------------------------------------------------------------------------------
# self-contained implementation (inlined by the renderer)


def combat_eb(gamma_hat, delta_hat, counts, empirical_bayes=True, mean_only=False, conv=1e-4, max_iter=1000):
    """Each batch's location and scale (gamma*, delta*) from its least-squares estimates (rows: batches, columns:
    features; counts: cases per batch). Parametric empirical Bayes as Johnson et al. (2007), sva's ComBat and neuroCombat
    compute it: a batch's normal prior on gamma and inverse-gamma prior on delta are pooled across the features, and the
    posterior means are iterated until their largest relative change is at most `conv`. mean_only: delta = 1 and gamma
    shrunk with n = 1, as those implementations do. Without empirical Bayes (or with a single feature, where a prior
    across features does not exist) the least-squares estimates are returned."""
    import numpy as np

    g_hat = np.atleast_2d(np.asarray(gamma_hat, dtype=float))
    d_hat = np.atleast_2d(np.asarray(delta_hat, dtype=float))
    d_hat = np.ones_like(d_hat) if mean_only else np.where(d_hat == 0, 1.0, d_hat)
    if not empirical_bayes or g_hat.shape[1] < 2:
        return g_hat.copy(), d_hat.copy()
    g_star, d_star = np.empty_like(g_hat), np.empty_like(d_hat)
    for i in range(g_hat.shape[0]):
        g, d, n = g_hat[i], d_hat[i], float(counts[i])
        g_bar, t2 = g.mean(), g.var(ddof=1)
        if mean_only:
            g_star[i], d_star[i] = (t2 * g + g_bar) / (t2 + 1.0), d
            continue
        m, s2 = d.mean(), d.var(ddof=1)
        a, b = (2 * s2 + m ** 2) / s2, (m * s2 + m ** 3) / s2
        g_old, d_old = g, d
        for _ in range(max_iter):
            g_new = (t2 * n * g + d_old * g_bar) / (t2 * n + d_old)
            d_new = (0.5 * ((n - 1) * d + n * (g - g_new) ** 2) + b) / (n / 2.0 + a - 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                change = max(np.max(np.abs(g_new - g_old) / g_old), np.max(np.abs(d_new - d_old) / d_old))
            g_old, d_old = g_new, d_new
            if not change > conv:
                break
        g_star[i], d_star[i] = g_new, d_new
    return g_star, d_star


def combat_model_class(_made={}):  # noqa: B006 -- one subclass per process
    """combatlearn's ComBatModel with Johnson's empirical Bayes (combat_eb) in place of its own: every fit engine of
    combatlearn calls `_shrink_eb`. Built on first use, so that `radlang check` never imports combatlearn."""
    if "cls" in _made:
        return _made["cls"]
    from combatlearn.core import ComBatModel

    class JohnsonComBatModel(ComBatModel):
        def __init__(self, *, empirical_bayes=True, **kw):
            super().__init__(**kw)
            self.empirical_bayes = empirical_bayes

        def _shrink_eb(self, gamma_hat, delta_hat, n_per_batch, batch_names):
            counts = list(n_per_batch.values()) if isinstance(n_per_batch, dict) else list(n_per_batch)
            return combat_eb(gamma_hat, delta_hat, counts, self.empirical_bayes, self.mean_only)

    _made["cls"] = JohnsonComBatModel
    return JohnsonComBatModel


def combat_class(_made={}):  # noqa: B006 -- one class per process, so a fitted ComBat pickles and loads by name
    """The scikit-learn transformer of a `combat` stage, named `radlang.ops.harmonise.RadComBat` (this module resolves
    that name to it, so a saved model loads it by name). fold_inputs: {"batch": {case id: batch}, "covariates":
    {case id: [numbers]}, "covariate_names": [...]}, for the training and held-out cases alike; a fold's rows are
    looked up by their case ids (the index of X). It keeps the fitted parameters as arrays: the grand mean, the
    pooled variance, the covariates' coefficients and each training batch's gamma* and delta*."""
    if "cls" in _made:
        return _made["cls"]
    import numpy as np
    import pandas as pd
    from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin

    class RadComBat(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
        def __init__(self, params=None, seed=0, fold_inputs=None):
            self.params = params
            self.seed = seed
            self.fold_inputs = fold_inputs

        def _rows(self, X):
            info = self.fold_inputs or {}
            if "batch" not in info:
                raise ValueError("ComBat needs each case's batch: it is applied inside a validation (`evaluate`) only")
            ids = [str(i) for i in X.index]
            batch = pd.Series([str(info["batch"][i]) for i in ids], index=X.index)
            names = list(info.get("covariate_names") or [])
            cov = pd.DataFrame([info["covariates"][i] for i in ids], index=X.index, columns=names, dtype=float) if names else None
            return batch, cov

        def fit(self, X, y=None):
            X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
            p = self.params or {}
            batch, cov = self._rows(X)
            counts = batch.value_counts()
            if len(counts) < 2:
                raise ValueError(f"ComBat needs cases of at least two batches in a training set; all {len(X)} are `{counts.index[0]}`")
            small = sorted(str(b) for b, c in counts.items() if c < int(p.get("min_cases", 2)))
            if small:
                raise ValueError(f"ComBat: batch(es) {', '.join(f'`{b}`' for b in small)} have fewer than {p.get('min_cases', 2)} cases in a training set")
            self.n_features_in_ = X.shape[1]
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
            model = combat_model_class()(method="fortin", empirical_bayes=bool(p.get("empirical_bayes", True)),
                                         mean_only=bool(p.get("mean_only", False)))
            model.fit(X.astype(float), batch=batch, continuous_covariates=cov)
            self.batches_ = [str(b) for b in model._batch_levels]
            self.grand_mean_ = np.asarray(model._grand_mean, dtype=float)
            self.pooled_var_ = np.asarray(model._pooled_var, dtype=float)
            self.beta_ = np.asarray(model._beta_hat_nonbatch, dtype=float).reshape(0 if cov is None else cov.shape[1], X.shape[1])
            self.gamma_ = np.asarray(model._gamma_star, dtype=float)
            self.delta_ = np.asarray(model._delta_star, dtype=float)
            self.eps_ = float(model.eps)
            return self

        def transform(self, X):
            X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
            p = self.params or {}
            batch, cov = self._rows(X)
            mu = self.grand_mean_ + (cov.to_numpy(float) @ self.beta_ if cov is not None else 0.0)
            sd = np.sqrt(self.pooled_var_)
            Z = (X.to_numpy(float) - mu) / sd
            out = Z.copy()
            for b in sorted(set(batch)):
                rows = (batch == b).to_numpy()
                if b in self.batches_:
                    i = self.batches_.index(b)
                    g, d = self.gamma_[i], self.delta_[i]
                elif p.get("unseen") == "transductive":
                    # the unseen batch's own location and scale, from its held-out cases' features on this fit's standardisation
                    if rows.sum() < int(p.get("min_cases", 2)):
                        raise ValueError(f"ComBat (`unseen: transductive`): batch `{b}` has {int(rows.sum())} held-out case(s), too few to estimate its scale")
                    g, d = combat_eb(Z[rows].mean(axis=0), Z[rows].var(axis=0, ddof=1) + self.eps_, [int(rows.sum())],
                                     bool(p.get("empirical_bayes", True)), bool(p.get("mean_only", False)))
                    g, d = g[0], d[0]
                else:
                    raise ValueError(f"ComBat (`unseen: refuse`): batch `{b}` was not among the training batches ({', '.join(self.batches_)})")
                out[rows] = (Z[rows] - g) / np.sqrt(d)
            return pd.DataFrame(out * sd + mu, index=X.index, columns=X.columns)

    RadComBat.__module__ = "radlang.ops.harmonise"
    RadComBat.__qualname__ = "RadComBat"
    _made["cls"] = RadComBat
    return RadComBat


def make_combat(params, seed, fold_inputs):
    """An unfitted ComBat transformer for one fold (see combat_class)."""
    return combat_class()(params=params, seed=seed, fold_inputs=fold_inputs)


# ----------------------------------------------------------------------------------------------
# run-time glue: what a fold needs besides the features (evaluation_run calls it through `fold_data`)


def batch_column(params) -> str:
    """The cohort table's column that holds the batch: `site`, or `clinical.<name>`."""
    return "site" if params["batch"] == "site" else f"clinical.{params['batch']}"


def combat_fold_data(stage, data, ext_data, splits):
    """Each case's batch and covariates (training and external cases), and the problems a fold would meet, found before
    any fold runs. data / ext_data: the validation's cohort tables (ext_data None without an external cohort);
    splits: [(repeat, fold, train rows, test rows)] of `data`. Returns (fold inputs, diagnostics)."""
    import numpy as np
    import pandas as pd

    from radlang.diagnostics import Diagnostic

    p = stage.params
    col = batch_column(p)
    tables = [("training", data)] + ([("external", ext_data)] if ext_data is not None else [])
    diags = []

    def names(xs, n=8):
        xs = list(xs)
        return ", ".join(f"`{x}`" for x in xs[:n]) + (f" and {len(xs) - n} more" if len(xs) > n else "")

    def source(df, c):
        info = df.attrs.get("radlang", {})
        return info.get("columns", {}).get(c, c.removeprefix("clinical.")), info.get("name", "?"), info.get("source", "?")

    covs = [f"clinical.{c}" for c in p["covariates"]]
    for what, df in tables:
        for c in [col] + covs:
            orig, cohort, src = source(df, c)
            if c not in df.columns:
                role = "batch" if c == col else "covariate"
                diags.append(Diagnostic("E674", f"`{stage.name}`: the {role} column `{orig}` is not a column of the {what} cohort `{cohort}` ({src})",
                                        stage.span, hint=("give the cohort a site column (`site: <column>`)" if c == "site"
                                                          else f"list `{orig}` among the cohort's `clinical` columns")))
                continue
            blank = df[c].isna() | (df[c].astype(str).str.strip().isin(["", "nan", "NA", "None"]))
            if blank.any():
                diags.append(Diagnostic("E678", f"`{stage.name}`: case(s) {names(df.loc[blank, 'case_id'])} of the {what} cohort `{cohort}` ({src}) "
                                        f"have no value in column `{orig}`", stage.span, hint="fill in the value or remove the cases"))
        info = df.attrs.get("radlang", {}).get("columns", {})
        outcome_cols = {info.get(k) for k in ("outcome", "time", "event")} - {None}
        for c in covs:
            if info.get(c) in outcome_cols:
                diags.append(Diagnostic("E258", f"`{stage.name}`: covariate `{info[c]}` is the outcome column of cohort `{source(df, c)[1]}`",
                                        stage.span, hint="drop it from `covariates`: the held-out cases' outcomes are unknown when ComBat harmonises them"))
    if diags:
        return {}, diags
    batch = {str(cid): str(b).strip() for _, df in tables for cid, b in zip(df["case_id"], df[col])}
    # covariates: numeric columns as they are; others one-hot coded against their sorted levels, the first left out
    coded = {}
    both = pd.concat([df[["case_id"] + covs] for _, df in tables], ignore_index=True)
    for c in covs:
        vals = pd.to_numeric(both[c], errors="coerce")
        if vals.notna().all():
            coded[c] = vals.astype(float).to_numpy()
            continue
        levels = sorted(both[c].astype(str).str.strip().unique())
        for lv in levels[1:]:
            coded[f"{c}={lv}"] = (both[c].astype(str).str.strip() == lv).astype(float).to_numpy()
    cov_names = list(coded)
    covariates = {str(cid): [float(coded[k][i]) for k in cov_names] for i, cid in enumerate(both["case_id"])}

    b_of = np.asarray([batch[str(c)] for c in data["case_id"]])
    counts = pd.Series(b_of).value_counts()
    mc = int(p["min_cases"])
    orig, cohort, src = source(data, col)
    if len(counts) < 2:
        diags.append(Diagnostic("E675", f"`{stage.name}`: every case of cohort `{cohort}` ({src}) has batch `{counts.index[0]}` in column `{orig}`: "
                                "ComBat needs at least two batches", stage.span, hint="drop the `combat` stage, or harmonise by another column"))
        return {}, diags
    small = sorted((str(b), int(c)) for b, c in counts.items() if c < mc)
    if small:
        diags.append(Diagnostic("E676", f"`{stage.name}`: batch(es) {', '.join(f'`{b}` ({c} case(s))' for b, c in small)} of column `{orig}` in cohort "
                                f"`{cohort}` have fewer than the {mc} cases ComBat needs (`min_cases`)", stage.span,
                                hint="merge small batches in the data, or remove their cases"))
    seen_problems, thin_train, few = {}, {}, {}
    reported = {b for b, _ in small}     # one root cause, one diagnostic: a batch too small in the cohort is not named per fold
    for rep, fold, tr, te in splits:
        where = f"fold {fold + 1} of repeat {rep + 1}"
        have = pd.Series(b_of[tr]).value_counts()
        thin = sorted(str(b) for b, c in have.items() if c < mc and b not in reported)
        if thin:
            thin_train[where] = thin
        for b, c in pd.Series(b_of[te]).value_counts().items():
            if b in have.index or b in reported:
                continue
            if p["unseen"] == "refuse":
                seen_problems.setdefault(str(b), []).append(where)
            elif c < mc:
                few.setdefault(f"the held-out cases of {where}", []).append(str(b))
    if ext_data is not None:
        for b, c in pd.Series([batch[str(x)] for x in ext_data["case_id"]]).value_counts().items():
            if b in counts.index:
                continue
            if p["unseen"] == "refuse":
                seen_problems.setdefault(str(b), []).append(f"the external cohort `{source(ext_data, col)[1]}`")
            elif c < mc:
                few.setdefault(f"the external cohort `{source(ext_data, col)[1]}`", []).append(str(b))
    for b, wheres in sorted(seen_problems.items()):
        diags.append(Diagnostic("E677", f"`{stage.name}`: batch `{b}` is held out in {', '.join(wheres[:4])}{' and more' if len(wheres) > 4 else ''} "
                                "but no training case has it, and `unseen: refuse` is set", stage.span,
                                hint="set `unseen: transductive` to estimate that batch from its own held-out features (recorded in the "
                                     "manifest), or validate with folds that train on every batch"))
    for where, bs in thin_train.items():
        diags.append(Diagnostic("E676", f"`{stage.name}`: batch(es) {names(bs)} have fewer than the {mc} cases ComBat needs (`min_cases`) in "
                                f"the training set of {where}", stage.span, hint="use fewer folds, or merge small batches in the data"))
    for where, bs in few.items():
        diags.append(Diagnostic("E679", f"`{stage.name}`: batch(es) {names(bs)} have fewer than {mc} cases in {where}: too few to "
                                "estimate a batch's location and scale", stage.span,
                                hint="use fewer folds, or merge small batches in the data"))
    return {"batch": batch, "covariates": covariates, "covariate_names": cov_names}, diags


def combat_transductive(params) -> str | None:
    """A sentence for the manifest and `plan` when the stage uses held-out cases' features (never their outcomes)."""
    if params.get("unseen") != "transductive":
        return None
    return (f"ComBat estimates the location and scale of a batch (`{params['batch']}`) unseen in training from its own held-out "
            "cases' features (transductive; never their outcomes)")


# ----------------------------------------------------------------------------------------------
# declarations


class CombatSettings(Settings):
    batch: str = Field("site", description="the batch column: `site` (the cohort's site column) or a clinical column, e.g. `scanner`")
    covariates: list[str] = Field(default_factory=list, description="clinical columns whose effects are preserved (never the outcome); "
                                  "numeric ones as they are, others one-hot coded")
    unseen: Literal["refuse", "transductive"] = Field("refuse", description="a held-out batch not seen in training: refuse (a diagnostic), "
                                                      "or estimate it from its own held-out features (recorded in the manifest)")
    empirical_bayes: bool = Field(True, description="shrink each batch's estimates toward its prior across features (Johnson et al. 2007)")
    mean_only: bool = Field(False, description="adjust the location only, not the scale")
    min_cases: int = Field(2, ge=2, description="the fewest cases of a batch ComBat accepts in a training set or, transductively, a held-out set")

    @field_validator("batch", mode="before")
    @classmethod
    def _b(cls, v):
        return str(v) if isinstance(v, Sym) else v

    @field_validator("covariates", mode="before")
    @classmethod
    def _c(cls, v):
        return [str(x) for x in v] if isinstance(v, list) else [str(v)]

    _u = field_validator("unseen", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


def _combat_infer(ctx):
    s = ctx.settings
    src = ctx.inputs["input"]
    cohort = ctx.types.get(src.cohort) if src.cohort else None
    if s.batch == "site" and cohort is not None and cohort.kind == "Cohort" and not cohort.has_site:
        ctx.error("E257", f"`combat` harmonises by site, but cohort `{src.cohort}` has no site column", setting="batch",
                  hint=f"add `site: <column>` to `{src.cohort}`, or name another batch column (`batch: scanner`)")
    for c in s.covariates:
        if c in ("outcome", "time", "event"):
            ctx.error("E258", f"`{c}`: the outcome cannot be a ComBat covariate: the held-out cases' outcomes are unknown when their features are "
                      "harmonised, so preserving it would need the test labels", setting="covariates", hint=f"drop `{c}` from `covariates`")
    if s.batch in s.covariates:
        ctx.error("E313", f"`{s.batch}` is both the batch and a covariate: ComBat cannot remove a batch effect and preserve it",
                  setting="covariates", hint=f"drop `{s.batch}` from `covariates`")
    if len(set(s.covariates)) != len(s.covariates):
        ctx.error("E314", "a covariate is listed twice", setting="covariates")
    return RType("Features", cohort=src.cohort, outcome=src.outcome, detail="ComBat-harmonised")


def _combat_plan(stage, memory):
    p = stage.params
    lines = [("info", f"ComBat by `{p['batch']}`" + (f", preserving {', '.join(p['covariates'])}" if p["covariates"] else "")
              + ": refit inside every training fold")]
    lines.append(("info", "a held-out batch unseen in training: " + ("estimated from its own held-out features (transductive; each "
                  "validation that refits this stage says so)" if p["unseen"] == "transductive" else "refused (`unseen: refuse`)")))
    return lines


register(Operator(
    name="combat", kind="harmonise", output="Features", settings=CombatSettings,
    inputs=(Port("input", ("Features",), doc="a feature table (radiomics, or a selection of it)"),),
    positional=("input",), fit="data", behaviour="fitted", run=run_recipe, impl=make_combat,
    helpers=(combat_class, combat_model_class, combat_eb), fold_data=combat_fold_data, transductive=combat_transductive,
    infer=_combat_infer, plan=_combat_plan,
    doc="ComBat harmonisation (combatlearn, with Johnson et al.'s empirical Bayes as neuroCombat computes it) of a feature table "
        "across the batches of a cohort column (its site, or e.g. a scanner column), preserving stated covariates; refit inside "
        "every training fold. A held-out batch unseen in training is refused, or estimated from its own unlabelled features "
        "(`unseen: transductive`, recorded in the manifest).",
    examples=("harmonise h = combat(rad) { batch: site, covariates: [f1] }",
              "harmonise h = combat(rad) { unseen: transductive }"),
))


def __getattr__(name):
    """`radlang.ops.harmonise.RadComBat`: the transformer class, built on first use (see combat_class)."""
    if name == "RadComBat":
        return combat_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
