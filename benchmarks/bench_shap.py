"""Benchmark: Partition SHAP through radlang against a direct `shap.explainers.Partition` call (target: <= 1.2x).

Both explain the same fitted scikit-learn pipeline (standard scaling + logistic regression on 30 correlated,
radiomics-like features) at the same cases, with the same masker (shap.maskers.Partition over the same background,
clustered on the training cases) and the same `max_evals`. radlang's path is its explanation function
(radlang.ops.explain_shap.shap_explain: clustering, masker, explainer, the model output at the cases), the
direct path builds the masker from that clustering and calls the explainer. Best of N, alternating.

    .venv/bin/python benchmarks/bench_shap.py [--runs 3] [--features 30] [--cases 40] [--max-evals 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--features", type=int, default=30)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--background", type=int, default=50)
    ap.add_argument("--max-evals", type=int, default=500)
    a = ap.parse_args()

    import shap
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from radlang.ops.explain_shap import feature_clustering, shap_explain

    rng = np.random.default_rng(0)
    n = 200
    families = rng.normal(size=(n, 5))
    X = np.repeat(families, a.features // 5 + 1, axis=1)[:, :a.features] + 0.3 * rng.normal(size=(n, a.features))
    y = (X[:, 0] - X[:, 7] + 0.5 * rng.normal(size=n) > 0).astype(int)
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    f = lambda Z: pipe.predict_proba(Z)[:, 1]
    bg, cases = X[:a.background], X[:a.cases]

    def direct():
        masker = shap.maskers.Partition(bg, max_samples=len(bg), clustering=feature_clustering(X))
        return shap.explainers.PartitionExplainer(f, masker)(cases, max_evals=a.max_evals, silent=True).values

    def radlang():
        return shap_explain(f, cases, bg, X, "partition", a.max_evals, seed=0)[0]

    best = {"direct": float("inf"), "radlang": float("inf")}
    for _ in range(a.runs):
        for name, fn in (("direct", direct), ("radlang", radlang)):
            t0 = time.perf_counter()
            values = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    assert np.allclose(direct(), radlang(), atol=1e-12), "the two paths gave different SHAP values"
    ratio = best["radlang"] / best["direct"]
    print(f"{a.features} features, {a.cases} cases, background {a.background}, max_evals {a.max_evals}: "
          f"direct {best['direct']:.3f} s, radlang {best['radlang']:.3f} s, ratio {ratio:.3f} "
          f"(target <= 1.2: {'ok' if ratio <= 1.2 else 'MISSED'}); values identical; shape {values.shape}")


if __name__ == "__main__":
    main()
