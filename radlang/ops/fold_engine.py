"""The fold engine of validation (self-contained: the renderer inlines it).

`make_splits` draws group-aware splits (a patient's cases never straddle a split); `run_fold` builds the refit
graph's estimator inside a worker, fits it on one training fold and predicts the held-out fold, choosing a
binary operating threshold on training data only (`choose_threshold`, on inner out-of-fold predictions with
`threshold_cv`); `fitted_selections` reports what each selector kept; `model_artefact` saves the final model
reproducibly: in skops' format (`skops_io` imports skops without the array libraries it never needs), or a
`cox` / `survival_mlp` pipeline of plain steps as JSON (`survival_artefact`).
"""

from __future__ import annotations



def make_splits(cv, y_strat, groups, sites, seed):
    """[(repeat, fold, train_idx, test_idx)]. Group-aware whenever a group (patient) has several cases."""
    import numpy as np
    from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

    n = len(groups)
    idx = np.arange(n)
    kind = cv["kind"]
    out = []
    if kind == "none":
        return out
    if kind == "leave_one_site_out":
        for f, (tr, te) in enumerate(LeaveOneGroupOut().split(idx, groups=np.asarray(sites))):
            out.append((0, f, tr, te))
        return out
    grouped = len(set(groups)) < n
    for r in range(int(cv.get("repeats", 1))):
        rs = seed + r
        k = int(cv["k"])
        if kind == "stratified_kfold" and y_strat is not None:
            splitter = StratifiedGroupKFold(k, shuffle=True, random_state=rs) if grouped else StratifiedKFold(k, shuffle=True, random_state=rs)
        else:
            splitter = GroupKFold(k, shuffle=True, random_state=rs) if grouped else KFold(k, shuffle=True, random_state=rs)
        ys = y_strat if y_strat is not None else np.zeros(n)
        for f, (tr, te) in enumerate(splitter.split(idx, ys, groups=np.asarray(groups) if grouped else None)):
            out.append((r, f, tr, te))
    return out


def choose_threshold(y, p, rule):
    """The operating threshold (predict positive when p >= t), from training predictions only.
    rule: {"metric": "youden"} or {"metric": "sensitivity"|"specificity", "op": ">="|">", "value": v}."""
    import math

    import numpy as np

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    metric = rule["metric"]
    if metric == "youden":
        from sklearn.metrics import roc_curve

        fpr, tpr, thr = roc_curve(y, p)
        j = tpr - fpr
        ok = np.isfinite(thr)
        best = int(np.argmax(np.where(ok, j, -np.inf)))
        return float(thr[best])
    v = float(rule["value"])
    strict = rule.get("op") == ">"
    if metric == "sensitivity":
        pos = np.sort(p[y == 1])[::-1]
        need = (math.floor(v * len(pos)) + 1) if strict else math.ceil(v * len(pos) - 1e-12)
        need = min(max(need, 1), len(pos))
        return float(pos[need - 1])          # the need-th highest positive score: at least `need` positives at or above it
    if metric == "specificity":
        neg = np.sort(p[y == 0])
        need = (math.floor(v * len(neg)) + 1) if strict else math.ceil(v * len(neg) - 1e-12)
        need = min(max(need, 1), len(neg))
        return float(np.nextafter(neg[need - 1], np.inf))   # `need` negatives strictly below it
    raise ValueError(f"unknown threshold rule {metric!r}")


def run_fold(fold_job):
    """Fit the pipeline on one training fold; predict the held-out fold (and the training fold, for the threshold).
    fold_job: {"build": (fn, args), "X": DataFrame, "y": array, "train": idx, "test": idx, "outcome": the outcome kind
    (binary, multiclass, continuous, survival), "rule": dict|None, "survival_predictions": survival_predictions for a survival outcome, "patients": patient id per row of X, or None, "times": the times at
    which a survival model's held-out survival probabilities are wanted, or None, "save_model": True to return the fitted
    pipeline's bytes (model_artefact) under "model_bytes"}. A model that declares `wants_unlabelled` (DANN with `target_unlabelled`)
    also gets the held-out rows' features, through the steps before it, as `unlabelled`; their outcomes never reach it."""
    import warnings

    import numpy as np

    fn, args = fold_job["build"]
    pipe = fn(*args)
    X, y = fold_job["X"], fold_job["y"]
    tr, te = fold_job["train"], fold_job["test"]
    fit_params = {}
    if fold_job.get("patients") is not None and hasattr(pipe, "param_grid"):
        # several cases per patient: the grid search's inner CV keeps each patient in one inner fold too (selectors
        # group their own inner CV by the patients they were built with)
        g_tr = np.asarray(fold_job["patients"])[tr]
        if len(set(g_tr)) < len(g_tr):
            from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

            kind = StratifiedGroupKFold if type(pipe.cv).__name__ == "StratifiedKFold" else GroupKFold
            pipe.set_params(cv=kind(pipe.cv.n_splits, shuffle=True, random_state=pipe.cv.random_state))
            fit_params["groups"] = g_tr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        last = pipe.steps[-1][1] if hasattr(pipe, "steps") else None
        if getattr(last, "wants_unlabelled", False) and len(te):
            # a model that trains on the held-out cases' features, never their outcomes (DANN's `target_unlabelled`):
            # the steps before it are fit on the training fold, as Pipeline.fit fits them, and transform both
            x_tr, x_te = X.iloc[tr], X.iloc[te]
            if len(pipe.steps) > 1:
                steps = pipe[:-1]
                x_tr, x_te = steps.fit_transform(x_tr, y[tr]), steps.transform(x_te)
            last.fit(x_tr, y[tr], unlabelled=x_te)
        else:
            pipe.fit(X.iloc[tr], y[tr], **fit_params)
        fitted = pipe.best_estimator_ if hasattr(pipe, "best_estimator_") else pipe
        selected = fitted_selections(fitted)
        if fold_job["outcome"] == "survival":
            out = {**fold_job["survival_predictions"](fitted, X, tr, te, fold_job.get("times")), "threshold": None, "selected": selected}
        elif fold_job["outcome"] == "continuous":   # a regression model's predicted values
            out = {"test": np.asarray(pipe.predict(X.iloc[te]), float) if len(te) else np.empty(0), "threshold": None, "selected": selected}
        else:
            p_te = pipe.predict_proba(X.iloc[te]) if len(te) else np.empty((0, len(fitted.classes_)))
            out = {"test": p_te[:, 1] if fold_job["outcome"] == "binary" else p_te, "threshold": None, "selected": selected}
        if fold_job["outcome"] == "binary" and fold_job.get("rule"):
            k = int(fold_job.get("threshold_cv") or 0)
            yt = np.asarray(y[tr]).astype(int)
            if k >= 2 and min(int(yt.sum()), int(len(yt) - yt.sum())) >= k:
                # choose on out-of-fold predictions inside the training fold: scores the model never saw while fitting
                from sklearn.base import clone
                from sklearn.model_selection import StratifiedGroupKFold

                g_in = np.asarray(fold_job["patients"])[tr] if fold_job.get("patients") is not None else np.arange(len(tr)).astype(str)
                p_tr = np.empty(len(tr))
                for a, b in StratifiedGroupKFold(k, shuffle=True, random_state=int(fold_job.get("seed", 0))).split(X.iloc[tr], yt, g_in):
                    inner = clone(pipe)
                    inner_params = {kk: (v[a] if hasattr(v, "__len__") and len(v) == len(tr) else v) for kk, v in fit_params.items()}
                    inner.fit(X.iloc[tr].iloc[a], yt[a], **inner_params)
                    p_tr[b] = inner.predict_proba(X.iloc[tr].iloc[b])[:, 1]
            else:
                p_tr = pipe.predict_proba(X.iloc[tr])[:, 1]
            t = choose_threshold(y[tr], p_tr, fold_job["rule"])
            pred = p_tr >= t
            out.update(threshold=t, train_sensitivity=float(pred[yt == 1].mean()), train_specificity=float((~pred[yt == 0]).mean()))
        if "search" in fold_job and hasattr(pipe, "best_params_"):
            back = {"n_neighbors": "k"}
            out["best_params"] = {back.get(k.split("__", 1)[1], k.split("__", 1)[1]): v for k, v in pipe.best_params_.items()}
        if fold_job.get("save_model"):
            out["model_bytes"] = model_artefact(pipe, fold_job.get("survival_artefact"))   # saved where it was fit: the model never crosses processes
        heads = held_out_heads(fitted, X.iloc[te])
        if heads is not None:
            out["heads"] = heads
    return out


def survival_predictions(fitted, X, tr, te, times):
    """A fitted survival pipeline's risk scores for the held-out rows, the median training-fold risk (the cut-off
    between the low- and high-risk groups, chosen on training data only) and, at `times`, the held-out survival
    probabilities (rows: cases, columns: times)."""
    import numpy as np

    out = {"test": np.asarray(fitted.predict(X.iloc[te]), float) if len(te) else np.empty(0),
           "cut": float(np.median(fitted.predict(X.iloc[tr])))}
    if times is not None and len(times) and len(te):
        Xt = fitted[:-1].transform(X.iloc[te]) if len(fitted.steps) > 1 else X.iloc[te]
        out["surv"] = fitted[-1].survival_at(Xt, times)
    return out


def held_out_heads(pipe, X):
    """A multi-task model's held-out outputs of every head (its `held_out_heads`, after the pipeline's earlier steps);
    None for any other model."""
    steps = getattr(pipe, "steps", None) or [("model", pipe)]
    model = steps[-1][1]
    if not hasattr(model, "held_out_heads"):
        return None
    return model.held_out_heads(pipe[:-1].transform(X) if len(steps) > 1 else X)


def fitted_selections(pipe):
    """{selector step name: the feature names it kept}, for every fitted selector in a pipeline, also inside the
    branches of a join (a ColumnTransformer)."""
    out = {}
    for name, step in getattr(pipe, "steps", []):
        if hasattr(step, "get_support"):
            out[name] = [str(c) for c in step.get_feature_names_out()]
        for branch in getattr(step, "named_transformers_", {}).values():
            out.update(fitted_selections(branch))
    return out


def skops_io():
    """skops.io, imported without torch, Dask or CuPy. On import, skops lists the scikit-learn estimators it trusts with
    scikit-learn's `all_estimators`, whose `pkgutil.walk_packages` imports every subpackage of scikit-learn to find
    the modules in it, also the vendored array-API adapters that it then leaves out of the list (`sklearn.externals`):
    `sklearn.externals.array_api_compat.torch` imports torch (seconds, and a slow interpreter exit), `.dask` imports
    dask.array. While skops is imported, those adapter packages not imported yet stand in sys.modules as empty
    packages (nothing to walk), and are removed afterwards: the trusted types are the same, and a later import of an
    adapter is the real one."""
    import sys
    import types

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    stand_ins = {}
    for lib in ("torch", "dask", "cupy"):
        name = f"sklearn.externals.array_api_compat.{lib}"
        if name not in sys.modules:
            stand_ins[name] = sys.modules[name] = types.ModuleType(name)
            stand_ins[name].__path__ = []
    try:
        import skops.io as sio
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return sio


def model_artefact(model, survival_artefact=None):
    """The final fitted pipeline as bytes. A `cox` or `survival_mlp` pipeline of plain steps, with `survival_artefact`
    given (a survival outcome): JSON (its numbers, nothing to import to save it and nothing that runs when it is
    read). Any other: skops' format, which
    loads without running code when the loader names the types it trusts; the fold-only inputs of selectors
    (patients, raters) are dropped, and so is what an estimator names `transient` (a network model's backbone, loss,
    optimiser and schedule code, rebuilt from its plain settings), and the archive is made reproducible: skops names its arrays by memory address
    and stamps the time, so the arrays are renamed in order of appearance and every entry gets a fixed date: the
    same model gives the same bytes."""
    import io
    import itertools
    import json
    import zipfile

    plain = survival_artefact(getattr(model, "best_estimator_", model)) if survival_artefact is not None else None
    if plain is not None:
        return plain
    sio = skops_io()

    def strip(est):
        for _, step in getattr(est, "steps", []):
            strip(step)
        for branch in getattr(est, "named_transformers_", {}).values():
            strip(branch)
        fitted = getattr(est, "estimators_", None)
        templates = getattr(est, "estimators", None)
        for sub in (fitted if isinstance(fitted, list) else []) + [e for _, e in (templates if isinstance(templates, list) else [])]:
            strip(sub)      # the branches of a late-fusion model, fitted and as templates
        for name in getattr(est, "transient", ("fold_inputs",) if hasattr(est, "fold_inputs") else ()):
            setattr(est, name, None)

    model = getattr(model, "best_estimator_", model)
    strip(model)
    raw = zipfile.ZipFile(io.BytesIO(sio.dumps(model)))
    schema = json.loads(raw.read("schema.json"))
    names, ids, numbers = {}, {}, itertools.count()

    def rename(node):       # array files and object ids (skops' memo of shared objects) are numbered in a fixed walk order
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                node["file"] = names.setdefault(node["file"], f"{len(names):06d}.npy")
            if isinstance(node.get("__id__"), int):
                # a JSON scalar (a string, a number) is shared or not as the interpreter happened to intern it: each
                # gets its own number; objects keep the sharing that the model's own structure gives them
                if node.get("__loader__") == "JsonNode" or node["__id__"] not in ids:
                    ids[node["__id__"]] = next(numbers)
                node["__id__"] = ids[node["__id__"]]
            for k in sorted(node):
                rename(node[k])
        elif isinstance(node, list):
            for v in node:
                rename(v)

    rename(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        entries = [("schema.json", json.dumps(schema, sort_keys=True).encode())]
        entries += sorted((new, raw.read(old)) for old, new in names.items())
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return out.getvalue()
