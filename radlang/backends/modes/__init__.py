"""Executor modes, one module each; each registers itself with `radlang.backends.executor.mode`. A mode runs
the operators that declare it (`Operator.mode`) instead of a `run` function of their own."""
