"""`radlang render`: a compiled study -> auditable Python. `-o DIR` writes the review folder (study.py: the stages
first, calling radlang_runtime.py beside it, whose sha256 it checks; manifest.json); `-o NAME.py` one standalone script.

One implementation: the script holds radlang's own code, copied verbatim with `inspect.getsource`,
never a second version of it. That is (1) the operators' self-contained functions (`impl` and
`helpers`, see radlang/registry.py), (2) the run-time glue that calls them: each operator's declared
`run` (and its per-case `case` and `on_cohort` functions), with every
radlang function, class and constant they reach (`from radlang... import f` becomes a comment since f
is defined in the script), and (3) a small runtime (render_runtime.py) standing in for the
Stage, RunContext, registry and diagnostics the glue reads. The stages call the same functions in study
order with their settings as Python literals, exactly as `radlang run` does, so the two agree to the byte.

A stage calls its operator's `run` (`call_run`); the operator's `cli_paths` become `--<stage>-<setting>`
flags. The page layout lives in radlang/backends/templates/study.py.j2. Nothing from the
spec is pasted into code: strings become `repr` literals and comments are sanitised `#` lines, so
spec text can never run. See docs/architecture.md, "Rendering".


The package: literals.py (values, comments and names for the script), inline.py (what the script may hold and the
inliner), pins.py (package versions), script.py (the script, the review folder, the call-graph pruning)."""
