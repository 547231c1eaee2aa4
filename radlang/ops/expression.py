"""`synthetic_expression`: a generated gene-expression table matched to the patients of another cohort, in which
one pathway drives the outcome (for radiogenomics examples and tests; nothing is downloaded).

    cohort train = phantom(60)
    cohort genes = synthetic_expression(train) { genes: 300, effect: 1.0 }
    features expr = tabular(genes)                       # 318 gene columns for 60 patients: p >> n

One row per patient of the source cohort (its case id is the patient id, so `join(..., { by: patient })` matches
it), log2-expression-like values for `genes` background genes (G0001, ...) plus two named sets: a hypoxia set
(CA9, VEGFA, SLC2A1, PGK1, LDHA, BNIP3, ADM, NDRG1, P4HA1, ANKRD37) whose genes rise with a per-patient latent
activity that the outcome shifts by `effect`, and a proliferation set (MKI67, TOP2A, CCNB1, BUB1, AURKA, CDK1,
MCM2, PCNA) unrelated to it. Every gene has its own baseline level, and every sample its own offset (a library
size on the log scale), which a rank-based single-sample score does not see. It is an attribute table: no outcome.
The table is written to <out>/data/<stage>-<hash>/expression.csv. `make_expression` is self-contained.
"""

from __future__ import annotations

from pydantic import Field

from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings

HYPOXIA = ("CA9", "VEGFA", "SLC2A1", "PGK1", "LDHA", "BNIP3", "ADM", "NDRG1", "P4HA1", "ANKRD37")
PROLIFERATION = ("MKI67", "TOP2A", "CCNB1", "BUB1", "AURKA", "CDK1", "MCM2", "PCNA")

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def make_expression(patients, outcome, params, seed, hypoxia, proliferation):
    """The expression table (rows: patients, in order; columns: the hypoxia genes, the proliferation genes, then
    G0001...). outcome: 0/1 per patient. Pathway activity a = effect * (outcome - 0.5) + N(0, 0.5); a hypoxia gene
    is baseline + loading * a + N(0, noise); a proliferation gene follows its own activity N(0, 1) instead."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = len(patients)
    names = list(hypoxia) + list(proliferation) + [f"G{i + 1:04d}" for i in range(int(params["genes"]))]
    base = rng.normal(8.0, 2.0, len(names))
    noise = float(params["noise"])
    values = base[None, :] + rng.normal(0.0, noise, (n, len(names)))
    act = float(params["effect"]) * (np.asarray(outcome, float) - 0.5) + rng.normal(0.0, 0.5, n)
    prolif = rng.normal(0.0, 1.0, n)
    k = len(hypoxia)
    values[:, :k] += act[:, None] * rng.uniform(0.8, 1.6, k)[None, :]
    values[:, k:k + len(proliferation)] += prolif[:, None] * rng.uniform(0.8, 1.6, len(proliferation))[None, :]
    values += rng.normal(0.0, 0.7, n)[:, None]             # per-sample offset: a library size on the log2 scale
    df = pd.DataFrame(np.round(values, 6), columns=names)
    df.insert(0, "patient_id", [str(p) for p in patients])
    return df


# ----------------------------------------------------------------------------------------------
# run time


def run_synthetic_expression(stage, ctx):
    import numpy as np

    from radlang import registry
    from radlang.backends.cache import atomic_write_bytes, key
    from radlang.backends.glue import table_key

    op = registry.get(stage.op)
    src = ctx.results[stage.inputs["cohort"].stage]
    col = "event" if "event" in src.columns else "outcome"
    per_patient = src.groupby(src["patient_id"].astype(str), sort=False)[col].max()
    p = stage.params
    seed = p["seed"] if p.get("seed") is not None else stage.seed
    raw = make_expression(per_patient.index.tolist(), per_patient.fillna(0).astype(int).to_numpy(), p, seed, HYPOXIA, PROLIFERATION)
    data = raw.to_csv(index=False, lineterminator="\n").encode("utf-8")
    atomic_write_bytes(ctx.out / "data" / f"{stage.name}-{key(p, seed, op.version)[:16]}" / "expression.csv", data)
    genes = [c for c in raw.columns if c != "patient_id"]
    df = raw[["patient_id"]].assign(case_id=raw["patient_id"])[["case_id", "patient_id"]]
    df = df.join(raw[genes].astype(np.float64).add_prefix("clinical."))
    df.attrs["radlang"] = {"name": stage.name, "source": f"synthetic expression of `{stage.inputs['cohort'].stage}`",
                           "columns": {"case_id": "patient_id", "patient_id": "patient_id", **{f"clinical.{g}": g for g in genes}},
                           "images": [], "outcome": None, "classes": None}
    ctx.keys[stage.name] = key("cohort", stage.op, op.version, table_key(df))
    return df


# ----------------------------------------------------------------------------------------------
# declaration


class SyntheticExpressionSettings(Settings):
    genes: int = Field(300, ge=0, le=20000, description="background genes (G0001, ...) besides the 18 of the two named sets")
    effect: float = Field(1.0, ge=0, le=10, description="how strongly the outcome shifts the hypoxia pathway's activity (0 = not at all)")
    noise: float = Field(0.5, ge=0, description="gene-level noise (log2 units)")
    seed: int | None = Field(None, description="generator seed (default: the stage seed)")


def _expression_type(ctx) -> RType:
    src = ctx.inputs["cohort"]
    if src.outcome not in ("binary", "survival"):
        ctx.error("E203", f"`synthetic_expression` plants a pathway that drives the outcome, but cohort `{src.cohort}` has "
                  f"{'a ' + src.outcome if src.outcome else 'no'} outcome", port="cohort", hint="generate it for a cohort with a binary outcome")
    return RType("Cohort", cohort=ctx.stmt.name, outcome=None, channels=0, detail="synthetic expression")


register(Operator(
    name="synthetic_expression", kind="cohort", output="Cohort", settings=SyntheticExpressionSettings, positional=("cohort",),
    inputs=(Port("cohort", ("Cohort",), doc="the cohort whose patients (and outcome) the expression is generated for"),),
    behaviour="stateless", run=run_synthetic_expression, impl=make_expression, infer=_expression_type,
    doc="A generated gene-expression table (genes as columns, one row per patient of another cohort) in which a hypoxia "
        "gene set drives the outcome and a proliferation set does not; an attribute table (no outcome) for radiogenomics "
        "examples. Writes <out>/data/<stage>-<hash>/expression.csv.",
    examples=("cohort genes = synthetic_expression(train) { genes: 300, effect: 1.0 }",),
))
