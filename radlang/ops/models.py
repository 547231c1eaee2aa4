"""Models from scikit-learn, and survival models (radlang/ops/survival_models.py: lifelines' Cox model, a Cox-loss MLP,
scikit-survival's forest and boosting). Imputation and scaling belong to the
model and are part of the fitted pipeline; hyper-parameters are fixed, or searched by inner CV with
`search: grid(C: [0.1, 1, 10])`.

    model clf = logistic(sig, target: train.outcome) { C: 1.0 }
    model rf  = random_forest(sig, target: train.outcome) { n_estimators: 300, search: grid(max_depth: [3, 5, none]) }

Run on its own, a `model` stage fits nothing (estimator mode): the `evaluate` stage assembles
[impute -> selectors... -> scale -> model] into one scikit-learn Pipeline and fits it inside each
training fold. That pipeline is written as Python once (`pipeline_source`, with the model's constructor from
`model_call`) and run from that source (`assemble_pipeline`); `radlang render` writes the same source into study.py.
The functions of the first section are self-contained (the renderer inlines them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from radlang.ops.fitted_recipe import run_recipe

# survival_estimator_class: named by the code model_call writes for a survival model, cox_batch_loss by the code a network
# model's survival loss is (radlang/ops/net_models.py: loss_code); both run in this module's scope
from radlang.ops.survival_models import SURVIVAL_HELPERS, cox_batch_loss, survival_estimator_class  # noqa: F401
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import CallValue, Settings, Sym, Variant, out_of_range, variants

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def model_call(name, params, seed):
    """(import line, constructor, {keyword: Python source of its value}): the estimator a model operator's plain settings
    make, as the code that builds it. `pipeline_source` writes it into the fold pipeline; `make_model` runs it. In a
    value's source, `fold['classes']` is the number of outcome classes in the data the pipeline is fit on."""
    hp = dict(params.get("hyper") or {})

    def lit(**kw):
        return {k: repr(v) for k, v in kw.items()}

    if name == "logistic":
        pen = hp.get("penalty", "l2")
        kw = lit(max_iter=int(hp.get("max_iter", 1000)), class_weight=hp.get("class_weight"), random_state=seed)
        kw["C"] = repr(float(hp["C"])) if pen != "none" else "float('inf')"
        if pen == "l1":
            kw.update(l1_ratio="1.0", solver="'liblinear' if fold['classes'] == 2 else 'saga'")
        elif pen == "elasticnet":
            kw.update(lit(l1_ratio=float(hp["l1_ratio"]), solver="saga"))
        return "from sklearn.linear_model import LogisticRegression", "LogisticRegression", kw
    if name == "random_forest":
        return ("from sklearn.ensemble import RandomForestClassifier", "RandomForestClassifier",
                lit(n_estimators=int(hp["n_estimators"]), max_depth=hp.get("max_depth"), min_samples_leaf=int(hp["min_samples_leaf"]),
                    max_features=hp["max_features"], class_weight=hp.get("class_weight"), random_state=seed, n_jobs=1))
    if name == "svm":
        return ("from sklearn.svm import SVC", "SVC", lit(C=float(hp["C"]), kernel=hp["kernel"], gamma=hp["gamma"], probability=True,
                                                        class_weight=hp.get("class_weight"), random_state=seed))
    if name == "gradient_boosting":
        return ("from sklearn.ensemble import GradientBoostingClassifier", "GradientBoostingClassifier",
                lit(n_estimators=int(hp["n_estimators"]), learning_rate=float(hp["learning_rate"]), max_depth=int(hp["max_depth"]),
                    subsample=float(hp["subsample"]), random_state=seed))
    if name == "knn":
        return "from sklearn.neighbors import KNeighborsClassifier", "KNeighborsClassifier", lit(n_neighbors=int(hp["k"]), weights=hp["weights"])
    if name in ("cox", "random_survival_forest", "gradient_boosted_survival", "survival_mlp"):
        keys = {"cox": ("alpha", "l1_ratio"), "random_survival_forest": ("n_estimators", "max_depth", "min_samples_leaf", "max_features"),
                "gradient_boosted_survival": ("n_estimators", "learning_rate", "max_depth", "subsample"),
                "survival_mlp": ("hidden", "epochs", "lr", "weight_decay", "dropout")}[name]
        kw = lit(kind=name, seed=seed, **{k: (tuple(hp[k]) if isinstance(hp[k], list) else hp[k]) for k in keys})
        return None, "survival_estimator_class()", kw
    raise ValueError(f"unknown model {name!r}")


def make_model(name, params, seed):
    """The unfitted estimator for a model operator, from its plain settings: `model_call`'s code, run."""
    line, ctor, kw = model_call(name, params, seed)
    scope = {**globals(), "fold": {"classes": params.get("classes", 2)}}
    if line:
        exec(line, scope)  # noqa: S102 -- an import line of model_call's
    return eval(f"{ctor}({', '.join(f'{k}={v}' for k, v in kw.items())})", scope)


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


def node_columns(node):
    """The source columns a recipe node reads, in order of first appearance."""
    if "source" in node:
        return list(node["columns"])
    out = []
    for inp in ([node["input"]] if "step" in node else node["inputs"]):
        out += [c for c in node_columns(inp) if c not in out]
    return out


def pipeline_source(fn_name, graph, model_name, model_params, seed, factory=None, doc=""):
    """The fold pipeline as Python: `def <fn_name>(fold):` returning [impute] -> the refit graph's steps -> [scale] -> model
    as one scikit-learn Pipeline that keeps pandas frames (case ids as the index) between steps; with a `search`, the
    whole pipeline inside an inner-CV grid search, so selection is refit inside the inner folds too. A model operator
    with its own `factory` (a network model) imputes and scales its own inputs: the refit graph's steps, then it.

    Every setting is a literal; what the data decide comes in `fold` (`pipeline_arguments`): each step's fold inputs
    (`fold['inputs'][step]`, the model's `fold['model']`), a join's columns (`fold['columns'][branch]`), the number of
    outcome classes (`fold['classes']`) and a late-fusion model's branches (`fold['branches']`). A factory `make_x` with a
    `make_x_code(settings, seed)` beside it (a network model) also gets that function's keywords, code written after its
    settings (the network's constructor, loss and optimiser) and its import lines. `assemble_pipeline` runs this source; `radlang render` writes the same text into the validation stage's part of study.py."""
    import pprint

    imports = {"from sklearn.pipeline import Pipeline"}

    def lit(value, indent):
        return pprint.pformat(value, width=max(60, 136 - indent), sort_dicts=False).replace("\n", "\n" + " " * indent)

    def pack(text, col, opens="([", hang=None):
        """One line of code broken at its top-level-free `, ` (never inside a string or a lambda's parameters) into lines
        of at most 136 columns, continued under the character after the first of `opens` (`(` or `[`; with none, under
        the text's first), or where those lines would be too long, at column `hang` when given; None when a piece is
        too long."""
        pieces, start, quote, i, params = [], 0, None, 0, False
        while i < len(text):
            c = text[i]
            if quote:
                if c == "\\":
                    i += 1
                elif c == quote:
                    quote = None
            elif c in "'\"":
                quote = c
            elif text.startswith("lambda ", i):    # a lambda's parameters stay on one line
                params = True
            elif params and c == ":":
                params = False
            elif text.startswith(", ", i) and not params:
                pieces.append(text[start:i + 1])
                start = i + 2
            i += 1
        pieces.append(text[start:])
        under = col + min((text.index(b) for b in opens if b in text), default=-1) + 1     # no bracket: under the text
        for cont in (under,) if hang is None else (under, hang):
            lines = [pieces[0]]
            for piece in pieces[1:]:
                width = (col if len(lines) == 1 else cont) + len(lines[-1]) + 1 + len(piece)
                if width <= 136:
                    lines[-1] += " " + piece
                else:
                    lines.append(piece)
            if col + len(lines[0]) <= 136 and all(cont + len(x) <= 136 for x in lines[1:]):
                return ("\n" + " " * cont).join(lines)
        return None

    def call(head, args, indent, col):
        """`head(args)` from column `col`: on one line when it fits, else packed (`pack`), else the arguments from the
        next line at `indent + 4`. args: functions of the column at which the argument starts -> its source."""
        one = f"{head}({', '.join(a(10 ** 6) for a in args)})"
        packed = pack(one, col)
        if packed is not None:
            return packed
        inner = " " * (indent + 4)
        return f"{head}(\n" + ",\n".join(inner + a(indent + 4) for a in args) + f",\n{' ' * indent})"

    def code(text):
        return lambda col: text

    def value(v, after=""):
        """A literal (a dict: with `after`, the source of more `, key: value` items, inside its braces)."""
        return lambda col: (repr(v) if col >= 10 ** 6 else lit(v, col))[:-1] + after + "}" if after else (
            repr(v) if col >= 10 ** 6 else lit(v, col))

    def steps(node, indent):
        """The (name, estimator) pairs of one node of the refit graph's recipe (see radlang.backends.refit.recipe)."""
        if "source" in node:
            return []
        if "step" in node:
            name, make, params, step_seed = node["step"][:4]
            head = f"({name!r}, "
            est = call(make.__name__, [value(params), code(repr(step_seed)), code(f"fold['inputs'][{name!r}]")], indent, indent + len(head))
            return steps(node["input"], indent) + [f"{head}{est})"]
        imports.add("from sklearn.compose import ColumnTransformer")
        branches = []
        for label, inp in zip(node["names"], node["inputs"]):
            inner = steps(inp, indent + 8)
            pipe = pipeline(inner, indent + 4) if inner else "'passthrough'"
            branches.append(f"({label!r}, {pipe}, fold['columns'][{label!r}])")
        names = "'{transformer_name}.{feature_name}'" if node["prefix"] else "False"
        body = ",\n".join(" " * (indent + 4) + b for b in branches)
        return [(f"({node['concat']!r}, ColumnTransformer([\n{body},\n{' ' * indent}], remainder='drop', "
                 f"verbose_feature_names_out={names}).set_output(transform='pandas'))")]

    def pipeline(parts, indent):
        body = "".join(" " * (indent + 4) + p + ",\n" for p in parts)
        return f"Pipeline([\n{body}{' ' * indent}]).set_output(transform='pandas')"

    mp = {k: v for k, v in model_params.items() if k not in ("classes", "branches")}
    parts = []
    if factory is not None:
        import sys

        extra = ", 'classes': fold['classes']" + (", 'branches': fold['branches']" if "branches" in model_params else "")
        settings = value(mp, after=extra)
        # a network model's factory `make_x` has a `make_x_code` beside it: what it trains with, as code
        own = getattr(sys.modules[factory.__module__], f"{factory.__name__}_code", None)
        lines, kw = own(model_params, seed) if own is not None else ([], {})
        imports.update(lines)
        text = call(factory.__name__, [settings, code(repr(seed)), code("fold['model']")], 8, 18)
        if kw:      # its code keywords one a line, after the settings
            close = ",\n" + " " * 8 + ")"      # call's layout with the arguments one a line
            spread = text.endswith(close)
            col = 12 if spread else 18 + len(factory.__name__) + 1
            more = "".join(f",\n{' ' * col}" + (pack(f"{k}={v}", col, "([{", col + 4) or f"{k}={v}") for k, v in kw.items())
            text = text[:-len(close)] + more + close if spread else text[:-1] + more + ")"
        parts = steps(graph, 8) + ["('model', " + text + ")"]
        search = None
    else:
        imp = model_params.get("impute", "median")
        if imp != "none":
            imports.add("from sklearn.impute import SimpleImputer")
            parts.append(f"('impute', SimpleImputer(strategy={imp!r}, keep_empty_features=True))")
        parts.extend(steps(graph, 8))
        sc = model_params.get("scale", "standard")
        if sc != "none":
            scaler = {"standard": "StandardScaler", "robust": "RobustScaler", "minmax": "MinMaxScaler"}[sc]
            imports.add(f"from sklearn.preprocessing import {scaler}")
            parts.append(f"('scale', {scaler}())")
        line, ctor, kw = model_call(model_name, model_params, seed)
        if line:
            imports.add(line)
        parts.append("('model', " + call(ctor, [code(f"{k}={v}") for k, v in kw.items()], 8, 18) + ")")
        search = model_params.get("search")
    import textwrap

    scoring = search_scoring(model_name, search) if search else None
    # survival models: the estimator's own score (Harrell's C, RadSurvival.score) on unstratified inner folds
    splitter = "KFold" if scoring == "c_index" else "StratifiedKFold"
    grid_scoring = None if scoring == "c_index" else scoring
    if search:
        imports.add(f"from sklearn.model_selection import GridSearchCV, {splitter}")
    doc = textwrap.wrap('"""' + (doc or "The estimator fit in every training fold, and on every training case for the final model.") + '"""', 124)
    head = [f"def {fn_name}(fold):", *(f"    {x}" for x in doc)]
    head += [f"    {x}" for x in sorted(imports)]
    if not search:
        return "\n".join([*head, f"    return {pipeline(parts, 4)}", ""])
    rename = {"knn": {"k": "n_neighbors"}}.get(model_name, {})
    grid = {f"model__{rename.get(k, k)}": list(v) for k, v in sorted(search["grid"].items())}
    return "\n".join([*head,
                      f"    pipeline = {pipeline(parts, 4)}",
                      f"    inner = {splitter}({int(search['cv'])}, shuffle=True, random_state={seed!r})",
                      "    return " + call("GridSearchCV", [code("pipeline"), value(grid), *map(code, ("cv=inner", f"scoring={grid_scoring!r}",
                                                                                             "refit=True", "n_jobs=1"))], 4, 11), ""])


def pipeline_arguments(graph, model_params, fold_inputs=None):
    """What the data decide in a fold pipeline (`pipeline_source`'s `fold`): each step's fold inputs, the model's, the
    columns of each branch of a join, the number of outcome classes and a late-fusion model's branches."""
    inputs, columns = {}, {}

    def walk(node):
        if "step" in node:
            inputs[node["step"][0]] = node["step"][4]
            walk(node["input"])
        elif "concat" in node:
            for label, inp in zip(node["names"], node["inputs"]):
                columns[label] = node_columns(inp)
                walk(inp)

    walk(graph)
    return {"inputs": inputs, "model": fold_inputs, "columns": columns, "classes": model_params.get("classes", 2),
            "branches": model_params.get("branches")}


def pipeline_from_source(source, fn_name, factories, fold):
    """Define the fold pipeline's function from its source (`pipeline_source`), with the factories it names (name ->
    function) in scope, and call it: the estimator."""
    scope = {**globals(), **factories}
    exec(source, scope)  # noqa: S102 -- pipeline_source's code: settings as literals, nothing from the spec but repr() values
    return scope[fn_name](fold)


def recipe_factories(graph, factory=None):
    """name -> function of every factory a recipe's steps (and the model's own `factory`) name."""
    out = {factory.__name__: factory} if factory is not None else {}
    if "step" in graph:
        out[graph["step"][1].__name__] = graph["step"][1]
        out.update(recipe_factories(graph["input"]))
    for inp in graph.get("inputs", []):
        out.update(recipe_factories(inp))
    return out


def assemble_pipeline(graph, model_name, model_params, seed, factory=None, fold_inputs=None):
    """The unfitted fold pipeline of a refit graph's recipe: `pipeline_source`'s code, run."""
    source = pipeline_source("fold_pipeline", graph, model_name, model_params, seed, factory)
    return pipeline_from_source(source, "fold_pipeline", recipe_factories(graph, factory), pipeline_arguments(graph, model_params, fold_inputs))


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
        impl=FACTORIES[name], helpers=MODEL_HELPERS + SURVIVAL_HELPERS,
        infer=lambda ctx: _model_infer(ctx, tasks), doc=doc, examples=examples, version=version,
    ))


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


# the self-contained functions that build a fold pipeline (every model operator's helpers)
MODEL_HELPERS = (make_model, model_call, assemble_pipeline, pipeline_source, search_scoring, pipeline_arguments, pipeline_from_source, recipe_factories,
                 node_columns, split_params)


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
