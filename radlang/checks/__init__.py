"""Checks, one module each: uses (presets), names, binding and types, settings, graph, study design."""
