"""Models from scikit-learn (and scikit-survival's Cox model). Imputation and scaling belong to the
model and are part of the fitted pipeline; hyper-parameters are fixed, or searched by inner CV with
`search: grid(C: [0.1, 1, 10])`.

    model clf = logistic(sig, target: train.outcome) { C: 1.0 }
    model rf  = random_forest(sig, target: train.outcome) { n_estimators: 300, search: grid(max_depth: [3, 5, none]) }

Run on its own, a `model` stage fits nothing (estimator mode): the `evaluate` stage assembles
[impute -> selectors... -> scale -> model] into one scikit-learn Pipeline and fits it inside each
training fold. `make_model` and `assemble_pipeline` are self-contained (the renderer inlines them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from radlang.ops.fitted_recipe import run_recipe
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import CallValue, Settings, Sym, Variant, variants

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def make_model(name, params, seed):
    """The unfitted estimator for a model operator, from its plain settings."""
    hp = dict(params.get("hyper") or {})
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        pen = hp.get("penalty", "l2")
        kw = {"C": float(hp["C"])} if pen != "none" else {"C": float("inf")}
        if pen == "l1":
            kw.update(l1_ratio=1.0, solver="liblinear" if params.get("classes", 2) == 2 else "saga")
        return LogisticRegression(max_iter=int(hp.get("max_iter", 1000)), class_weight=hp.get("class_weight"), random_state=seed, **kw)
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=int(hp["n_estimators"]), max_depth=hp.get("max_depth"),
                                      min_samples_leaf=int(hp["min_samples_leaf"]), max_features=hp["max_features"],
                                      class_weight=hp.get("class_weight"), random_state=seed, n_jobs=1)
    if name == "svm":
        from sklearn.svm import SVC

        return SVC(C=float(hp["C"]), kernel=hp["kernel"], gamma=hp["gamma"], probability=True,
                   class_weight=hp.get("class_weight"), random_state=seed)
    if name == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(n_estimators=int(hp["n_estimators"]), learning_rate=float(hp["learning_rate"]),
                                          max_depth=int(hp["max_depth"]), subsample=float(hp["subsample"]), random_state=seed)
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=int(hp["k"]), weights=hp["weights"])
    if name == "cox":
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        return CoxPHSurvivalAnalysis(alpha=float(hp["alpha"]), ties="efron")
    raise ValueError(f"unknown model {name!r}")


def make_logistic(params, seed):
    return make_model("logistic", split_params(params), seed)


def make_random_forest(params, seed):
    return make_model("random_forest", split_params(params), seed)


def make_svm(params, seed):
    return make_model("svm", split_params(params), seed)


def make_gradient_boosting(params, seed):
    return make_model("gradient_boosting", split_params(params), seed)


def make_knn(params, seed):
    return make_model("knn", split_params(params), seed)


def make_cox(params, seed):
    return make_model("cox", split_params(params), seed)


def fold_steps(node):
    """The unfitted scikit-learn steps of one node of a refit-graph recipe (see radlang.backends.refit.recipe):
    a source adds nothing (its columns are the input), a step adds its factory's estimator after its input's steps,
    a concat (a join in the refit graph) adds a ColumnTransformer whose branches are its inputs' steps on their own columns."""
    if "source" in node:
        return []
    if "step" in node:
        name, factory, params, seed, fold_inputs = node["step"]
        return fold_steps(node["input"]) + [(name, factory(params, seed, fold_inputs))]
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    branches = []
    for label, inp in zip(node["names"], node["inputs"]):
        steps = fold_steps(inp)
        branches.append((label, Pipeline(steps).set_output(transform="pandas") if steps else "passthrough", node_columns(inp)))
    names = "{transformer_name}.{feature_name}" if node["prefix"] else False
    return [(node["concat"], ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=names).set_output(transform="pandas"))]


def node_columns(node):
    """The source columns a recipe node reads, in order of first appearance."""
    if "source" in node:
        return list(node["columns"])
    out = []
    for inp in ([node["input"]] if "step" in node else node["inputs"]):
        out += [c for c in node_columns(inp) if c not in out]
    return out


def assemble_pipeline(graph, model_name, model_params, seed, factory=None, fold_inputs=None):
    """[impute] -> the refit graph's steps -> [scale] -> model, as one scikit-learn Pipeline that keeps pandas frames
    (case ids as the index) between steps. With a `search`, the whole pipeline is wrapped in an inner-CV grid search,
    so selection is refit inside the inner folds too. A model operator with its own `factory` (a network model:
    factory(split settings, seed, fold_inputs)) imputes and scales its own inputs: the refit graph's steps, then it."""
    from sklearn.pipeline import Pipeline

    if factory is not None:
        return Pipeline(fold_steps(graph) + [("model", factory(model_params, seed, fold_inputs))]).set_output(transform="pandas")
    parts = []
    imp = model_params.get("impute", "median")
    if imp != "none":
        from sklearn.impute import SimpleImputer

        parts.append(("impute", SimpleImputer(strategy=imp, keep_empty_features=True)))
    parts.extend(fold_steps(graph))
    sc = model_params.get("scale", "standard")
    if sc != "none":
        from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

        parts.append(("scale", {"standard": StandardScaler, "robust": RobustScaler, "minmax": MinMaxScaler}[sc]()))
    parts.append(("model", make_model(model_name, model_params, seed)))
    pipe = Pipeline(parts).set_output(transform="pandas")
    search = model_params.get("search")
    if not search:
        return pipe
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

    rename = {"knn": {"k": "n_neighbors"}}.get(model_name, {})
    grid = {f"model__{rename.get(k, k)}": list(v) for k, v in sorted(search["grid"].items())}
    folds = int(search["cv"])
    cv = KFold(folds, shuffle=True, random_state=seed) if model_name == "cox" else StratifiedKFold(folds, shuffle=True, random_state=seed)
    scoring = None if model_name == "cox" else search["scoring"]
    return GridSearchCV(pipe, grid, cv=cv, scoring=scoring, refit=True, n_jobs=1)


# ----------------------------------------------------------------------------------------------
# declarations


class Grid(Variant):
    call_name = "grid"
    positional = ()
    cv: int = Field(3, ge=2, description="inner CV folds")
    scoring: Literal["roc_auc", "neg_log_loss", "accuracy", "balanced_accuracy", "roc_auc_ovr"] = "roc_auc"
    grid: dict[str, list[Any]] = Field(default_factory=dict)


def _grid(v):
    """`grid(C: [0.1, 1, 10], cv: 3)`: every other keyword is a hyper-parameter with its candidate values."""
    if isinstance(v, CallValue) and v.name == "grid":
        kw = dict(v.kwargs)
        meta = {k: (str(kw.pop(k)) if isinstance(kw.get(k), Sym) else kw.pop(k)) for k in ("cv", "scoring") if k in kw}
        grid = {k: [(str(x) if isinstance(x, Sym) else x) for x in (x if isinstance(x, list) else [x])] for k, x in kw.items()}
        return Grid(grid=grid, **meta)
    return variants(Grid).func(v)


class ModelSettings(Settings):
    impute: Literal["median", "mean", "most_frequent", "none"] = Field("median", description="missing values, fit on the training fold")
    scale: Literal["standard", "robust", "minmax", "none"] = Field("standard", description="feature scaling, fit on the training fold")
    search: Grid | None = Field(None, description="`grid(C: [0.1, 1, 10], cv: 3)`: inner-CV search over the whole pipeline")
    class_weight: Literal["balanced"] | None = None

    @field_validator("impute", "scale", "class_weight", mode="before")
    @classmethod
    def _s(cls, v):
        return str(v) if isinstance(v, Sym) else v

    _g = field_validator("search", mode="before")(lambda cls, v: None if v is None else _grid(v))


class LogisticSettings(ModelSettings):
    C: float = Field(1.0, gt=0, description="inverse regularisation strength")
    penalty: Literal["l2", "l1", "none"] = "l2"
    max_iter: int = Field(1000, ge=10)

    _p = field_validator("penalty", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


class ForestSettings(ModelSettings):
    n_estimators: int = Field(300, ge=1)
    max_depth: int | None = Field(None, ge=1)
    min_samples_leaf: int = Field(1, ge=1)
    max_features: Literal["sqrt", "log2"] | float = "sqrt"

    _m = field_validator("max_features", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


class SvmSettings(ModelSettings):
    C: float = Field(1.0, gt=0)
    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = "rbf"
    gamma: Literal["scale", "auto"] | float = "scale"

    _k = field_validator("kernel", "gamma", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


class BoostingSettings(ModelSettings):
    n_estimators: int = Field(100, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    max_depth: int = Field(3, ge=1)
    subsample: float = Field(1.0, gt=0, le=1)


class KnnSettings(ModelSettings):
    k: int = Field(5, ge=1, description="neighbours")
    weights: Literal["uniform", "distance"] = "uniform"

    _w = field_validator("weights", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


class CoxSettings(ModelSettings):
    alpha: float = Field(0.1, ge=0, description="ridge penalty of the Cox partial likelihood")


def _model_infer(ctx, tasks):
    src = ctx.inputs["input"]
    tgt = ctx.inputs["target"]
    name = ctx.stmt.op.name
    if tgt.outcome not in tasks:
        hint = "for a survival outcome use `cox`" if tgt.outcome == "survival" else f"`{name}` fits {' or '.join(tasks)} outcomes"
        ctx.error("E244", f"`{name}` cannot fit a {tgt.outcome} outcome (`{tgt.detail}`)", port="target", hint=hint)
    ctx.mixed_cohorts(src, tgt)
    s = ctx.settings
    if s.search is not None:
        if not s.search.grid:
            ctx.error("E305", "`grid(...)` needs at least one hyper-parameter with candidate values, e.g. `grid(C: [0.1, 1, 10])`",
                      setting="search")
        fields = set(type(s).model_fields) - set(ModelSettings.model_fields) - {"penalty", "max_iter"}
        for k in s.search.grid:
            if k not in fields:
                ctx.error("E301", f"`{name}` has no hyper-parameter `{k}` to search", setting="search",
                          hint=f"its hyper-parameters: {', '.join(sorted(fields))}")
    return RType("Model", cohort=src.cohort, outcome=tgt.outcome, detail=f"{name} model")


def _register(name, settings, tasks, doc, examples=()):
    register(Operator(
        name=name, kind="model", output="Model", settings=settings,
        inputs=(Port("input", ("Features",), doc="a feature table (usually a `select` stage)"),
                Port("target", ("Outcome",), doc="the training cohort's outcome, e.g. `train.outcome`")),
        positional=("input", "target"), fit="outcome", behaviour="fitted", run=run_recipe,
        impl=FACTORIES[name], helpers=(make_model, assemble_pipeline, fold_steps, node_columns, split_params),
        infer=lambda ctx: _model_infer(ctx, tasks), doc=doc, examples=examples,
        library_code=lambda params, seed: pipeline_code(name, params, seed),
    ))


def pipeline_code(name, params, seed):
    """The scikit-learn pipeline a model stage fits in every training fold (after its selection steps), as
    scikit-learn prints it: `assemble_pipeline` itself, on an empty recipe."""
    import sklearn

    pipe = assemble_pipeline({"source": "input", "columns": []}, name, split_params(params), seed)
    with sklearn.config_context(print_changed_only=True):
        return repr(pipe).split("\n")


FACTORIES = {"logistic": make_logistic, "random_forest": make_random_forest, "svm": make_svm,
             "gradient_boosting": make_gradient_boosting, "knn": make_knn, "cox": make_cox}


def split_params(params):
    """A model stage's plain settings -> {impute, scale, search, hyper: {...}} for make_model/assemble_pipeline."""
    pipeline_keys = ("impute", "scale", "search")
    out = {k: params.get(k) for k in pipeline_keys}
    out["hyper"] = {k: v for k, v in params.items() if k not in pipeline_keys}
    if out.get("search"):
        out["search"] = {"cv": params["search"]["cv"], "scoring": params["search"]["scoring"], "grid": params["search"]["grid"]}
    return out


_register("logistic", LogisticSettings, ("binary", "multiclass"),
          "Logistic regression (scikit-learn), with imputation and scaling inside the fitted pipeline.",
          ("model clf = logistic(sig, target: train.outcome) { C: 1.0 }",
           "model clf = logistic(sig, target: train.outcome) { search: grid(C: [0.01, 0.1, 1, 10]) }"))
_register("random_forest", ForestSettings, ("binary", "multiclass"), "Random forest (scikit-learn).",
          ("model rf = random_forest(sig, target: train.outcome) { n_estimators: 300, min_samples_leaf: 2 }",
           "model rf = random_forest(sig, target: train.outcome) { n_estimators: 100, search: grid(max_depth: [3, 5, none]) }"))
_register("svm", SvmSettings, ("binary", "multiclass"), "Support vector machine with Platt-scaled probabilities (scikit-learn SVC).",
          ("model sv = svm(sig, target: train.outcome) { C: 1.0, class_weight: balanced }",))
_register("gradient_boosting", BoostingSettings, ("binary", "multiclass"), "Gradient boosting (scikit-learn).",
          ("model gb = gradient_boosting(sig, target: train.outcome) { n_estimators: 100, learning_rate: 0.05, max_depth: 2 }",))
_register("knn", KnnSettings, ("binary", "multiclass"), "k-nearest neighbours (scikit-learn).",
          ("model nn = knn(sig, target: train.outcome) { k: 7 }",))
_register("cox", CoxSettings, ("survival",), "Cox proportional hazards with a ridge penalty (scikit-survival); evaluated by the C-index.",
          ("model risk = cox(clin, target: gb.outcome) { alpha: 0.1 }",))
