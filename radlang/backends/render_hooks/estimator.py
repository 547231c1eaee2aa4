"""Render hook for mode `estimator` (radlang/backends/modes/estimator.py): a select or model stage is a recipe
that `evaluate` refits inside training folds. The stage calls the mode's own function, inlined verbatim."""

from radlang.backends.render import mode_calls

HOOKS = mode_calls("radlang.backends.modes.estimator", {"estimator": "run_estimator"})
