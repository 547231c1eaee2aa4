"""`singscore`: per-sample gene-set (pathway) scores from a gene-expression table.

    cohort genes = table("expression.csv") { id: patient_id }            # genes as columns, p >> n
    features expr = tabular(genes)
    features paths = singscore(expr) {
      sets: [hypoxia(CA9, VEGFA, SLC2A1, PGK1, LDHA), proliferation(MKI67, TOP2A, CCNB1, BUB1, AURKA)]
      min_genes: 5
    }
    features paths2 = singscore(expr) { gmt: "hallmark.gmt" }            # or sets from a GMT file

The score is singscore's (Foroutan M, Bhuva DD, Lyu R, Horan K, Cursons J, Davis MJ. Single sample scoring of
molecular phenotypes. BMC Bioinformatics 2018;19:404), for an unsigned (up) gene set: the sample's genes are ranked
by expression, in increasing order, within that sample alone (ties take the lowest rank, as singscore's
`rankGenes`); the score is the mean rank of the set's genes, scaled by the lowest and highest mean ranks a set of
that size can take among N genes, (n + 1) / 2 and (2N - n + 1) / 2, and centred (minus 0.5, singscore's default):
-0.5 when the set's genes are the sample's lowest, +0.5 when they are its highest.

Nothing is estimated across samples: a sample's score depends on its own expression values only, so the stage
fits nothing, runs once before validation (and on an external cohort as it is), and cannot leak across folds.
Genes of a set that the table lacks are left out with a warning that counts them (W694); a set left with fewer
than `min_genes` genes is an error (E694); a GMT file that is missing or malformed is E695, from `radlang check` too. `singscore_table`, `read_gmt` and `gene_set_coverage` are
self-contained: the renderer inlines them.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import CallValue, Settings, Sym

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def singscore_table(expr, sets):
    """singscore of every sample (row of `expr`, genes as columns) for each gene set ({name: [genes present in expr]}),
    as a DataFrame indexed like `expr`, one column per set. Each row is ranked on its own."""
    import numpy as np
    import pandas as pd
    from scipy.stats import rankdata

    values = expr.to_numpy(dtype=float)
    ranks = rankdata(values, method="min", axis=1)            # within each sample, increasing expression
    N = values.shape[1]
    col = {g: i for i, g in enumerate(expr.columns.astype(str))}
    out = {}
    for name, genes in sets.items():
        ix = np.array([col[g] for g in genes], dtype=int)
        n = len(ix)
        mean_rank = ranks[:, ix].mean(axis=1)
        low, high = (n + 1) / 2.0, (2 * N - n + 1) / 2.0
        out[name] = (mean_rank - low) / (high - low) - 0.5
    return pd.DataFrame(out, index=expr.index, columns=list(sets))


def read_gmt(text):
    """Gene sets from the text of a GMT file (one set a line: name, description, genes; tab-separated).
    Returns ({name: [genes]}, problems): problems are (line number, message)."""
    sets, problems = {}, []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.rstrip("\r\n").split("\t")]
        if len(parts) < 3 or not parts[0]:
            problems.append((i, "a GMT line is `name<TAB>description<TAB>gene<TAB>gene...`"))
            continue
        if parts[0] in sets:
            problems.append((i, f"the set `{parts[0]}` is defined twice"))
            continue
        sets[parts[0]] = list(dict.fromkeys(g for g in parts[2:] if g))
    return sets, problems


def gene_set_coverage(sets, genes, min_genes):
    """Each set's genes that the expression table holds. Returns (present {name: [genes]}, warnings, errors): a
    warning per set that lacks some of its genes (with the counts), an error per set left with fewer than min_genes."""
    have = set(map(str, genes))
    present, warnings, errors = {}, [], []
    for name, wanted in sets.items():
        got = [g for g in wanted if g in have]
        lost = [g for g in wanted if g not in have]
        present[name] = got
        shown = ", ".join(lost[:8]) + (f" and {len(lost) - 8} more" if len(lost) > 8 else "")
        if len(got) < min_genes:
            errors.append((name, f"gene set `{name}`: {len(got)} of its {len(wanted)} genes are in the expression table, fewer than "
                                 f"`min_genes` ({min_genes})" + (f"; missing: {shown}" if lost else "")))
        elif lost:
            warnings.append((name, (f"gene set `{name}`: {len(lost)} of its {len(wanted)} genes are not in the expression table and "
                                   f"are left out ({len(got)} scored): {shown}")))
    return present, warnings, errors


# ----------------------------------------------------------------------------------------------
# run time


def load_gmt(path, spec_sets):
    """The gene sets of a GMT file and what is wrong with it: (sets, [messages]); `spec_sets` are the names the spec
    defines itself (a name in both is a problem). What `radlang run` and `radlang check` both report as E695."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return {}, [f"cannot read the GMT file {path}: {e}"]
    sets, problems = read_gmt(text)
    msgs = [f"{path}, line {ln}: {msg}" for ln, msg in problems[:20]]
    msgs += [f"{path}: the set `{n}` is defined in the spec and in the GMT file" for n in sets if n in spec_sets]
    return sets, msgs


def _gmt_path(stage, folder):
    from pathlib import Path

    path = Path(stage.params["gmt"])
    return path if path.is_absolute() else folder / path


def _gene_sets(stage, ctx):
    """The stage's gene sets: those of the spec, then those of its GMT file (relative to the spec's folder)."""
    from radlang.backends.executor import RunError
    from radlang.backends.glue import spec_dir
    from radlang.diagnostics import Diagnostic

    p = stage.params
    sets = {s["name"]: list(s["genes"]) for s in p.get("sets") or []}
    if p.get("gmt"):
        path = _gmt_path(stage, spec_dir(stage, ctx))
        from_file, problems = load_gmt(path, sets)
        if problems:
            raise RunError([Diagnostic("E695", f"`{stage.name}`: {msg}", stage.span, hint="`gmt` is a path relative to the spec's folder")
                            for msg in problems])
        ctx.hash_input(path)
        sets.update(from_file)
    return sets


def singscore_check_data(st, bound, folder, diags, listings):
    """`radlang check`: the GMT file (`gmt`) exists and is well formed (E695, as `radlang run` says it)."""
    from radlang.checks.data import span_of
    from radlang.diagnostics import Diagnostic

    if st.params.get("gmt") and folder is not None:
        spec_sets = {s["name"] for s in st.params.get("sets") or []}
        for msg in load_gmt(_gmt_path(st, folder), spec_sets)[1]:
            diags.append(Diagnostic("E695", f"`{st.name}`: {msg}", span_of(bound, "gmt") or st.span,
                                    hint="`gmt` is a path relative to the spec's folder"))


def scores_on(ctx, stage, expr):
    """The scores of the expression table `expr` (one row per sample), with the gene-set checks (W694, E694, E696)."""
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic

    bad = expr.isna().any(axis=1)
    if bad.any():
        cases = [str(c) for c in expr.index[bad]]
        cols = [str(c) for c in expr.columns[expr.isna().any(axis=0)]]
        raise RunError([Diagnostic("E696", f"`{stage.name}`: {len(cases)} sample(s) have missing expression values ({', '.join(cases[:8])}"
                                   + (" ..." if len(cases) > 8 else "") + f") in gene column(s) {', '.join(cols[:8])}"
                                   + (" ..." if len(cols) > 8 else ""), stage.span,
                                   hint="a rank-based score needs every gene of the sample: fill in or drop those genes or samples")])
    present, warnings, errors = gene_set_coverage(_gene_sets(stage, ctx), expr.columns, int(stage.params["min_genes"]))
    if errors:
        raise RunError([Diagnostic("E694", f"`{stage.name}`: {msg}", stage.span,
                                   hint="check the gene names (symbols as the table's columns), or lower `min_genes`") for _, msg in errors])
    for _, msg in warnings:
        ctx.warn("W694", f"`{stage.name}`: {msg}")
    return singscore_table(expr, present)


def singscore_on_cohort(ctx, stage, cohort_df, perturb=None):
    """The scores of another cohort (external, re-extracted): its expression table, scored sample by sample."""
    from radlang.backends.refit import features_for

    by = ctx.study.by_name()
    return scores_on(ctx, stage, features_for(ctx, by[stage.inputs["input"].stage], cohort_df, perturb))


def run_singscore(stage, ctx):
    from radlang.backends.cache import key
    from radlang.backends.glue import table_key

    expr = ctx.results[stage.inputs["input"].stage]
    out = scores_on(ctx, stage, expr)
    ctx.keys[stage.name] = key("singscore", stage.params, ctx.keys.get(stage.inputs["input"].stage), table_key(out))
    return out


# ----------------------------------------------------------------------------------------------
# declaration


class GeneSet(Settings):
    name: str
    genes: list[str]


def _sets(v):
    """`[hypoxia(CA9, VEGFA, ...), ...]`: each call names a set and lists its genes (names, or strings such as "HLA-A")."""
    if v is None:
        return None
    items = v if isinstance(v, list) else [v]
    out = []
    for it in items:
        if isinstance(it, (dict, GeneSet)):       # already plain data, or validated
            out.append(it)
            continue
        call = it if isinstance(it, CallValue) else None
        if call is None or call.kwargs:
            raise ValueError("write each gene set as `name(GENE1, GENE2, ...)`, its genes as names or strings")
        out.append({"name": call.name, "genes": [str(g) for g in call.args]})
    return out


class SingscoreSettings(Settings):
    sets: list[GeneSet] | None = Field(None, description="gene sets, each `name(GENE1, GENE2, ...)` (a gene with a `-` as a string: \"HLA-A\")")
    gmt: str | None = Field(None, description="a GMT file of gene sets, relative to the spec (name, description, genes; tab-separated)")
    min_genes: int = Field(5, ge=1, description="the fewest genes of a set that must be in the expression table (fewer: an error)")

    _s = field_validator("sets", mode="before")(lambda cls, v: _sets(v))
    _g = field_validator("gmt", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


def _singscore_infer(ctx):
    s = ctx.settings
    if not s.sets and not s.gmt:
        ctx.error("E320", "`singscore` needs gene sets: `sets: [name(GENE1, GENE2, ...)]` or `gmt: \"sets.gmt\"`", hint="list the sets in the spec, or name a GMT file")
    seen = set()
    for gs in s.sets or []:
        if gs.name in seen:
            ctx.error("E320", f"the gene set `{gs.name}` is listed twice", setting="sets")
        seen.add(gs.name)
        genes = list(dict.fromkeys(gs.genes))
        if len(genes) < s.min_genes:
            ctx.error("E321", f"the gene set `{gs.name}` lists {len(genes)} distinct gene(s), fewer than `min_genes` ({s.min_genes})",
                      setting="sets", hint="a score of very few genes is one gene's noise: list more genes, or lower `min_genes`")
    src = ctx.inputs["input"]
    return RType("Features", cohort=src.cohort, outcome=src.outcome, detail="singscore pathway scores")


register(Operator(
    name="singscore", kind="features", output="Features", settings=SingscoreSettings, positional=("input",),
    inputs=(Port("input", ("Features",), doc="a gene-expression table (a `features` stage: one row per sample, genes as columns)"),),
    behaviour="stateless", run=run_singscore, on_cohort=singscore_on_cohort, check_data=singscore_check_data, impl=singscore_table,
    helpers=(read_gmt, gene_set_coverage), infer=_singscore_infer,
    doc="Single-sample gene-set (pathway) scores (singscore, Foroutan et al. 2018): each sample's genes ranked within that "
        "sample alone, the mean rank of a set's genes scaled to -0.5 ... 0.5. No normalisation across samples, so nothing "
        "leaks across folds. Sets from the spec (`sets`) or a GMT file (`gmt`); missing genes are a warning with counts "
        "(W694), fewer than `min_genes` left an error (E694).",
    examples=('features paths = singscore(expr) { gmt: "hallmark.gmt", min_genes: 3 }',
              "features paths = singscore(expr) { sets: [hypoxia(CA9, VEGFA, SLC2A1, PGK1, LDHA)], min_genes: 3 }"),
))
