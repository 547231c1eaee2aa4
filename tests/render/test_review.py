"""`radlang render SPEC -o DIR`: the review form. study.py reads as the study (short stage functions that call the
runtime with literal settings) and refuses to run against a runtime other than the one it was rendered with; the
runtime holds only code the study reaches; manifest.json records the files' hashes and the study graph. That its
outputs are byte-identical to `radlang run` is tests/render/test_equivalence.py (and tests/conformance/)."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil

import pytest
from render_helpers import REPO, SPECS, compile_spec, run_script

from radlang.backends.render.literals import RenderError
from radlang.backends.render.script import code_sha, names_used, reachable, render_to_dir, short_sha

QUICKSTART = REPO / "examples" / "quickstart.rad"


def _blocks(runtime: str) -> dict[str, tuple[str, str]]:
    """name -> (the sha256 its header states, its source) for each inlined block of a rendered runtime."""
    lines = runtime.split("\n")
    heads = [i for i, x in enumerate(lines) if re.fullmatch(r"# from .*; sha256 [0-9a-f]{16}", x)]
    end = lines.index("# The operators this study uses, as `radlang run` looks them up.")
    out = {}
    for i, j in zip(heads, [*heads[1:], end]):
        src = "\n".join(lines[i + 1:j]).rstrip("\n") + "\n"
        node = ast.parse(src).body[-1]
        name = node.targets[0].id if isinstance(node, ast.Assign) else node.name
        out[name] = (lines[i][-16:], src)
    return out


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    return render_to_dir(compile_spec(QUICKSTART), tmp_path_factory.mktemp("q") / "review", date="2000-01-01T00:00:00Z")


def test_study_comes_first_and_is_short(quickstart):
    text = (quickstart / "study.py").read_text(encoding="utf-8")
    lines = text.split("\n")
    first = next(i for i, x in enumerate(lines, 1) if x.startswith("def stage_"))
    assert len(lines) <= 400 and first <= 120, (len(lines), first)
    tree = ast.parse(text)
    stages = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("stage_")]
    assert [n.name for n in stages] == ["stage_external", "stage_train", "stage_roi", "stage_rad", "stage_robust", "stage_sig",
                                        "stage_clf", "stage_v"]
    assert all(n.end_lineno - n.lineno < 40 for n in stages)
    # the study imports the runtime only after checking its hash, and defines no operator code itself
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "radlang_runtime"]
    assert len(imports) == 1 and "RUNTIME_SHA256" in "\n".join(lines[: imports[0].lineno])


def test_no_absolute_path_and_spec_path_relative_to_the_folder(quickstart):
    text = (quickstart / "study.py").read_text(encoding="utf-8")
    consts = [n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [c for c in consts if c.startswith("/")]   # no absolute path: the folder and the spec move together
    rel = re.search(r"^SPEC_PATH = str\(\(HERE / '([^']+)'\)\.resolve\(\)\)$", text, re.MULTILINE).group(1)
    assert (quickstart / rel).resolve() == QUICKSTART.resolve()


def test_hashes_in_the_files_are_the_hashes_of_the_code(quickstart):
    runtime = (quickstart / "radlang_runtime.py").read_text(encoding="utf-8")
    study = (quickstart / "study.py").read_text(encoding="utf-8")
    blocks = _blocks(runtime)
    assert len(blocks) > 50 and {"run_evaluate", "run_pyradiomics", "make_phantom"} <= set(blocks)
    assert all(short_sha(src) == sha for sha, src in blocks.values())
    assert re.search(r"^RUNTIME_SHA256 = '([0-9a-f]{64})'$", study, re.MULTILINE).group(1) == \
        hashlib.sha256(runtime.encode()).hexdigest()
    sources = {n: src for n, (_, src) in blocks.items()}
    calls = re.findall(r"^# calls (\w+): sha256 ([0-9a-f]{16}); with the (\d+) blocks it reaches: sha256 ([0-9a-f]{16})$", study,
                       re.MULTILINE)
    assert len(calls) == 8
    for name, own, n, closure in calls:
        assert own == blocks[name][0] and code_sha(name, sources) == (closure, int(n) + 1)
    manifest = json.loads((quickstart / "manifest.json").read_text())
    assert manifest["files"] == {p: hashlib.sha256((quickstart / p).read_bytes()).hexdigest() for p in ("study.py", "radlang_runtime.py")}
    assert [s["name"] for s in manifest["stages"]] == ["external", "train", "roi", "rad", "robust", "sig", "clf", "v"]
    assert manifest["stages"][-1]["calls"] == {"run_evaluate": blocks["run_evaluate"][0]}
    assert ["clf", "v", "model"] in manifest["edges"] and manifest["runtime_blocks"] == {n: sha for n, (sha, _) in blocks.items()}


def test_runtime_holds_only_code_the_study_reaches(quickstart):
    """Every inlined block is named by the study, the runtime's stand-ins, the registry, or another block it reaches."""
    runtime = (quickstart / "radlang_runtime.py").read_text(encoding="utf-8")
    study = (quickstart / "study.py").read_text(encoding="utf-8")
    blocks = {n: src for n, (_, src) in _blocks(runtime).items()}
    rest = runtime
    for src in blocks.values():
        rest = rest.replace(src, "")
    assert reachable(blocks, names_used(study) | names_used(rest)) == list(blocks)


def test_reachable_follows_names_only():
    blocks = {"a": "def a():\n    return b()\n", "b": "def b():\n    return K\n", "K": "K = 1\n", "c": "def c():\n    return a()\n"}
    assert reachable(blocks, {"a"}) == ["a", "b", "K"]
    assert reachable(blocks, {"c", "zzz"}) == ["a", "b", "K", "c"]
    assert reachable(blocks, set()) == []


def test_an_edited_runtime_is_refused(quickstart, tmp_path):
    copy = shutil.copytree(quickstart, tmp_path / "copy")
    ok = run_script(copy / "study.py", "--help")
    assert ok.returncode == 0 and "--out" in ok.stdout
    with open(copy / "radlang_runtime.py", "a", encoding="utf-8") as f:
        f.write("# an edit\n")
    proc = run_script(copy / "study.py", "--help")
    assert proc.returncode == 1 and "does not match RUNTIME_SHA256" in proc.stderr and "Traceback" not in proc.stderr


def test_a_folder_with_other_files_is_refused(tmp_path):
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "notes.txt").write_text("mine")
    with pytest.raises(RenderError) as e:
        render_to_dir(compile_spec(SPECS / "quick.rad"), tmp_path / "review")
    assert e.value.code == "E707" and "notes.txt" in str(e.value)
    assert sorted(p.name for p in (tmp_path / "review").iterdir()) == ["notes.txt"]
    again = render_to_dir(compile_spec(SPECS / "quick.rad"), tmp_path / "again")
    assert render_to_dir(compile_spec(SPECS / "quick.rad"), again).is_dir()   # an earlier render's folder is rewritten


def test_review_files_pass_ruff(quickstart):
    from test_script import _ruff

    for name in ("study.py", "radlang_runtime.py"):
        findings = _ruff(quickstart / name)
        assert not findings, [(name, f["code"], f["location"]["row"], f["message"]) for f in findings]


def test_cli_writes_the_folder_or_one_script(tmp_path):
    import subprocess
    import sys

    spec = SPECS / "quick.rad"
    folder = subprocess.run([sys.executable, "-m", "radlang", "render", str(spec), "-o", str(tmp_path / "review"), "--lock"],
                            capture_output=True, text=True, check=False, cwd=REPO)
    assert folder.returncode == 0, folder.stderr
    assert sorted(p.name for p in (tmp_path / "review").iterdir()) == ["manifest.json", "radlang_runtime.py", "requirements.lock",
                                                                       "study.py"]
    pins = json.loads((tmp_path / "review" / "manifest.json").read_text())["packages"]
    assert (tmp_path / "review" / "requirements.lock").read_text() == "".join(f"{k}=={v}\n" for k, v in pins.items())
    single = subprocess.run([sys.executable, "-m", "radlang", "render", str(spec), "-o", str(tmp_path / "one.py")],
                            capture_output=True, text=True, check=False, cwd=REPO)
    assert single.returncode == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["one.py", "review"]


def test_stage_functions_show_the_library_objects_their_settings_make(quickstart):
    """The PyRadiomics settings (a comment) and the scikit-learn pipeline (code), as the operators' own code builds them."""
    from radlang.ops.features import pyradiomics_config

    text = (quickstart / "study.py").read_text(encoding="utf-8")
    study = compile_spec(QUICKSTART)
    rad, clf = study.stage("rad"), study.stage("clf")
    shown = re.search(r"#   featureextractor\.RadiomicsFeatureExtractor\((.*?)\)\n    return run_pyradiomics", text, re.DOTALL).group(1)
    assert ast.literal_eval(re.sub(r"\n\s*#\s*", " ", shown)) == pyradiomics_config(rad.params)
    # the fold pipeline is code that the study runs (tests/render/test_fold_pipeline.py), not a comment
    assert f"('model', LogisticRegression(max_iter=1000, class_weight=None, random_state={clf.seed}, C=1.0))," in text
    assert "('scale', StandardScaler())," in text and "return run_evaluate(stage, ctx, pipeline=fold_pipeline_v)" in text


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_the_optimiser_shown_is_the_one_training_builds(name):
    torch = pytest.importorskip("torch")
    from radlang.ops.netio import make_optimizer, make_scheduler, training_code

    params = {"optimizer": name, "lr": 0.003, "weight_decay": 0.0001, "schedule": "step", "epochs": 7}
    opt = make_optimizer(params, [torch.nn.Parameter(torch.zeros(1))])
    sched = make_scheduler(opt, "step", 7)
    shown = training_code(params, 0)
    call = re.fullmatch(r"torch\.optim\.(\w+)\(net\.parameters\(\), (.*)\)", shown[0])
    assert call.group(1) == type(opt).__name__ == {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}[name]
    node = ast.parse(f"f({call.group(2)})", mode="eval").body
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    assert kwargs["lr"] == 0.003 and all(opt.defaults[k] == v for k, v in kwargs.items())
    assert shown[1] == "torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.1)"
    assert type(sched).__name__ == "StepLR" and sched.step_size == 2 and sched.gamma == 0.1


# code a binary study without shared splits or multi-task models never calls: survival metrics and models, multi-task
# head metrics, shared splits, Otsu/threshold segmentation
UNREACHED = ("survival_metrics", "survival_plots", "survival_predictions", "survival_target", "evaluation_times", "horizon_problems",
             "kaplan_meier", "concordance", "survival_estimator_class", "breslow", "head_metrics", "multitask_fold_data",
             "shared_splits", "splits_from_assignment", "segment_otsu", "segment_threshold")


def test_the_quickstart_carries_no_code_its_settings_never_reach(quickstart):
    blocks = _blocks((quickstart / "radlang_runtime.py").read_text(encoding="utf-8"))
    assert not [n for n in UNREACHED if n in blocks]
    manifest = json.loads((quickstart / "manifest.json").read_text())
    assert "lifelines" not in manifest["packages"] and "torchsurv" not in manifest["packages"]


@pytest.mark.parametrize(("spec", "needed"), [
    ("survival", ("survival_metrics", "survival_plots", "survival_predictions", "survival_target", "evaluation_times",
                  "horizon_problems", "survival_estimator_class")),
    ("compare", ("shared_splits",)),
])
def test_a_study_that_reaches_them_carries_them(tmp_path, spec, needed):
    """The same functions are kept where the study's settings reach them (tests/render/test_equivalence.py and
    tests/conformance/ run these examples' renders: run = render proves nothing the study calls is missing)."""
    out = render_to_dir(compile_spec(REPO / "examples" / f"{spec}.rad"), tmp_path / "review", date="2000-01-01T00:00:00Z")
    runtime = (out / "radlang_runtime.py").read_text(encoding="utf-8")
    blocks = _blocks(runtime)
    assert all(n in blocks for n in needed), [n for n in needed if n not in blocks]
    line = next(x for x in runtime.split("\n") if x.startswith("registry.add(OperatorInfo(name='evaluate'"))
    assert "reaches={" in line and all(f"{n!r}: {n}" in line for n in needed if n != "survival_estimator_class")
