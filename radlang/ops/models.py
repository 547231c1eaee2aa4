"""Models from scikit-learn, and survival models (radlang/ops/survival_models.py: lifelines' Cox model, a Cox-loss MLP,
scikit-survival's forest and boosting). Imputation and scaling belong to the
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

from pydantic import Field, field_validator, model_validator

from radlang.ops.fitted_recipe import run_recipe
from radlang.ops.survival_models import SURVIVAL_HELPERS, survival_estimator_class
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import CallValue, Settings, Sym, Variant, out_of_range, variants

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
        elif pen == "elasticnet":
            kw.update(l1_ratio=float(hp["l1_ratio"]), solver="saga")
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
    if name in ("cox", "random_survival_forest", "gradient_boosted_survival", "survival_mlp"):
        keys = {"cox": ("alpha", "l1_ratio"), "random_survival_forest": ("n_estimators", "max_depth", "min_samples_leaf", "max_features"),
                "gradient_boosted_survival": ("n_estimators", "learning_rate", "max_depth", "subsample"),
                "survival_mlp": ("hidden", "epochs", "lr", "weight_decay", "dropout")}[name]
        kw = {k: (tuple(hp[k]) if isinstance(hp[k], list) else hp[k]) for k in keys}
        return survival_estimator_class()(kind=name, seed=seed, **kw)
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


def make_random_survival_forest(params, seed):
    return make_model("random_survival_forest", split_params(params), seed)


def make_gradient_boosted_survival(params, seed):
    return make_model("gradient_boosted_survival", split_params(params), seed)


def make_survival_mlp(params, seed):
    return make_model("survival_mlp", split_params(params), seed)


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
    scoring = search_scoring(model_name, search)
    # survival models: the estimator's own score (Harrell's C, RadSurvival.score) on unstratified inner folds
    if scoring == "c_index":
        return GridSearchCV(pipe, grid, cv=KFold(folds, shuffle=True, random_state=seed), scoring=None, refit=True, n_jobs=1)
    return GridSearchCV(pipe, grid, cv=StratifiedKFold(folds, shuffle=True, random_state=seed), scoring=scoring, refit=True, n_jobs=1)


def search_scoring(model_name, search):
    """What a model's inner-CV grid search maximises: the `scoring` of `grid(...)` for a classifier; Harrell's C
    (`c_index`, the survival estimator's own `score`) for a survival model, whatever the grid's default says."""
    return "c_index" if model_name in ("cox", "random_survival_forest", "gradient_boosted_survival", "survival_mlp") else search["scoring"]


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
    def _s(cls, v, info):
        if v is None and info.field_name in ("impute", "scale"):
            return "none"      # `scale: none` reads as the none literal
        return str(v) if isinstance(v, Sym) else v

    _g = field_validator("search", mode="before")(lambda cls, v: None if v is None else _grid(v))


class LogisticSettings(ModelSettings):
    C: float = Field(1.0, gt=0, description="inverse regularisation strength")
    penalty: Literal["l2", "l1", "elasticnet", "none"] = Field("l2", description="l2 (ridge), l1 (LASSO), elasticnet (with `l1_ratio`) or none")
    l1_ratio: float | None = Field(None, ge=0, le=1, description="elastic net's mix, 0 = ridge ... 1 = LASSO (`penalty: elasticnet`; 0.5 if not given)")
    max_iter: int = Field(1000, ge=10)

    @model_validator(mode="after")
    def _mix(self):
        if self.penalty == "elasticnet" and self.l1_ratio is None:
            return self.model_copy(update={"l1_ratio": 0.5})
        return self

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
    alpha: float = Field(0.1, ge=0, description="penalty of the Cox partial likelihood (lifelines' `penalizer`); 0 = unpenalised")
    l1_ratio: float = Field(0.0, ge=0, le=1, description="L1 share of the penalty: 0 = ridge, 1 = lasso, between = elastic net")


class SurvivalForestSettings(ModelSettings):
    n_estimators: int = Field(100, ge=1)
    max_depth: int | None = Field(None, ge=1)
    min_samples_leaf: int = Field(3, ge=1)
    max_features: Literal["sqrt", "log2"] | float = "sqrt"

    _m = field_validator("max_features", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


class SurvivalBoostingSettings(ModelSettings):
    n_estimators: int = Field(100, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    max_depth: int = Field(3, ge=1)
    subsample: float = Field(1.0, gt=0, le=1)


class SurvivalMlpSettings(ModelSettings):
    hidden: list[int] = Field(default_factory=lambda: [32], description="units of each hidden layer (ReLU)")
    epochs: int = Field(200, ge=1, le=100000, description="full-batch Adam steps")
    lr: float = Field(1e-3, gt=0, le=10, description="learning rate")
    weight_decay: float = Field(1e-4, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)

    @field_validator("hidden")
    @classmethod
    def _h(cls, v):
        if not v or any(x < 1 for x in v):
            raise out_of_range("`hidden` lists at least one layer width of 1 or more")
        return v


GPL_MODELS = ("random_survival_forest", "gradient_boosted_survival")


def _model_infer(ctx, tasks):
    src = ctx.inputs["input"]
    tgt = ctx.inputs["target"]
    name = ctx.stmt.op.name
    if tgt.outcome not in tasks:
        hint = ("for a survival outcome use `cox`, `survival_mlp`, `random_survival_forest` or `gradient_boosted_survival`"
                if tgt.outcome == "survival" else f"`{name}` fits {' or '.join(tasks)} outcomes")
        ctx.error("E244", f"`{name}` cannot fit a {tgt.outcome} outcome (`{tgt.detail}`)", port="target", hint=hint)
    ctx.mixed_cohorts(src, tgt)
    if name in GPL_MODELS:
        import importlib.util

        if importlib.util.find_spec("sksurv") is None:
            ctx.error("E260", f"`{name}` needs scikit-survival, which is not installed", hint=(
                "install the optional extra: pip install 'radlang[survival-gpl]' (scikit-survival is GPL-3), "
                "or use `cox` or `survival_mlp`"))
    s = ctx.settings
    if s.search is not None and tgt.outcome == "survival" and "scoring" in s.search.model_fields_set:
        ctx.error("E346", f"`{name}` is a survival model: its grid search scores each candidate by Harrell's C, not "
                  f"`{s.search.scoring}`", setting="search", hint="leave `scoring` out of `grid(...)` for a survival model")
    if s.search is not None:
        if not s.search.grid:
            ctx.error("E305", "`grid(...)` needs at least one hyper-parameter with candidate values, e.g. `grid(C: [0.1, 1, 10])`",
                      setting="search")
        fields = set(type(s).model_fields) - set(ModelSettings.model_fields) - {"penalty", "max_iter"}
        for k in s.search.grid:
            if k not in fields:
                ctx.error("E301", f"`{name}` has no hyper-parameter `{k}` to search", setting="search",
                          hint=f"its hyper-parameters: {', '.join(sorted(fields))}")
    if getattr(s, "penalty", None) not in (None, "elasticnet") and (getattr(s, "l1_ratio", None) is not None
                                                                 or (s.search is not None and "l1_ratio" in s.search.grid)):
        ctx.error("E322", f"`l1_ratio` mixes the L1 and L2 penalties of an elastic net, but the penalty is `{s.penalty}`",
                  setting="l1_ratio" if getattr(s, "l1_ratio", None) is not None else "search", hint="set `penalty: elasticnet`")
    return RType("Model", cohort=src.cohort, outcome=tgt.outcome, detail=f"{name} model")


def _register(name, settings, tasks, doc, examples=(), version="1"):
    register(Operator(
        name=name, kind="model", output="Model", settings=settings,
        inputs=(Port("input", ("Features",), doc="a feature table (usually a `select` stage)"),
                Port("target", ("Outcome",), doc="the training cohort's outcome, e.g. `train.outcome`")),
        positional=("input", "target"), fit="outcome", behaviour="fitted", run=run_recipe,
        impl=FACTORIES[name], helpers=(make_model, assemble_pipeline, search_scoring, fold_steps, node_columns, split_params) + SURVIVAL_HELPERS,
        infer=lambda ctx: _model_infer(ctx, tasks), doc=doc, examples=examples, version=version,
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
             "gradient_boosting": make_gradient_boosting, "knn": make_knn, "cox": make_cox,
             "random_survival_forest": make_random_survival_forest, "gradient_boosted_survival": make_gradient_boosted_survival,
             "survival_mlp": make_survival_mlp}


def split_params(params):
    """A model stage's plain settings -> {impute, scale, search, hyper: {...}} for make_model/assemble_pipeline."""
    pipeline_keys = ("impute", "scale", "search")
    out = {k: params.get(k) for k in pipeline_keys}
    out["hyper"] = {k: v for k, v in params.items() if k not in pipeline_keys}
    if out.get("search"):
        out["search"] = {"cv": params["search"]["cv"], "scoring": params["search"]["scoring"], "grid": params["search"]["grid"]}
    return out


_register("logistic", LogisticSettings, ("binary", "multiclass"),
          "Logistic regression (scikit-learn) with a ridge (l2), LASSO (l1) or elastic-net penalty, with imputation and scaling "
          "inside the fitted pipeline; `search: grid(C: [...], l1_ratio: [...])` chooses the penalty by inner CV inside each "
          "training fold (nested CV).",
          ("model clf = logistic(sig, target: train.outcome) { C: 1.0 }",
           "model clf = logistic(sig, target: train.outcome) { search: grid(C: [0.01, 0.1, 1, 10]) }",
           "model enet = logistic(genes, target: train.outcome) { penalty: elasticnet, search: grid(C: [0.1, 1], l1_ratio: [0.2, 0.8]) }"))
_register("random_forest", ForestSettings, ("binary", "multiclass"), "Random forest (scikit-learn).",
          ("model rf = random_forest(sig, target: train.outcome) { n_estimators: 300, min_samples_leaf: 2 }",
           "model rf = random_forest(sig, target: train.outcome) { n_estimators: 100, search: grid(max_depth: [3, 5, none]) }"))
_register("svm", SvmSettings, ("binary", "multiclass"), "Support vector machine with Platt-scaled probabilities (scikit-learn SVC).",
          ("model sv = svm(sig, target: train.outcome) { C: 1.0, class_weight: balanced }",))
_register("gradient_boosting", BoostingSettings, ("binary", "multiclass"), "Gradient boosting (scikit-learn).",
          ("model gb = gradient_boosting(sig, target: train.outcome) { n_estimators: 100, learning_rate: 0.05, max_depth: 2 }",))
_register("knn", KnnSettings, ("binary", "multiclass"), "k-nearest neighbours (scikit-learn).",
          ("model nn = knn(sig, target: train.outcome) { k: 7 }",))
_register("cox", CoxSettings, ("survival",),
          "Cox proportional hazards (lifelines' CoxPHFitter, Efron ties) with an L2, L1 or elastic-net penalty; survival "
          "probabilities from the Breslow baseline hazard of the training fold.",
          ("model risk = cox(clin, target: gb.outcome) { alpha: 0.1 }",
           "model risk = cox(clin, target: gb.outcome) { alpha: 0.05, l1_ratio: 0.5, search: grid(alpha: [0.01, 0.1, 1]) }"),
          version="2")   # 2: lifelines with a Breslow survival function (1: scikit-survival's ridge Cox)
_register("random_survival_forest", SurvivalForestSettings, ("survival",),
          "Random survival forest (scikit-survival: GPL-3, the optional `survival-gpl` extra).",
          ("model rsf = random_survival_forest(clin, target: gb.outcome) { n_estimators: 100, min_samples_leaf: 5 }",))
_register("gradient_boosted_survival", SurvivalBoostingSettings, ("survival",),
          "Gradient-boosted Cox model on regression trees (scikit-survival: GPL-3, the optional `survival-gpl` extra).",
          ("model gbs = gradient_boosted_survival(clin, target: gb.outcome) { n_estimators: 100, learning_rate: 0.05, max_depth: 2 }",))
_register("survival_mlp", SurvivalMlpSettings, ("survival",),
          "A multilayer perceptron trained with the Cox partial-likelihood loss (torchsurv), full batch, deterministic on CPU; "
          "survival probabilities from the Breslow baseline hazard of the training fold.",
          ("model deep = survival_mlp(clin, target: gb.outcome) { hidden: [16], epochs: 100, lr: 0.01 }",))
