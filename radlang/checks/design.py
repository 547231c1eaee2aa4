"""Static study-design checks (E5xx): evaluating on data that a fitted stage was fit on."""

from __future__ import annotations

import networkx as nx

from radlang.diagnostics import Diagnostic, Related


def check_design(g: nx.DiGraph, stages: dict, diags: list):
    """`stages`: name -> Stage-like objects with .kind, .fit, .inputs, .type, .span, .op.

    For every stage with an `external` input (an external validation cohort), no stage that is
    fit (on outcomes or data statistics) upstream of it may descend from that same cohort."""
    cohorts_up = _cohorts_upstream(g, stages)
    for name in sorted(stages):
        st = stages[name]
        _check_refit_chain(g, stages, name, st, cohorts_up, diags)
        ext = st.inputs.get("external")
        if ext is None:
            continue
        ext_cohort = ext.stage
        fitted = []
        for a in sorted(nx.ancestors(g, name)):
            up = stages.get(a)
            if up is None or up.fit == "none":
                continue
            lineage = {up.type.cohort} | {r.stage for r in up.inputs.values()} | cohorts_up.get(a, set())
            if ext_cohort in lineage:
                fitted.append(a)
        related = tuple(Related(stages[a].span, f"`{a}` ({stages[a].op}) is fit on outcomes or data statistics of `{ext_cohort}`")
                        for a in fitted)
        listed = ", ".join(f"`{a}`" for a in fitted)
        train_cohort = st.type.cohort
        # one root cause, one diagnostic: a validation that trains on its external cohort (E502) explains every stage
        # fit on it; otherwise the stages fit on the external cohort are one E501
        if train_cohort and train_cohort == ext_cohort:
            others = sorted(n for n, s in stages.items() if s.kind == "cohort" and n != ext_cohort)
            train = f"the training cohort (`{others[0]}`)" if len(others) == 1 else "a training cohort"
            diags.append(Diagnostic("E502", f"`{name}` uses `{ext_cohort}` both for training and as its external cohort", st.span,
                                    related=related,
                                    hint=f"fit the model and every stage above it ({listed}) on {train}; keep `{ext_cohort}` for evaluation"
                                    if fitted else "name a separate cohort as `external`"))
        elif fitted:
            verb = "is" if len(fitted) == 1 else "are"
            train = f"`{train_cohort}`" if train_cohort else "the training cohort"
            diags.append(Diagnostic(
                "E501", f"`{name}` validates on `{ext_cohort}`, but {listed} {verb} fit on `{ext_cohort}`", st.span, related=related,
                hint=f"fit every stage on {train} only (features and target from {train}); `{ext_cohort}` is for evaluation"))


def _cohorts_upstream(g, stages) -> dict[str, set]:
    """For each stage, the cohort stages among itself and its ancestors (one pass in topological order)."""
    out: dict[str, set] = {}
    for n in nx.topological_sort(g):
        acc = set()
        for p in g.predecessors(n):
            acc |= out[p]
        s = stages.get(n)
        if s is not None and s.kind == "cohort":
            acc.add(n)
        out[n] = acc
    return out


def _check_refit_chain(g, stages, name, st, cohorts_up, diags):
    """A validation refits its refit graph (radlang/passes/fit_boundaries.py) inside every training fold. A stage
    fit on outcomes or data statistics outside that graph (a trained network whose masks feed the features, say)
    is fit once; if it was fit on the very cohort being cross-validated, the held-out folds were part of its
    training data. Inside the graph, a join of two branches of one table must name its columns apart."""
    from radlang import registry
    from radlang.passes.fit_boundaries import image_fits, refit_graph, validated_model

    model = validated_model(st)
    if model is None or model not in stages:
        return
    refit = refit_graph(st, stages[model], stages)
    images = image_fits(st, refit, stages)
    cohort = st.type.cohort
    # with `cv: none` nothing of the cohort is held out (the validation is the external cohort's, E501)
    held_out = (st.params.get("cv") or {}).get("kind") != "none"
    for a in sorted(nx.ancestors(g, name)) if held_out else ():
        up = stages.get(a)
        if up is None or up.fit == "none" or a in refit.nodes or a in images:
            continue
        lineage = {up.type.cohort} | {r.stage for r in up.inputs.values()} | cohorts_up.get(a, set())
        if cohort in lineage:
            diags.append(Diagnostic(
                "E504", f"`{name}` cross-validates on `{cohort}`, but `{a}` upstream is fit once on `{cohort}`, held-out folds included",
                st.span, related=(Related(up.span, f"`{a}` ({up.op}) is fit on outcomes or data statistics of `{cohort}`"),),
                hint=f"fit `{a}` on a separate cohort (e.g. a segmentation training set), so the cases `{name}` holds out never trained it"))
    raters = [n for n in refit.nodes if registry.get(stages[n].op).raters]
    if images and raters:
        # a selector's raters (perturbed re-extractions, a retest cohort) are extracted once, before the folds: through
        # an image stage refit per fold they would carry the landmarks learned on every case, held-out folds included
        diags.append(Diagnostic(
            "E523", f"`{raters[0]}` re-extracts its input to rate features, through `{images[0]}`, which `{name}` refits in each "
            f"training fold of `{cohort}`: the re-extractions would use `{images[0]}` fit on every case, held-out folds included",
            stages[raters[0]].span, related=(Related(stages[images[0]].span, f"`{images[0]}` ({stages[images[0]].op}) is fit on data of `{cohort}`"),),
            hint=f"drop the perturbations/retest of `{raters[0]}`, or validate on an external cohort (`cv: none`)"))
    _check_refit_joins(stages, refit, diags)


def _check_refit_joins(stages, refit, diags):
    """Joins refit inside the folds: branches of one source must be named apart (`prefix: true`), and every join of
    one graph must match rows the same way (the fold input is assembled once)."""
    feeding = {}
    for a, b, _ in refit.edges:
        feeding.setdefault(b, []).append(a)

    def sources(n):
        return {n} if n in refit.sources else set().union(*[sources(u) for u in feeding.get(n, [])])

    joins = [n for n in refit.nodes if stages[n].fit == "none"]
    for j in joins:
        s = stages[j]
        seen: dict[str, str] = {}
        for u in sorted(feeding.get(j, [])):
            for src in sorted(sources(u)):
                if src in seen and not s.params.get("prefix"):
                    diags.append(Diagnostic("E505", f"`{j}` joins `{seen[src]}` and `{u}`, which both come from `{src}`: "
                                            "the same column can come out of both", s.span,
                                            hint="set `prefix: true` to name each column `<table>.<column>`"))
                seen.setdefault(src, u)
    ways = {stages[j].params.get("by") for j in joins}
    if len(ways) > 1:
        first = stages[joins[0]]
        diags.append(Diagnostic("E506", f"the joins refit for `{refit.validation}` match rows differently ({', '.join(sorted(ways))})",
                                first.span, related=tuple(Related(stages[j].span, f"`{j}`: by {stages[j].params.get('by')}") for j in joins[1:]),
                                hint="use one `by:` for every join that a validation refits"))
