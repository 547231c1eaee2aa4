"""`radlang report OUT`: one self-contained HTML file from a finished run, checked as text and in headless Chromium.

One tiny study (two phantom cohorts, PyRadiomics first-order features, logistic regression, cross-validation with an
external cohort, a SHAP explanation) is run once; the report must hold every section, embed every plot and
explanation as data, name no network resource, and render in a real browser without console messages. Bad input:
a folder that holds no finished run, and a report file that cannot be written."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

SPEC = """study "Report: tiny phantom study" {
  seed: 4
  out: "runs/report"
}
cohort train = phantom(12) { size: [16, 16, 16], effect: 2.0, sites: 2 }
cohort ext = phantom(8, seed: 21) { size: [16, 16, 16], effect: 2.0, site_shift: 10HU }
features rad = pyradiomics(train.image, train.mask) { bin_width: 25, classes: [firstorder] }
select sig = lasso(rad, target: train.outcome) { cv: 2, max_features: 3 }
model clf = logistic(sig, target: train.outcome)
validate v = evaluate(clf) { cv: stratified_kfold(2), external: ext, bootstrap: 20 }
explain why = shap(v) { explainer: exact, background: 6, max_evals: 64, group_by: [family] }
"""

SECTIONS = ("title", "spec", "flow", "graph", "metrics", "plots", "explanations", "warnings", "checklists",
            "checklist-tripod_ai", "checklist-claim_2024", "checklist-metrics")


@pytest.fixture(scope="module")
def run_out(tmp_path_factory):
    pytest.importorskip("radiomics")
    pytest.importorskip("shap")
    root = tmp_path_factory.mktemp("report")
    (root / "study.rad").write_text(SPEC)
    out = root / "out"
    rc, _, err = run_cli(["run", root / "study.rad", "--out", out, "--quiet", "--workers", "1"])
    assert rc == 0, err
    rc, _, err = run_cli(["report", out])
    assert rc == 0, err
    return out


def test_report_holds_every_section_and_embeds_its_images(run_out):
    html = (run_out / "report.html").read_text(encoding="utf-8")
    for s in SECTIONS:
        assert f'id="{s}"' in html, s
    pngs = sorted(p.relative_to(run_out).as_posix() for p in run_out.rglob("*.png") if p.parts[-3:-2] != (".cache",))
    assert [p for p in pngs if p.startswith("plots/v/")] == ["plots/v/calibration.png", "plots/v/decision_curve.png", "plots/v/roc.png"]
    assert "explain/why/beeswarm_family.png" in pngs
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == len(pngs)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted((run_out / p).read_bytes() for p in pngs)   # the files, unchanged
    # offline: no URL to fetch, no external stylesheet or script
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<link" not in html and "<script" not in html
    # cohort flow: what came in and what each validation analysed
    assert "12 cases in" in html and "8 cases in" in html and "analysed: 12 cases" in html and "analysed: 8 cases" in html
    sites = re.search(r"site1: (\d+), site2: (\d+)", html)                  # per site, from the run's cohort table
    assert sites and int(sites[1]) + int(sites[2]) == 12 and min(int(sites[1]), int(sites[2])) > 0
    # the spec, line by line, and a checklist item linked to the line of the stage that satisfies it
    assert '<div id="L8"><a href="#L8">8</a>select sig = lasso' in html
    assert re.search(r'<a href="#L10">spec line 10</a> `validate v = evaluate\(...\)`', html)
    assert re.search(r"AUC \[CI\].*?\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", html, re.DOTALL)
    assert "METRICS score" in html
    # the SHAP panel: the explanation's settings and its largest mean |SHAP| features and families, from shap.json
    assert "<h3>explain/why/shap.json</h3>" in html and "exact explainer, 12 cases, background 6" in html
    assert re.search(r"<th>by family</th><th>mean \|SHAP\|</th>.*?<td>firstorder</td><td>\d\.\d{4}</td>", html, re.DOTALL)


def test_relocated_report_is_the_same(run_out, tmp_path):
    """No recomputation and no absolute path: the report of a copy of the folder elsewhere is the same bytes
    (the spec is looked up by the run's recorded path and sha256, so both find the same text)."""
    copy = tmp_path / "moved"
    shutil.copytree(run_out, copy, ignore=shutil.ignore_patterns(".*", "report.html"))
    rc, _, err = run_cli(["report", copy, "-o", tmp_path / "r.html"])
    assert rc == 0, err
    assert (tmp_path / "r.html").read_bytes() == (run_out / "report.html").read_bytes()


def test_folder_without_a_finished_run(tmp_path):
    rc, _, err = run_cli(["report", tmp_path])
    assert rc == 2 and "error[E738]" in err and "holds no manifest.json or run.json" in err
    (tmp_path / "run.json").write_text("{}")
    rc, _, err = run_cli(["report", tmp_path])
    assert rc == 2 and "holds no manifest.json" in err
    rc, _, err = run_cli(["report", tmp_path / "nowhere"])
    assert rc == 2 and "does not exist" in err


def test_report_file_that_cannot_be_written(run_out, tmp_path):
    rc, _, err = run_cli(["report", run_out, "-o", tmp_path / "no" / "such" / "r.html"])
    assert rc == 2 and "error[E739]" in err


# ---------------------------------------------------------------------------------------------- in a browser

def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("headless Chromium is not installed (Debian package `chromium`)")
    return exe


def _browse(exe, page: Path, *args):
    """(DOM text, console lines) of `page` in headless Chromium, offline."""
    proc = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           "--host-resolver-rules=MAP * ~NOTFOUND", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def test_console_lines_are_caught(tmp_path):
    """The console check below can fail: a page that logs an error shows up."""
    exe = _chromium()
    page = tmp_path / "bad.html"
    page.write_text('<html><body><script>console.error("boom")</script></body></html>')
    _, console = _browse(exe, page, "--dump-dom")
    assert any('"boom"' in line for line in console)


def test_report_renders_in_chromium(run_out, tmp_path):
    exe = _chromium()
    page = run_out / "report.html"
    dom, console = _browse(exe, page, "--dump-dom")
    assert console == []
    for s in SECTIONS:
        assert f'id="{s}"' in dom, s
    assert dom.count("<svg") == 2                                 # the cohort flow and the stage graph, drawn inline
    shot = tmp_path / "report.png"
    _, console = _browse(exe, page, f"--screenshot={shot}", "--window-size=1200,2400")
    assert console == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000   # a page with content, not a blank one
