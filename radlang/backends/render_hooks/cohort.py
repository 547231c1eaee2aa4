"""Render hook for mode `cohort` (radlang/backends/modes/cohort.py): manifest and phantom cohorts.

The stage calls the mode's own `run_cohort`, inlined verbatim. A manifest's path can be pointed
elsewhere with a `--<stage>-path` flag (relative to the working folder); the default is the spec's
path, relative to the spec's folder, as in `radlang run`."""

from __future__ import annotations

from radlang.backends.render import StageCode, call_mode


def render_cohort(stage, rc) -> StageCode:
    from radlang.backends.modes.cohort import run_cohort

    if stage.op != "manifest":
        return call_mode(stage, rc, run_cohort)
    flag, dest = rc.flag(stage, "path")
    before = [f"if args.{dest}:",
              f"    stage.params = {{**stage.params, 'path': str(Path(args.{dest}).resolve())}}"]
    help_ = f"manifest CSV of cohort `{stage.name}` (default: {stage.params['path']}, relative to the spec's folder)"
    return call_mode(stage, rc, run_cohort, before, options=[rc.option(flag, dest, None, help_)], imports=["Path"])


HOOKS = {"cohort": render_cohort}
