"""Static types of stage outputs and cohort attributes, used by the checker before anything runs."""

from __future__ import annotations

from dataclasses import dataclass, replace

OUTCOME_KINDS = ("binary", "multiclass", "continuous", "survival")

# What `cohort.attr` refers to.
COHORT_ATTRS = {
    "image": "Image", "mask": "Mask", "outcome": "Outcome", "id": "Ids", "patient": "Ids",
    "site": "Site", "clinical": "Covariates",
}


@dataclass(frozen=True)
class RType:
    kind: str
    cohort: str | None = None          # the cohort a value descends from
    outcome: str | None = None         # outcome kind carried by cohorts, outcomes, models, evaluations
    dims: int | None = None            # 2 or 3 for images, masks and networks
    channels: int | None = None        # image channels / network input channels
    head: str | None = None            # a network's head: segmentation | classification
    has_site: bool = False
    site_adapted: bool = False         # models trained to be invariant across the cohort's sites (DANN): validated leave-one-site-out
    has_mask: bool = False             # cohorts: a mask column; image-patch tables: the mask's crop as a segmentation target
    classes: int | None = None         # label classes (masks, segmentation networks)
    patch: tuple[int, ...] | None = None  # image-patch tables: the crop size in voxels (x, y[, z])
    reduction: str | None = None       # 2D patches of 3D volumes: the reduction to a slice (center, max_area, mip, or "unstated")
    divisor: int | None = None         # networks: the backbone's smallest input side (its total downsampling; twice that for an instance-normalised UNet)
    split: str | None = None           # the shared `split` stage whose folds an evaluation holds out
    detail: str = ""                   # a word for messages: "logistic model", "3D UNet"

    def with_(self, **kw) -> RType:
        return replace(self, **kw)

    def describe(self) -> str:
        bits = []
        if self.dims:
            bits.append(f"{self.dims}D")
        if self.outcome and self.kind != "Cohort":
            bits.append(self.outcome)
        if self.detail:
            bits.append(self.detail)
        extra = f" ({', '.join(bits)})" if bits else ""
        return f"{self.kind}{extra}"
