"""Tabular built-in cohorts shipped inside installed packages (no download), and `tabular`, which
turns a cohort's clinical columns into a feature table.

    cohort bc = dataset("breast_cancer")              # sklearn: 569 cases, 30 image-derived features, binary
    cohort gb = dataset("gbsg2")                      # scikit-survival: 686 cases, survival
    cohort ro = dataset("rossi")                      # lifelines: 432 cases, survival (weeks to re-arrest)
    features f = tabular(bc)                          # every clinical.<name> column, as a feature table

Both follow the cohort table contract (radlang docs): one row per case, `case_id`, `patient_id`,
`outcome` (or `time` + `event`), and the feature columns under `clinical.<name>`. Each operator's `run`
(after its implementation) is its run-time glue: paths, content keys and E640/E641 diagnostics.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from radlang.diagnostics import label_cases
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym, contradiction

DATASETS = {
    # name: (package, outcome kind, cases)
    "breast_cancer": ("scikit-learn", "binary", 569),
    "gbsg2": ("scikit-survival", "survival", 686),
    "whas500": ("scikit-survival", "survival", 500),
    "veterans_lung_cancer": ("scikit-survival", "survival", 137),
    "rossi": ("lifelines", "survival", 432),
}


class DatasetSettings(Settings):
    name: Literal["breast_cancer", "gbsg2", "whas500", "veterans_lung_cancer", "rossi"] = Field(
        description=("breast_cancer (sklearn, binary: malignant = 1), gbsg2, whas500, veterans_lung_cancer (scikit-survival, survival), "
                     "rossi (lifelines, survival: weeks to re-arrest)"))
    start: int = Field(0, ge=0, description="first row (in the package's order) to keep; with `stop`, cuts a development or external part")
    stop: int | None = Field(None, ge=1, description="row after the last one to keep (default: all)")
    site: str | None = Field(None, description="a site label written into a `site` column for every case")

    @field_validator("name", "site", mode="before")
    @classmethod
    def _sym(cls, v):
        return str(v) if isinstance(v, Sym) else v


def load_dataset(params: dict):
    """Load a package-shipped tabular dataset as a cohort table (self-contained)."""
    import numpy as np
    import pandas as pd

    name = params["name"]
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        d = load_breast_cancer()
        X = pd.DataFrame(d.data, columns=[c.replace(" ", "_") for c in d.feature_names])
        # sklearn codes malignant as 0 and benign as 1; the event of interest is malignancy
        df = pd.DataFrame({"outcome": (d.target == 0).astype(np.int64)})
        classes = ["benign", "malignant"]
        outcome = "binary"
        source = "sklearn.datasets.load_breast_cancer"
        prefix = "bc"
    elif name == "rossi":
        from lifelines.datasets import load_rossi

        raw = load_rossi()
        time_field, event_field = "week", "arrest"
        X = raw.drop(columns=[time_field, event_field]).astype(float)
        df = pd.DataFrame({"time": raw[time_field].astype(float), "event": raw[event_field].astype(np.int64)})
        classes = None
        outcome = "survival"
        source = "lifelines.datasets.load_rossi"
        prefix = "rossi"
    else:
        import sksurv.datasets as sd
        from sksurv.column import encode_categorical

        loader = {"gbsg2": sd.load_gbsg2, "whas500": sd.load_whas500, "veterans_lung_cancer": sd.load_veterans_lung_cancer}[name]
        Xraw, y = loader()
        X = encode_categorical(Xraw).astype(float)
        X.columns = [str(c).replace(" ", "_").replace("=", "_") for c in X.columns]
        event_field, time_field = y.dtype.names
        df = pd.DataFrame({"time": y[time_field].astype(float), "event": y[event_field].astype(np.int64)})
        classes = None
        outcome = "survival"
        source = f"sksurv.datasets.load_{name}"
        prefix = name[:4]
    n = len(df)
    width = len(str(n))
    ids = [f"{prefix}{i + 1:0{width}d}" for i in range(n)]
    df.insert(0, "case_id", ids)
    df.insert(1, "patient_id", ids)
    if params.get("site") is not None:
        df["site"] = str(params["site"])
    for c in X.columns:
        df[f"clinical.{c}"] = X[c].to_numpy(dtype=float)
    start, stop = int(params.get("start") or 0), params.get("stop")
    df = df.iloc[start: (int(stop) if stop is not None else None)].reset_index(drop=True)
    cols = {"case_id": "case_id", "patient_id": "case_id"}
    cols.update({f"clinical.{c}": c for c in X.columns})
    if outcome == "binary":
        cols["outcome"] = "target"
    else:
        cols["time"], cols["event"] = time_field, event_field
    df.attrs["radlang"] = {"name": params.get("_stage", name), "source": source, "columns": cols, "images": [],
                           "outcome": outcome, "classes": classes}
    return df


def _dataset_type(ctx) -> RType:
    s = ctx.settings
    if s.stop is not None and s.stop <= s.start:
        ctx.error("E302", f"`stop` ({s.stop}) must be greater than `start` ({s.start})", setting="stop")
    n = DATASETS[s.name][2]
    if s.start >= n:
        ctx.error("E302", f"`{s.name}` has {n} cases; `start` {s.start} leaves none", setting="start")
    return RType("Cohort", cohort=ctx.stmt.name, outcome=DATASETS[s.name][1], channels=0, has_site=s.site is not None,
                 has_mask=False, detail=f"dataset {s.name}")


def run_dataset(stage, ctx):
    """The rows `start:stop` of a packaged dataset as a cohort table."""
    from radlang import registry
    from radlang.backends.cache import key
    from radlang.backends.executor import RunError
    from radlang.backends.glue import table_key
    from radlang.diagnostics import Diagnostic

    op = registry.get(stage.op)
    try:
        df = load_dataset({**stage.params, "_stage": stage.name})
    except ImportError as e:
        extra = "survival-gpl" if DATASETS[stage.params["name"]][0] == "scikit-survival" else "science"
        raise RunError([Diagnostic("E640", f"`{stage.name}`: dataset `{stage.params['name']}` needs a package that is not installed: {e}",
                                   stage.span, hint=f"pip install 'radlang[{extra}]'")])
    if df.empty:
        raise RunError([Diagnostic("E640", f"`{stage.name}`: rows {stage.params.get('start')}:{stage.params.get('stop')} of "
                                   f"`{stage.params['name']}` hold no cases", stage.span)])
    ctx.keys[stage.name] = key("dataset", stage.op, op.version, table_key(df))
    return df


def dataset_read_file(ctx, stage, path):
    """`radlang predict`: a CSV of new cases for a model trained on a built-in dataset: a `case_id` column and the
    dataset's feature columns, read as a `table` cohort."""
    from dataclasses import replace

    params = {"path": str(path), "id": "case_id", "patient": None, "outcome": None, "site": None, "columns": None}
    return run_table(replace(stage, op="table", params=params), ctx)


register(Operator(
    name="dataset", kind="cohort", output="Cohort", settings=DatasetSettings, positional=("name",),
    behaviour="stateless", run=run_dataset, read_file=dataset_read_file, impl=load_dataset, infer=_dataset_type,
    doc="A tabular cohort shipped inside an installed package (no download): sklearn's breast cancer set "
        "(569 cases, 30 image-derived features, malignant = 1) or scikit-survival's gbsg2, whas500 and "
        "veterans_lung_cancer (survival; the optional `survival-gpl` extra), or lifelines' rossi (432 cases, weeks to "
        "re-arrest). Its features are the cohort's `clinical.<name>` columns.",
    examples=('cohort bc = dataset("breast_cancer")', 'cohort ext = dataset("breast_cancer") { start: 400 }'),
))


class TabularSettings(Settings):
    columns: list[str] | None = Field(None, description="clinical columns to use (default: all of them)")

    @field_validator("columns", mode="before")
    @classmethod
    def _names(cls, v):
        return [str(x) for x in v] if isinstance(v, list) else v


def tabular_features(cohort, params: dict):
    """A cohort table's `clinical.<name>` columns -> a feature table indexed by case_id (self-contained).

    Returns (features, problems): problems are (case_id, column, message) for values that are not numbers."""
    import pandas as pd

    cohort = cohort.copy(deep=False)
    cohort.attrs = {}   # pandas deep-copies attrs on every operation; a wide table's attrs make that slow
    avail = [c[len("clinical."):] for c in cohort.columns if str(c).startswith("clinical.")]
    want = list(params.get("columns") or avail)
    problems = []
    missing = [c for c in want if c not in avail]
    for c in missing:
        problems.append((None, c, f"the cohort has no clinical column `{c}` (it has: {', '.join(avail) or 'none'})"))
    keep = [c for c in want if c not in missing]
    block = cohort[[f"clinical.{c}" for c in keep]]
    block.columns = keep
    for c in keep:
        if block[c].dtype.kind in "biuf":
            continue
        col = pd.to_numeric(block[c], errors="coerce")
        bad = col.isna() & block[c].notna()
        for cid, raw in zip(cohort.loc[bad, "case_id"], block.loc[bad, c]):
            problems.append((str(cid), c, f"value {raw!r} is not a number"))
        block = block.assign(**{c: col})
    out = block.astype(float).to_numpy()
    feats = pd.DataFrame(out, columns=keep, index=pd.Index(cohort["case_id"].astype(str).tolist(), name="case_id"))
    return feats, problems


def _tabular_type(ctx) -> RType:
    c = ctx.inputs["cohort"]
    return RType("Features", cohort=c.cohort, outcome=c.outcome, detail="tabular")


def tabular_on_cohort(ctx, stage, cohort_df, perturb=None):
    """The `tabular` stage's feature table for any cohort table (the stage's own, or an external one). A table
    has no images to re-extract under a perturbation."""
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    if perturb:
        raise RunError([Diagnostic("E646", f"`{stage.name}` is a tabular feature table; it cannot be re-extracted under {perturb}",
                                   stage.span)])
    feats, problems = tabular_features(cohort_df, stage.params)
    if problems:
        cohort = cohort_df.attrs.get("radlang", {}).get("name", "?")
        diags = []
        for case, col, msg in problems:
            where = f"case `{case}`, " if case else ""
            diags.append(Diagnostic("E641", f"`{stage.name}` on cohort `{cohort}`: {where}column `clinical.{col}`: {msg}", stage.span,
                                    hint="list only numeric clinical columns in `columns`"))
        raise RunError(diags)
    return feats


def run_tabular(stage, ctx):
    from radlang import registry
    from radlang.backends.cache import key
    from radlang.backends.glue import table_key

    op = registry.get(stage.op)
    feats = tabular_on_cohort(ctx, stage, ctx.results[stage.inputs["cohort"].stage])
    ctx.keys[stage.name] = key("tabular", op.version, stage.params, ctx.keys.get(stage.inputs["cohort"].stage), table_key(feats))
    return feats


register(Operator(
    name="tabular", kind="features", output="Features", settings=TabularSettings, positional=("cohort",),
    inputs=(Port("cohort", ("Cohort",), doc="a cohort with clinical columns, e.g. `dataset(\"breast_cancer\")`"),),
    behaviour="stateless", run=run_tabular, on_cohort=tabular_on_cohort, impl=tabular_features, infer=_tabular_type,
    doc="A feature table made from a cohort's clinical columns (tabular, image-derived or clinical features).",
    examples=("features f = tabular(bc)", "features f = tabular(bc) { columns: [mean_radius, mean_texture] }"),
))


# ----------------------------------------------------------------------------------------------
# `table`: a tabular cohort from a CSV file (no images): one row per case, every other column a feature


class TableSettings(Settings):
    path: str = Field(description="CSV file with one row per case; relative paths are relative to the spec")
    id: str = Field("case_id", description="column with the case id")
    patient: str | None = Field(None, description="column with the patient id (default: the case id)")
    outcome: Any = Field(None, description="`<column> as binary|multiclass|continuous` or `survival(time: <col>, event: <col>)`")
    site: str | None = Field(None, description="column with the site")
    columns: list[str] | None = Field(None, description="feature columns (default: every other column)")

    @field_validator("outcome", mode="before")
    @classmethod
    def _outcome(cls, v):
        from radlang.ops.cohorts import parse_outcome

        o = parse_outcome(v)
        return None if o is None else o.model_dump()

    @field_validator("id", "patient", "site", mode="before")
    @classmethod
    def _s(cls, v):
        return str(v) if isinstance(v, Sym) else v

    @field_validator("columns", mode="before")
    @classmethod
    def _c(cls, v):
        return [str(x) for x in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _no_leak(self):
        o = self.outcome or {}
        roles = {self.id: "the case id", self.patient: "the patient id", self.site: "the site",
                 o.get("column"): "the outcome", o.get("time"): "the survival time", o.get("event"): "the event"}
        for c in self.columns or []:
            if roles.get(c):
                raise contradiction(f"`{c}` is {roles[c]} column; it cannot also be a feature column (the model would see the answer)")
        return self


def load_table(params: dict, path: str, stage_name: str):
    """Read a tabular cohort CSV into the cohort table contract (self-contained).
    Returns (table or None, problems): problems are dicts {case, column, file, message}."""
    import numpy as np
    import pandas as pd

    problems = []
    try:
        o0 = params.get("outcome") or {}
        text_cols = [c for c in (params["id"], params.get("patient"), params.get("site"), o0.get("column")) if c]
        raw = pd.read_csv(path, dtype={c: str for c in text_cols}, keep_default_na=False, na_values=[""])
        for c in text_cols:
            if c in raw.columns:
                raw[c] = raw[c].fillna("")
    except (OSError, ValueError) as e:
        return None, [{"file": path, "message": f"cannot read the table: {e}"}]
    o = params.get("outcome") or {}
    need = [params["id"]] + [c for c in (params.get("patient"), params.get("site"), o.get("column"), o.get("time"), o.get("event")) if c]
    for c in need:
        if c not in raw.columns:
            problems.append({"file": path, "column": c, "message": f"no column `{c}` (columns: {', '.join(raw.columns[:20])})"})
    if problems:
        return None, problems
    used = set(need)
    feats = list(params.get("columns") or [c for c in raw.columns if c not in used])
    for c in feats:
        if c not in raw.columns:
            problems.append({"file": path, "column": c, "message": f"no column `{c}`"})
    if problems:
        return None, problems
    ids = raw[params["id"]].astype(str)
    df = pd.DataFrame({"case_id": ids, "patient_id": raw[params["patient"]].astype(str) if params.get("patient") else ids})
    for cid in ids[ids.duplicated()].unique():
        problems.append({"case": cid, "file": path, "column": params["id"], "message": "duplicate case id"})
    classes = None
    kind = o.get("kind")

    def num(col, what):
        if raw[col].dtype.kind in "biuf":
            v = raw[col].astype(float)
            bad = v.isna() if what != "value" else None
        else:
            v = pd.to_numeric(raw[col], errors="coerce")
            bad = v.isna() & (raw[col].notna() | (what != "value"))
        if bad is not None:
            for cid, r in zip(ids[bad], raw[col][bad]):
                problems.append({"case": cid, "file": path, "column": col, "message": f"missing {what}" if pd.isna(r) else f"{what} {r!r} is not a number"})
        return v

    if kind in ("binary", "multiclass"):
        col = raw[o["column"]]
        labels = sorted(set(col) - {""}, key=lambda x: (pd.to_numeric(x, errors="coerce"), x))
        if kind == "binary":
            pos = str(o["positive"]) if o.get("positive") is not None else (labels[-1] if labels else None)
            if len(labels) > 2:
                problems.append({"file": path, "column": o["column"],
                                 "message": f"a binary outcome has more than 2 labels: {label_cases([(v, c) for v, c in zip(col, ids) if v != ''])}",
                                 "hint": "correct the stray labels, or read the column `as multiclass`"})
            classes = [lab for lab in labels if lab != pos] + [pos]
            df["outcome"] = (col == pos).astype(np.int64)
        else:
            classes = labels
            df["outcome"] = col.map({lab: i for i, lab in enumerate(labels)}).fillna(-1).astype(np.int64)
        for cid in ids[col == ""]:
            problems.append({"case": cid, "file": path, "column": o["column"], "message": "missing outcome"})
    elif kind == "continuous":
        df["outcome"] = num(o["column"], "outcome").astype(float)
    elif kind == "survival":
        t = num(o["time"], "survival time").astype(float)
        for cid, r in zip(ids[t < 0], raw[o["time"]][t < 0]):
            problems.append({"case": cid, "file": path, "column": o["time"], "message": f"survival time {r!r} is negative"})
        e = pd.to_numeric(raw[o["event"]], errors="coerce")
        bad = ~e.isin([0, 1])
        for cid, r in zip(ids[bad], raw[o["event"]][bad]):
            problems.append({"case": cid, "file": path, "column": o["event"],
                             "message": "missing event" if pd.isna(r) else f"event {r!r} is not 0/1"})
        df["time"] = t
        df["event"] = e.where(~bad, -1).astype(np.int64)
    if params.get("site"):
        df["site"] = raw[params["site"]].astype(str)
    cols = {}
    block = {}
    for c in feats:
        block[f"clinical.{c}"] = num(c, "value").to_numpy(dtype=float)
        cols[f"clinical.{c}"] = c
    df = pd.concat([df, pd.DataFrame(block, index=df.index)], axis=1)
    cols.update({"case_id": params["id"], "patient_id": params.get("patient") or params["id"]})
    cols.update({k: o[k] for k in ("time", "event") if o.get(k)} | ({"outcome": o["column"]} if o.get("column") else {}))
    df.attrs["radlang"] = {"name": stage_name, "source": path, "columns": cols, "images": [], "outcome": kind, "classes": classes}
    return df, problems


def _table_type(ctx) -> RType:
    s = ctx.settings
    return RType("Cohort", cohort=ctx.stmt.name, outcome=(s.outcome or {}).get("kind"), channels=0, has_site=s.site is not None,
                 has_mask=False, detail="table")


def run_table(stage, ctx):
    """The cohort table of a CSV table; its path is relative to the spec's folder. Every problem at once (E640)."""
    from pathlib import Path

    from radlang import registry
    from radlang.backends.cache import key
    from radlang.backends.executor import RunError
    from radlang.backends.glue import problem_diagnostics, spec_dir, table_key
    from radlang.diagnostics import Diagnostic

    op = registry.get(stage.op)
    path = Path(stage.params["path"])
    if not path.is_absolute():
        path = spec_dir(stage, ctx) / path
    if path.exists():
        ctx.hash_input(path)
    df, problems = load_table(stage.params, str(path), stage.name)
    if problems:
        diags = problem_diagnostics([{**q, "code": "E640"} for q in problems[:50]], stage)
        if len(problems) > 50:
            diags.append(Diagnostic("E640", f"`{stage.name}`: and {len(problems) - 50} more problems", stage.span))
        raise RunError(diags)
    ctx.keys[stage.name] = key("dataset", stage.op, op.version, table_key(df))
    return df


def table_check_data(st, bound, folder, diags, listings):
    """`radlang check`: the table's header names the id, patient, site, outcome and feature columns the stage names."""
    from radlang.checks.data import check_csv

    if folder is None:
        return None
    p = st.params
    o = p.get("outcome") or {}
    wanted = [("id", p["id"], "id", None)] + [(r, p[r], r, None) for r in ("patient", "site") if p.get(r)]
    wanted += [(f"outcome {k}" if k != "column" else "outcome", o[k], "outcome", None) for k in ("column", "time", "event") if o.get(k)]
    wanted += [("feature", c, "columns", i) for i, c in enumerate(p.get("columns") or [])]
    return check_csv(st, bound, folder, diags, listings, what="table", code="E640", wanted=wanted, path_cols=[], missing=("",))


def table_read_file(ctx, stage, path):
    """`radlang predict`: another CSV, read with this cohort's column settings (its outcome column may be absent)."""
    from dataclasses import replace

    return run_table(replace(stage, params={**stage.params, "path": str(path), "outcome": None}), ctx)


register(Operator(
    name="table", kind="cohort", output="Cohort", settings=TableSettings, positional=("path",),
    behaviour="stateless", run=run_table, read_file=table_read_file, check_data=table_check_data, impl=load_table, helpers=(label_cases,), infer=_table_type,
    doc="A tabular cohort from a CSV file (no images): an id column, an outcome, optional patient and site columns; "
        "every other column (or `columns`) is a feature under `clinical.<name>`.",
    examples=('cohort t = table("features.csv") { id: case, outcome: malignant as binary }',),
))
