"""Executor modes, one module each; each registers itself with `radlang.backends.executor.mode`."""
