"""The checklist verdicts of every example, decided by the rules (radlang/review/checklists.py) from the compiled
study's stage records, the same records manifest.json holds. Items not listed as satisfied or not applicable
need the authors' input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radlang.backends.artefacts import manifest_stages
from radlang.compiler import compile_file
from radlang.review.checklists import CHECKLISTS, RULES, Facts, assess, load_checklist

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

RADIOMICS_TRIPOD = "5 7 9 11 12 15 21 22 23"
RADIOMICS_CLAIM = "7 9 10 11 13 20 21 22 23 25 26 28 29 32 33 34 36 42"
# example -> checklist -> (satisfied item ids, not-applicable item ids, METRICS score)
EXPECTED = {
    "breast_cancer": {"tripod_ai": (RADIOMICS_TRIPOD, ""), "claim_2024": (RADIOMICS_CLAIM, "24 27"),
                      "metrics": ("15 16 18 20 21 22 26 27 28 29 30", "8 9 10 11 12 13 17 23", 41.9)},
    "combined": {"tripod_ai": (RADIOMICS_TRIPOD, ""), "claim_2024": (RADIOMICS_CLAIM, "24 27"),
                 "metrics": ("11 12 13 16 18 20 21 22 23 26 27 28 29 30", "9 17", 46.7)},
    "compare": {"tripod_ai": ("5 7 9 11 12 15 21 22", ""), "claim_2024": ("7 9 10 11 13 20 21 22 23 25 26 28 29 32 34 36 42", "24 27"),
                "metrics": ("11 12 13 16 18 20 21 23 24 26 28 29 30", "9 17", 40.1)},
    "domain_adaptation": {"tripod_ai": (RADIOMICS_TRIPOD, ""), "claim_2024": ("7 9 10 11 13 20 21 22 23 24 25 26 28 29 32 34 36 42", "27"),
                          "metrics": ("4 11 12 13 18 19 20 21 22 23 24 25 26 28 29 30", "9", 47.4)},
    # A federated stage evaluates its own model, on held-out test cohorts of its sites (metrics/<stage>_federated.json), and
    # the rules read it (Facts.federations). What that satisfies, against the verdicts before the rules read it:
    # - TRIPOD 7 / CLAIM 9 (preprocessing): `standardize: federated` z-scores the features from per-site sums, in the spec;
    # - TRIPOD 12 / CLAIM 22 (analysis, model description): the strategy, rounds and local epochs, each site on its own cases;
    # - TRIPOD 15 (model output): the linear predictor (a Cox risk, the log-odds of a logistic model);
    # - TRIPOD 21 (model development): the metrics file gives each site's training cases;
    # - TRIPOD 22 / METRICS 30 (model specification, availability): the final global weights under models/<stage>.json;
    # - CLAIM 20, 21 / METRICS 18 (partitions) and CLAIM 32 / METRICS 26 (internal evaluation): the `test` cohort is held
    #   out and never trained on, the same evidence a segmentation_metrics stage's cohort gives;
    # - CLAIM 25 (training details): the federated stage's settings; CLAIM 26 (final model): the last round's weights;
    # - CLAIM 28 / METRICS 20 (metrics): the C-index (Cox) or AUC (logistic) per site and pooled, beside the references;
    # - METRICS 4 (multi-centre) for fed_tcga_brca: trained across the six regions, each a client.
    # Still the authors': confidence intervals and calibration (a federated stage gives the spread over seeds, no CI, so
    # TRIPOD 23, CLAIM 29/36, METRICS 21/22 stay), external testing (the test cohorts are the same sites), missing data.
    # federated.rad also gains the items of generated data (TRIPOD 5, CLAIM 7 and 42, METRICS 28): its `multisite`
    # cohorts are generated from the spec like `phantom` (review/checklists.py GENERATED); fed_tcga_brca reads the
    # authors' shared copy of FLamby's data, so those stay the authors'.
    "fed_tcga_brca": {"tripod_ai": ("7 9 12 15 21 22", ""), "claim_2024": ("9 10 11 20 21 22 23 25 26 28 32 34", "24 27"),
                      "metrics": ("4 18 20 26 29 30", "8 9 10 11 12 13 17 23", 25.0)},
    "federated": {"tripod_ai": ("5 7 9 12 15 21 22", ""), "claim_2024": ("7 9 10 11 20 21 22 23 25 26 28 32 34 42", "24 27"),
                  "metrics": ("4 18 20 26 28 29 30", "8 9 10 11 12 13 17 23", 26.0)},
    # as federated.rad, with a network: its initialisation from a seed (CLAIM 24) and its one image channel (METRICS 23)
    # are satisfied as in fusion.rad; no segmentation step nor radiomic features, so the same METRICS items are
    # not applicable as in multitask.rad
    "federated_network": {"tripod_ai": ("5 7 9 12 15 21 22", ""), "claim_2024": ("7 9 10 11 20 21 22 23 24 25 26 28 32 34 42", "27"),
                          "metrics": ("4 18 20 23 26 28 29 30", "8 9 10 11 12 13", 26.4)},
    "fusion": {"tripod_ai": (RADIOMICS_TRIPOD, ""), "claim_2024": ("7 9 10 11 13 20 21 22 23 24 25 26 28 29 31 32 34 36 42", "27"),
               "metrics": ("11 12 13 18 20 21 22 23 24 25 26 28 29 30", "9", 39.8)},
    "mr_preprocessing": {"tripod_ai": (RADIOMICS_TRIPOD, ""), "claim_2024": (RADIOMICS_CLAIM, "24 27"),
                         "metrics": ("11 12 13 16 18 20 21 22 23 26 27 28 29 30", "9 17", 46.7)},
    "multitask": {"tripod_ai": (RADIOMICS_TRIPOD, ""), "claim_2024": ("7 9 10 11 13 20 21 22 23 24 25 26 28 29 32 34 36 42", "27"),
                  "metrics": ("18 20 21 22 23 26 28 29 30", "8 9 10 11 12 13", 26.0)},
    "quickstart": {"tripod_ai": (RADIOMICS_TRIPOD, ""), "claim_2024": ("7 9 10 11 13 19 20 21 22 23 25 26 28 29 30 32 33 34 36 42", "24 27"),
                   "metrics": ("8 11 12 13 14 16 18 20 21 22 23 26 27 28 29 30", "9 17", 52.3)},
    "radiogenomics": {"tripod_ai": ("5 7 9 11 12 15 21 22", ""), "claim_2024": ("7 9 10 11 13 20 21 22 23 25 26 28 29 32 34 36 42", "24 27"),
                      "metrics": ("11 12 13 18 20 21 23 26 28 29 30", "9 17", 33.9)},
    "survival": {"tripod_ai": (RADIOMICS_TRIPOD, ""), "claim_2024": ("7 9 10 11 13 20 21 22 23 25 26 28 29 32 34 36 42", "24 27"),
                 "metrics": ("18 20 21 22 25 26 28 29 30", "8 9 10 11 12 13 17 23", 27.9)},
    "segmentation": {"tripod_ai": ("5 12 22", ""), "claim_2024": ("7 10 20 21 22 23 24 25 26 28 32 34 42", "27"),
                     "metrics": ("8 9 10 18 20 23 26 28 29 30", "11 12 13 14 15 16", 29.5)},
}


def test_checklists_are_complete_data_with_sources():
    sizes = {"tripod_ai": 27, "claim_2024": 44, "metrics": 30}
    for name in CHECKLISTS:
        cl = load_checklist(name)
        assert len(cl["items"]) == sizes[name] and [it["id"] for it in cl["items"]] == [str(i) for i in range(1, sizes[name] + 1)]
        assert "doi:" in cl["source"]
        assert all(it["rule"] is None or it["rule"] in RULES for it in cl["items"])
    weights = [it["weight"] for it in load_checklist("metrics")["items"]]
    assert sum(weights) == pytest.approx(1.0, abs=1e-9)            # the published weights of the 30 METRICS items
    assert max(weights) == 0.0919 and min(weights) == 0.0075


@pytest.mark.parametrize("example", sorted(p.stem for p in EXAMPLES.glob("*.rad")))
def test_verdicts_of_each_example(example):
    assert example in EXPECTED, f"examples/{example}.rad: add its expected checklist verdicts to EXPECTED"
    res = compile_file(str(EXAMPLES / f"{example}.rad"))
    assert res.ok
    got = assess(Facts(manifest_stages(res.study)))
    for name, want in EXPECTED[example].items():
        items = got[name]["items"]
        assert " ".join(it["id"] for it in items if it["verdict"] == "satisfied") == want[0], name
        assert " ".join(it["id"] for it in items if it["verdict"] == "na") == want[1], name
        assert all(it["evidence"] for it in items if it["verdict"] == "satisfied"), name   # a satisfied item says by what
        if name == "metrics":
            assert got[name]["score"] == want[2]
            w = {it["id"]: it["weight"] for it in items}
            sat = set(want[0].split())
            na = set(want[1].split())
            assert got[name]["score"] == round(100 * sum(w[i] for i in sat) / sum(v for i, v in w.items() if i not in na), 1)


def test_a_low_events_per_variable_warning_takes_dimensionality_back_to_the_authors():
    res = compile_file(str(EXAMPLES / "quickstart.rad"))
    run = {"warnings": ["`v`: low events per variable: 20 events (smaller class) for 56 candidate features = 0.36 (< 10)"]}
    items = {it["id"]: it for it in assess(Facts(manifest_stages(res.study), run=run))["metrics"]["items"]}
    assert items["16"]["verdict"] == "author" and "events per variable" in items["16"]["evidence"][0]["text"]


def test_satisfied_items_link_to_spec_stages():
    res = compile_file(str(EXAMPLES / "quickstart.rad"))
    items = {it["id"]: it for it in assess(Facts(manifest_stages(res.study)))["metrics"]["items"]}
    assert [e["stage"] for e in items["14"]["evidence"]] == ["robust"]        # ICC selection: non-robust features removed
    assert [e["stage"] for e in items["27"]["evidence"]] == ["v"]             # external testing
    json.dumps(items)                                                          # plain data, for the report


def test_the_authors_own_data_leave_sources_and_availability_to_them():
    from radlang.compiler import compile_source

    src = """study "own data" { seed: 1 }
cohort dev = table("dev.csv") { id: case, outcome: y as binary }
features f = tabular(dev)
model clf = logistic(f, target: dev.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(3), bootstrap: 200 }
"""
    res = compile_source(src, "<test>")
    got = assess(Facts(manifest_stages(res.study)))
    tripod = {it["id"]: it for it in got["tripod_ai"]["items"]}
    claim = {it["id"]: it for it in got["claim_2024"]["items"]}
    assert tripod["5"]["verdict"] == "author" and tripod["5"]["evidence"][0]["stage"] == "dev"
    assert claim["42"]["verdict"] == "author"
    assert tripod["23"]["verdict"] == "satisfied"        # bootstrap CIs and (binary default metrics) calibration


def test_comparisons_with_a_non_radiomic_and_a_classical_model():
    from radlang.compiler import compile_source

    src = """study "compare" { seed: 1 }
cohort dev = phantom(30) { size: [16, 16, 16] }
features rad = pyradiomics(dev.image, dev.mask) { bin_width: 25, classes: [firstorder] }
features clin = tabular(dev) { columns: [age] }
model forest = random_forest(rad, target: dev.outcome)
model age = logistic(clin, target: dev.outcome)
validate v_forest = evaluate(forest) { cv: stratified_kfold(3) }
validate v_age = evaluate(age) { cv: stratified_kfold(3) }
"""
    res = compile_source(src, "<test>")
    assert res.ok, [d.message for d in res.diagnostics]
    items = {it["id"]: it for it in assess(Facts(manifest_stages(res.study)))["metrics"]["items"]}
    assert items["24"]["verdict"] == "satisfied" and [e["stage"] for e in items["24"]["evidence"]] == ["v_age"]
    assert items["25"]["verdict"] == "satisfied" and [e["stage"] for e in items["25"]["evidence"]] == ["v_age"]
    one = compile_source(src.replace("validate v_age = evaluate(age) { cv: stratified_kfold(3) }\n", ""), "<test>")
    items = {it["id"]: it for it in assess(Facts(manifest_stages(one.study)))["metrics"]["items"]}
    assert items["24"]["verdict"] == items["25"]["verdict"] == "author"


def test_a_federated_runs_metrics_file_is_evidence():
    """After a run, the federated stage's metrics file backs its items: the pooled-test summary (metrics) and each
    site's training cases (counts); its saved weights, the model's availability."""
    stages = manifest_stages(compile_file(str(EXAMPLES / "federated.rad")).study)
    record = {"metric": "auc", "sites": {"site1": {"n": 120}, "site2": {"n": 80}},
              "summary": {"federated": {"mean": 0.81, "min": 0.8, "max": 0.82, "seeds": 3}}}
    got = assess(Facts(stages, {"fed_federated": record}, files=["models/fed.json"]))
    ev = {it["rule"]: it["evidence"] for name in got for it in got[name]["items"] if it["rule"]}
    assert {"file": "metrics/fed_federated.json", "text": "training cases per site: site1 120, site2 80"} in ev["counts"]
    assert any(e.get("file") == "metrics/fed_federated.json" and e["text"].startswith("pooled-test auc 0.810 (min 0.800, max 0.820) over 3 seed(s)")
               for e in ev["metrics"])
    assert {"file": "models/fed.json", "text": "the saved final model"} in ev["model_availability"]
