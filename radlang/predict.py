"""`radlang predict`: apply a validation stage's saved final model to new cases.

The final model of a validation stage (`models/<stage>.skops`, refit on every training case: imputation,
selection, joins, scaling, the model; a `cox` or `survival_mlp` pipeline of plain steps as JSON, `models/<stage>.model.json`)
and its card (`models/<stage>.json`: the input columns, the operating threshold, the model file and its sha256) are
written by `radlang run`. Predicting on a new manifest or table:

1. the new file is read the way the validation's training cohort reads its own (the cohort operator's
   `read_file`), so column names, outcome and id settings carry over;
2. the feature tables the model reads (the refit graph's sources) are computed on it by the same code as for an
   external cohort (radlang/backends/refit.py), with the run's cache;
3. the model is loaded with skops, trusting only scikit-learn's, scikit-survival's, NumPy's and SciPy's types and
   radlang's own classes (`trusted_classes`; a file that names any other type is refused, never loaded), or read
   from its JSON (numbers only), after its bytes are checked against the card's sha256;
4. the CSV (case id, probability or risk, and the thresholded class) is written atomically.

Every problem is a diagnostic and nothing is written: an unknown stage, a missing or altered model, a missing
feature column, images of another dimension or spacing than the training cohort's, unreadable cases.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from radlang.backends.executor import RunError
from radlang.diagnostics import Diagnostic, did_you_mean

TRUSTED_MODULES = ("sklearn.", "sksurv.", "numpy.", "scipy.")


def trusted_classes():
    """radlang's own classes that a saved model may name, each by the name skops records for it (`module.Class`) -> the
    function that builds it (the classes are built on first use, see select.selector_class). These and the types of
    TRUSTED_MODULES are all that `load_model` lets skops load; the SHAP explainer makes these importable where radlang
    is not (the rendered script). A class that a saved model can hold is added here, and only here."""
    from functools import partial

    from radlang.ops.dann import dann_estimator_class
    from radlang.ops.harmonise import combat_class
    from radlang.ops.late_fusion import stacker_class
    from radlang.ops.multitask import multitask_estimator_class
    from radlang.ops.net_models import net_estimator_class
    from radlang.ops.select import selector_class
    from radlang.ops.survival_models import survival_estimator_class

    return {"radlang.ops.select.RadSelector": selector_class, "radlang.ops.harmonise.RadComBat": combat_class,
            "radlang.ops.net_models.RadNetClassifier": partial(net_estimator_class, "classification"),
            "radlang.ops.net_models.RadNetRegressor": partial(net_estimator_class, "regression"),
            "radlang.ops.net_models.RadNetSurvival": partial(net_estimator_class, "survival"),
            "radlang.ops.dann.RadDANNClassifier": dann_estimator_class, "radlang.ops.late_fusion.RadStacker": stacker_class,
            "radlang.ops.survival_models.RadSurvival": survival_estimator_class,
            "radlang.ops.multitask.RadMultiTaskModel": multitask_estimator_class}


class PredictError(Exception):
    """A usage problem (E73x): the diagnostics say what to change."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.message for d in diagnostics))


def validation_stage(study, name):
    names = sorted(study.refit)
    if name not in names:
        hint = did_you_mean(name, names) or (f"validation stages: {', '.join(names)}" if names else "the spec has no validation stage")
        raise PredictError([Diagnostic("E730", f"`{name}` is not a validation stage of this study", None, hint=hint)])
    return study.stage(name)


def load_card(out: Path, stage) -> tuple[dict, bytes]:
    card_path, model_path = out / "models" / f"{stage.name}.json", out / "models" / f"{stage.name}.skops"
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        model_path = out / "models" / Path(str(card.get("file", model_path.name))).name
        data = model_path.read_bytes()
    except (OSError, ValueError):
        raise PredictError([Diagnostic("E731", f"no saved model for `{stage.name}` in `{out}`", stage.span,
                                       hint="run the study first (`radlang run`), with the same `--out`")]) from None
    if hashlib.sha256(data).hexdigest() != card.get("sha256"):
        raise PredictError([Diagnostic("E732", f"`{model_path}` does not match the sha256 recorded in `{card_path}`: "
                                       "it changed after the run", stage.span, hint="run the study again to refit and save the model")])
    return card, data


def load_model(data: bytes, stage):
    if data[:1] == b"{":          # a survival model's JSON (survival_models.survival_artefact): numbers, no code
        from radlang.ops.survival_models import SavedSurvival

        state = json.loads(data)
        if state.get("format") != "radlang-survival/1":
            raise PredictError([Diagnostic("E735", f"the saved model of `{getattr(stage, 'name', '?')}` names a type radlang does not "
                                           f"load: a JSON model of format {state.get('format')!r}", getattr(stage, "span", None),
                                           hint="only models that `radlang run` saved can be applied")])
        return SavedSurvival(state)
    from radlang.ops.fold_engine import skops_io

    sio = skops_io()

    types = sio.get_untrusted_types(data=data)
    own = trusted_classes()
    refused = [t for t in types if not (t.startswith(TRUSTED_MODULES) or t in own)]
    if refused:
        raise PredictError([Diagnostic("E735", f"the saved model of `{stage.name}` names types radlang does not load: {', '.join(refused)}",
                                       stage.span, hint="only models that `radlang run` saved can be applied")])
    return sio.loads(data, trusted=types)


def check_geometry(ctx, stage, train_df, new_df, new_file):
    """Images of another dimension than the training cohort's, or (when the features do not resample) another voxel
    spacing than any training image's, give features the model never saw."""
    from radlang.ops.cohorts import read_image_header

    cols = [c for c in new_df.columns if c == "image" or str(c).startswith("image.")]
    if not cols or not all(c in train_df.columns for c in cols):
        return
    resampled = any(ctx.study.stage(s).params.get("resample") for s in stage.extra["refit"]["sources"])

    def geometry(path):
        h = read_image_header(path)
        return h["dimension"], tuple(round(float(x), 4) for x in h["spacing"])

    train = {geometry(p) for c in cols for p in train_df[c].dropna().astype(str).unique()[:50]}
    dims = {d for d, _ in train}
    spacings = {s for _, s in train}
    bad = []
    for c in cols:
        for cid, path in zip(new_df["case_id"].astype(str), new_df[c].astype(str)):
            d, sp = geometry(path)
            if d not in dims:
                bad.append(f"case `{cid}` ({path}): a {d}D image; the model was trained on {'/'.join(map(str, sorted(dims)))}D images")
            elif not resampled and sp not in spacings:
                bad.append(f"case `{cid}` ({path}): voxel spacing {list(sp)} mm; the training images have "
                           f"{', '.join(str(list(s)) for s in sorted(spacings)[:3])}")
    if bad:
        raise RunError([Diagnostic("E664", f"`{new_file}`: {b}", stage.span,
                                   hint="resample the images to the training spacing (or let the feature stage resample) before predicting")
                        for b in bad[:20]])


def predict(study, stage_name, input_path, output, out=None, workers=1, quiet=True) -> Path:
    """Predictions of `stage_name`'s saved final model for the cases of `input_path`, written to `output`."""
    from radlang import registry
    from radlang.backends.cache import atomic_write_bytes
    from radlang.backends.executor import held_run, resolve_out, run_stages
    from radlang.backends.refit import assemble
    from radlang.ops.clinical_metrics import evaluation_csv

    stage = validation_stage(study, stage_name)
    output = Path(output)
    if not output.parent.is_dir() or output.is_dir():
        why = "it is a folder" if output.is_dir() else "its folder does not exist"
        raise PredictError([Diagnostic("E737", f"cannot write `{output}`: {why}")])
    card, data = load_card(resolve_out(study, out), stage)
    graph = stage.extra["refit"]
    by = study.by_name()
    cohort = by[card["cohort"]]
    reader = registry.get(cohort.op).read_file
    if reader is None:
        raise PredictError([Diagnostic("E733", f"`{card['cohort']}` ({cohort.op}) reads no file, so new cases cannot be read like it",
                                       cohort.span)])
    needed = set()
    for s in graph["sources"]:
        needed |= {s} | set(_ancestors(study, s))
    with held_run(study, out, workers, quiet) as ctx:
        run_stages(ctx, [s for s in study.stages if s.name in needed])
        new_df = reader(ctx, cohort, Path(input_path).resolve())
        new_df = new_df.assign(case_id=new_df["case_id"].astype(str))
        check_geometry(ctx, stage, ctx.results[cohort.name], new_df, input_path)
        X = assemble(ctx, stage, graph, cohort.name, new_df)
    missing = [c for c in card["columns"] if c not in X.columns]
    if missing:
        shown = ", ".join(f"`{c}`" for c in missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise RunError([Diagnostic("E663", f"`{input_path}`: the model of `{stage.name}` needs feature column(s) the new cases "
                                   f"lack: {shown}", stage.span, hint="give the new cases the same columns (and images) as the training cohort")])
    X = X.loc[new_df["case_id"][new_df["case_id"].isin(X.index.astype(str))], card["columns"]].astype(float)
    model = load_model(data, stage)
    # a fitted step that reads per-case inputs besides the features (ComBat: each case's batch) gets them for the new
    # cases the way an external cohort's are made: its operator's `fold_data`, the new cases as the held-out table
    for name in graph["nodes"]:
        fold_data = registry.get(by[name].op).fold_data
        if fold_data is not None:
            inputs, problems = fold_data(by[name], ctx.results[cohort.name], new_df[new_df["case_id"].isin(X.index)], [])
            if problems:
                raise RunError(problems)
            _give_fold_inputs(model, name, inputs)
    rows = {"case_id": list(X.index)}
    if card["outcome"] == "binary":
        p = model.predict_proba(X)[:, 1]
        rows["probability"] = p
        if card.get("threshold") is not None:
            rows["threshold"] = [card["threshold"]] * len(p)
            rows["predicted"] = (p >= card["threshold"]).astype(int)
    elif card["outcome"] == "multiclass":
        P = model.predict_proba(X)
        for k in range(P.shape[1]):
            rows[f"probability_{k}"] = P[:, k]
    elif card["outcome"] == "continuous":
        rows["prediction"] = model.predict(X)
    else:
        rows["risk"] = model.predict(X)
    import pandas as pd

    atomic_write_bytes(output, evaluation_csv(pd.DataFrame(rows)))
    return output


def _give_fold_inputs(est, name, inputs):
    """Set `fold_inputs` on the step called `name` of a loaded pipeline (also inside a search or a join's branches)."""
    est = getattr(est, "best_estimator_", est)
    for n, step in getattr(est, "steps", []):
        if n == name:
            step.fold_inputs = inputs
        _give_fold_inputs(step, name, inputs)
    for branch in getattr(est, "named_transformers_", {}).values():
        _give_fold_inputs(branch, name, inputs)


def _ancestors(study, name):
    import networkx as nx

    return nx.ancestors(study.graph, name)
