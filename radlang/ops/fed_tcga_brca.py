"""`fed_tcga_brca`: FLamby's Fed-TCGA-BRCA as a survival cohort with its natural federated split.

    cohort train = fed_tcga_brca("../../shared/data/fed_tcga_brca") { split: train }
    cohort test  = fed_tcga_brca("../../shared/data/fed_tcga_brca") { split: test }

The folder holds FLamby's preprocessed files (MIT; see its README): `brca.csv` (one row per TCGA patient: 39
clinical covariates, `E` = death observed, `T` = days), and `train_test_split.csv` (FLamby's static split, `fold`
train/test and `fold2` `train_<c>` / `test_<c>` with the client c = 0..5, the six regions). The cohort keeps the
patients of one split; its `site` column is FLamby's client (`0`..`5`), the covariates are `clinical.<name>` columns
(so `tabular(train)` is FLamby's 39-feature input), and the outcome is `survival(time: T, event: E)`.
Nothing is downloaded; the data is read from the folder the spec names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.registry import Operator, register
from radlang.types import RType
from radlang.values import Settings, Sym

REGIONS = ("Northeast", "South", "West", "Midwest", "Europe", "Canada")   # FLamby's clients 0..5


class TcgaSettings(Settings):
    path: str = Field(description="the folder with FLamby's brca.csv and train_test_split.csv (relative to the spec)")
    split: Literal["train", "test"] = Field(description="FLamby's static split: `train` (866 patients) or `test` (222)")

    @field_validator("split", mode="before")
    @classmethod
    def _s(cls, v):
        return str(v) if isinstance(v, Sym) else v


def load_tcga_brca(folder, split, stage_name):
    """The patients of one split as a cohort table (self-contained). Returns (table or None, problems)."""
    import os

    import numpy as np
    import pandas as pd

    files = {k: os.path.join(folder, f"{k}.csv") for k in ("brca", "train_test_split")}
    for f in files.values():
        if not os.path.isfile(f):
            return None, [{"file": f, "message": "not found (FLamby's Fed-TCGA-BRCA files: brca.csv and train_test_split.csv)"}]
    brca = pd.read_csv(files["brca"])
    split_df = pd.read_csv(files["train_test_split"])
    for name, df, need in (("brca", brca, ("pid", "E", "T")), ("train_test_split", split_df, ("pid", "fold", "fold2"))):
        missing = [c for c in need if c not in df.columns]
        if missing:
            return None, [{"file": files[name], "column": missing[0], "message": f"no column `{missing[0]}`"}]
    df = brca.merge(split_df, on="pid", how="inner", validate="one_to_one")
    df = df[df["fold"] == split].reset_index(drop=True)
    covariates = [c for c in brca.columns if c not in ("pid", "E", "T")]
    ids = df["pid"].astype(str)
    out = pd.DataFrame({"case_id": ids, "patient_id": ids, "time": df["T"].astype(float), "event": df["E"].astype(np.int64),
                        "site": df["fold2"].astype(str).str.rpartition("_")[2]})
    block = pd.DataFrame({f"clinical.{c}": df[c].to_numpy(dtype=float) for c in covariates}, index=out.index)
    out = pd.concat([out, block], axis=1)
    cols = {"case_id": "pid", "patient_id": "pid", "time": "T", "event": "E", "site": "fold2"}
    cols.update({f"clinical.{c}": c for c in covariates})
    out.attrs["radlang"] = {"name": stage_name, "source": folder, "columns": cols, "images": [], "outcome": "survival", "classes": None}
    return out, []


def _type(ctx) -> RType:
    return RType("Cohort", cohort=ctx.stmt.name, outcome="survival", channels=0, has_site=True, has_mask=False,
                 detail="Fed-TCGA-BRCA")


def run_tcga_brca(stage, ctx):
    from pathlib import Path

    from radlang.backends.cache import key
    from radlang.backends.executor import RunError
    from radlang.backends.glue import problem_diagnostics, spec_dir, table_key

    folder = Path(stage.params["path"])
    if not folder.is_absolute():
        folder = spec_dir(stage, ctx) / folder
    for name in ("brca.csv", "train_test_split.csv"):
        if (folder / name).exists():
            ctx.hash_input(folder / name)
    df, problems = load_tcga_brca(str(folder), stage.params["split"], stage.name)
    if problems:
        raise RunError(problem_diagnostics([{**q, "code": "E640"} for q in problems], stage))
    ctx.keys[stage.name] = key("fed_tcga_brca", table_key(df))
    return df


register(Operator(
    name="fed_tcga_brca", kind="cohort", output="Cohort", settings=TcgaSettings, positional=("path",),
    behaviour="stateless", run=run_tcga_brca, impl=load_tcga_brca, infer=_type,
    doc=("FLamby's Fed-TCGA-BRCA (1,088 breast-cancer patients, 39 clinical covariates, overall survival) read from its "
         "preprocessed files: one split (`train` or `test`), the client (region 0..5) as the `site` column."),
    examples=('cohort brca = fed_tcga_brca("data/fed_tcga_brca") { split: train }',),
))
