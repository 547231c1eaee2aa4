"""The run-time value of a `select` or `model` stage: a recipe, not a fit.

Such a stage fits nothing on its own. The validations that use it refit it inside each of their training
folds (their refit graphs, radlang/passes/fit_boundaries.py), and their final models on every training case;
its value records what it is, and is written as its typed artefact, recipes/<stage>.json.
"""

from __future__ import annotations


def run_recipe(stage, ctx):
    import json

    from radlang import registry
    from radlang.backends.cache import atomic_write_text

    ctx.keys[stage.name] = ctx.stage_key(stage)
    recipe = {"stage": stage.name, "op": stage.op, "kind": stage.kind, "params": stage.params, "seed": stage.seed,
              "version": registry.get(stage.op).version, "fit_within": list(stage.fit_within)}
    (ctx.out / "recipes").mkdir(parents=True, exist_ok=True)
    atomic_write_text(ctx.out / "recipes" / f"{stage.name}.json", json.dumps(recipe, indent=2, sort_keys=True, default=str) + "\n")
    return recipe
