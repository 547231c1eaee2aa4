"""Fit boundaries: for each validation stage, the sub-graph of stages it refits inside every training fold.

Walking up from the validated model along feature-table edges, a stage belongs to the refit graph when it is
fit (on outcomes or data statistics) or combines the output of a fitted stage (a join of a selected table
with a clinical one, say). Where the walk reaches a feature table that nothing fitted feeds (PyRadiomics
features, a cohort's clinical columns, a join of those), it stops: that table is a source, computed before
the folds, and its columns are the folds' input. Branches (a table selected two ways and joined again) and
several sources are part of the graph. A fitted image preprocessing stage on the image chain of a source (`nyul`)
is refit in every training fold too (`image_fits`: the source tables are then extracted per fold). Any other fitted
stage outside the graph (a trained network whose masks feed the features) is fit once; the design check (E504) makes
sure it was not fit on the cohort being validated.

Each stage in a refit graph records the validation in `fit_within`; `study.refit` holds the graphs, and each
validation stage carries its own as plain data (`extra["refit"]`, and `extra["image_fits"]`: what the executor and the
rendered script read).
A refit stage whose operator declares that it uses the held-out cases' features (`transductive`, e.g. ComBat estimating
a site unseen in training) is named, with its sentence, in the validation's `extra["transductive"]`."""

from __future__ import annotations

from radlang import registry
from radlang.compiled import RefitGraph


def _table_inputs(stage, by) -> list[tuple[str, str]]:
    """(port, producer) for the ports of `stage` fed by a whole feature table (not a cohort attribute), or by a model
    (the branches of a late-fusion model: each refit with its own inputs)."""
    return [(port, ref.stage) for port, ref in sorted(stage.inputs.items())
            if ref.attr is None and ref.stage in by and by[ref.stage].type.kind in ("Features", "Model")]


def refit_graph(validation, model, by) -> RefitGraph:
    fed_by_fit: dict[str, bool] = {}

    def downstream_of_fit(name) -> bool:
        if name not in fed_by_fit:
            s = by[name]
            fed_by_fit[name] = s.fit != "none" or any(downstream_of_fit(u) for _, u in _table_inputs(s, by))
        return fed_by_fit[name]

    nodes, sources, edges = {model.name}, set(), set()
    todo = [model.name]
    while todo:
        cur = by[todo.pop()]
        for port, up in _table_inputs(cur, by):
            edges.add((up, cur.name, port))
            if downstream_of_fit(up):
                if up not in nodes:
                    nodes.add(up)
                    todo.append(up)
            else:
                sources.add(up)
    order = [s.name for s in by.values() if s.name in nodes]       # the study's stage order is topological
    return RefitGraph(validation=validation.name, model=model.name, sources=tuple(sorted(sources)), nodes=tuple(order),
                      edges=tuple(sorted(edges)))


def image_fits(validation, refit: RefitGraph, by) -> list[str]:
    """The stages fit on data statistics that make the validated cohort's images, case by case, on the image chain of
    a source feature table (a fitted image preprocessing stage such as `nyul`: its value is a cohort, and its
    operator's `on_cohort` fits it on the cases a table names in `attrs["radlang"]["fit_cases"]`). A cross-validation
    refits them inside every training fold and extracts the source tables per fold; with `cv: none` nothing of the
    cohort is held out, and they are fit once on every training case."""
    if (validation.params.get("cv") or {}).get("kind") in (None, "none"):
        return []
    out = []
    for src in refit.sources:
        ref = by[src].inputs.get("image")
        while ref is not None and ref.stage in by and by[ref.stage].kind != "cohort":
            up = by[ref.stage]
            if (up.fit != "none" and up.type.kind == "Cohort" and up.type.cohort == validation.type.cohort
                    and registry.get(up.op).on_cohort is not None and up.name not in out):
                out.append(up.name)
            ref = up.inputs.get("image")
    return sorted(out)


def validated_model(stage) -> str | None:
    """The model a validation stage validates: the stage on its input port that takes a `Model`. A model stage's own
    model inputs (late fusion's branches) are not validated by it, nor is the network model a federated stage trains
    across sites (its input; radlang/ops/fedavg.py)."""
    if stage.kind in ("model", "federate"):
        return None
    for port in registry.get(stage.op).inputs:
        if "Model" in port.kinds and port.name in stage.inputs:
            return stage.inputs[port.name].stage
    return None


def fit_boundaries(study):
    by = study.by_name()
    refit = {}
    for v in study.stages:
        model = validated_model(v)
        if model is None:
            continue
        g = refit_graph(v, by[model], by)
        refit[v.name] = g
        v.extra["refit"] = g.to_plain()
        # stages that use the held-out cases' features (never their outcomes): recorded for the manifest and `plan`
        held_out = {}
        for n in g.nodes:
            op = registry.get(by[n].op)
            sentence = op.transductive(by[n].params) if op is not None and op.transductive is not None else None
            if sentence:
                held_out[n] = sentence
        if held_out:
            v.extra["transductive"] = held_out
        images = image_fits(v, g, by)
        if images:
            v.extra["image_fits"] = images
        for n in (*g.nodes, *images):
            s = by[n]
            if v.name not in s.fit_within:
                s.fit_within = tuple(sorted(s.fit_within + (v.name,)))
    study.refit = refit
    return study
