"""Render hooks for the modes of radlang/backends/modes/estimator.py: `estimator` (a select or model stage
is a recipe that `evaluate` refits inside training folds), `dataset` and `tabular`. Each stage calls the
mode's own function, inlined verbatim."""

from radlang.backends.render import mode_calls

HOOKS = mode_calls("radlang.backends.modes.estimator", {"estimator": "run_estimator", "dataset": "run_dataset", "tabular": "run_tabular"})
