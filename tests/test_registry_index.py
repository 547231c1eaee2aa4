"""The operator index (radlang/ops/_index.py) lets `check` import only the operator modules a spec uses.
It is generated from the registry and must say exactly what the modules declare."""

from __future__ import annotations

import subprocess
import sys

from radlang import registry
from radlang.ops._index import OPERATORS


def test_index_matches_the_operator_modules():
    assert OPERATORS == registry.build_index(), "the operator index is stale: run `python -m radlang.registry`"
    assert set(OPERATORS) == {op.name for op in registry.all_ops()}


def test_compiling_imports_only_the_modules_of_the_operators_used():
    code = ("import sys\nfrom radlang.compiler import compile_source\n"
            "r = compile_source('cohort c = dataset(\"breast_cancer\")\\nfeatures f = tabular(c)\\nmodel m = logistic(f, target: c.outcome)\\n"
            "validate v = evaluate(m)\\n', 's.rad')\n"
            "assert r.ok, [str(d) for d in r.diagnostics]\n"
            "print(sorted(m for m in sys.modules if m.startswith('radlang.ops.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # the modules that declare dataset, tabular, logistic and evaluate, and those they are made of (evaluate's run code,
    # fold engine, metrics (survival metrics too), plots and summary; the recipe a model stage returns; the survival estimator
    # that make_model builds): no other operator's module
    assert eval(out) == ["radlang.ops._index", "radlang.ops.clinical_metrics", "radlang.ops.datasets", "radlang.ops.evaluation_plots",
                         "radlang.ops.evaluation_run", "radlang.ops.evaluation_summary", "radlang.ops.fitted_recipe",
                         "radlang.ops.fold_engine", "radlang.ops.models", "radlang.ops.survival_metrics", "radlang.ops.survival_models",
                         "radlang.ops.validate"]


def test_an_unknown_operator_still_gets_a_suggestion_from_the_index():
    from radlang.compiler import compile_source

    r = compile_source('cohort c = dataset("breast_cancer")\nfeatures f = tabular(c)\nmodel m = logistc(f, target: c.outcome)\n', "s.rad")
    d = next(d for d in r.diagnostics if d.code == "E103")
    assert "logistic" in d.hint
