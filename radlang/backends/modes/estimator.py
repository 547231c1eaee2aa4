"""Mode `estimator`.

`estimator`: a `select` or `model` stage fits nothing on its own. Its value is a recipe (operator,
plain settings, seed) that the `evaluate` mode assembles into a scikit-learn Pipeline and refits
inside every training fold.
"""

from __future__ import annotations

from radlang.backends.executor import mode


@mode("estimator")
def run_estimator(stage, ctx):
    from radlang import registry

    op = registry.get(stage.op)
    ctx.keys[stage.name] = ctx.stage_key(stage)
    return {"stage": stage.name, "op": stage.op, "kind": stage.kind, "params": stage.params, "seed": stage.seed,
            "version": op.version}
