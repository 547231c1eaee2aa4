"""`radlang selftest`: does this installation reproduce the IBSI reference values?

Runs the IBSI digital phantom shipped with radlang (radlang/_data/ibsi, see ibsi/README.md) through `radlang run`
(a `pyradiomics` stage per IBSI reference set of the phantom, every PyRadiomics feature), compares each feature that
maps to an IBSI feature (radlang/ibsi.py) with the IBSI consensus value and tolerance, and counts matched,
mismatched and no-counterpart features. It fails when a feature that docs/ibsi_coverage.md records as matching
(every mapped feature but `DIGITAL_PHANTOM_DEVIATIONS`) does not match."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from radlang.ibsi import DIGITAL_PHANTOM_CONFIGS, DIGITAL_PHANTOM_DEVIATIONS, all_classes_setting, compare_rows, read_reference
from radlang.resources import ibsi_dir

CASE = "digital_phantom"


def _stage(config: str) -> str:
    return config.replace(".", "_")


def _spec(manifest: Path) -> str:
    lines = ['study "radlang selftest: IBSI digital phantom" { seed: 1 }', f'cohort dp = manifest({json.dumps(str(manifest))}) {{ mask: mask }}']
    for name, (_, settings) in DIGITAL_PHANTOM_CONFIGS.items():
        lines.append(f"features {_stage(name)} = pyradiomics(dp.image, dp.mask) {{")
        lines += [f"  {s}" for s in settings] + [f"  {all_classes_setting()}", "}"]
    return "\n".join(lines) + "\n"


def run_selftest(data: Path | None = None) -> dict:
    """Extract, compare and count. Returns {"configs": {name: {"settings", "counts", "rows"}}, "unexpected": [rows],
    "ok": bool}; `unexpected` holds the mismatched features that should match."""
    from radlang.backends.executor import run_study
    from radlang.compiler import compile_source

    data = Path(data or ibsi_dir())
    reference = read_reference(data / "reference_values_digital_phantom.csv")
    with tempfile.TemporaryDirectory(prefix="radlang-selftest-") as tmp:
        tmp = Path(tmp)
        manifest = tmp / "phantom.csv"
        with manifest.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["case_id", "image", "mask"])
            w.writerow([CASE, data / "digital_phantom" / "image.nii.gz", data / "digital_phantom" / "mask.nii.gz"])
        spec = tmp / "selftest.rad"
        res = compile_source(_spec(manifest), str(spec))
        if not res.ok:
            raise RuntimeError("the self-test spec does not compile: " + "; ".join(f"{d.code} {d.message}" for d in res.diagnostics))
        ctx = run_study(res.study, out=tmp / "out", workers=1, quiet=True)
        tables = {name: ctx.results[_stage(name)].loc[CASE].to_dict() for name in DIGITAL_PHANTOM_CONFIGS}
    out, unexpected = {}, []
    for name, (_, settings) in DIGITAL_PHANTOM_CONFIGS.items():
        rows = compare_rows(tables[name], reference, force2d="force2d: true" in settings)
        counts = {s: sum(r["status"] == s for r in rows) for s in ("matched", "mismatched", "no counterpart", "no reference value")}
        for r in rows:
            r["config"] = name
            r["documented_deviation"] = r["feature"].split("_", 1)[1] in DIGITAL_PHANTOM_DEVIATIONS
            if r["status"] in ("mismatched", "no reference value") and not r["documented_deviation"]:
                unexpected.append(r)
        out[name] = {"settings": settings, "counts": counts, "rows": rows}
    return {"configs": out, "unexpected": unexpected, "ok": not unexpected}


def report_text(result: dict) -> str:
    from importlib.metadata import version

    from radlang import __version__

    lines = [(f"IBSI self-test: PyRadiomics {version('pyradiomics')} through radlang {__version__}, on the IBSI digital phantom "
              "(IBSI chapter-1 consensus values and tolerances)")]
    width = max(len(n) for n in result["configs"])
    for name, c in result["configs"].items():
        n = c["counts"]
        documented = sum(r["status"] == "mismatched" and r["documented_deviation"] for r in c["rows"])
        lines.append(f"  {name:<{width}}  {'; '.join(c['settings']):<28}  {n['matched']} matched, {n['mismatched']} mismatched "
                     f"({documented} documented), {n['no counterpart']} without an IBSI counterpart")
    lines.append("  documented deviations (docs/ibsi_coverage.md): "
                 + "; ".join(f"{k}: {why}" for k, why in sorted(DIGITAL_PHANTOM_DEVIATIONS.items())))
    for r in result["unexpected"]:
        got = "no reference value" if r["ibsi"] is None else f"{r['radlang']:.6g} vs IBSI {r['ibsi']:.6g} ± {r['tolerance']:.3g}"
        lines.append(f"  MISMATCH {r['config']}: {r['feature']} ({r['tag']}): {got}")
    expected = sum(r["status"] != "no counterpart" and not r["documented_deviation"] for c in result["configs"].values() for r in c["rows"])
    if result["ok"]:
        lines.append(f"ok: all {expected} features documented as matching IBSI match")
    else:
        lines.append(f"FAILED: {len(result['unexpected'])} of {expected} features documented as matching IBSI do not match")
    return "\n".join(lines)
