"""Survival horizons beyond the last follow-up, found from the cohort's data at `radlang check` (E680).

An `evaluate` of a survival model scores the time-dependent AUC, Brier score and calibration at its `horizons`;
a horizon at or beyond the last follow-up time of the training cohort cannot be scored in any fold. Where the
cohort's times are read before running (a `table` or a manifest: radlang/checks/data.py), that is an error here;
horizons outside the follow-up of a single fold's held-out cases depend on the split, and the run checks those
(radlang/ops/evaluation_run.py), with the same code.
"""

from __future__ import annotations

from radlang.diagnostics import Diagnostic
from radlang.passes.fit_boundaries import validated_model


def check_horizons(stages: dict, bounds: dict, facts: dict, diags: list):
    for name in sorted(stages):
        st = stages[name]
        horizons = st.params.get("horizons") if st.type.kind == "Evaluation" else None
        model = stages.get(validated_model(st) or "") if horizons else None
        if model is None or "target" not in model.inputs:
            continue
        cohort = model.inputs["target"].stage
        fu = (facts.get(cohort) or {}).get("follow_up")
        if fu is None:
            continue
        b = bounds.get(name)
        where = (b.spans.get(("horizons",)) or b.key_spans.get("horizons")) if b is not None else None
        cases = ", ".join(f"`{c}`" for c in fu["cases"][:5]) + (f" and {len(fu['cases']) - 5} more" if len(fu["cases"]) > 5 else "")
        for h in horizons:
            if h >= fu["last"]:
                diags.append(Diagnostic("E680", f"`{name}`: horizon {h:g} is at or beyond the last follow-up of cohort `{cohort}` "
                                        f"({fu['last']:g}), column `{fu['column']}` (case(s) {cases}), file `{fu['file']}`", where or st.span,
                                        hint="state horizons within follow-up (before the last time, at or after the first) of every fold"))
