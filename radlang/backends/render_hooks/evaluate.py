"""Render hook for mode `evaluate` (radlang/backends/modes/evaluate.py): leakage-free validation.
The stage calls the mode's own `run_evaluate`, inlined verbatim with the operator code it calls."""

from radlang.backends.render import mode_calls

HOOKS = mode_calls("radlang.backends.modes.evaluate", {"evaluate": "run_evaluate"})
