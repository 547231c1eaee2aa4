"""`spearman`: the association of two feature tables column by column, e.g. radiomics features x pathway scores.

    features rad   = pyradiomics(train.image, train.mask)
    features paths = singscore(expr) { sets: [...] }
    associate rg   = spearman(rad, paths) { by: patient, fdr: 0.05 }

Rows are matched like a `join` (by case id, or by patient id with `by: patient`; the first table decides the rows).
For every pair (column of the first table, column of the second), Spearman's rank correlation and its p-value
(scipy.stats.spearmanr); the p-values of all pairs are adjusted together by the Benjamini-Hochberg procedure
(scipy.stats.false_discovery_control), q <= `fdr` marks a discovery. A column that is constant has no correlation
(its pairs are listed with empty values and are not tested). The association is descriptive: it fits nothing and
feeds no model. Writes <out>/associations/<stage>.csv (sorted by q) and the heatmap <out>/plots/<stage>/heatmap.png
of rho for the `top` first-table columns with the smallest q (a dot marks q <= fdr). `spearman_fdr` and
`association_heatmap` are self-contained: the renderer inlines them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def spearman_fdr(a, b):
    """Spearman's rho and p for every (column of a, column of b) over the rows both hold (same index, same order),
    with Benjamini-Hochberg q over the pairs tested. Returns a DataFrame (a, b, n, rho, p, q) sorted by q, a, b."""
    import numpy as np
    import pandas as pd
    from scipy.stats import false_discovery_control, spearmanr

    A = a.to_numpy(dtype=float)
    B = b.to_numpy(dtype=float)
    rows = []
    for i, ca in enumerate(a.columns):
        for j, cb in enumerate(b.columns):
            x, y = A[:, i], B[:, j]
            ok = np.isfinite(x) & np.isfinite(y)
            n = int(ok.sum())
            if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
                rows.append((str(ca), str(cb), n, np.nan, np.nan))
                continue
            r = spearmanr(x[ok], y[ok])
            rows.append((str(ca), str(cb), n, float(r.statistic), float(r.pvalue)))
    out = pd.DataFrame(rows, columns=["a", "b", "n", "rho", "p"])
    tested = out["p"].notna()
    out["q"] = np.nan
    if tested.any():
        out.loc[tested, "q"] = false_discovery_control(out.loc[tested, "p"].to_numpy(), method="bh")
    return out.sort_values(["q", "a", "b"], na_position="last", kind="stable").reset_index(drop=True)


def association_heatmap(table, fdr, top, title):
    """PNG bytes of the heatmap of rho (rows: the `top` first-table columns with the smallest q; columns: the second
    table's), a dot where q <= fdr. Fixed size and dpi, no metadata: the same table gives the same bytes."""
    import io

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    best = table.groupby("a", sort=False)["q"].min().sort_values(kind="stable", na_position="last")
    rows = list(best.index[: int(top)])
    cols = list(dict.fromkeys(table["b"]))
    sub = table[table["a"].isin(rows)]
    rho = sub.pivot(index="a", columns="b", values="rho").reindex(index=rows, columns=cols)
    q = sub.pivot(index="a", columns="b", values="q").reindex(index=rows, columns=cols)
    fig = Figure(figsize=(max(6.0, 3.5 + 0.9 * len(cols)), max(3.0, 1.4 + 0.25 * len(rows))))
    ax = fig.subplots()
    im = ax.imshow(rho.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    yy, xx = np.nonzero(q.to_numpy(dtype=float) <= fdr)
    ax.scatter(xx, yy, s=10, c="black", marker="o")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=6)
    ax.set_title(f"{title}\nSpearman rho; dot: Benjamini-Hochberg q <= {fdr:g}", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, label="rho")
    fig.tight_layout()
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# run time


def run_spearman(stage, ctx):
    import pandas as pd

    from radlang.backends.cache import atomic_write_bytes
    from radlang.backends.executor import RunError
    from radlang.backends.refit import join_error
    from radlang.diagnostics import Diagnostic
    from radlang.ops.join import cohort_keys, join_tables

    by = ctx.study.by_name()
    names = [stage.inputs["first"].stage, stage.inputs["second"].stage]
    fitted = [n for n in names if not isinstance(ctx.results.get(n), pd.DataFrame)]     # a fitted stage's value is its recipe
    if fitted:
        raise RunError([Diagnostic("E697", f"`{stage.name}`: {', '.join(f'`{n}`' for n in fitted)} is fit inside validation folds and has "
                                   "no table of its own to associate", stage.span,
                                   hint="associate the tables the fitted stages read (e.g. the features before selection)")])
    tables = [(n, ctx.results[n]) for n in names]
    keys = [cohort_keys(t, ctx.results[by[n].type.cohort], stage.params["by"]) for n, t in tables]
    joined, problems = join_tables(tables, keys, stage.params["by"], True)
    if problems:
        raise join_error(stage, problems)
    a = joined[[c for c in joined.columns if c.startswith(names[0] + ".")]]
    b = joined[[c for c in joined.columns if c.startswith(names[1] + ".")]]
    a.columns = [c[len(names[0]) + 1:] for c in a.columns]
    b.columns = [c[len(names[1]) + 1:] for c in b.columns]
    table = spearman_fdr(a, b).rename(columns={"a": names[0], "b": names[1]})
    fdr = float(stage.params["fdr"])
    csv = table.to_csv(index=False, float_format="%.12g", lineterminator="\n").encode("utf-8")
    png = association_heatmap(table.rename(columns={names[0]: "a", names[1]: "b"}), fdr, int(stage.params["top"]),
                              f"`{names[0]}` x `{names[1]}` ({len(joined)} cases)")
    atomic_write_bytes(ctx.out / "associations" / f"{stage.name}.csv", csv)
    atomic_write_bytes(ctx.out / "plots" / stage.name / "heatmap.png", png)
    ctx.keys[stage.name] = ctx.stage_key(stage, csv.decode("utf-8"))
    found = int((table["q"] <= fdr).sum())
    ctx.summary.append(f"{stage.name}: Spearman `{names[0]}` x `{names[1]}` over {len(joined)} cases: {int(table['p'].notna().sum())} pairs "
                       f"tested, {found} with Benjamini-Hochberg q <= {fdr:g}; wrote associations/{stage.name}.csv, plots/{stage.name}/heatmap.png")
    return table


# ----------------------------------------------------------------------------------------------
# declaration


class SpearmanSettings(Settings):
    by: Literal["case", "patient"] = Field("case", description="match rows by case id, or by patient id (one row per patient in the second table)")
    fdr: float = Field(0.05, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate marking a discovery")
    top: int = Field(30, ge=1, description="first-table columns shown in the heatmap (smallest q first)")

    _b = field_validator("by", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


def _spearman_type(ctx) -> RType:
    a, b = ctx.inputs["first"], ctx.inputs["second"]
    if a.cohort != b.cohort:
        other = ctx.types.get(b.cohort)
        if other is not None and other.outcome:
            ctx.error("E250", f"the second table comes from cohort `{b.cohort}`, the first from `{a.cohort}`; both carry outcomes, so they "
                      "are different cases", port="second",
                      hint=f"associate tables of `{a.cohort}`, or an attribute table (a cohort without an outcome) keyed by its ids")
    return RType("Association", cohort=a.cohort, detail="Spearman association")


register(Operator(
    name="spearman", kind="associate", output="Association", settings=SpearmanSettings, positional=("first", "second"),
    inputs=(Port("first", ("Features",), doc="a feature table (e.g. radiomics); its cases are the rows"),
            Port("second", ("Features",), doc="another (e.g. pathway scores), matched like a `join`")),
    behaviour="stateless", run=run_spearman, sink=True, impl=spearman_fdr, helpers=(association_heatmap,), infer=_spearman_type,
    doc="Spearman's rank correlation of every column of one table with every column of another (e.g. radiomics x pathway "
        "scores), Benjamini-Hochberg FDR over all pairs. Writes <out>/associations/<stage>.csv and the heatmap "
        "<out>/plots/<stage>/heatmap.png.",
    examples=("associate rg = spearman(rad, paths) { fdr: 0.05 }",),
))
