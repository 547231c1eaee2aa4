"""The privacy boundary of a federated study (E529, E530): no case leaves its site; and its client cohorts declare the
same feature columns (E545).

A `federate` stage trains across the sites of its cohort by exchanging weights. Any other stage that needs that
cohort's case-level data pooled across sites breaks the promise: a selector, scaler, ComBat or model fit upstream
of the federated stage (E529; the network model it trains, its own input, is trained federated and is not one), or a stage downstream or beside it that fits on or resamples the pooled cases, such
as a validation's cross-validation or bootstrap (E530). Each must become per-site or federated.
"""

from __future__ import annotations

import networkx as nx

from radlang.diagnostics import Diagnostic, Related


def check_privacy(g: nx.DiGraph, stages: dict, diags: list):
    """`stages`: name -> Stage-like objects with .kind, .fit, .inputs, .type, .span, .op (as in checks/design.py)."""
    check_clients(stages, diags)
    federated = {n: s for n, s in sorted(stages.items()) if s.kind == "federate" and s.type.cohort}
    if not federated:
        return
    lineage = {}
    for n in nx.topological_sort(g):
        acc = set().union(*[lineage[p] for p in g.predecessors(n) if p in lineage]) if n in stages else set()
        s = stages.get(n)
        if s is not None and s.kind == "cohort":
            acc.add(n)
        lineage[n] = acc
    for name, fed in federated.items():
        cohort = fed.type.cohort
        up = nx.ancestors(g, name)
        trained = fed.inputs["input"].stage if stages.get(fed.inputs["input"].stage, fed).kind == "model" else None
        for a in sorted(up):
            s = stages.get(a)
            if s is None or s.fit == "none" or a == trained or cohort not in lineage.get(a, set()) | {s.type.cohort}:
                continue
            diags.append(Diagnostic(
                "E529", f"`{name}` is federated across the sites of `{cohort}`, but `{a}` ({s.op}) upstream is fit on the "
                f"cases of every site pooled", fed.span, related=(Related(s.span, f"`{a}` needs `{cohort}`'s case-level data in one place"),),
                hint=f"make `{a}` per-site (fit at each site on its own cases) or federated, or drop it: `{name}` standardises "
                     "its features with federated statistics (`standardize: federated`)"))
        pooled = [b for b, s in sorted(stages.items())
                  if b != name and b not in up and s.kind != "federate" and cohort in lineage.get(b, set())
                  and (s.fit != "none" or s.kind == "validate")]
        for b in pooled:
            below = nx.descendants(g, b)
            if any(c in below for c in pooled):
                continue            # a stage downstream (its validation) is the one reported, with this one as a note
            s = stages[b]
            what = "resamples or cross-validates" if s.kind == "validate" else "is fit on"
            feeding = [c for c in pooled if b in nx.descendants(g, c)]
            related = (Related(fed.span, f"`{name}` federates `{cohort}`: no case leaves its site"),) + tuple(
                Related(stages[c].span, f"`{c}` ({stages[c].op}) is fit on the pooled cases too") for c in feeding)
            diags.append(Diagnostic(
                "E530", f"`{b}` ({s.op}) {what} the pooled cases of `{cohort}`, whose sites `{name}` keeps apart", s.span,
                related=related,
                hint=f"evaluate the federated model per site (`{name}`'s `test` cohort gives per-site and pooled test metrics), "
                     f"or make {', '.join(f'`{c}`' for c in feeding + [b])} per-site or federated"))


DECLARED_COLUMNS = ("clinical", "columns", "features")   # a cohort's feature columns as its settings declare them


def check_clients(stages: dict, diags: list):
    """E545: the client cohorts of a federated stage (`clients:` and `tests:`, one cohort per site) whose settings
    declare different feature columns (a manifest's `clinical`, a table's `columns`, a generated cohort's number of
    `features`): every client computes the same features. Cohorts that leave them to the file are compared at run time."""
    for name, fed in sorted(stages.items()):
        if fed.kind != "federate" or not fed.params.get("clients"):
            continue
        named = [str(e).split(".", 1)[0] for e in list(fed.params["clients"]) + list(fed.params.get("tests") or [])]
        cohorts = [stages[c] for c in named if c in stages]
        if not cohorts:
            continue
        first = cohorts[0]
        for other in cohorts[1:]:
            differ = [k for k in DECLARED_COLUMNS if first.params.get(k) is not None and other.params.get(k) is not None
                      and first.params[k] != other.params[k]]
            for k in differ:
                diags.append(Diagnostic(
                    "E545", f"`{name}` federates cohorts `{first.name}` and `{other.name}`, whose `{k}` differ: "
                    f"{first.params[k]} and {other.params[k]}", fed.span,
                    related=(Related(first.span, f"`{first.name}` declared here"), Related(other.span, f"`{other.name}` declared here")),
                    hint="every client computes the same features: give the cohorts the same columns"))
