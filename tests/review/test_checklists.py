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
    # a federated stage validates on its own test cohort: the rules see no validation stage, so those items go to the authors
    "fed_tcga_brca": {"tripod_ai": ("9", ""), "claim_2024": ("10 11 23 34", "24 27"),
                      "metrics": ("29", "8 9 10 11 12 13 17 23", 1.0)},
    "federated": {"tripod_ai": ("9", ""), "claim_2024": ("10 11 23 34", "24 27"),
                  "metrics": ("4 29", "8 9 10 11 12 13 17 23", 6.7)},
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
