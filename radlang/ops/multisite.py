"""`multisite`: a generated multi-centre tabular cohort with site effects, for federated studies on one machine.

    cohort train = multisite(600) { sites: 4, features: 8, outcome: binary, site_shift: 0.5, split: train }
    cohort test  = multisite(600) { sites: 4, features: 8, outcome: binary, site_shift: 0.5, split: test }

Every case belongs to one of `sites` sites of unequal size. Its features are a site-independent signal plus a
site offset (each site's feature means shift by `site_shift` SDs: scanner-like batch effects) and noise; the
outcome depends on the signal only (a logistic model for `binary`, a linear one for `continuous`, an exponential
proportional-hazards model with censoring for `survival`). The same settings and seed generate the same cohort, so
two statements that differ only in `split` share their cases: `split` keeps the training or the test part of
every site (`test_fraction` of each site's cases, drawn per site), or `all` of it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.registry import Operator, register
from radlang.types import RType
from radlang.values import Settings, Sym


class MultisiteSettings(Settings):
    cases: int = Field(description="cases over all sites, before the split", ge=40)
    sites: int = Field(4, ge=1, le=12, description="number of sites (clients)")
    features: int = Field(8, ge=1, le=200, description="feature columns (`clinical.f1` ...)")
    informative: int | None = Field(None, ge=1, description="features that carry the outcome (default: 4, or every feature if fewer)")
    outcome: Literal["binary", "continuous", "survival"] = Field("binary", description="the outcome kind")
    effect: float = Field(1.0, ge=0, description="strength of the signal (log-odds, SD or log-hazard per SD)")
    site_shift: float = Field(0.5, ge=0, description="SD of the sites' feature offsets, in feature SDs")
    split: Literal["train", "test", "all"] = Field("all", description="the training part, the test part or all of every site")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="each site's share of test cases")
    seed: int = Field(0, description="the generator's seed")

    @field_validator("outcome", "split", mode="before")
    @classmethod
    def _s(cls, v):
        return str(v) if isinstance(v, Sym) else v


def make_multisite(params, stage_name):
    """The cohort table of a generated multi-site cohort (self-contained)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(int(params["seed"]))
    n, k, p = int(params["cases"]), int(params["sites"]), int(params["features"])
    q = min(int(params.get("informative") or 4), p)
    share = rng.dirichlet(np.full(k, 4.0))                    # unequal site sizes
    site = np.sort(rng.choice(k, size=n, p=share))
    signal = rng.normal(size=(n, p))
    offsets = rng.normal(0.0, float(params["site_shift"]), size=(k, p))
    X = signal + offsets[site] + rng.normal(0.0, 0.3, size=(n, p))
    beta = np.zeros(p)
    beta[:q] = float(params["effect"]) * rng.choice([-1.0, 1.0], size=q) / np.sqrt(q)
    lin = signal @ beta
    out = {}
    kind = params["outcome"]
    if kind == "binary":
        out["outcome"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-lin))).astype(np.int64)
    elif kind == "continuous":
        out["outcome"] = lin + rng.normal(0.0, 1.0, n)
    else:
        event_time = rng.exponential(365.0 * np.exp(-lin))
        censor = rng.exponential(2.0 * 365.0, n)
        out["time"] = np.round(np.minimum(event_time, censor), 1) + 1.0
        out["event"] = (event_time <= censor).astype(np.int64)
    test = np.zeros(n, dtype=bool)
    for s in range(k):
        idx = np.flatnonzero(site == s)
        test[rng.permutation(idx)[: round(len(idx) * float(params["test_fraction"]))]] = True
    width = len(str(n))
    ids = [f"ms{i + 1:0{width}d}" for i in range(n)]
    df = pd.DataFrame({"case_id": ids, "patient_id": ids, **out, "site": [f"site{s + 1}" for s in site]})
    for j in range(p):
        df[f"clinical.f{j + 1}"] = X[:, j]
    keep = {"train": ~test, "test": test, "all": np.ones(n, dtype=bool)}[params["split"]]
    df = df[keep].reset_index(drop=True)
    cols = {c: c for c in df.columns}
    cols.update({f"clinical.f{j + 1}": f"f{j + 1}" for j in range(p)})
    df.attrs["radlang"] = {"name": stage_name, "source": "multisite", "columns": cols, "images": [], "outcome": kind,
                           "classes": ["0", "1"] if kind == "binary" else None}
    return df


def _type(ctx) -> RType:
    s = ctx.settings
    if s.informative is not None and s.informative > s.features:
        ctx.error("E302", f"`informative` ({s.informative}) exceeds `features` ({s.features})", setting="informative")
    return RType("Cohort", cohort=ctx.stmt.name, outcome=s.outcome, channels=0, has_site=True, has_mask=False,
                 detail="multisite")


def run_multisite(stage, ctx):
    from radlang.backends.cache import key
    from radlang.backends.glue import table_key

    df = make_multisite(stage.params, stage.name)
    ctx.keys[stage.name] = key("multisite", table_key(df))
    return df


register(Operator(
    name="multisite", kind="cohort", output="Cohort", settings=MultisiteSettings, positional=("cases",),
    behaviour="stateless", run=run_multisite, impl=make_multisite, infer=_type,
    doc=("A generated multi-centre tabular cohort: sites of unequal size with feature offsets (site effects) and a "
         "binary, continuous or survival outcome that depends on the site-free signal; `split` keeps each site's "
         "training or test part."),
    examples=("cohort ms = multisite(200) { sites: 3, outcome: binary, split: train }",
              "cohort ms = multisite(200) { sites: 4, outcome: survival, site_shift: 1.0 }"),
))
