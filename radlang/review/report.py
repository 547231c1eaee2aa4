"""`radlang report OUT`: one self-contained HTML file from a finished run's out folder.

Everything comes from what `radlang run` wrote (manifest.json, run.json, metrics/*.json, plots, explanations, the
generated cohorts' data tables); nothing is recomputed and nothing is fetched: the CSS is inline, the images are
data: URIs and the two diagrams (cohort flow, stage graph) are inline SVG drawn here, so the file works offline.

Sections: the title, the spec (with its sha256, linked line by line when the spec file is found unchanged) and its
provenance (versions, seed, inputs); the cohort flow (cases in, excluded with reasons, analysed, per cohort and
site); the stage graph; metrics tables with confidence intervals; every plot (ROC, calibration, decision curve,
Kaplan-Meier, ...); SHAP and Grad-CAM panels; warnings; the TRIPOD+AI, CLAIM 2024 and METRICS checklists
(radlang/review/checklists.py).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
from html import escape
from pathlib import Path

from radlang.backends.artefacts import SPEC_COPY
from radlang.diagnostics import Diagnostic
from radlang.review.checklists import VERDICTS, Facts, assess


class ReportError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.message)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;padding:0 20px 60px;color:#222}
h1{font-size:24px;margin:24px 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.muted{color:#666}.spec{background:#fafafa;border:1px solid #ddd;font:12px/1.4 monospace;overflow-x:auto}
.spec a{color:#999;display:inline-block;width:3em;text-decoration:none}.spec div:target{background:#fff3b0}
.satisfied{background:#e3f6e3}.author{background:#fff6dc}.na{background:#eee;color:#666}
.plots img{max-width:480px;border:1px solid #ddd;margin:4px}.plots figure{display:inline-block;margin:0 8px 12px 0;vertical-align:top}
figcaption{font-size:12px;color:#555}.warn{background:#fff3f0;border-left:4px solid #d62728;padding:4px 8px;margin:4px 0}
nav a{margin-right:12px}
"""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_run(out: Path) -> dict:
    """The finished run's records; E738 when the folder holds none."""
    out = Path(out)
    manifest, run = _read_json(out / "manifest.json"), _read_json(out / "run.json")
    if not out.is_dir() or manifest is None or run is None:
        missing = [n for n, v in (("manifest.json", manifest), ("run.json", run)) if v is None]
        what = "does not exist" if not out.exists() else ("is not a folder" if not out.is_dir() else f"holds no {' or '.join(missing)}")
        raise ReportError(Diagnostic("E738", f"`{out}` is not the out folder of a finished run: it {what}", None,
                                     hint="run the study first (`radlang run SPEC --out OUT`), then `radlang report OUT`"))
    metrics = {}
    for p in sorted((out / "metrics").glob("*.json")):
        m = _read_json(p)
        if isinstance(m, dict):
            metrics[p.stem] = m
    files = [a["path"] for a in manifest.get("artefacts", [])]
    return {"out": out, "manifest": manifest, "run": run, "metrics": metrics, "files": files}


def _cohort_of(stages: dict, name: str, seen=()) -> str | None:
    s = stages.get(name)
    if s is None or name in seen:
        return None
    if s["kind"] == "cohort":
        return name
    for ref in s["inputs"].values():
        c = _cohort_of(stages, str(ref).split(".")[0], seen + (name,))
        if c:
            return c
    return None


def _cohort_tables(r) -> dict[str, list[dict]]:
    """cohort -> the rows of its table as the run wrote it: tables/<cohort>.csv (every cohort's cases, with their
    patient, outcome and site), or, from a run that wrote none, a generated cohort's data/<cohort>-*/manifest.csv."""
    out = {}
    cohorts = [s["name"] for s in r["manifest"]["stages"] if s["kind"] == "cohort"]
    for rel in r["files"]:
        parts = rel.split("/")
        if len(parts) == 2 and parts[0] == "tables" and parts[1][:-4] in cohorts and rel.endswith(".csv"):
            name = parts[1][:-4]
        elif len(parts) == 3 and parts[0] == "data" and parts[2] == "manifest.csv":
            name = next((c for c in cohorts if parts[1].startswith(c + "-") and f"tables/{c}.csv" not in r["files"]), None)
        else:
            continue
        if name:
            with open(r["out"] / rel, newline="", encoding="utf-8") as fh:
                out[name] = list(csv.DictReader(fh))
    return out


def facts_of(r) -> Facts:
    tables = _cohort_tables(r)
    sites = {c: sorted({row.get("site", "") for row in rows} - {""}) for c, rows in tables.items()}
    return Facts(r["manifest"]["stages"], r["metrics"], r["run"], r["files"], sites)


def _spec_text(r) -> str | None:
    spec = r["run"].get("spec") or {}
    for cand in (r["out"] / SPEC_COPY, r["out"] / spec.get("file", ""), r["out"].parent / Path(spec.get("file", "")).name):
        try:
            data = cand.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data.decode("utf-8", "replace").encode()).hexdigest() == spec.get("sha256"):
            return data.decode("utf-8", "replace")
    return None


def _stage_lines(text: str | None, stages) -> dict[str, int]:
    if not text:
        return {}
    lines = text.splitlines()
    out = {}
    for s in stages:
        pat = re.compile(rf"^\s*{re.escape(s['kind'])}\s+{re.escape(s['name'])}\s*=")
        n = next((i + 1 for i, line in enumerate(lines) if pat.match(line)), None)
        if n:
            out[s["name"]] = n
    return out


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}"><figcaption>{escape(caption)}</figcaption></figure>'


def _box(x, y, w, h, lines, fill="#eef4fb"):
    t = "".join(f'<text x="{x + 8}" y="{y + 18 + 15 * i}" font-size="12">{escape(line)}</text>' for i, line in enumerate(lines))
    return f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="#557"/>' + t


def _arrow(x1, y1, x2, y2):
    return f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#557" stroke-width="1.5" marker-end="url(#a)"/>'


SVG_HEAD = ('<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
            '<path d="M0,0L10,5L0,10z" fill="#557"/></marker></defs>')


def flow_rows(r) -> list[dict]:
    """Per cohort: cases in, by site, excluded (with reasons), and the cases each validation analysed."""
    stages = {s["name"]: s for s in r["manifest"]["stages"]}
    tables = _cohort_tables(r)
    excluded: dict[str, list[dict]] = {}
    for e in r["run"].get("excluded_cases") or []:
        excluded.setdefault(_cohort_of(stages, e.get("stage", "")) or "?", []).append(e)
    rows = []
    for name, s in stages.items():
        if s["kind"] != "cohort":
            continue
        table = tables.get(name)
        by_site: dict[str, int] = {}
        for row in table or []:
            if row.get("site"):
                by_site[row["site"]] = by_site.get(row["site"], 0) + 1
        analysed = []
        for v, m in r["metrics"].items():
            ext = m.get("external") if isinstance(m.get("external"), dict) else None
            if m.get("cohort") == name and m.get("n_cases") is not None:
                analysed.append((v, int(m["n_cases"]), "cross-validation"))
            elif m.get("cohort") == name and isinstance(m.get("per_case"), list):
                analysed.append((v, len({c.get("case") for c in m["per_case"]}), "scoring"))
            elif isinstance(m.get("train_cases"), list) and _cohort_of(stages, str(m.get("stage"))) == name:
                n_val = len(m.get("validation_cases") or [])
                analysed.append((str(m.get("stage")), len(m["train_cases"]) + n_val, f"training ({n_val} for validation)"))
            if ext and ext.get("cohort") == name:
                analysed.append((v, int(ext.get("n_predictions", 0)), "external validation"))
        rows.append({"cohort": name, "op": s["op"], "cases": len(table) if table is not None else None, "sites": by_site,
                     "excluded": excluded.get(name, []), "analysed": analysed})
    return rows


def flow_svg(rows) -> str:
    w, parts, height = 330, [], 0
    for i, c in enumerate(rows):
        x = 10 + i * (w + 30)
        n = "?" if c["cases"] is None else str(c["cases"])
        sites = ", ".join(f"{k}: {v}" for k, v in sorted(c["sites"].items())) if c["sites"] else "sites not recorded"
        parts.append(_box(x, 10, w, 54, [f"cohort {c['cohort']} ({c['op']})", f"{n} cases in", sites[:48]]))
        y = 90
        reasons: dict[str, int] = {}
        for e in c["excluded"]:
            reasons[str(e.get("reason", "?"))[:40]] = reasons.get(str(e.get("reason", "?"))[:40], 0) + 1
        lines = [f"excluded: {len(c['excluded'])}"] + [f"{k} ({v})" for k, v in sorted(reasons.items())][:4]
        parts.append(_arrow(x + w / 2, 64, x + w / 2, y))
        parts.append(_box(x, y, w, 22 + 15 * len(lines), lines, "#fdf0e6" if c["excluded"] else "#f4f4f4"))
        y += 22 + 15 * len(lines) + 26
        for v, k, how in c["analysed"] or [("-", 0, "not analysed by a validation")]:
            parts.append(_arrow(x + w / 2, y - 26, x + w / 2, y))
            parts.append(_box(x, y, w, 38, [f"analysed: {k} cases" if v != "-" else how, f"{how} in `{v}`" if v != "-" else ""], "#e3f6e3"))
            y += 64
        height = max(height, y)
    width = 20 + len(rows) * (w + 30)
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="cohort flow">{SVG_HEAD}{"".join(parts)}</svg>'


def graph_svg(stages) -> str:
    """The stage graph, in layers by depth (the longest chain of inputs), edges from input to consumer."""
    by = {s["name"]: s for s in stages}
    depth: dict[str, int] = {}

    def d(n, seen=()):
        if n not in depth:
            ins = [str(v).split(".")[0] for v in by[n]["inputs"].values() if str(v).split(".")[0] in by and str(v).split(".")[0] not in seen]
            depth[n] = 1 + max((d(i, seen + (n,)) for i in ins), default=-1)
        return depth[n]

    for n in by:
        d(n)
    layers: dict[int, list[str]] = {}
    for n in by:
        layers.setdefault(depth[n], []).append(n)
    w, h, gx, gy = 150, 40, 40, 30
    pos = {n: (10 + i * (w + gx), 10 + depth[n] * (h + gy)) for k, names in layers.items() for i, n in enumerate(sorted(names))}
    parts = []
    for n, s in by.items():
        for v in s["inputs"].values():
            src = str(v).split(".")[0]
            if src in pos:
                (x1, y1), (x2, y2) = pos[src], pos[n]
                parts.append(_arrow(x1 + w / 2, y1 + h, x2 + w / 2, y2))
    colours = {"cohort": "#eef4fb", "validate": "#e3f6e3", "explain": "#fdf0e6"}
    for n, (x, y) in pos.items():
        parts.append(f'<a href="#stage-{escape(n)}">' + _box(x, y, w, h, [f"{by[n]['kind']} {n}", by[n]["op"]], colours.get(by[n]["kind"], "#f6f6f6")) + "</a>")
    width = 20 + max(len(v) for v in layers.values()) * (w + gx)
    height = 20 + (max(layers) + 1) * (h + gy)
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="stage graph">{SVG_HEAD}{"".join(parts)}</svg>'


def _fmt(v, nd=3):
    return "–" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else escape(str(v)))


def metrics_table(name, m) -> str:
    if "cross_validation" not in m and "external" not in m:
        rows = []
        for k, v in sorted(m.items()):
            if isinstance(v, (int, float, str)) and not isinstance(v, bool):
                rows.append(f"<tr><th>{escape(k)}</th><td>{_fmt(v)}</td></tr>")
            elif isinstance(v, list):
                rows.append(f"<tr><th>{escape(k)}</th><td>{len(v)} entries in metrics/{escape(name)}.json</td></tr>")
            elif isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):      # e.g. per class: a table of its own
                cols = sorted({c for x in v.values() for c in x})
                sub = "".join(f"<tr><th>{escape(str(key))}</th>" + "".join(f"<td>{_fmt(x.get(c))}</td>" for c in cols) + "</tr>" for key, x in v.items())
                rows.append(f"<tr><th>{escape(k)}</th><td><table><tr><th></th>{''.join(f'<th>{escape(c)}</th>' for c in cols)}</tr>{sub}</table></td></tr>")
        return "<table>" + "".join(rows) + "</table>"
    head = "<tr><th>set</th><th>predictions</th><th>AUC [CI]</th><th>Brier</th><th>calibration intercept</th><th>slope</th><th>sensitivity</th><th>specificity</th><th>C-index</th></tr>"
    rows = []
    for label, key in (("cross-validation", "cross_validation"), ("external", "external")):
        s = m.get(key)
        if not isinstance(s, dict):
            continue
        a = s.get("auc") or {}
        auc = "–" if a.get("estimate") is None else f"{a['estimate']:.3f}" + (
            f" [{a['ci_low']:.3f}, {a['ci_high']:.3f}]" if a.get("ci_low") is not None else "")
        cal = s.get("calibration") or {}
        ci = s.get("c_index")
        ci = ci.get("estimate") if isinstance(ci, dict) else ci
        sens, spec = s.get("sensitivity"), s.get("specificity")
        sens = sens.get("estimate") if isinstance(sens, dict) else sens
        spec = spec.get("estimate") if isinstance(spec, dict) else spec
        rows.append(f"<tr><td>{label}{' `' + escape(str(s.get('cohort'))) + '`' if s.get('cohort') else ''}</td><td>{_fmt(s.get('n_predictions'))}</td>"
                    f"<td>{auc}</td><td>{_fmt(s.get('brier'))}</td><td>{_fmt(cal.get('intercept'))}</td><td>{_fmt(cal.get('slope'))}</td>"
                    f"<td>{_fmt(sens)}</td><td>{_fmt(spec)}</td><td>{_fmt(ci)}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def shap_table(summary, path, top=10) -> str:
    """The largest mean |SHAP| features (and groups) of an explanation, from its shap.json."""
    def ranked(d):
        return sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:top]

    cols = [("feature", summary.get("mean_abs") or {})] + [(f"by {by}", g.get("mean_abs") or {}) for by, g in sorted((summary.get("groups") or {}).items())]
    head = "".join(f"<th>{escape(n)}</th><th>mean |SHAP|</th>" for n, _ in cols)
    ranks = [ranked(d) for _, d in cols]
    rows = ["<tr>" + "".join(f"<td>{escape(r[i][0])}</td><td>{r[i][1]:.4f}</td>" if i < len(r) else "<td></td><td></td>" for r in ranks) + "</tr>"
            for i in range(max(map(len, ranks), default=0))]
    what = (f"{escape(str(summary.get('explainer')))} explainer, {summary.get('cases')} cases, background {summary.get('background')}, "
            f"max_evals {summary.get('max_evals')}, output {escape(str(summary.get('output')))}; largest efficiency error "
            f"{summary.get('efficiency_max_error', 0):.2g}")
    net = summary.get("network")
    if net:
        what += (f"; a network over {len(net.get('image_features') or [])} image regions ({' x '.join(map(str, net.get('regions') or []))} "
                 f"blocks of each channel: {escape(', '.join(map(str, net.get('channels') or [])))}) and "
                 f"{len(net.get('tabular_features') or [])} tabular columns")
    return f"<h3>{escape(path)}</h3><p class=\"muted\">{what}</p><table><tr>{head}</tr>{''.join(rows)}</table>"


def _evidence_html(ev, lines) -> str:
    out = []
    for e in ev:
        t = escape(e.get("text", ""))
        if e.get("stage") in lines:
            t = f'<a href="#L{lines[e["stage"]]}">spec line {lines[e["stage"]]}</a> {t}'
        elif e.get("file"):
            t = f'<code>{escape(e["file"])}</code> {t}'
        elif e.get("anchor"):
            t = f'<a href="#{e["anchor"]}">{t}</a>'
        out.append(t)
    return "<br>".join(out)


def build_report(out) -> str:
    r = load_run(Path(out))
    man, run = r["manifest"], r["run"]
    text = _spec_text(r)
    lines = _stage_lines(text, man["stages"])
    facts = facts_of(r)
    checks = assess(facts)
    title = escape(man.get("study") or "radlang study")
    h = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{CSS}</style></head><body>",
         f"<h1 id=\"title\">{title}</h1>",
         ('<nav><a href="#spec">spec</a><a href="#flow">cohort flow</a><a href="#graph">stage graph</a><a href="#metrics">metrics</a>'
          '<a href="#plots">plots</a><a href="#explanations">explanations</a><a href="#warnings">warnings</a><a href="#checklists">checklists</a></nav>')]
    vers = ", ".join(f"{k} {v}" for k, v in sorted((run.get("versions") or {}).items()))
    h.append(f'<h2 id="spec">Spec and provenance</h2><table><tr><th>spec</th><td><code>{escape(Path(str(run.get("spec", {}).get("file", ""))).name)}</code>'
             f' sha256 <code>{escape(man.get("spec_sha256", ""))}</code></td></tr><tr><th>seed</th><td>{_fmt(man.get("seed"))}</td></tr>'
             f'<tr><th>versions</th><td>{escape(vers)}</td></tr><tr><th>inputs</th><td>{len(man.get("inputs", {}))} files, hashed in manifest.json</td></tr>'
             f'<tr><th>outputs</th><td>{len(man.get("artefacts", []))} artefacts, hashed in manifest.json</td></tr></table>')
    if text is None:
        h.append('<p class="muted">The spec file was not found unchanged beside the run; its sha256 is above.</p>')
    else:
        h.append('<div class="spec">' + "".join(f'<div id="L{i}"><a href="#L{i}">{i}</a>{escape(line) or " "}</div>'
                                                for i, line in enumerate(text.splitlines(), 1)) + "</div>")
    h.append(f'<h2 id="flow">Cohort flow</h2>{flow_svg(flow_rows(r))}')
    h.append(f'<h2 id="graph">Stage graph</h2>{graph_svg(man["stages"])}<table><tr><th>stage</th><th>operator</th><th>fit</th><th>spec line</th></tr>')
    for s in man["stages"]:
        ln = lines.get(s["name"])
        fit = s["fit"] + (f" inside the folds of {', '.join(s['fit_within'])}" if s.get("fit_within") else "")
        h.append(f'<tr id="stage-{escape(s["name"])}"><td>{escape(s["kind"])} <b>{escape(s["name"])}</b></td><td>{escape(s["op"])}</td>'
                 f'<td>{escape(fit)}</td><td>{f"<a href=#L{ln}>{ln}</a>" if ln else "–"}</td></tr>')
    h.append("</table><h2 id=\"metrics\">Metrics</h2>")
    for name, m in r["metrics"].items():
        h.append(f"<h3>{escape(name)}</h3>{metrics_table(name, m)}")
    h.append('<h2 id="plots">Plots</h2><div class="plots">')
    h += [_img(r["out"] / p, p) for p in r["files"] if p.startswith("plots/") and p.endswith(".png")]
    h.append('</div><h2 id="explanations">Explanations (SHAP, Grad-CAM)</h2><div class="plots">')
    for p in r["files"]:
        if p.startswith("explain/") and p.endswith("/shap.json"):
            h.append(shap_table(_read_json(r["out"] / p) or {}, p))
    expl = [p for p in r["files"] if p.startswith("explain/") and p.endswith(".png")]
    h += [_img(r["out"] / p, p) for p in expl] or ['<p class="muted">The study has no explanation stage.</p>']
    h.append('</div><h2 id="warnings">Warnings</h2>')
    h += [f'<div class="warn">{escape(w)}</div>' for w in run.get("warnings") or []] or ['<p class="muted">No warnings.</p>']
    h.append('<h2 id="checklists">Checklists</h2><p>' + ", ".join(f'<span class="{k}">{escape(v)}</span>' for k, v in VERDICTS.items()) + "</p>")
    for key, cl in checks.items():
        score = f" — METRICS score {cl['score']}% of the applicable weight (a lower bound until the authors answer their items)" if "score" in cl else ""
        h.append(f'<h3 id="checklist-{key}">{escape(cl["title"])}{escape(score)}</h3><p class="muted">{escape(cl["source"])}. {escape(cl["note"])}</p>'
                 '<table><tr><th>#</th><th>topic</th><th>item</th>' + ("<th>weight</th>" if "score" in cl else "") + '<th>verdict</th><th>evidence</th></tr>')
        for it in cl["items"]:
            h.append(f'<tr class="{it["verdict"]}"><td>{escape(it["id"])}</td><td>{escape(it["topic"])}</td><td>{escape(it["text"])}</td>'
                     + (f'<td>{it["weight"]:.4f}</td>' if "score" in cl else "")
                     + f'<td>{escape(VERDICTS[it["verdict"]])}</td><td>{_evidence_html(it["evidence"], lines)}</td></tr>')
        h.append("</table>")
    h.append("</body></html>\n")
    return "\n".join(h)


def write_report(out, output=None) -> Path:
    html = build_report(out)
    path = Path(output) if output else Path(out) / "report.html"
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as e:
        raise ReportError(Diagnostic("E739", f"cannot write the report `{path}`: {e.strerror or e}", None,
                                     hint="give `-o` a file in a folder that exists and that you can write")) from None
    return path
