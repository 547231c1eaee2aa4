"""`fedavg`: federated averaging across a cohort's sites. This version declares its signature and checks
(W690 at check time); `radlang run` stops at the stage with E690.

    federate fed = fedavg(net, glioma) { by: site, rounds: 20, local_epochs: 2 }
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym


class FedAvgSettings(Settings):
    by: str = Field("site", description="the cohort attribute that defines the federation's nodes (only `site`)")
    rounds: int = Field(20, ge=1, description="communication rounds")
    local_epochs: int = Field(1, ge=1, description="local epochs per round")
    loss: Literal["dice", "dice_ce", "focal", "cross_entropy"] = Field("dice_ce")
    lr: float = Field(1e-3, gt=0)
    batch: int = Field(2, ge=1)
    patch: list[int] | None = None

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, v):
        return str(v) if isinstance(v, Sym) else v


def _fed_type(ctx) -> RType:
    net, coh, s = ctx.inputs["net"], ctx.inputs["cohort"], ctx.settings
    if s.by != "site":
        ctx.error("E306", f"`by: {s.by}`: federated nodes are defined by the cohort's `site`", setting="by", hint="write `by: site`")
    if not coh.has_site:
        ctx.error("E203", f"federated training needs sites, but cohort `{coh.cohort}` has no site column", port="cohort",
                  hint=f"add `site: <column>` to cohort `{coh.cohort}`")
    if coh.channels and net.channels and coh.channels != net.channels:
        ctx.error("E211", f"the network takes {net.channels} channel(s), but cohort `{coh.cohort}` has {coh.channels} image column(s)", port="net")
    if net.dims == 3 and coh.dims == 2:
        ctx.error("E210", "a 3D network cannot train on 2D images", port="net")
    ctx.error("W690", "federated execution is not available in this version: the stage is checked and planned, "
              "but `radlang run` stops at it", hint="train with `supervised` on the pooled cohort meanwhile")
    return RType("TrainedModel", cohort=coh.cohort, outcome=coh.outcome, dims=net.dims, channels=net.channels, head=net.head,
                 classes=net.classes, has_site=True, detail=f"federated {net.detail}")


def run_fedavg(stage, ctx):
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    raise RunError([Diagnostic("E690", f"`{stage.name}`: federated execution (`{stage.op}`) is not available in this version of radlang",
                               stage.span, hint="the spec checks and plans; train centrally with `supervised` to run it")])


register(Operator(
    name="fedavg", kind="federate", output="TrainedModel", settings=FedAvgSettings, fit="outcome",
    behaviour="fitted", run=run_fedavg,
    inputs=(Port("net", ("Network",)), Port("cohort", ("Cohort",), doc="a cohort with a `site` column")),
    positional=("net", "cohort"), infer=_fed_type, version="1",
    doc=("Federated averaging across the cohort's sites (signature and checks only: running it reports that "
         "federated execution is not available in this version)."),
    examples=("federate fed = fedavg(net, glioma) { by: site, rounds: 20, local_epochs: 2 }",),
))
