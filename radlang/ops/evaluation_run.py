"""The `evaluate` operator's run-time code: leakage-free validation (declared in radlang/ops/validate.py).

Glue only. It reads the validation's refit graph (radlang/passes/fit_boundaries.py, made concrete by
radlang/backends/refit.py): the fold input X (the source feature tables, side by side), joined with the cohort's
outcome / patient / site by case id; it checks the study design on the data (E64x, E652), builds the recipe of
the fitted graph, runs the folds through the executor, fits and saves the final model, and writes the outputs
atomically. Every number comes from the self-contained functions of radlang/ops/fold_engine.py,
radlang/ops/clinical_metrics.py and the fitted operators' factories. Backend code is imported inside the
functions, so `radlang check` never loads it.
"""

from __future__ import annotations

from radlang.diagnostics import Diagnostic


def fold_pipeline_code(stage, study) -> list[tuple[str, str, str]]:
    """[("pipeline", function name, source)]: the fold pipeline of a validation stage as Python (the model operator's
    `pipeline_source`, from the study alone: every setting a literal, what the data decide an argument). `run_evaluate`
    runs this source; `radlang render` writes it into study.py and the stage passes it to `run_evaluate` as `pipeline`."""
    from radlang.backends.refit import refit_of
    from radlang.ops.models import pipeline_source

    graph = refit_of(stage)
    model = study.by_name()[graph["model"]]
    rec, mparams, factory = _model_recipe(study, graph, model, {}, {}, 0)
    name = f"fold_pipeline_{stage.name}"
    doc = (f"What `{stage.name}` fits in every training fold (and on every training case for its final model); "
           "`fold`: what the data decide.")
    return [("pipeline", name, pipeline_source(name, rec, model.op, mparams, model.seed, factory, doc))]


def fold_worker_imports(stage, study) -> tuple[str, ...]:
    """The modules a fold task imports in a worker: the fold engine, pandas (a fold's tables), and every module the fold
    pipeline's code imports (scikit-learn's estimators; torch and MONAI for a network model)."""
    import ast

    modules = ["pandas", "radlang.ops.fold_engine", "radlang.ops.models"]
    for _, _, source in fold_pipeline_code(stage, study):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.append(node.module)
            elif isinstance(node, ast.Import):
                modules += [alias.name for alias in node.names]
    return tuple(dict.fromkeys(modules))


def _model_recipe(study, graph, model, columns, fold_inputs, n_classes):
    """(recipe of the fitted graph under `model`, its split settings, its own factory or None) for `pipeline_source`.
    A model with a network input (a network model) gets the network's spec and builds its own estimator; a model whose
    inputs are models (late fusion) gets each branch's own recipe, columns and settings, and reads every column."""
    from radlang import registry
    from radlang.backends.refit import inputs_of, recipe
    from radlang.ops.models import node_columns, split_params

    by = study.by_name()
    mparams = {**split_params(model.params), "classes": n_classes}
    nets = {port: {"arch": by[r.stage].op, "params": by[r.stage].params} for port, r in sorted(model.inputs.items())
            if by[r.stage].type.kind == "Network"}
    if nets:
        mparams["networks"] = nets
        mparams["head"] = model.type.head       # what the network's loss fits (make_cnn_code)
    branches = [by[u] for u in inputs_of(graph, model.name) if by[u].type.kind == "Model"]
    if branches:
        mparams["branches"] = []
        for b in branches:
            rec, bparams, bfactory = _model_recipe(study, {**graph, "model": b.name}, b, columns, fold_inputs, n_classes)
            mparams["branches"].append([b.name, rec, node_columns(rec), b.op, bparams, b.seed, bfactory])
        every = [c for cols in columns.values() for c in cols]
        return {"source": "branches", "columns": every}, mparams, registry.get(model.op).impl
    rec = recipe(study, graph, columns, fold_inputs)
    return rec, mparams, (registry.get(model.op).impl if nets else None)


# Seconds a fresh worker process takes to start and import what a fold needs (pandas, scikit-learn, ...) on a
# typical 2-core machine: the pool is used only when the time it saves is larger. Workers the run started ahead
# (a cold run, `worker_imports`) cost only the folds' round trips.
POOL_START_S = 2.0
POOL_STARTED_S = 0.1


def _run_folds(ctx, run_fold, fold_jobs, results):
    """results[i] = run_fold(fold_jobs[i]). The first outcome runs in this process; the others go to the worker pool only
    when, at the first one's pace, running them in parallel saves more than starting the workers costs (a small
    cohort's folds take milliseconds, a worker's imports seconds). Where a fold runs does not change its numbers."""
    import time

    if not fold_jobs:
        return
    t0 = time.perf_counter()
    results[0] = run_fold(fold_jobs[0])
    rest = len(fold_jobs) - 1
    saved = (time.perf_counter() - t0) * rest * (1 - 1 / max(ctx.workers, 1))
    if ctx.workers > 1 and rest > 1 and saved > (POOL_STARTED_S if ctx.executor.started else POOL_START_S):
        # largest training set first: the final model (every case, and its skops save) starts early instead of running
        # alone at the end while the other workers have nothing left to do
        for i, r in ctx.executor.map(run_fold, fold_jobs[1:], weights=[len(j["train"]) for j in fold_jobs[1:]]):
            results[i + 1] = r
    else:
        for i in range(1, len(fold_jobs)):
            results[i] = run_fold(fold_jobs[i])


def _outcome_arrays(df, outcome, reached):
    """(the outcome as the models fit it, the outcome to stratify the folds by). reached: the evaluation's
    settings-dependent code (`reaches` in ops/validate.py): a survival target comes from its `survival_target`."""
    import numpy as np

    if outcome == "survival":
        return reached["survival_target"](df["time"].to_numpy(), df["event"].to_numpy()), df["event"].astype(int).to_numpy()
    y = df["outcome"].to_numpy()
    if outcome in ("binary", "multiclass"):
        y = y.astype(np.int64)
        return y, y
    return y.astype(float), None


def _case_contents(ctx, df) -> dict:
    """case_id -> a content hash: the image (and mask) file hashes, or, for tabular cohorts, the clinical values."""
    import hashlib

    info = df.attrs.get("radlang", {})
    cols = [c for c in (info.get("images") or []) if c in df.columns]
    if not cols:
        cols = [c for c in ("image",) if c in df.columns]
    out = {}
    if cols:
        for _, row in df.iterrows():
            h = hashlib.sha256()
            for c in cols:
                try:
                    h.update(ctx.hash_input(row[c]).encode())
                except OSError:
                    h.update(f"missing:{row[c]}".encode())
            out[str(row["case_id"])] = h.hexdigest()
        return out
    clin = sorted(c for c in df.columns if str(c).startswith("clinical."))
    if not clin:
        return out
    for cid, vals in zip(df["case_id"], df[clin].itertuples(index=False)):
        out[str(cid)] = hashlib.sha256(repr(tuple(float(v) for v in vals)).encode()).hexdigest()
    return out


def _names(xs, n=8):
    xs = list(xs)
    s = ", ".join(f"`{x}`" for x in xs[:n])
    return s + (f" and {len(xs) - n} more" if len(xs) > n else "")


def _design_checks(ctx, stage, cohort_name, data, y_strat, outcome, cv, groups, sites, n_features):
    """Run-time study-design problems (all at once) and warnings."""
    import numpy as np

    errs, warns = [], []
    n = len(data)
    if outcome in ("binary", "multiclass", "survival") and y_strat is not None:
        classes, counts = np.unique(y_strat, return_counts=True)
        what = "event indicator" if outcome == "survival" else "outcome"
        if outcome == "survival" and len(classes) == 1:
            col = data.attrs.get("radlang", {}).get("columns", {}).get("event", "event")
            if classes[0] == 0:   # every case an event (no censoring) is a valid survival cohort
                errs.append(Diagnostic("E642", f"`{stage.name}`: all {n} cases of cohort `{cohort_name}` are censored (event column `{col}` "
                                       f"is 0 for {_names(data['case_id'])}): there is no event to model", stage.span,
                                       hint="a survival model needs cases with an event (1 in the event column)"))
        elif len(classes) < 2:
            errs.append(Diagnostic("E642", f"`{stage.name}`: the {what} of cohort `{cohort_name}` has a single class "
                                   f"({classes[0] if len(classes) else 'none'}) in all {n} cases ({_names(data['case_id'])})", stage.span,
                                   hint="a model needs cases of both classes"))
        elif cv["kind"] == "stratified_kfold" and counts.min() < int(cv["k"]):
            small = classes[int(np.argmin(counts))]
            cases = data["case_id"][y_strat == small]
            errs.append(Diagnostic("E643", f"`{stage.name}`: cohort `{cohort_name}` has {counts.min()} case(s) with {what} {small} "
                                   f"({_names(cases)}), fewer than the {cv['k']} folds", stage.span,
                                   hint=f"use `stratified_kfold({max(2, int(counts.min()))})` or add cases"))
        if outcome == "binary" and len(classes) == 2:
            epv = counts.min() / max(n_features, 1)
            if epv < 10:
                warns.append(f"`{stage.name}`: low events per variable: {counts.min()} events (smaller class) for {n_features} "
                             f"candidate features = {epv:.2f} (< 10); expect optimism and unstable selection")
    if cv["kind"] in ("stratified_kfold", "kfold"):
        k = int(cv["k"])
        ng = len(set(groups))
        if n < k or ng < k:
            errs.append(Diagnostic("E643", f"`{stage.name}`: cohort `{cohort_name}` has {n} cases from {ng} patients, fewer than the {k} folds "
                                   f"({_names(data['case_id'])})", stage.span, hint="use fewer folds"))
    loso = cv["kind"] == "leave_one_site_out"
    split_groups = sites if loso else groups
    if split_groups is not None:
        # one patient's cases never straddle a split: every split grouping must keep a patient in one group
        where: dict = {}
        for pid, g in zip(data["patient_id"].astype(str), split_groups):
            where.setdefault(pid, set()).add(str(g))
        straddle = sorted(pid for pid, gs in where.items() if len(gs) > 1)
        if straddle:
            errs.append(Diagnostic("E649", f"`{stage.name}`: the cases of patient(s) {_names(straddle)} of cohort `{cohort_name}` lie in "
                                   f"different {'sites' if loso else 'groups'}, so they would straddle a split", stage.span,
                                   hint="group by patient (drop `groups:`, the default) or correct the patient/site columns"))
    if loso and (sites is None or len(set(sites)) < 2):
        errs.append(Diagnostic("E643", f"`{stage.name}`: leave-one-site-out needs at least 2 sites in cohort `{cohort_name}`, "
                               f"found {len(set(sites)) if sites is not None else 0}", stage.span))
    return errs, warns


def _external_checks(ctx, stage, cohort_name, cohort_df, ext_name, ext_df):
    errs = []
    pa = set(cohort_df["patient_id"].astype(str))
    pb = set(ext_df["patient_id"].astype(str))
    both = sorted(pa & pb)
    if both:
        errs.append(Diagnostic("E644", f"`{stage.name}`: {len(both)} patient id(s) appear in both the training cohort `{cohort_name}` "
                               f"and the external cohort `{ext_name}`: {_names(both)}", stage.span,
                               hint="an external cohort must hold other patients"))
    ha = _case_contents(ctx, cohort_df)
    hb = _case_contents(ctx, ext_df)
    inv: dict[str, list] = {}
    for c, h in ha.items():
        inv.setdefault(h, []).append(c)
    pairs = [(a, b) for b, h in sorted(hb.items()) for a in inv.get(h, [])]
    if pairs:
        what = ", ".join(f"`{a}` = `{b}`" for a, b in pairs[:8]) + (f" and {len(pairs) - 8} more" if len(pairs) > 8 else "")
        errs.append(Diagnostic("E645", f"`{stage.name}`: {len(pairs)} case(s) of the external cohort `{ext_name}` have the same content "
                               f"as cases of the training cohort `{cohort_name}` ({cohort_name} = {ext_name}): {what}", stage.span,
                               hint="the same images (or values) in training and external data inflate the external result"))
    return errs


def _inner_cv_checks(stage, fitted, outcome, y_strat, groups, splits, final, cohort_name, labels, patients, rule, tcv):
    """E652, before any fold runs: a select stage whose inner CV (lasso's `cv`) cannot be split in a set this
    validation fits it on: each training fold, the final model's cases, and the inner folds that choose a binary
    threshold (`threshold_cv`, split as ops/validate.py run_fold splits them). scikit-learn's stratified inner CV
    needs a class with at least `cv` cases, a continuous outcome `cv` cases, and patients with several cases `cv`
    patients. radlang/checks/folds.py finds the same from the cohort's size at `radlang check`."""
    import numpy as np

    trains = [(f"fold {f + 1} of repeat {r + 1}", tr) for r, f, tr, _ in splits]
    if final:
        trains.append(("the final model (all cases)", np.arange(len(groups))))
    if outcome == "binary" and rule and tcv >= 2:
        from sklearn.model_selection import StratifiedGroupKFold

        for what, tr in list(trains):
            yt = np.asarray(y_strat[tr]).astype(int)
            if min(int(yt.sum()), len(yt) - int(yt.sum())) >= tcv:
                inner = StratifiedGroupKFold(tcv, shuffle=True, random_state=int(stage.seed)).split(np.zeros(len(tr)), yt, patients[tr])
                trains += [(f"inner fold {i + 1} of {tcv} choosing the threshold (`threshold_cv`) in {what}", tr[a])
                           for i, (a, _) in enumerate(inner)]
    grouped = len(set(groups)) < len(groups)
    errs = []
    from radlang import registry

    for s in fitted:
        setting = registry.get(s.op).inner_cv
        if setting is None:
            continue
        c = int(s.params[setting])
        room = []
        for what, tr in trains:
            if outcome == "continuous" or y_strat is None:
                cap, held = len(tr), f"{len(tr)} cases"
            else:
                vals, cnt = np.unique(y_strat[tr], return_counts=True)
                cap = int(cnt.max())
                held = " and ".join(f"{n} of class `{labels[v] if labels and v < len(labels) else v}`" for v, n in zip(vals, cnt))
            if grouped:
                n_groups = len(set(groups[tr]))
                held += f" from {n_groups} patients"
                cap = min(cap, n_groups)
            room.append((cap, what, held))
        cap, what, held = min(room, key=lambda t: t[0])
        if cap >= c:
            continue
        need = f"{c} cases" if outcome == "continuous" else f"a class with at least {c} cases"
        errs.append(Diagnostic(
            "E652", f"`{s.name}.{setting}` is {c}, but {what} of `{stage.name}` trains `{s.name}` on cohort `{cohort_name}` with only {held}; "
            f"its inner {c}-fold CV needs {need}" + (f" and {c} patients" if grouped else ""), s.span,
            hint=(f"set `{setting}: {cap}` on `{s.name}` (the largest value every training set of `{stage.name}` allows), "
                  f"or use fewer folds (`cv`, `threshold_cv`) in `{stage.name}`"
                  if cap >= 2 else f"no inner CV fits: use fewer folds (`cv`, `threshold_cv`) in `{stage.name}`, or add cases")))
    return errs


def _fold_input(ctx, stage, graph, cohort_name, cohort_df, data, X, train):
    """The fold input of one training fold when the validation refits image stages in its folds (`extra["image_fits"]`,
    radlang/passes/fit_boundaries.py): the source tables extracted again from the cohort with those stages fit on
    the training fold's cases alone (`fit_cases`), rows and columns as in X."""
    from radlang.backends.refit import assemble

    fold_df = cohort_df.copy()
    fold_df.attrs = {**cohort_df.attrs, "radlang": {**cohort_df.attrs.get("radlang", {}),
                                                    "fit_cases": sorted(data["case_id"].iloc[train].astype(str))}}
    Xf = assemble(ctx, stage, graph, cohort_name, fold_df)
    Xf.index = Xf.index.astype(str)
    Xf = Xf.reindex(index=data["case_id"], columns=X.columns).astype(float)
    Xf.index.name = "case_id"
    return Xf


def run_evaluate(stage, ctx, pipeline=None):
    """pipeline: the function that builds the fold pipeline, as study.py defines it (`radlang render`, from
    `fold_pipeline_code`); None: the same source, run here."""
    import functools
    import hashlib
    import json

    import numpy as np
    import pandas as pd

    from radlang import registry
    from radlang.backends.cache import key
    from radlang.backends.executor import RunError
    from radlang.backends.glue import table_key
    from radlang.backends.refit import assemble, match_by, refit_of, source_columns, source_order, sources_under
    from radlang.ops.clinical_metrics import binary_metrics, evaluation_csv, evaluation_json, multiclass_metrics
    from radlang.ops.fold_engine import make_splits, run_fold
    from radlang.ops.validate import evaluation_cv

    p = stage.params
    op = registry.get(stage.op)
    reached = op.reached(stage, ctx.study)   # survival metrics, a shared split, a multi-task model's heads: only when used
    by = ctx.study.by_name()
    graph = refit_of(stage)
    model = by[graph["model"]]
    fitted = [by[n] for n in graph["nodes"] if n != model.name]
    outcome = model.type.outcome
    cohort_name = model.inputs["target"].stage
    cohort_df = ctx.results[cohort_name]
    sources = source_order(ctx, graph, cohort_name)
    for name in sources:
        if not isinstance(ctx.results[name], pd.DataFrame):
            raise RunError([Diagnostic("E646", f"`{stage.name}`: `{name}` did not produce a feature table", stage.span)])
    source_names = ", ".join(f"`{n}`" for n in sources)
    feats = assemble(ctx, stage, graph, cohort_name)

    # --- join features with outcome / patient / site by case id
    cohort_df = cohort_df.assign(case_id=cohort_df["case_id"].astype(str))
    present = cohort_df["case_id"].isin(feats.index.astype(str))
    warns = []
    if not present.all():
        missing = cohort_df.loc[~present, "case_id"].tolist()
        warns.append(f"`{stage.name}`: {len(missing)} case(s) of `{cohort_name}` have no features in {source_names} and are left out: {_names(missing)}")
    data = cohort_df[present].reset_index(drop=True)
    out_cols = ["time", "event"] if outcome == "survival" else ["outcome"]
    nan_out = data[out_cols].isna().any(axis=1)
    if nan_out.any():
        src = cohort_df.attrs.get("radlang", {})
        orig = ", ".join(f"`{src.get('columns', {}).get(c, c)}`" for c in out_cols)
        raise RunError([Diagnostic("E647", f"`{stage.name}`: case(s) {_names(data.loc[nan_out, 'case_id'])} of cohort `{cohort_name}` "
                                   f"({src.get('source', '?')}) have no outcome in column {orig}", stage.span,
                                   hint="fill in the outcome or remove the cases from the manifest")])
    X = feats.copy()
    X.index = X.index.astype(str)
    X = X.loc[data["case_id"]].astype(float)
    X.index.name = "case_id"
    y, y_strat = _outcome_arrays(data, outcome, reached)
    split_ref = stage.inputs.get("split")      # a shared split (ops/split.py) decides the folds instead of `cv`
    cv = evaluation_cv(stage, by)
    gref = stage.inputs.get("groups")
    gattr = (gref.attr or "patient") if gref is not None else (cv.get("groups") or "").rpartition(".")[2] or None
    if gattr is not None:
        gcol = {"id": "case_id", "patient": "patient_id", "site": "site"}.get(gattr, "patient_id")
        groups = data[gcol].astype(str).to_numpy()
    else:
        groups = data["patient_id"].astype(str).to_numpy()
    sites = data["site"].astype(str).to_numpy() if "site" in data.columns else None
    errs, w2 = _design_checks(ctx, stage, cohort_name, data, y_strat, outcome, cv, groups, sites, X.shape[1])
    warns += w2

    # --- external cohort
    ext_ref = stage.inputs.get("external")
    Xe = ye = ext_data = None
    if ext_ref is not None:
        ext_df = ctx.results[ext_ref.stage]
        ext_df = ext_df.assign(case_id=ext_df["case_id"].astype(str))
        errs += _external_checks(ctx, stage, cohort_name, cohort_df, ext_ref.stage, ext_df)
        if not errs:
            ef = assemble(ctx, stage, graph, cohort_name, ext_df)
            ef.index = ef.index.astype(str)
            ext_data = ext_df[ext_df["case_id"].isin(ef.index)].reset_index(drop=True)
            lost = [c for c in X.columns if c not in ef.columns]
            if lost:
                warns.append(f"`{stage.name}`: {len(lost)} feature(s) missing in the external cohort `{ext_ref.stage}` are imputed: {_names(lost)}")
            Xe = ef.reindex(index=ext_data["case_id"], columns=X.columns).astype(float)
            Xe.index.name = "case_id"
            ye, _ = _outcome_arrays(ext_data, outcome, reached)
    if errs:
        raise RunError(errs)

    @functools.cache
    def draw_splits():
        if split_ref is not None:
            return reached["shared_splits"](stage, split_ref.stage, ctx.results[split_ref.stage], data["case_id"], cohort_name)
        split_seed = stage.seed if cv.get("seed") is None else int(cv["seed"])
        return make_splits(cv, y_strat if outcome in ("binary", "multiclass", "survival") else None, groups, sites, split_seed)

    # drawn before the cache look-up only for an operator whose `fold_data` reads them: drawing imports scikit-learn,
    # which a warm re-run does not otherwise need
    splits = draw_splits() if any(registry.get(s.op).fold_data is not None for s in (*[f for f in fitted if f.fit != "none"], model)) \
        else None

    # --- what each fitted node's factory gets: the outcome kind, each case's patient, what its operator's `fold_data`
    # reads of the cohort tables (ComBat's batches), and, for a selector that declares it, re-extractions of its input
    # as raters (unsupervised; the selection itself is fit inside folds)
    patients = dict(zip(data["case_id"].astype(str), data["patient_id"].astype(str)))
    if ext_data is not None:
        patients.update(zip(ext_data["case_id"].astype(str), ext_data["patient_id"].astype(str)))
    fold_inputs, raters_by_stage, fold_data = {}, {}, {}
    for s in fitted:
        if s.fit == "none":
            continue
        fold_inputs[s.name] = {"outcome": outcome, "patients": patients}
        if registry.get(s.op).fold_data is not None:
            fold_data[s.name], problems = registry.get(s.op).fold_data(s, data, ext_data, splits)
            errs += problems
            fold_inputs[s.name].update(fold_data[s.name])
        if not registry.get(s.op).raters:
            continue
        under = sources_under(graph, s.name)
        sub = {**graph, "sources": under}
        raters = {}
        for i, pert in enumerate(s.params.get("perturb") or []):
            pp = dict(pert)
            if pp.get("kind") == "noise":
                pp["seed"] = s.seed
            raters[f"{i}:{pp['kind']}"] = assemble(ctx, stage, sub, cohort_name, cohort_df, perturb=pp)
        rt = s.inputs.get("retest")
        if rt is not None:
            raters["retest"] = assemble(ctx, stage, sub, cohort_name, ctx.results[rt.stage])
        for t in raters.values():
            t.index = t.index.astype(str)
        raters_by_stage[s.name] = raters
        fold_inputs[s.name]["raters"] = raters
    # the model's own per-case inputs besides its features and target (a multi-task model's other heads' targets)
    mop = registry.get(model.op)
    model_inputs = {"outcome": outcome, "patients": patients}
    if mop.fold_data is not None:
        fold_data[model.name], problems = mop.fold_data(model, data, ext_data, splits)
        errs += problems
        model_inputs.update(fold_data[model.name])
    if errs:
        raise RunError(errs)

    # --- the fold pipeline: built and fit inside the worker, on the training fold only
    from radlang.ops.models import pipeline_arguments, pipeline_from_source, recipe_factories, search_scoring

    n_classes = len(np.unique(y_strat)) if outcome in ("binary", "multiclass") else 0
    columns = source_columns(graph, X, sources)
    model_recipe, mparams, factory = _model_recipe(ctx.study, graph, model, columns, fold_inputs, n_classes)
    fold_args = pipeline_arguments(model_recipe, mparams, model_inputs)
    if pipeline is None:
        _, name, source = fold_pipeline_code(stage, ctx.study)[0]
        build = (pipeline_from_source, (source, name, recipe_factories(model_recipe, factory), fold_args))
    else:
        build = (pipeline, (fold_args,))
    wanted = set(p.get("metrics") or _default_metrics(outcome, p.get("horizons")))
    needs_threshold = p.get("threshold") is not None or bool(wanted & {"sensitivity", "specificity", "accuracy"})
    rule = (p.get("threshold") or {"metric": "youden"}) if outcome == "binary" and needs_threshold else None

    # --- cache: same recipe, same data -> same outputs
    ck = key("evaluate", op.version, mop.version, p, stage.seed, [(by[n].name, by[n].op, by[n].params, by[n].seed) for n in graph["nodes"]], graph,
             (model.op, model.params, model.seed), [mparams.get("networks")] + [b[4].get("networks") for b in mparams.get("branches", [])],
             table_key(X), data[["case_id", "patient_id"] + out_cols].to_csv(index=False),
             list(map(str, groups)), table_key(Xe) if Xe is not None else None,
             ext_data[["case_id"] + out_cols].to_csv(index=False) if ext_data is not None else None,
             {k: {n: table_key(t) for n, t in v.items()} for k, v in raters_by_stage.items()}, fold_data,
             list(sites) if sites is not None else None, *([ctx.keys[split_ref.stage]] if split_ref is not None else []),
             [(n, by[n].op, by[n].params, ctx.keys.get(n)) for n in stage.extra.get("image_fits", [])])

    images = stage.extra.get("image_fits", [])

    times = reached["evaluation_times"](p.get("horizons"), p.get("ibs_points", 50)) if outcome == "survival" else None
    surv_metrics = reached.get("survival_metrics")

    def fold_plan():
        """Each case's patient, the threshold's inner folds, and one job per training fold."""
        patients = data["patient_id"].astype(str).to_numpy()
        tcv = int(p.get("threshold_cv", 0))
        splits = draw_splits()
        errs = _inner_cv_checks(stage, fitted, outcome, y_strat, groups, splits, Xe is not None, cohort_name,
                                cohort_df.attrs.get("radlang", {}).get("classes"), patients, rule, tcv)
        if errs:
            raise RunError(errs)
        # image stages fit on data (Nyúl landmarks) are refit in each training fold: each fold's features come from images
        # prepared with what its training cases alone taught them
        fold_X = [_fold_input(ctx, stage, graph, cohort_name, cohort_df, data, X, tr) for _, _, tr, _ in splits] if images else None
        jobs = [{"build": build, "X": fold_X[i] if fold_X else X, "y": y, "train": tr, "test": te, "outcome": outcome, "rule": rule,
                 "search": bool(mparams.get("search")), "patients": patients, "threshold_cv": tcv, "seed": stage.seed, "times": times,
                 "survival_predictions": reached.get("survival_predictions"), "survival_artefact": reached.get("survival_artefact")}
                for i, (_, _, tr, te) in enumerate(splits)]
        return patients, tcv, jobs

    def folds():
        """[(repeat, fold, job)]: the training folds that an explanation of the fold models (`shap` with `per_fold`)
        refits. A function: a cached evaluation builds them only when asked."""
        return [(rep, fold, job) for (rep, fold, _, _), job in zip(draw_splits(), fold_plan()[2])]

    cached = ctx.cache.get(ck)
    if cached is not None:
        mbytes, pbytes, metrics, model_bytes, card_bytes = cached
        _write_outputs(stage, ctx, mbytes, pbytes, model_bytes, card_bytes)
        ctx.warnings.extend(metrics.get("warnings", []))
        ctx.keys[stage.name] = ck
        _report(stage, ctx, mbytes, model_bytes, reached)
        return {"metrics": metrics, "predictions": pd.read_csv(ctx.out / "predictions" / f"{stage.name}.csv"), "folds": folds}

    patients, tcv, fold_jobs = fold_plan()
    splits = draw_splits()
    if times:
        errs = _horizon_checks(stage, cohort_name, cohort_df, data, splits, p["horizons"], ext_ref, ext_data, reached["horizon_problems"])
        if errs:
            raise RunError(errs)
    # the final model: fit on every training case and applied to the external cohort if any; it runs with the folds (in
    # a worker when they go to the pool) and comes back saved (model_artefact: JSON or skops bytes)
    Xall, yall = (pd.concat([X, Xe]), np.concatenate([y, ye])) if Xe is not None else (X, y)
    final_job = {"build": build, "X": Xall, "y": yall, "train": np.arange(len(X)), "test": np.arange(len(X), len(Xall)),
                  "outcome": outcome, "rule": rule, "save_model": True, "search": bool(mparams.get("search")),
                  "patients": np.concatenate([patients, ext_data["patient_id"].astype(str).to_numpy()]) if Xe is not None else patients,
                  "threshold_cv": tcv, "seed": stage.seed, "times": times,
                 "survival_predictions": reached.get("survival_predictions"), "survival_artefact": reached.get("survival_artefact")}
    results: list = [None] * (len(fold_jobs) + 1)
    try:
        _run_folds(ctx, run_fold, [*fold_jobs, final_job], results)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as e:   # a model that cannot be fit on these data
        which = next((f"fold {s[1] + 1} of repeat {s[0] + 1}" for s, r in zip(splits, results) if r is None), "the final model")
        raise RunError([Diagnostic("E648", f"`{stage.name}`: fitting `{model.name}` on cohort `{cohort_name}` failed in {which}: {e}",
                                   stage.span, hint="check the settings of the select and model stages for these data")]) from None

    # --- predictions and metrics
    rows = []
    fold_info = []
    for (rep, fold, tr, te), r in zip(splits, results):
        sub = data.iloc[te]
        d = {"set": "cv", "repeat": rep, "fold": fold, "case_id": sub["case_id"].to_numpy(), "patient_id": sub["patient_id"].to_numpy(),
             **({"site": sub["site"].astype(str).to_numpy()} if "site" in sub.columns else {})}
        rows.append(_pred_frame(d, sub, r, outcome, out_cols, p.get("horizons"), times))
        if r.get("threshold") is not None:
            yt = y[te].astype(int)
            pred = r["test"] >= r["threshold"]
            fold_info.append({"repeat": rep, "fold": fold, "threshold": r["threshold"], "train_sensitivity": r["train_sensitivity"],
                              "train_specificity": r["train_specificity"],
                              "test_sensitivity": float(pred[yt == 1].mean()) if (yt == 1).any() else None,
                              "test_specificity": float((~pred[yt == 0]).mean()) if (yt == 0).any() else None})
    final = results[-1]
    if Xe is not None:
        d = {"set": "external", "repeat": 0, "fold": -1, "case_id": ext_data["case_id"].to_numpy(), "patient_id": ext_data["patient_id"].to_numpy(),
             **({"site": ext_data["site"].astype(str).to_numpy()} if "site" in ext_data.columns else {})}
        rows.append(_pred_frame(d, ext_data, final, outcome, out_cols, p.get("horizons"), times))
    preds = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()

    mp = {**p, "metrics": p.get("metrics") or _default_metrics(outcome, p.get("horizons"))}
    metrics = {
        "stage": stage.name, "outcome": outcome, "model": model.op, "cohort": cohort_name, "features": ", ".join(sources),
        "pipeline": (["impute"] if mparams.get("impute") not in (None, "none") else []) + [s.name for s in fitted]
                    + (["scale"] if mparams.get("scale") not in (None, "none") else []) + [model.name],
        "search": {**mparams["search"], "scoring": search_scoring(model.op, mparams["search"])} if mparams.get("search") else None,
        "n_cases": len(data), "n_patients": len(set(data["patient_id"])), "n_features": int(X.shape[1]),
        "cv": {**cv, "splits": len(splits), "grouped": bool(len(set(groups)) < len(groups)),
               **({"shared_split": split_ref.stage} if split_ref is not None else {})},
        "seed": stage.seed,
    }
    if images:
        metrics["image_fits"] = images
    if outcome in ("binary", "multiclass"):
        vals, counts = np.unique(y_strat, return_counts=True)
        metrics["outcome_counts"] = {str(int(v)): int(c) for v, c in zip(vals, counts)}
    if outcome == "binary" and rule is not None:
        metrics["threshold"] = {"rule": rule, "folds": fold_info}
        if fold_info:
            metrics["threshold"]["train_sensitivity_min"] = min(f["train_sensitivity"] for f in fold_info)
            metrics["threshold"]["train_specificity_min"] = min(f["train_specificity"] for f in fold_info)
    cvp = preds[preds["set"] == "cv"] if len(preds) else preds
    if outcome == "survival":
        # inside each fold: the censoring distribution of the training fold; externally: of the training cohort
        def fold(r, tr, te, rep, ys):
            return {"repeat": rep, "train_time": y["time"][tr], "train_event": y["event"][tr], "time": ys["time"][te], "event": ys["event"][te],
                    "risk": r["test"], "surv": r.get("surv"), "cut": r["cut"], "patients": patients_all[te]}

        patients_all = np.concatenate([patients, ext_data["patient_id"].astype(str).to_numpy()]) if Xe is not None else patients
        if len(cvp):
            metrics["cross_validation"] = surv_metrics([fold(r, tr, te, rep, y) for (rep, _, tr, te), r in zip(splits, results)], mp, stage.seed)
            if cv["kind"] == "leave_one_site_out":   # one held-out site per fold: each site's metrics are its fold's
                metrics["per_site"] = {str(sites[te][0]): surv_metrics([fold(r, tr, te, rep, y)], mp, stage.seed)
                                       for (rep, _, tr, te), r in sorted(zip(splits, results), key=lambda sr: str(sites[sr[0][3]][0]))}
    elif len(cvp):
        metrics["cross_validation"] = _metrics_for(cvp, outcome, mp, stage.seed, binary_metrics, multiclass_metrics)
        if cv["kind"] == "leave_one_site_out":   # each held-out site on its own: how the model transfers to every site
            metrics["per_site"] = {str(site): _metrics_for(g, outcome, mp, stage.seed, binary_metrics, multiclass_metrics)
                                   for site, g in cvp.groupby("site", sort=True)}
    if Xe is not None:
        ep = preds[preds["set"] == "external"]
        em = (surv_metrics([fold(final, np.arange(len(X)), np.arange(len(X), len(Xall)), 0, yall)], mp, stage.seed)
              if outcome == "survival" else _metrics_for(ep, outcome, mp, stage.seed, binary_metrics, multiclass_metrics))
        em["cohort"] = ext_ref.stage
        if final.get("threshold") is not None:
            em["threshold"] = final["threshold"]
            em["train_sensitivity"] = final["train_sensitivity"]
            em["train_specificity"] = final["train_specificity"]
        metrics["external"] = em
    sel = {}
    for s in fitted:
        if s.fit == "none" or s.type.kind == "Model":   # a branch model of late fusion selects nothing itself
            continue
        lists = [r.get("selected", {}).get(s.name, []) for r in results[:len(splits)]]
        if not lists:
            continue
        freq: dict[str, int] = {}
        for lst in lists:
            for f in lst:
                freq[f] = freq.get(f, 0) + 1
        sel[s.name] = {"per_fold_count": [len(lst) for lst in lists],
                       "frequency": {f: c / len(lists) for f, c in sorted(freq.items())}}
        sel[s.name]["final"] = final.get("selected", {}).get(s.name, [])
    metrics["selection"] = sel
    heads_out = [r["heads"] for r in results[:len(splits)] if "heads" in r]
    if heads_out:   # a multi-task model: its other heads' held-out metrics, on the same folds
        metrics["heads"] = reached["head_metrics"](model, preds, heads_out, data, mp, stage.seed, binary_metrics, multiclass_metrics, surv_metrics)
    if mparams.get("search"):
        metrics["search"]["best_params"] = [r.get("best_params") for r in results]
    metrics["warnings"] = warns
    ctx.warnings.extend(warns)
    mbytes = evaluation_json(metrics)
    pbytes = evaluation_csv(preds)
    model_bytes = final["model_bytes"]
    card = {"stage": stage.name, "model": model.name, "operator": model.op, "outcome": outcome, "cohort": cohort_name, "sources": sources,
            "columns": [str(c) for c in X.columns], "threshold": final.get("threshold"), "classes": n_classes, "refit": graph,
            "match": match_by(ctx, graph), **model_format(stage.name, model_bytes), "sha256": hashlib.sha256(model_bytes).hexdigest()}
    card_bytes = (json.dumps(card, indent=2, sort_keys=True) + "\n").encode()
    _write_outputs(stage, ctx, mbytes, pbytes, model_bytes, card_bytes)
    ctx.cache.put(ck, (mbytes, pbytes, metrics, model_bytes, card_bytes))
    ctx.keys[stage.name] = ck
    _report(stage, ctx, mbytes, model_bytes, reached)
    return {"metrics": metrics, "predictions": preds, "folds": folds}


def model_format(stage_name, model_bytes):
    """The saved final model's format and file under models/: a survival model's JSON (radlang-survival/1, see
    survival_models.survival_artefact) as <stage>.model.json, anything else as skops' <stage>.skops."""
    if model_bytes[:1] == b"{":
        return {"format": "radlang-survival/1", "file": f"{stage_name}.model.json"}
    return {"format": "skops", "file": f"{stage_name}.skops"}


def _write_outputs(stage, ctx, mbytes, pbytes, model_bytes, card_bytes):
    """metrics/<stage>.json, predictions/<stage>.csv, and the final model: models/<stage>.skops (or <stage>.model.json,
    model_format) with its card models/<stage>.json (what `radlang predict` needs: the input columns, the threshold, the
    model file and its sha256)."""
    from radlang.backends.cache import atomic_write_bytes

    atomic_write_bytes(ctx.out / "metrics" / f"{stage.name}.json", mbytes)
    atomic_write_bytes(ctx.out / "predictions" / f"{stage.name}.csv", pbytes)
    atomic_write_bytes(ctx.out / "models" / model_format(stage.name, model_bytes)["file"], model_bytes)
    atomic_write_bytes(ctx.out / "models" / f"{stage.name}.json", card_bytes)


def _report(stage, ctx, mbytes, model_bytes, reached):
    """Plots (binary outcomes) under <out>/plots/<stage>/ and the run summary's lines, both from the metrics
    exactly as written to <out>/metrics/<stage>.json: a cached re-run shows the same."""
    import hashlib
    import json
    from importlib.metadata import PackageNotFoundError, version

    from radlang import registry
    from radlang.backends.cache import key
    from radlang.ops.evaluation_plots import evaluation_plots, write_evaluation_plots
    from radlang.ops.evaluation_summary import evaluation_summary

    shown = json.loads(mbytes.decode("utf-8"))
    # The PNGs are a pure function of the metrics bytes (and the plotting code and matplotlib): cached under those,
    # a cached evaluation does not import matplotlib. Own counters: run.json's hits/misses stay the stages' own.
    try:
        mpl = version("matplotlib")
    except PackageNotFoundError:
        mpl = None
    plot_cache = ctx.cache.uncounted()
    pk = key("evaluation-plots", registry.get(stage.op).version, mpl, hashlib.sha256(mbytes).hexdigest())
    drawn = plot_cache.get(pk)
    if drawn is None:
        drawn = evaluation_plots(shown, reached.get("survival_plots"))
        plot_cache.put(pk, drawn)
    plots = write_evaluation_plots(shown, ctx.out / "plots" / stage.name, drawn)
    files = [f"metrics/{stage.name}.json", f"predictions/{stage.name}.csv"] + [f"plots/{stage.name}/{n}" for n in plots] + [
        f"models/{model_format(stage.name, model_bytes)['file']}", f"models/{stage.name}.json"]
    ctx.summary.extend(evaluation_summary(shown, files))


def _default_metrics(outcome, horizons=None):
    from radlang.ops.validate import BINARY_METRICS, HORIZON_METRICS, MULTICLASS_METRICS, REGRESSION_METRICS, SURVIVAL_METRICS

    out = list({"binary": BINARY_METRICS, "multiclass": MULTICLASS_METRICS, "survival": SURVIVAL_METRICS,
                "continuous": REGRESSION_METRICS}.get(outcome, ()))
    return out if horizons or outcome != "survival" else [m for m in out if m not in HORIZON_METRICS]


def _horizon_checks(stage, cohort_name, cohort_df, data, splits, horizons, ext_ref, ext_data, problems_at):
    """E680: a horizon the survival metrics cannot score: beyond the last follow-up of the cohort, or outside the
    follow-up of a fold's held-out cases (or the external cohort), naming the time column and the cases that bound it.
    problems_at: survival_metrics.horizon_problems (the evaluation's `reached` code)."""
    col = cohort_df.attrs.get("radlang", {}).get("columns", {}).get("time", "time")
    t = data["time"].to_numpy(float)
    ids = data["case_id"].astype(str).to_numpy()
    hint = "state horizons within follow-up (before the last time, at or after the first) of every fold, or use fewer folds"

    def cases(kind, t_train, ids_train, t_test, ids_test):
        """The cases at the bound a horizon crosses."""
        tt, ii = (t_train, ids_train) if kind == "train" else (t_test, ids_test)
        edge = tt.min() if kind == "first" else tt.max()
        return _names(ii[tt == edge])

    checks = [(f"cohort `{cohort_name}`", t, ids, t, ids)]
    checks += [(f"the held-out cases of fold {f + 1} of repeat {rep + 1}", t[tr], ids[tr], t[te], ids[te]) for rep, f, tr, te in splits]
    if ext_data is not None:
        checks.append((f"the external cohort `{ext_ref.stage}`", t, ids, ext_data["time"].to_numpy(float),
                       ext_data["case_id"].astype(str).to_numpy()))
    errs = []
    for where, t_tr, i_tr, t_te, i_te in checks:
        errs += [Diagnostic("E680", f"`{stage.name}`: {msg}, column `{col}` (case(s) {cases(kind, t_tr, i_tr, t_te, i_te)})", stage.span, hint=hint)
                 for kind, msg in problems_at(horizons, t_tr, t_te, where)]
        if errs and where.startswith("cohort"):
            break                        # beyond the whole cohort's follow-up: every fold says the same
    return errs[:20]


def _pred_frame(d, sub, r, outcome, out_cols, horizons=None, times=None):
    import numpy as np
    import pandas as pd

    for c in out_cols:
        d[c] = sub[c].to_numpy()
    if outcome == "binary":
        d["probability"] = r["test"]
        if r.get("threshold") is not None:
            d["threshold"] = np.full(len(sub), r["threshold"])
            d["predicted"] = (r["test"] >= r["threshold"]).astype(int)
    elif outcome == "multiclass":
        P = np.asarray(r["test"])
        for k in range(P.shape[1]):
            d[f"probability_{k}"] = P[:, k]
    elif outcome == "continuous":
        d["prediction"] = r["test"]
    else:
        d["risk"] = r["test"]
        if r.get("cut") is not None:
            d["risk_group"] = np.where(r["test"] > r["cut"], "high", "low")
        for h in (horizons or []) if r.get("surv") is not None else []:
            d[f"survival_at_{h:g}"] = np.asarray(r["surv"])[:, times.index(float(h))]
    return pd.DataFrame(d)


def _metrics_for(df, outcome, params, seed, binary_metrics, multiclass_metrics):

    if outcome == "binary":
        pred = df["predicted"].to_numpy() if "predicted" in df.columns else None
        m = binary_metrics(df["outcome"].to_numpy(), df["probability"].to_numpy(), pred, df["patient_id"].astype(str).to_numpy(), params, seed)
        per = []
        for _, g in df.groupby("repeat", sort=True):
            if g["outcome"].nunique() == 2 and "auc" in m:
                from sklearn.metrics import roc_auc_score

                per.append(float(roc_auc_score(g["outcome"], g["probability"])))
        if per and "auc" in m:
            m["auc"]["per_repeat"] = per
        return m
    if outcome == "multiclass":
        cols = sorted([c for c in df.columns if c.startswith("probability_")], key=lambda c: int(c.split("_")[1]))
        return multiclass_metrics(df["outcome"].to_numpy(), df[cols].to_numpy(), params)
    from radlang.ops.clinical_metrics import regression_metrics

    return regression_metrics(df["outcome"].to_numpy(), df["prediction"].to_numpy(), df["patient_id"].astype(str).to_numpy(), params, seed)
