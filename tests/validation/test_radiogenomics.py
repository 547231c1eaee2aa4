"""Radiogenomics: singscore pathway scores (ops/pathways.py), the radiomics x pathway association (ops/association.py),
the generated expression cohort (ops/expression.py) and the elastic net with nested CV over its penalty (ops/models.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _validation_util import codes, predictions, run_error_codes, run_spec, write_table
from hypothesis import given, settings
from hypothesis import strategies as st

from radlang.ops.association import spearman_fdr
from radlang.ops.pathways import gene_set_coverage, read_gmt, singscore_table


def singscore_reference(sample, genes, set_genes):
    """Foroutan et al. 2018, for one sample written out: rank the sample's genes in increasing order (ties: the
    lowest rank), average the set's ranks, scale by the least and greatest averages a set of n genes can have among
    N, (n + 1) / 2 and (2N - n + 1) / 2, and centre by 0.5."""
    N, n = len(genes), len(set_genes)
    ranks = {g: 1 + sum(1 for v in sample if v < x) for g, x in zip(genes, sample)}
    mean = sum(ranks[g] for g in set_genes) / n
    return (mean - (n + 1) / 2) / ((2 * N - n + 1) / 2 - (n + 1) / 2) - 0.5


def test_singscore_equals_the_published_formula():
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(30)]
    expr = pd.DataFrame(np.round(rng.normal(8, 2, (6, 30)), 1), columns=genes, index=[f"s{i}" for i in range(6)])   # ties
    sets = {"a": ["g1", "g4", "g7", "g9", "g20"], "b": genes[10:22]}
    got = singscore_table(expr, sets)
    for s in expr.index:
        for name, members in sets.items():
            assert got.loc[s, name] == pytest.approx(singscore_reference(list(expr.loc[s]), genes, members), abs=1e-12)
    top = pd.DataFrame([np.arange(30.0)], columns=genes)
    assert singscore_table(top, {"hi": genes[-5:], "lo": genes[:5]}).iloc[0].tolist() == [0.5, -0.5]


@settings(max_examples=40, deadline=None)
@given(n_samples=st.integers(2, 12), n_genes=st.integers(6, 40), keep=st.integers(1, 11), seed=st.integers(0, 10_000))
def test_a_samples_score_does_not_change_when_other_samples_are_added_or_removed(n_samples, n_genes, keep, seed):
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(n_genes)]
    expr = pd.DataFrame(np.round(rng.normal(0, 1, (n_samples, n_genes)), 2), columns=genes, index=[f"s{i}" for i in range(n_samples)])
    sets = {"a": genes[: max(1, n_genes // 3)], "b": list(rng.choice(genes, 5, replace=False))}
    full = singscore_table(expr, sets)
    subset = expr.iloc[rng.permutation(n_samples)[: min(keep, n_samples)]]           # other samples removed, order changed
    more = pd.concat([subset, pd.DataFrame(rng.normal(5, 3, (3, n_genes)), columns=genes, index=["x0", "x1", "x2"])])  # others added
    for part in (subset, more):
        got = singscore_table(part, sets)
        assert np.array_equal(got.loc[subset.index].to_numpy(), full.loc[subset.index].to_numpy())
    # and a per-sample shift (a library size on the log scale) changes nothing: ranks are within the sample
    assert np.array_equal(singscore_table(expr.add(rng.normal(0, 3, n_samples), axis=0), sets).to_numpy(), full.to_numpy())


def test_gene_set_coverage_warns_with_counts_and_refuses_too_few():
    present, warns, errs = gene_set_coverage({"a": ["x", "y", "z", "q"], "b": ["x", "w", "v"]}, ["x", "y", "z"], 2)
    assert present == {"a": ["x", "y", "z"], "b": ["x"]}
    assert [n for n, _ in warns] == ["a"] and "1 of its 4 genes" in warns[0][1] and "q" in warns[0][1]
    assert [n for n, _ in errs] == ["b"] and "1 of its 3 genes" in errs[0][1] and "w, v" in errs[0][1]


def test_read_gmt():
    sets, problems = read_gmt("HYPOXIA\thttp://x\tCA9\tVEGFA\tCA9\n\nBAD\nHYPOXIA\td\tA\n")
    assert sets == {"HYPOXIA": ["CA9", "VEGFA"]}
    assert [ln for ln, _ in problems] == [3, 4]


def test_spearman_fdr_equals_scipy_and_statsmodels_bh():
    from scipy.stats import spearmanr
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(1)
    a = pd.DataFrame(rng.normal(0, 1, (40, 5)), columns=list("abcde"))
    b = pd.DataFrame({"p": a["a"] + rng.normal(0, 0.5, 40), "q": rng.normal(0, 1, 40), "flat": 1.0})
    t = spearman_fdr(a, b)
    tested = t[t["p"].notna()]
    assert len(t) == 15 and len(tested) == 10 and t.loc[t["b"] == "flat", "rho"].isna().all()
    for _, r in tested.iterrows():
        ref = spearmanr(a[r["a"]], b[r["b"]])
        assert r["rho"] == pytest.approx(ref.statistic, abs=1e-12) and r["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    q = multipletests(tested["p"], method="fdr_bh")[1]
    np.testing.assert_allclose(tested["q"], q, rtol=1e-9)
    assert tested.iloc[0][["a", "b"]].tolist() == ["a", "p"]


SPEC = """
study "rg" {{ seed: 2 }}
cohort c = table("t.csv") {{ id: case, outcome: y as binary }}
cohort genes = synthetic_expression(c) {{ genes: 40, effect: 2.0 }}
features tab = tabular(c)
features expr = tabular(genes)
features paths = singscore(expr) {{ sets: [{sets}], min_genes: 4 }}
associate rg = spearman(tab, paths) {{ by: patient }}
"""


def _cohort(tmp_path, n=40):
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], n // 2)
    write_table(tmp_path / "t.csv", rng.normal(0, 1, (n, 3)) + y[:, None], y)


def test_radiomics_by_pathway_association_and_gene_set_diagnostics(tmp_path):
    _cohort(tmp_path)
    out = tmp_path / "out"
    run_spec(SPEC.format(sets="hypoxia(CA9, VEGFA, SLC2A1, PGK1, LDHA, NOT_A_GENE), proliferation(MKI67, TOP2A, CCNB1, BUB1)"),
             tmp_path / "s.rad", out)
    warnings = json.loads((out / "run.json").read_text())["warnings"]
    assert [w for w in warnings if w.startswith("W694")] == [
        "W694: `paths`: gene set `hypoxia`: 1 of its 6 genes are not in the expression table and are left out (5 scored): NOT_A_GENE"]
    table = pd.read_csv(out / "associations" / "rg.csv")
    assert list(table.columns) == ["tab", "paths", "n", "rho", "p", "q"] and len(table) == 6
    top = table.iloc[0]
    assert top["paths"] == "hypoxia" and top["q"] < 0.05          # the planted pathway follows the outcome, like the features
    assert (out / "plots" / "rg" / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    diags = run_error_codes(SPEC.format(sets="hypoxia(CA9, VEGFA, X1, X2, X3)"), tmp_path / "s2.rad", tmp_path / "out2")
    assert [d.code for d in diags] == ["E694"] and "2 of its 5 genes" in diags[0].message and "X1, X2, X3" in diags[0].message


def test_gene_set_and_elastic_net_settings_errors():
    base = 'cohort c = dataset("breast_cancer")\nfeatures f = tabular(c)\n'
    assert "E320" in codes(base + "features p = singscore(f)")
    assert "E320" in codes(base + "features p = singscore(f) { sets: [a(x, y, z), a(x, y, z)], min_genes: 2 }")
    assert "E321" in codes(base + "features p = singscore(f) { sets: [a(x, y)] }")
    assert "E322" in codes(base + "model m = logistic(f, target: c.outcome) { penalty: l1, l1_ratio: 0.5 }")
    assert "E322" in codes(base + "model m = logistic(f, target: c.outcome) { search: grid(l1_ratio: [0.1, 0.9]) }")


def test_elastic_net_nested_cv_equals_a_hand_written_loop_on_the_same_folds(tmp_path):
    """The penalty (C and l1_ratio) is chosen by inner CV inside each outer training fold: radlang's out-of-fold
    predictions equal a hand-written scikit-learn GridSearchCV loop over the folds the shared split recorded."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from radlang.compiler import compile_source

    rng = np.random.default_rng(3)
    n, p = 40, 120                                          # p >> n
    y = np.tile([0, 1], n // 2)
    X = rng.normal(0, 1, (n, p))
    X[:, :4] += 0.9 * y[:, None]
    write_table(tmp_path / "t.csv", X, y)
    src = """
study "enet" { seed: 4 }
cohort c = table("t.csv") { id: case, outcome: y as binary }
features f = tabular(c)
model enet = logistic(f, target: c.outcome) { penalty: elasticnet, search: grid(C: [0.1, 1.0], l1_ratio: [0.2, 0.8], cv: 3), max_iter: 2000 }
split cvs = folds(c) { cv: stratified_kfold(4) }
validate v = evaluate(enet, split: cvs) { metrics: [auc], bootstrap: 0 }
"""
    out = tmp_path / "out"
    run_spec(src, tmp_path / "s.rad", out)
    seed = {s.name: s.seed for s in compile_source(src, str(tmp_path / "s.rad")).study.stages}["enet"]
    folds = pd.read_csv(out / "splits" / "cvs.csv", dtype={"case_id": str})
    data = pd.read_csv(tmp_path / "t.csv", dtype={"case": str}).set_index("case")
    feats = data.drop(columns="y")
    feats.columns = [str(c) for c in feats.columns]
    got = predictions(out).set_index("case_id")["probability"]
    for fold in sorted(folds["fold"].unique()):
        te = folds.loc[folds["fold"] == fold, "case_id"]
        tr = [c for c in feats.index if c not in set(te)]
        pipe = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("scale", StandardScaler()),
                         ("model", LogisticRegression(C=1.0, l1_ratio=0.5, solver="saga", max_iter=2000, random_state=seed))]).set_output(transform="pandas")
        search = GridSearchCV(pipe, {"model__C": [0.1, 1.0], "model__l1_ratio": [0.2, 0.8]}, cv=StratifiedKFold(3, shuffle=True, random_state=seed),
                              scoring="roc_auc", refit=True)
        search.fit(feats.loc[tr], data.loc[tr, "y"])
        np.testing.assert_allclose(got.loc[te].to_numpy(), search.predict_proba(feats.loc[te])[:, 1], rtol=0, atol=1e-12)


def test_gmt_files_missing_values_and_fitted_tables_are_diagnostics(tmp_path):
    rng = np.random.default_rng(2)
    genes = [f"G{i}" for i in range(12)]
    expr = pd.DataFrame(rng.normal(8, 1, (10, 12)), columns=genes)
    expr.insert(0, "case", [f"c{i:03d}" for i in range(10)])
    expr.to_csv(tmp_path / "expr.csv", index=False)
    (tmp_path / "bad.gmt").write_text("ok\tdesc\tG1\tG2\tG3\nbroken line without tabs\n")
    base = 'cohort e = table("{f}") {{ id: case }}\nfeatures x = tabular(e)\nfeatures s = singscore(x) {{ {how}, min_genes: 2 }}\n' \
           'associate a = spearman(x, s)\n'
    diags = run_error_codes(base.format(f="expr.csv", how='gmt: "none.gmt"'), tmp_path / "s1.rad", tmp_path / "o1")
    assert [d.code for d in diags] == ["E695"] and "none.gmt" in diags[0].message
    diags = run_error_codes(base.format(f="expr.csv", how='gmt: "bad.gmt"'), tmp_path / "s2.rad", tmp_path / "o2")
    assert [d.code for d in diags] == ["E695"] and "line 2" in diags[0].message
    from radlang.compiler import compile_source

    checked = compile_source(base.format(f="expr.csv", how='gmt: "bad.gmt"'), str(tmp_path / "s2.rad"), data=True).diagnostics
    assert [(d.code, d.message) for d in checked] == [(d.code, d.message) for d in diags]     # `radlang check` says the same
    expr.loc[3, "G5"] = np.nan
    expr.to_csv(tmp_path / "holes.csv", index=False)
    diags = run_error_codes(base.format(f="holes.csv", how="sets: [a(G1, G2, G3)]"), tmp_path / "s3.rad", tmp_path / "o3")
    assert [d.code for d in diags] == ["E696"] and "c003" in diags[0].message and "G5" in diags[0].message

    _cohort(tmp_path)
    fitted = """
cohort c = table("t.csv") { id: case, outcome: y as binary }
features f = tabular(c)
select sig = lasso(f, target: c.outcome) { cv: 3 }
model m = logistic(sig, target: c.outcome)
validate v = evaluate(m) { cv: stratified_kfold(3), metrics: [auc], bootstrap: 0 }
associate a = spearman(sig, f)
"""
    diags = run_error_codes(fitted, tmp_path / "s4.rad", tmp_path / "o4")
    assert [d.code for d in diags] == ["E697"] and "`sig`" in diags[0].message
