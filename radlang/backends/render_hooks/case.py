"""Render hooks for the modes of radlang/backends/modes/case.py: `case` (per-case PyRadiomics extraction)
and `segment` (lazy: segmentation runs inside each case's task). Each stage calls the mode's own function,
inlined verbatim; the script runs the cases one after another (same numbers as a process pool)."""

from radlang.backends.render import mode_calls

HOOKS = mode_calls("radlang.backends.modes.case", {"case": "run_features", "segment": "run_segment"})
