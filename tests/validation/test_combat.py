"""ComBat harmonisation (`combat`, radlang/ops/harmonise.py): equal to neuroCombat (the test-only oracle) on a fixed
array, fit inside training folds only, deterministic, the unseen-site policies, and bad input as diagnostics."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from _validation_util import codes, compile_ok, metrics, predictions, run_error_codes, run_spec, write_table

from radlang.ops.harmonise import make_combat

SITES = np.repeat(["a", "b", "c"], [14, 20, 16])


def site_array(seed=0, n_features=6):
    """50 cases of 3 sites with site-specific location and scale, an integer age (exact in neuroCombat's float32
    design) and a categorical sex."""
    rng = np.random.default_rng(seed)
    n = len(SITES)
    age = rng.integers(30, 80, n).astype(float)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    shift = {"a": 0.0, "b": 2.0, "c": -1.0}
    scale = {"a": 1.0, "b": 1.8, "c": 0.6}
    X = rng.normal(size=(n, n_features)) * np.array([scale[s] for s in SITES])[:, None]
    X += np.array([shift[s] for s in SITES])[:, None] * rng.uniform(0.5, 1.5, n_features) + 0.03 * age[:, None]
    ids = [f"k{i:02d}" for i in range(n)]
    return pd.DataFrame(X, index=ids, columns=[f"f{j}" for j in range(n_features)]), age, sex


def fold_inputs(ids, sites, cov=None, names=()):
    return {"batch": dict(zip(ids, sites)), "covariates": {i: list(cov[k]) if cov is not None else [] for k, i in enumerate(ids)},
            "covariate_names": list(names)}


def neurocombat(X, sites, **kw):
    from neuroCombat import neuroCombat

    covars = pd.DataFrame({"batch": sites, **kw.pop("columns", {})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return neuroCombat(dat=X.to_numpy().T, covars=covars, batch_col="batch", **kw)["data"].T


PARAMS = {"batch": "site", "covariates": [], "unseen": "refuse", "empirical_bayes": True, "mean_only": False, "min_cases": 2}


@pytest.mark.parametrize("variant", ["plain", "continuous", "categorical", "mean_only", "no_eb"])
def test_equals_neurocombat(variant, capsys):
    X, age, sex = site_array()
    params, kw, cov, names = dict(PARAMS), {}, None, []
    if variant == "continuous":
        kw, cov, names = {"columns": {"age": age}, "continuous_cols": ["age"]}, age[:, None], ["age"]
    if variant == "categorical":   # one-hot against the sorted levels, the first left out (as combat_fold_data codes it)
        kw, cov, names = {"columns": {"sex": sex}, "categorical_cols": ["sex"]}, (sex == "M").astype(float)[:, None], ["sex=M"]
    if variant == "mean_only":
        params["mean_only"], kw = True, {"mean_only": True}
    if variant == "no_eb":
        params["empirical_bayes"], kw = False, {"eb": False}
    want = neurocombat(X, SITES, **kw)
    got = make_combat(params, 0, fold_inputs(list(X.index), SITES, cov, names)).fit(X).transform(X).to_numpy()
    capsys.readouterr()
    # neuroCombat has no jitter; combatlearn adds 1e-8 to every variance
    assert np.abs(got - want).max() < 1e-6
    assert np.abs(got - X.to_numpy()).max() > 0.1      # it did harmonise


def test_fit_never_sees_the_held_out_rows():
    """Inside a fold (ops/fold_engine.py run_fold, as `evaluate` runs it) ComBat's parameters come from the training rows
    only: wildly different held-out rows leave them unchanged, and they equal a fit on the training rows alone. A ComBat
    fit on every row would move the grand mean, the pooled variance and each site's gamma*/delta*."""
    from radlang.ops.fold_engine import run_fold
    from radlang.ops.models import assemble_pipeline
    from radlang.predict import load_model

    X, _, _ = site_array(1)
    y = np.tile([0, 1], len(X) // 2)
    fi = fold_inputs(list(X.index), SITES)
    graph = {"step": ["h", make_combat, PARAMS, 0, fi], "input": {"source": "f", "columns": list(X.columns)}}
    build = (assemble_pipeline, (graph, "logistic", {"impute": "none", "scale": "none", "hyper": {"C": 1.0}, "classes": 2}, 0))
    rng = np.random.default_rng(3)
    te = np.sort(rng.choice(len(X), 12, replace=False))
    tr = np.setdiff1d(np.arange(len(X)), te)
    X2 = X.copy()
    X2.iloc[te] = X2.iloc[te] * 50 + 1000
    fits = [load_model(run_fold({"build": build, "X": data, "y": y, "train": tr, "test": te, "outcome": "binary", "rule": None,
                                 "save_model": True})["model_bytes"], None).named_steps["h"] for data in (X, X2)]
    alone = make_combat(PARAMS, 0, fi).fit(X.iloc[tr])
    for attr in ("grand_mean_", "pooled_var_", "gamma_", "delta_"):
        assert np.array_equal(getattr(fits[0], attr), getattr(fits[1], attr)), attr
        assert np.array_equal(getattr(fits[0], attr), getattr(alone, attr)), attr
    leaky = make_combat(PARAMS, 0, fi).fit(X2)
    assert not np.allclose(leaky.grand_mean_, alone.grand_mean_)


def test_transductive_site_is_standardised_on_its_own_features():
    """`unseen: transductive` without empirical Bayes: the unseen site's harmonised features have exactly the training
    grand mean and pooled variance (its own location and scale removed), from its features alone."""
    X, _, _ = site_array(2)
    train = SITES != "c"
    params = {**PARAMS, "unseen": "transductive", "empirical_bayes": False}
    fi = fold_inputs(list(X.index), SITES)
    model = make_combat(params, 0, fi).fit(X[train])
    out = model.transform(X[~train]).to_numpy()
    np.testing.assert_allclose(out.mean(axis=0), model.grand_mean_, atol=1e-9)
    np.testing.assert_allclose(out.var(axis=0, ddof=1), model.pooled_var_, rtol=1e-6)   # up to combatlearn's 1e-8 jitter
    with pytest.raises(ValueError, match="`c` was not among the training batches"):
        make_combat(PARAMS, 0, fi).fit(X[train]).transform(X[~train])


def _site_study(tmp_path, n=60, shift=3.0, seed=4, unseen="transductive", cv="leave_one_site_out", extra=""):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat([0, 1], n // 2))
    sites = np.array(["A", "B", "C"])[np.arange(n) % 3]
    X = rng.normal(size=(n, 5)) + y[:, None] + np.where(sites == "B", shift, 0)[:, None]
    write_table(tmp_path / "s.csv", X, y, sites=sites)
    return f"""
cohort c = table("s.csv") {{ id: case, outcome: y as binary, site: hospital }}
features f = tabular(c)
harmonise h = combat(f) {{ unseen: {unseen}{extra} }}
model m = logistic(h, target: c.outcome)
validate v = evaluate(m) {{ cv: {cv}, bootstrap: 0 }}
"""


def test_loso_run_is_deterministic_and_recorded(tmp_path):
    src = _site_study(tmp_path)
    outs = []
    for k in range(2):
        run_spec(src, tmp_path / "s.rad", tmp_path / f"out{k}")
        outs.append(tmp_path / f"out{k}")
    for rel in ("metrics/v.json", "predictions/v.csv", "models/v.skops", "manifest.json"):
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes(), rel
    m = metrics(outs[0])
    assert m["pipeline"] == ["impute", "h", "scale", "m"]
    # per-site metrics: one entry per held-out site, each over exactly that site's 20 cases
    assert sorted(m["per_site"]) == ["A", "B", "C"]
    assert all(v["n_predictions"] == 20 for v in m["per_site"].values())
    pred = predictions(outs[0])
    assert all(g["site"].nunique() == 1 for _, g in pred.groupby("fold"))
    manifest = json.loads((outs[0] / "manifest.json").read_text())
    v = next(s for s in manifest["stages"] if s["name"] == "v")
    assert "transductive" in v["transductive"]["h"]
    from radlang.backends.plan import plan_text

    assert "warning: transductive: `h`: ComBat estimates" in plan_text(compile_ok(src, "s.rad"))
    # with `unseen: refuse` nothing is transductive: neither the refit record nor the plan name it
    refuse = compile_ok(src.replace("unseen: transductive", "unseen: refuse"), "s.rad")
    assert "transductive" not in refuse.stage("v").extra and "transductive:" not in plan_text(refuse)


def test_unseen_site_refused_under_leave_one_site_out(tmp_path):
    diags = run_error_codes(_site_study(tmp_path, unseen="refuse"), tmp_path / "s.rad", tmp_path / "out")
    assert [d.code for d in diags] == ["E677"] * 3
    assert {d.message.split("batch `")[1][0] for d in diags} == {"A", "B", "C"}


@pytest.mark.parametrize("case,code", [
    ("single", "E675"), ("few", "E676"), ("missing_column", "E674"), ("blank", "E678"), ("few_transductive", "E679"),
])
def test_bad_data(tmp_path, case, code):
    n = 30
    rng = np.random.default_rng(5)
    y = np.tile([0, 1], n // 2)
    sites = np.array(["A", "B"])[np.arange(n) % 2].astype(object)
    extra, cv = "", "stratified_kfold(3)"
    if case == "single":
        sites[:] = "A"
    if case == "few":
        sites[0] = "Z"
    if case == "missing_column":
        extra = ", batch: scanner"
    if case == "blank":
        sites[3] = ""
    if case == "few_transductive":   # an external cohort with one case of an unseen site
        sites[:] = np.array(["A", "B"])[np.arange(n) % 2]
    write_table(tmp_path / "s.csv", rng.normal(size=(n, 4)), y, sites=sites)
    ext = ""
    if case == "few_transductive":
        write_table(tmp_path / "e.csv", rng.normal(size=(4, 4)), [0, 1, 0, 1], sites=["A", "A", "B", "Q"], prefix="e")
        ext = 'cohort e = table("e.csv") { id: case, outcome: y as binary, site: hospital }\n'
    src = (ext + f"""
cohort c = table("s.csv") {{ id: case, outcome: y as binary, site: hospital }}
features f = tabular(c)
harmonise h = combat(f) {{ unseen: {"transductive" if case == "few_transductive" else "refuse"}{extra} }}
model m = logistic(h, target: c.outcome)
validate v = evaluate(m) {{ cv: {cv}, bootstrap: 0{", external: e" if ext else ""} }}
""")
    diags = run_error_codes(src, tmp_path / "s.rad", tmp_path / "out")
    assert [d.code for d in diags] == [code], [(d.code, d.message) for d in diags]
    named = {"single": "`A`", "few": "`Z`", "missing_column": "`scanner`", "blank": "c003", "few_transductive": "`Q`"}[case]
    assert named in diags[0].message


@pytest.mark.parametrize("setting,code", [
    ("covariates: [outcome]", "E258"), ("batch: site, covariates: [site]", "E313"), ("covariates: [age, age]", "E314"),
])
def test_bad_settings(setting, code):
    src = f"""
cohort c = table("s.csv") {{ id: case, outcome: y as binary, site: hospital }}
features f = tabular(c)
harmonise h = combat(f) {{ {setting} }}
model m = logistic(h, target: c.outcome)
validate v = evaluate(m) {{ cv: leave_one_site_out }}
"""
    assert code in codes(src)


def test_site_batch_needs_a_site_column():
    src = """
cohort c = table("s.csv") { id: case, outcome: y as binary }
features f = tabular(c)
harmonise h = combat(f)
model m = logistic(h, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(3) }
"""
    assert codes(src) == ["E257"]


def test_predict_gives_the_external_rows_and_refuses_an_unseen_site(tmp_path):
    """`radlang predict` hands each new case's batch to the saved ComBat step (its operator's `fold_data`): on the
    external cohort it gives exactly that cohort's rows of the predictions; with `unseen: refuse`, a new case of a
    site the training cohort lacks is E677."""
    from radlang.backends.executor import RunError
    from radlang.predict import predict

    rng = np.random.default_rng(8)
    n = 36
    sites = np.array(["A", "B"])[np.arange(n) % 2]
    y = np.tile([0, 0, 1, 1], n // 4)
    write_table(tmp_path / "s.csv", rng.normal(size=(n, 4)) + y[:, None] + (sites == "B")[:, None] * 2.0, y, sites=sites)
    ext_sites = np.array(["A", "B", "C"])[np.arange(12) % 3]
    write_table(tmp_path / "e.csv", rng.normal(size=(12, 4)) + np.tile([0, 1], 6)[:, None], np.tile([0, 1], 6), sites=ext_sites, prefix="e")
    src = """
cohort c = table("s.csv") { id: case, outcome: y as binary, site: hospital }
cohort e = table("e.csv") { id: case, outcome: y as binary, site: hospital }
features f = tabular(c)
harmonise h = combat(f) { unseen: transductive }
model m = logistic(h, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(3), external: e, bootstrap: 0 }
"""
    ctx = run_spec(src, tmp_path / "s.rad", tmp_path / "out")
    ext = predictions(tmp_path / "out").query("set == 'external'")
    assert sorted(ext["site"].unique()) == ["A", "B", "C"]
    got = pd.read_csv(predict(ctx.study, "v", tmp_path / "e.csv", tmp_path / "p.csv", out=tmp_path / "out"), dtype={"case_id": str})
    assert got["case_id"].tolist() == ext["case_id"].tolist()
    assert np.array_equal(got["probability"].to_numpy(), ext["probability"].to_numpy())
    refuse = src.replace("unseen: transductive", "unseen: refuse").replace(", external: e", "")
    ctx = run_spec(refuse, tmp_path / "r.rad", tmp_path / "out_r")
    with pytest.raises(RunError) as err:
        predict(ctx.study, "v", tmp_path / "e.csv", tmp_path / "p2.csv", out=tmp_path / "out_r")
    assert [d.code for d in err.value.diagnostics] == ["E677"] and "`C`" in err.value.diagnostics[0].message
    assert not (tmp_path / "p2.csv").exists()


def test_multiclass_metrics_of_a_site_without_some_class():
    """A held-out site may lack a class: its one-vs-rest AUC is undefined (None, with a note), accuracy is still given."""
    from radlang.ops.clinical_metrics import multiclass_metrics

    P = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    m = multiclass_metrics([0, 1, 0, 0], P, {"metrics": ["auc", "accuracy"]})
    assert m["auc"]["estimate"] is None and "1 class(es) absent" in m["auc"]["note"]
    assert m["accuracy"] == 0.75


def test_a_batch_too_thin_in_one_training_fold(tmp_path):
    """A batch with enough cases in the cohort (3) can still fall below `min_cases` in a training fold: E676 names the
    fold, before any fold runs."""
    n = 30
    rng = np.random.default_rng(9)
    y = np.tile([0, 1], n // 2)
    sites = np.array(["A", "B"])[np.arange(n) % 2].astype(object)
    sites[[0, 1, 2]] = "Z"
    write_table(tmp_path / "s.csv", rng.normal(size=(n, 4)), y, sites=sites)
    src = """
cohort c = table("s.csv") { id: case, outcome: y as binary, site: hospital }
features f = tabular(c)
harmonise h = combat(f) { min_cases: 3, unseen: transductive }
model m = logistic(h, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(3), bootstrap: 0 }
"""
    diags = run_error_codes(src, tmp_path / "s.rad", tmp_path / "out")
    # Z's 3 cases spread over the 3 stratified folds (or all in one: then a training fold lacks Z, which the
    # transductive policy estimates from its 3 held-out cases): every fold that holds one out trains on 2 < 3
    assert diags and {d.code for d in diags} == {"E676"}
    assert all("`Z`" in d.message and "training set of fold" in d.message for d in diags)
