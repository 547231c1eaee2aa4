"""Reporting checklists (TRIPOD+AI, CLAIM 2024, METRICS) marked from a finished run.

The items are data (radlang/review/checklists/*.json: each item's number, topic, a short paraphrase, its published
source and, for METRICS, its weight). Each item names a rule (or none: only the authors can answer it). A rule
reads the compiled study as the run recorded it (manifest.json: every stage's operator and settings), the metrics
and run.json, and gives a verdict with its evidence:

- `satisfied`: the spec (a stage, linked to its line) or an output (linked to the file) satisfies the item;
- `author`: the spec cannot show it; the authors must supply it (the evidence says what the run does show);
- `na`: the item does not apply to this study (no segmentation step, no deep learning, ...).

The METRICS score is the weight of the satisfied items over the weight of the applicable ones, in percent: a lower
bound, since the items left to the authors are counted as not met until they answer them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CHECKLISTS = ("tripod_ai", "claim_2024", "metrics")
GENERATED = ("phantom", "dataset", "synthetic_expression", "multisite")   # cohorts the spec describes in full: generated or shipped data
VERDICTS = {"satisfied": "satisfied by the spec", "author": "needs author input", "na": "not applicable"}


@dataclass
class Facts:
    """What the rules read. The verdicts come from the stages (manifest.json's records of the compiled study:
    radlang.backends.artefacts.manifest_stages); a finished run's metrics, run.json and files add evidence. Two verdicts
    also read the run: a warning of too few events per variable takes `dimensionality` back to the authors, and a
    cohort whose table holds several sites satisfies `multicenter`."""

    stages: list[dict]
    metrics: dict[str, dict] = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    sites: dict[str, list[str]] = field(default_factory=dict)   # cohort -> its distinct sites (the run's cohort tables)

    def of(self, *kinds, ops=None):
        return [s for s in self.stages if s["kind"] in kinds and (ops is None or s["op"] in ops)]

    def evaluations(self):
        return self.of("validate", ops=("evaluate",))

    def federations(self, tested=False):
        """The federated stages; with `tested`, those that score their model on held-out test cohorts (`test`, `tests`),
        per site and pooled (metrics/<stage>_federated.json)."""
        return [s for s in self.of("federate") if not tested or _fed_tests(s)]

    def federated_models(self):
        """The network models a federated stage trains (its input): fit across sites, never inside validation folds."""
        names = {s["name"] for s in self.stages}
        return {str(s["inputs"].get("input", "")).split(".")[0] for s in self.of("federate")} & names

    def metric_list(self, s):
        """The metrics an `evaluate` stage computes: its `metrics`, or every metric of its outcome."""
        from radlang.ops.validate import BINARY_METRICS, MULTICLASS_METRICS, SURVIVAL_METRICS

        given = s["params"].get("metrics")
        return list(given) if given else list({"binary": BINARY_METRICS, "multiclass": MULTICLASS_METRICS,
                                               "survival": SURVIVAL_METRICS}.get(s.get("outcome"), ()))


def _stage(s, what=""):
    return {"stage": s["name"], "text": f"`{s['kind']} {s['name']} = {s['op']}(...)`" + (f": {what}" if what else "")}


def _file(path, what):
    return {"file": path, "text": what}


def _first(items, verdict_if_none="author"):
    return ("satisfied", items) if items else (verdict_if_none, [])


FED_METRIC = {"survival": "the C-index", "binary": "the AUC", "multiclass": "the one-vs-rest AUC", "continuous": "the RMSE"}
FED_OUTPUT = {"survival": "a risk score (the model's linear predictor)", "binary": "a score: the log-odds of the outcome",
              "multiclass": "one logit per class", "continuous": "the predicted value"}


def _fed_tests(s):
    """The held-out cohorts a federated stage scores its model on."""
    if "test" in s["inputs"]:
        return [str(s["inputs"]["test"]).split(".")[0]]
    return [str(t).split(".")[0] for t in s["params"].get("tests") or []]


def _fed_file(f, s, what):
    """Evidence from a finished run's metrics/<stage>_federated.json: its pooled-test summary (`what`: "summary") or
    each site's training cases ("sites")."""
    m = f.metrics.get(f"{s['name']}_federated") or {}
    path = f"metrics/{s['name']}_federated.json"
    if what == "sites" and m.get("sites"):
        return [_file(path, "training cases per site: " + ", ".join(f"{k} {v.get('n')}" for k, v in sorted(m["sites"].items())))]
    fed = (m.get("summary") or {}).get("federated")
    if what == "summary" and fed:
        return [_file(path, f"pooled-test {m.get('metric')} {fed['mean']:.3f} (min {fed['min']:.3f}, max {fed['max']:.3f}) over "
                            f"{fed['seeds']} seed(s), with each site's and the centralised and local-only models'")]
    return []


# ---------------------------------------------------------------------------------------------- rules
# each: Facts -> (verdict, [evidence {"text", and "stage" (linked to its spec line) | "file" | "anchor"}])


def data_source(f):
    """Generated (phantom) or shipped (dataset) cohorts are described in full by the spec; for the authors' own data
    the spec names the files, and the dates and settings of collection are theirs to give."""
    ev = [_stage(s, "the cohort's source") for s in f.of("cohort")]
    own = [s for s in f.of("cohort") if s["op"] not in GENERATED]
    return ("author" if own or not ev else "satisfied"), ev


def open_science(f):
    """Composite items (funding, conflicts, registration, protocol, data, code and model access): the authors answer
    them; what the run gives towards them is the evidence."""
    return "author", code_availability(f)[1] + model_availability(f)[1] + data_availability(f)[1]


def materials(f):
    """Code, model and data all available: the spec is the code, the run saves the model, the data are generated or
    shipped; otherwise the authors say where the data are."""
    ev = code_availability(f)[1] + model_availability(f)[1] + data_availability(f)[1]
    own = [s for s in f.of("cohort") if s["op"] not in GENERATED]
    return ("author" if own or model_availability(f)[0] != "satisfied" else "satisfied"), ev


def participants(f):
    return "author", flow(f)[1] + counts(f)[1] + [{"text": "the participants' characteristics are the authors' to give"}]


def differences(f):
    return "author", training_vs_evaluation(f)[1] + [{"text": "how the evaluation data differ from the development data is the authors' to describe"}]


def performance(f):
    """Performance with confidence intervals and calibration."""
    u, c = uncertainty(f), calibration(f)
    return ("satisfied" if u[0] == c[0] == "satisfied" else "author"), u[1] + c[1]


def eligibility(f):
    ex = f.run.get("excluded_cases") or []
    ev = [_file("run.json", f"{len(ex)} case(s) excluded, with reasons")] if ex else []
    return "author", ev + [{"text": "the spec lists the cases; the criteria that chose them are the authors'"}]


def exclusions(f):
    return "satisfied", [{"text": "the cohort flow diagram: every excluded case with its reason", "anchor": "flow"}]


def preprocessing(f):
    ev = image_preprocessing(f)[1]
    fed_models = f.federated_models()
    ev += [_stage(s, f"impute: {s['params'].get('impute', 'median')}, scale: {s['params'].get('scale', 'standard')}, fit inside the training folds")
           for s in f.of("model") if s["name"] not in fed_models]
    ev += [_stage(s, "features z-scored with the federation's mean and SD, from each site's case count and sums")
           for s in f.federations() if s["params"].get("standardize") == "federated"]
    return _first(ev)


def image_preprocessing(f):
    ev = [_stage(s, "image preprocessing") for s in f.of("preprocess")]
    ev += [_stage(s, ", ".join(f"{k}: {s['params'][k]}" for k in ("bin_width", "bin_count", "resample", "normalize")
                               if s["params"].get(k) is not None) or "PyRadiomics defaults")
           for s in f.of("features", ops=("pyradiomics",))]
    return _first(ev, "na")


def outcome(f):
    ev = [_stage(s, f"a {s.get('outcome')} outcome") for s in f.evaluations()]
    return "author", ev + [{"text": "how the reference standard was assessed is the authors' to state"}]


def predictors(f):
    return _first([_stage(s, "the predictors") for s in f.of("features")])


def sample_size(f):
    ev = [_file(f"metrics/{n}.json", f"{m.get('n_cases')} cases, outcome counts {m.get('outcome_counts')}, {m.get('n_features')} candidate features")
          for n, m in f.metrics.items() if m.get("n_cases") is not None]
    return "author", ev + [{"text": "the justification of the sample size is the authors'"}]


def counts(f):
    ev = [_stage(s, "its metrics file gives the cases and outcome counts analysed") for s in f.evaluations()]
    ev += [_file(f"metrics/{n}.json", f"{m.get('n_cases')} cases, outcome counts {m.get('outcome_counts')}")
           for n, m in f.metrics.items() if m.get("n_cases") is not None]
    for s in f.federations():
        ev += [_stage(s, "its metrics file gives each site's training cases")] + _fed_file(f, s, "sites")
    return _first(ev)


def missing_data(f):
    fed_models = f.federated_models()
    return _first([_stage(s, f"`impute: {s['params'].get('impute', 'median')}` inside each training fold") for s in f.of("model")
                   if s["params"].get("impute", "median") != "none" and s["name"] not in fed_models])


def analysis(f):
    return _first([_stage(s, "every fitted stage refit inside each training fold: " + " -> ".join(s.get("refit", {}).get("nodes", [])))
                   for s in f.evaluations()] + [_stage(s, "the network, its loss, optimiser and schedule") for s in f.of("train")]
                  + [_stage(s, f"federated training ({s['params'].get('strategy')}): {s['params'].get('rounds')} rounds of "
                               f"{s['params'].get('local_epochs')} local epoch(s), each site training on its own cases only")
                     for s in f.federations()])


def class_imbalance(f):
    return _first([_stage(s, "`class_weight: balanced`") for s in f.of("model") if s["params"].get("class_weight")])


def model_output(f):
    ev = []
    for s in f.evaluations():
        rule = s["params"].get("threshold")
        what = "a risk" if s.get("outcome") == "survival" else "a probability"
        ev.append(_stage(s, what + (f", with a threshold chosen on the training folds by {rule['metric']} {rule.get('op', '')} {rule.get('value', '')}".rstrip()
                                    if rule else "")))
    ev += [_stage(s, FED_OUTPUT[s["outcome"]]) for s in f.federations() if s.get("outcome") in FED_OUTPUT]
    return _first(ev)


def training_vs_evaluation(f):
    return _first([_stage(s, f"external cohort `{s['inputs']['external']}`, never fit on") for s in f.evaluations() if "external" in s["inputs"]])


def code_availability(f):
    sha = (f.run.get("spec") or {}).get("sha256")
    return "satisfied", [{"text": "the spec is the analysis code (`radlang render` writes it as a standalone script)"
                          + (f"; spec sha256 {sha[:12]}" if sha else ""), "anchor": "spec"}]


def flow(f):
    return "satisfied", [{"text": "the cohort flow diagram (cases in, excluded with reasons, analysed)", "anchor": "flow"}]


def model_availability(f):
    ev = [_stage(s, "saves its final model under models/") for s in f.of("validate", "train", ops=("evaluate", "supervised"))]
    ev += [_stage(s, "saves its final global weights (every seed's) under models/") for s in f.federations()]
    feds = {f"models/{s['name']}.json" for s in f.federations()}
    ev += [_file(p, "the saved final model") for p in f.files if p.startswith("models/") and (p.endswith((".skops", ".model.json", ".pt")) or p in feds)]
    return _first(ev)


def uncertainty(f):
    ev = [_stage(s, f"{s['params']['bootstrap']} bootstrap resamples by patient, {s['params'].get('ci', 0.95):.0%} CI")
          for s in f.evaluations() if s["params"].get("bootstrap")]
    for n, m in f.metrics.items():
        a = (m.get("cross_validation") or {}).get("auc") or {}
        if a.get("ci_low") is not None:
            ev.append(_file(f"metrics/{n}.json", f"AUC {a['estimate']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}]"))
    return _first(ev)


def calibration(f):
    return _first([_stage(s, "calibration intercept, slope and curve") for s in f.evaluations() if "calibration" in f.metric_list(s)])


def metrics(f):
    ev = [_stage(s, ", ".join(f.metric_list(s))) for s in f.evaluations()]
    ev += [_stage(s, "Dice and HD95 per case") for s in f.of("validate", ops=("segmentation_metrics",))]
    for s in f.federations(tested=True):
        ev += [_stage(s, f"{FED_METRIC.get(s.get('outcome'), 'the test metric')} of the federated model on each site's test cases "
                         "and pooled, beside centralised and local-only training")] + _fed_file(f, s, "summary")
    return _first(ev)


def partitioning(f):
    return _first([_stage(s, f"{s['params']['cv'].get('kind')}, grouped by patient: a patient's cases never straddle a split")
                   for s in f.evaluations() if s["params"]["cv"].get("kind") != "none"]
                  + [_stage(s, f"scored on `{s['inputs'].get('cohort')}`, a cohort the network never trained on")
                     for s in f.of("validate", ops=("segmentation_metrics",))]
                  + [_stage(s, f"scored on {', '.join(f'`{t}`' for t in _fed_tests(s))}, held-out cohort(s) of its sites the federated "
                               "model never trained on") for s in f.federations(tested=True)])


def internal_test(f):
    return partitioning(f)


def external_test(f):
    return training_vs_evaluation(f)


def software_versions(f):
    v = f.run.get("versions") or {}
    ev = [_file("run.json", ", ".join(f"{k} {x}" for k, x in sorted(v.items())))] if v else []
    return "satisfied", ev + [{"text": "every run records the versions of the packages it used in run.json"}]


def initialisation(f):
    nets = f.of("network")
    return ("satisfied", [_stage(s, f"initialised at random from seed {s['seed']}") for s in nets]) if nets else ("na", [])


def hyperparameters(f):
    return _first([_stage(s, "its settings") for s in f.of("model", "train", "federate")])


def final_model(f):
    ev = [_stage(s, "the final model is refit on every training case") for s in f.evaluations()]
    ev += [_stage(s, "the checkpoint with the best validation score" if s["params"].get("validate_every") else "the last epoch's weights")
           for s in f.of("train")]
    ev += [_stage(s, "the global weights after the last round") for s in f.federations()]
    return _first(ev)


def ensembling(f):
    return "na", [{"text": "the spec combines no models"}]


def explainability(f):
    return _first([_stage(s, f"{s['op']} explanations") for s in f.of("explain")])


def multicenter(f):
    ev = [_stage(s, f"{s['params']['sites']} sites") for s in f.of("cohort") if int(s["params"].get("sites") or 1) > 1]
    ev += [{"text": f"cohort `{c}` holds sites {', '.join(v)}", "stage": c} for c, v in sorted(f.sites.items()) if len(v) > 1]
    ev += [_stage(s, "leave one site out") for s in f.evaluations() if s["params"]["cv"].get("kind") == "leave_one_site_out"]
    ev += [_stage(s, "trained across " + (f"client cohorts {', '.join(str(c).split('.')[0] for c in s['params']['clients'])}"
                                          if s["params"].get("clients") else "the sites of its cohort, each a client"))
           for s in f.federations()]
    return _first(ev)


def _segmented(f):
    """The study segments: a `segment` stage, or features computed inside the masks a cohort gives."""
    return f.of("segment") or [s for s in f.of("features") if str(s["inputs"].get("mask", "")).endswith(".mask")]


def segmentation(f):
    if not _segmented(f):
        return "na", []
    return _first([_stage(s, "the region of interest") for s in f.of("segment")])


def auto_segmentation_evaluated(f):
    if not [s for s in f.of("segment") if s["op"] != "mask"]:
        return "na", []
    return _first([_stage(s, "Dice and HD95") for s in f.of("validate", ops=("segmentation_metrics",))])


def test_masks(f):
    if not _segmented(f):
        return "na", []
    return _first([_stage(s, "masks of every case from one automated tool") for s in f.of("segment") if s["op"] != "mask"])


def feature_software(f):
    return _first([_stage(s, "PyRadiomics (IBSI-compliant)") for s in f.of("features", ops=("pyradiomics",))], "na")


def extraction_parameters(f):
    return _first([_stage(s, "every extraction setting is in the spec") for s in f.of("features", ops=("pyradiomics",))], "na")


def variability(f):
    return _first([_stage(s, "features kept by their reproducibility under perturbation") for s in f.of("select", ops=("icc",))])


def robust_features(f):
    return variability(f) if f.of("features") else ("na", [])


def redundant_features(f):
    if not f.of("features"):
        return "na", []
    return _first([_stage(s, "correlated features removed") for s in f.of("select", ops=("correlation",))])


def dimensionality(f):
    if not f.of("features"):
        return "na", []
    low = [w for w in f.run.get("warnings", []) if "events per variable" in w]
    if low:
        return "author", [_file("run.json", low[0])]
    return _first([_stage(s, "features selected inside the training folds") for s in f.of("select") if s["fit"] == "outcome"])


def deep_robustness(f):
    """End-to-end deep learning: a trained network, or a network as the outcome model (`cnn`, `dann`, `multitask`)."""
    return ("author", []) if f.of("train") or f.of("model", ops=("cnn", "dann", "multitask")) else ("na", [])


def confounders(f):
    return _first([_stage(s, "harmonisation") for s in f.stages if "combat" in s["op"] or "harmoni" in s["op"]])


def uniparametric(f):
    one = [_stage(s, "one image per case") for s in f.of("features", ops=("pyradiomics",)) if "," not in str(s["inputs"].get("image", ""))]
    one += [_stage(s, "one input channel") for s in f.of("network") if int(s["params"].get("in_channels") or 0) == 1]
    return _first(one, "na")


def _ancestors(f, name, seen=()):
    by = {s["name"]: s for s in f.stages}
    if name not in by or name in seen:
        return set()
    up = {str(ref).split(".")[0] for ref in by[name]["inputs"].values()}
    return {name} | set().union(*(_ancestors(f, u, seen + (name,)) for u in up))


def _radiomic(f, evaluation):
    """Whether a validation's model reads radiomic (PyRadiomics) features."""
    by = {s["name"]: s for s in f.stages}
    return any(by[a]["op"] == "pyradiomics" for a in _ancestors(f, evaluation["name"]) if a in by)


def non_radiomic_comparison(f):
    ev = f.evaluations()
    plain = [s for s in ev if not _radiomic(f, s)]
    if len(ev) > 1 and plain and len(plain) < len(ev):
        return "satisfied", [_stage(s, "a model without radiomic features, compared") for s in plain]
    return "author", [_stage(s, "the only kind of model evaluated") for s in ev]


def classical_comparison(f):
    ev = f.evaluations()
    by = {s["name"]: s for s in f.stages}
    classical = [s for s in ev if by.get((s.get("refit") or {}).get("model"), {}).get("op") in ("logistic", "cox")]
    if len(ev) > 1 and classical and len(classical) < len(ev):
        return "satisfied", [_stage(s, "a classical statistical model, compared") for s in classical]
    return "author", [_stage(s, "no comparison of a machine-learning model with a classical one") for s in ev]


def data_availability(f):
    return _first([_stage(s, "generated or shipped data anyone can recreate") for s in f.of("cohort", ops=GENERATED)])


RULES = {fn.__name__: fn for fn in (
    data_source, open_science, materials, participants, differences, performance, eligibility, exclusions, preprocessing, image_preprocessing, outcome, predictors, sample_size, counts, missing_data, analysis,
    class_imbalance, model_output, training_vs_evaluation, code_availability, flow, model_availability, uncertainty,
    calibration, metrics, partitioning, internal_test, external_test, software_versions, initialisation, hyperparameters,
    final_model, ensembling, explainability, multicenter, segmentation, auto_segmentation_evaluated, test_masks,
    feature_software, extraction_parameters, variability, robust_features, redundant_features, dimensionality, deep_robustness,
    confounders, uniparametric, non_radiomic_comparison, classical_comparison, data_availability)}


def load_checklist(name: str) -> dict:
    return json.loads((Path(__file__).parent / "checklists" / f"{name}.json").read_text(encoding="utf-8"))


def assess(facts: Facts) -> dict[str, dict]:
    """{checklist: {name, title, source, note, items: [{id, topic, text, verdict, evidence, weight?}], score?}}."""
    out = {}
    for name in CHECKLISTS:
        cl = load_checklist(name)
        items = []
        for it in cl["items"]:
            verdict, evidence = RULES[it["rule"]](facts) if it["rule"] else ("author", [])
            items.append({**it, "verdict": verdict, "evidence": evidence})
        res = {k: cl[k] for k in ("name", "title", "source", "note")} | {"items": items}
        if all("weight" in it for it in items):
            applicable = sum(it["weight"] for it in items if it["verdict"] != "na")
            met = sum(it["weight"] for it in items if it["verdict"] == "satisfied")
            res["score"] = round(100 * met / applicable, 1) if applicable else None
        out[name] = res
    return out
