"""`radlang plan` tells the truth: the derived images it announces are the ones the run extracts from (params
file included), and every stage shows the seed it runs with."""

from __future__ import annotations

import pytest
import yaml
from _extraction_util import run_spec, write_spec

from radlang.backends.plan import plan_json, plan_text
from radlang.compiler import compile_file

PARAMS = {"imageType": {"Original": {}, "LoG": {"sigma": [1.0, 2.0]}, "Wavelet": {"level": 2}},
          "featureClass": {"firstorder": ["Mean"]}, "setting": {"binWidth": 25, "label": 1}}


def _note(plan, stage):
    return next(n["text"] for s in plan["stages"] if s["name"] == stage for n in s["notes"] if "image(s)" in n["text"])


def test_plan_counts_the_images_of_the_params_file_and_the_run_agrees(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PARAMS))
    spec = write_spec(tmp_path, """
        study "plan" { seed: 4 }
        cohort train = phantom(4) { size: [16, 16, 16] }
        features f = pyradiomics(train.image, train.mask) { params: from_params("p.yaml") }
    """)
    res = compile_file(spec)
    note = _note(plan_json(res.study), "f")
    # Original 1 + LoG 2 sigmas + Wavelet 2 levels x 7 detail images + 1 approximation
    assert note.endswith("(LoG ×2, Original, Wavelet ×15: 18 image(s))"), note     # in the file's order (safe_dump sorts)
    ctx = run_spec(spec)
    prefixes = {c.rsplit("_", 2)[0] for c in ctx.results["f"].columns}
    assert len(prefixes) == 18, sorted(prefixes)


@pytest.mark.parametrize("filters,count", [("[original]", 1), ("[original, log(sigma: [1mm, 2mm, 3mm])]", 4), ("[wavelet]", 8),
                                           ("[lbp3d(levels: 3)]", 4)])
def test_settings_in_the_spec_override_the_file(tmp_path, filters, count):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PARAMS))
    spec = write_spec(tmp_path, f"""
        cohort train = phantom(4)
        features f = pyradiomics(train.image, train.mask) {{ params: from_params("p.yaml"), filters: {filters} }}
    """)
    assert _note(plan_json(compile_file(spec).study), "f").endswith(f": {count} image(s))")


def test_plan_says_when_it_cannot_read_the_params_file(tmp_path):
    spec = write_spec(tmp_path, """
        cohort train = phantom(4)
        features f = pyradiomics(train.image, train.mask) { params: from_params("gone.yaml") }
    """)
    notes = plan_json(compile_file(spec).study)["stages"][1]["notes"]
    assert notes[0]["text"].endswith("(Original: 1 image(s))") and notes[1]["severity"] == "warning" and "gone.yaml" in notes[1]["text"]


def test_text_plan_shows_each_stages_seed(tmp_path):
    spec = write_spec(tmp_path, """
        study "seeds" { seed: 9 }
        cohort a = phantom(4)
        cohort b = phantom(4, seed: 123)
        features f = pyradiomics(a.image, a.mask)
    """)
    study = compile_file(spec).study
    text = plan_text(study)
    for s in study.stages:
        seed = 123 if s.name == "b" else s.seed          # a `seed` setting is the seed the phantom is generated with
        assert f"{s.kind} {s.name} = {s.op}   [" in text and f"= {s.op}   [{_behaviour(s)}]   seed {seed}" in text


def _behaviour(stage):
    from radlang import registry

    return registry.get(stage.op).behaviour
