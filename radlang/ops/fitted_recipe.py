"""The run-time value of a `select` or `model` stage: a recipe, not a fit.

Such a stage fits nothing on its own. The validations that use it refit it inside each of their training
folds (their refit graphs, radlang/passes/fit_boundaries.py), and their final models on every training case;
its value records what it is, for `radlang run`'s record and the rendered script.
"""

from __future__ import annotations


def run_recipe(stage, ctx):
    from radlang import registry

    ctx.keys[stage.name] = ctx.stage_key(stage)
    return {"stage": stage.name, "op": stage.op, "kind": stage.kind, "params": stage.params, "seed": stage.seed,
            "version": registry.get(stage.op).version, "fit_within": list(stage.fit_within)}
