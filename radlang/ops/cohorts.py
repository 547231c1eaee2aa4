"""Cohort operators: where cases, images, masks and outcomes come from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.registry import Operator, register
from radlang.types import OUTCOME_KINDS, RType
from radlang.values import CallValue, CastValue, Settings, Sym


class OutcomeSpec(Settings):
    kind: Literal["binary", "multiclass", "continuous", "survival"]
    column: str | None = None          # binary / multiclass / continuous
    time: str | None = None            # survival
    event: str | None = None           # survival
    positive: str | int | None = None  # binary: the value that counts as the event (default: 1 / the larger label)


def parse_outcome(v):
    """`malignant as binary`, `grade as multiclass`, `survival(time: os_months, event: died)`."""
    if v is None or isinstance(v, OutcomeSpec):
        return v
    if isinstance(v, CastValue):
        kind = v.kind.name if isinstance(v.kind, CallValue) else str(v.kind)
        extra = dict(v.kind.kwargs) if isinstance(v.kind, CallValue) else {}
        if kind not in OUTCOME_KINDS:
            raise ValueError(f"unknown outcome kind `{kind}`; use one of {', '.join(OUTCOME_KINDS)}")
        if kind == "survival":
            raise ValueError("write a survival outcome as `survival(time: <column>, event: <column>)`")
        return OutcomeSpec(kind=kind, column=str(v.value), **extra)
    if isinstance(v, CallValue) and v.name == "survival":
        args = dict(zip(("time", "event"), v.args))
        args.update(v.kwargs)
        if set(args) - {"time", "event"} or len(args) != 2:
            raise ValueError("`survival` takes `time` and `event` columns: survival(time: os_months, event: died)")
        return OutcomeSpec(kind="survival", time=str(args["time"]), event=str(args["event"]))
    if isinstance(v, dict):
        return OutcomeSpec(**v)
    raise ValueError("write the outcome as `<column> as binary|multiclass|continuous` or `survival(time: <col>, event: <col>)`")


class ManifestSettings(Settings):
    path: str = Field(description="CSV file with one row per case; paths inside it are relative to it")
    id: str = Field("case_id", description="column with the case id")
    patient: str | None = Field(None, description="column with the patient id (cases of one patient never straddle a split); default: the case id")
    image: str | list[str] = Field("image", description="column(s) holding image paths (NIfTI, NRRD, MHA, or a DICOM series folder); several = channels")
    mask: str | None = Field(None, description="column holding a mask path")
    outcome: OutcomeSpec | None = Field(None, description="`<column> as binary` or `survival(time: <col>, event: <col>)`")
    site: str | None = Field(None, description="column with the acquisition site / hospital")
    clinical: list[str] = Field(default_factory=list, description="tabular covariate columns")
    dims: Literal[2, 3] = Field(3, description="image dimensionality")

    _outcome = field_validator("outcome", mode="before")(lambda cls, v: parse_outcome(v))

    @field_validator("image", "id", "patient", "mask", "site", mode="before")
    @classmethod
    def _names(cls, v):
        return [str(x) for x in v] if isinstance(v, list) else (str(v) if isinstance(v, Sym) else v)


def cohort_type(ctx) -> RType:
    s = ctx.settings
    images = s.image if isinstance(s.image, list) else [s.image]
    return RType("Cohort", cohort=ctx.stmt.name, outcome=s.outcome.kind if s.outcome else None, dims=s.dims,
                 channels=len(images), has_site=s.site is not None, has_mask=s.mask is not None, detail=ctx.stmt.op.name)


register(Operator(
    name="manifest", kind="cohort", output="Cohort", settings=ManifestSettings, positional=("path",),
    mode="cohort", infer=cohort_type, sink=False,
    doc="A cohort read from a CSV manifest: one row per case, columns for id, images, mask, outcome, site and covariates.",
))
