"""`radlang render FILE --target flower -o DIR`: a study's federated stage as a Flower app (a ServerApp, a ClientApp
and a pyproject.toml), to deploy with `flower-superlink`, one `flower-supernode` per site and `flwr run`.

The operator of the federated stage writes the app (its `flower` declaration, radlang/registry.py); this module only
finds the stage, runs the stages above it (the app needs the feature columns and the sites), and writes the files.
With `site_data`, each site's cases are written under DIR/sites/<site>/ for a deployment on one machine.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from radlang import registry
from radlang.backends.render.literals import RenderError


def federated_stage(study):
    """The one stage whose operator declares a Flower app (E750 when there is none, E751 when there are several)."""
    stages = [s for s in study.stages if registry.get(s.op).flower is not None]
    if not stages:
        raise RenderError("E750", "`--target flower` renders a federated stage, and this study has none "
                                  "(add a `federate` stage, or render the plain script without `--target`)")
    if len(stages) > 1:
        raise RenderError("E751", "`--target flower` renders one federated stage, and this study has "
                                  f"{len(stages)}: {', '.join(f'`{s.name}`' for s in stages)} (keep one per spec)")
    return stages[0]


def render_flower(study, out_dir, site_data=False) -> list[Path]:
    """Write the Flower app of the study's federated stage into `out_dir`; return the written paths."""
    import networkx as nx

    from radlang.backends.executor import held_run, run_stages

    stage = federated_stage(study)
    above = nx.ancestors(study.graph, stage.name)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RenderError("E752", f"`{out_dir}` is a file; `--target flower` writes an app folder there")
    with tempfile.TemporaryDirectory(prefix="radlang-flower-") as tmp, held_run(study, out=Path(tmp) / "out", quiet=True) as ctx:
        run_stages(ctx, [s for s in study.stages if s.name in above])
        files = registry.get(stage.op).flower(stage, ctx, site_data)
    written = []
    for rel, text in sorted(files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
