"""The bad input of deep stage kinds (issue #11's list) is a diagnostic from `radlang check`, with a hint and the
statement's line, never a traceback:

- a head without a target column (E291); heads of one network on different cohorts (E292);
- DANN without a site column (E296), on a one-site phantom (E297), on a manifest whose site column holds one site
  (E297, from the manifest's rows);
- a patch smaller than the backbone's total downsampling (E255), for every backbone, at the sizes where a real forward
  pass shows the deepest map degenerate;
- a network model without a fixed-size image input (E256);
- channels (or the mask) on different grids (E620), from the image headers only: `check` imports no torch or monai;
- branches from different cohorts (E360) and a tabular branch without case ids (E361), or with some missing (E660).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from radlang.compiler import compile_file, compile_source
from tests.deep.conftest import write_cohort

NET = "network enc = resnet(dims: 3) { depth: 10, widen_factor: 0.125 }\n"


def errors(text: str, folder: Path | None = None):
    """The error diagnostics of a spec: compiled from a file in `folder` (so `check` reads the data it names), or
    from source."""
    if folder is None:
        res = compile_source(text, "t.rad")
    else:
        (folder / "t.rad").write_text(text)
        res = compile_file(folder / "t.rad", data=True)
    return [d for d in res.diagnostics if d.is_error]


def only(errs, code):
    assert [d.code for d in errs] == [code], [(d.code, d.message) for d in errs]
    assert errs[0].hint and errs[0].span is not None
    return errs[0]


def line_of(text, start):
    return next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(start))


# ------------------------------------------------------------------ heads, sites, sizes (type checks)

MT = ('study "s" { seed: 1 }\ncohort train = phantom(12) { size: [16, 16, 16], grades: 3 }\n'
      'cohort other = phantom(12, seed: 5) { size: [16, 16, 16], grades: 3 }\nfeatures img = patches(train) { patch: [16, 16, 16] }\n'
      + NET + "model mt = multitask(img, target: train.outcome, network: enc) {{ heads: [{heads}] }}\n"
      "validate v = evaluate(mt) { cv: stratified_kfold(2) }\n")


@pytest.mark.parametrize("heads, code, says", [
    ("binary(m, target: train.outcome), multiclass(grade)", "E291", "no target column"),
    ("binary(m, target: train.outcome), multiclass(grade, target: train.clinical, column: grade), "
     "survival(r, target: train.clinical, time: os)", "E291", "`event`"),
    ("binary(m, target: train.outcome), multiclass(grade, target: other.clinical, column: grade)", "E292", "cohort `other`"),
])
def test_heads(heads, code, says):
    text = MT.replace("{{", "{").replace("}}", "}").replace("{heads}", heads)
    e = only(errors(text), code)
    assert says in e.message and e.span.line == line_of(text, "model mt")


def test_dann_sites_from_the_types():
    no_site = 'study "s" { seed: 1 }\ncohort train = manifest("d.csv") { image: ct, mask: roi, outcome: y as binary }\n'
    one_site = 'study "s" { seed: 1 }\ncohort train = phantom(20) { sites: 1, size: [16, 16, 16] }\n'
    dann = NET + "features img = patches(train) { patch: [16, 16, 16] }\nmodel m = dann(img, target: train.outcome, network: enc)\n"
    e = only(errors(no_site + dann + "validate v = evaluate(m) { cv: none }\n"), "E296")
    assert "no site column" in e.message and "site:" in e.hint
    e = only(errors(one_site + dann + "validate v = evaluate(m) { cv: leave_one_site_out }\n"), "E297")
    assert "one site" in e.message and "sites: 2" in e.hint


def test_dann_on_a_manifest_with_one_site_is_found_from_its_rows(tmp_path):
    manifest = write_cohort(tmp_path / "one", 8, 3)
    text = manifest.read_text().replace("site1", "siteA").replace("site2", "siteA")
    manifest.write_text(text)
    spec = ('study "s" { seed: 1 }\ncohort train = manifest("one/manifest.csv") { image: t1, mask: seg, outcome: label as binary, '
            "site: hospital }\n" + NET + "features img = patches(train) { patch: [16, 16, 16] }\n"
            "model m = dann(img, target: train.outcome, network: enc)\nvalidate v = evaluate(m) { cv: leave_one_site_out }\n")
    e = only(errors(spec, tmp_path), "E297")
    assert "lists one site (`siteA`)" in e.message


# the smallest patch side of each backbone (its total downsampling) and what half of it does in a real forward pass
# (tests/deep: DenseNet121's pooling fails, ResNet's and SegResNet's deepest map is one cell of padding)
@pytest.mark.parametrize("net, side", [
    ("resnet(dims: 3) { depth: 10, widen_factor: 0.125 }", 16),
    ("densenet121(dims: 3)", 32),
    ("segresnet(dims: 3) { blocks_down: [1, 2, 2, 4] }", 8),
    # UNet, strides 2, 2, 2: downsampling 8, and its instance-normalised deepest map needs two voxels: 16
    ("unet(dims: 3) { channels: [8, 16, 32, 64], strides: [2, 2, 2] }", 16),
    ("unet(dims: 3) { channels: [8, 16, 32, 64], strides: [2, 2, 2], norm: batch }", 8),
])
def test_patch_smaller_than_the_downsampling(net, side):
    def spec(n):
        return ('study "s" { seed: 1 }\ncohort train = phantom(20) { size: [16, 16, 16] }\n'
                f"network enc = {net}\nfeatures img = patches(train) {{ patch: [{n}, {n}, {n}] }}\n"
                "model m = cnn(img, target: train.outcome, network: enc)\nvalidate v = evaluate(m)\n")
    e = only(errors(spec(side // 2)), "E255")
    assert f"downsampling ({side};" in e.message and f"at least {side}" in e.hint
    assert errors(spec(side)) == []


def test_half_the_downsampling_degenerates_in_a_real_forward_pass():
    """What E255 prevents: DenseNet121 cannot pool a 16^2 patch (its total downsampling is 32); ResNet's deepest map of
    an 8^3 patch (its downsampling is 16) is one cell; an instance-normalised UNet cannot normalise a one-voxel map."""
    import torch

    from radlang.ops.net_models import backbone_features
    from radlang.ops.networks import build_network

    def network(text):
        dims = 2 if "dims: 2" in text else 3
        res = compile_source('study "s" { seed: 1 }\ncohort t = phantom(20) { size: [16, 16, 16] }\n'
                             f"network enc = {text}\nfeatures img = patches(t) {{ dims: {dims}, patch: [{', '.join(['32'] * dims)}] }}\n"
                             "model m = cnn(img, target: t.outcome, network: enc)\nvalidate v = evaluate(m)\n", "t.rad")
        st = res.study.stage("enc")
        return build_network({"arch": st.op, "params": st.params}).eval()

    dense = network("densenet121(dims: 2)")
    with torch.no_grad(), pytest.raises(RuntimeError):
        backbone_features(dense, "densenet121", torch.zeros(1, 1, 16, 16))
    res = network("resnet(dims: 3) { depth: 10, widen_factor: 0.125 }")
    with torch.no_grad():
        assert tuple(backbone_features(res, "resnet", torch.zeros(1, 1, 8, 8, 8)).shape[2:]) == (1, 1, 1)
    # an instance-normalised UNet (strides 2, 2, 2) refuses an 8^3 patch (a one-voxel deepest map) and takes 16^3
    unet = network("unet(dims: 3) { channels: [8, 16, 32, 64], strides: [2, 2, 2] }")
    with torch.no_grad(), pytest.raises(ValueError, match="more than 1 spatial element"):
        backbone_features(unet, "unet", torch.zeros(2, 1, 8, 8, 8))
    with torch.no_grad():
        assert tuple(backbone_features(unet, "unet", torch.zeros(2, 1, 16, 16, 16)).shape[2:]) == (2, 2, 2)


def test_network_model_without_a_fixed_input_size():
    text = ('study "s" { seed: 1 }\ncohort train = phantom(20) { size: [16, 16, 16] }\n' + NET
            + "features t = tabular(train)\nmodel m = cnn(t, target: train.outcome, network: enc)\nvalidate v = evaluate(m)\n")
    e = only(errors(text), "E256")
    assert "fixed-size image" in e.message and "patches(" in e.hint


# ------------------------------------------------------------------ channels on different grids (headers at check)

def _two_channel_spec(manifest):
    return ('study "s" { seed: 1 }\n'
            f'cohort mr = manifest("{manifest}") {{ image: [t1, t2], mask: seg, outcome: label as binary }}\n'
            "network enc = resnet(dims: 3, in_channels: 2) { depth: 10, widen_factor: 0.125 }\n"
            "features img = patches(mr) { patch: [16, 16, 16] }\n"
            "model m = cnn(img, target: mr.outcome, network: enc)\nvalidate v = evaluate(m) { cv: stratified_kfold(2) }\n")


def test_channels_on_different_grids_at_check(tmp_path):
    write_cohort(tmp_path / "bad", 6, 1, bad_spacing=("c03",))
    text = _two_channel_spec("bad/manifest.csv")
    e = only(errors(text, tmp_path), "E620")
    assert "case `c03`, column `t2`" in e.message and "c03_t2.nii.gz" in e.message and "spacing (2.0, 2.0, 2.0)" in e.message
    assert e.message.count("case `") == 1 and e.span.line == line_of(text, "features img")
    write_cohort(tmp_path / "good", 6, 1)
    assert errors(_two_channel_spec("good/manifest.csv"), tmp_path) == []


def test_a_mask_on_another_grid_at_check(tmp_path):
    import SimpleITK as sitk

    manifest = write_cohort(tmp_path / "m", 4, 2)
    seg = tmp_path / "m" / "c01_seg.nii.gz"
    im = sitk.ReadImage(str(seg))
    im.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(im, str(seg))
    e = only(errors(_two_channel_spec(manifest.relative_to(tmp_path)), tmp_path), "E620")
    assert "case `c01`, column `seg`" in e.message and "mask geometry" in e.message


def test_geometry_check_reads_headers_only_and_no_torch(tmp_path):
    write_cohort(tmp_path / "bad", 4, 1, bad_spacing=("c00",))
    (tmp_path / "t.rad").write_text(_two_channel_spec("bad/manifest.csv"))
    code = ("import sys; from radlang.cli import main; rc = main(['check', sys.argv[1]]); "
            "print(rc, [m for m in ('torch', 'monai', 'sklearn', 'radiomics') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.rad")], capture_output=True, text=True, timeout=120, check=False)
    assert out.stdout.strip().splitlines()[-1] == "1 []", out.stdout + out.stderr
    assert "E620" in out.stdout + out.stderr and "Traceback" not in out.stderr


# ------------------------------------------------------------------ fused branches: cohorts and case ids

BRANCHES = ('study "s" { seed: 1 }\ncohort train = phantom(20) { size: [16, 16, 16] }\n'
            'cohort other = manifest("o.csv") { image: ct, mask: roi }\ncohort clin = table("c.csv") { id: pid }\n' + NET
            + "features img = patches(train) { patch: [16, 16, 16] }\nfeatures oimg = patches(other) { patch: [16, 16, 16] }\n"
            "features orad = pyradiomics(other.image, other.mask)\nfeatures ctab = tabular(clin)\n")


@pytest.mark.parametrize("join, says", [
    ("join(img, orad)", "`orad` is a table of cohort `other`"),
    ("join(img, oimg) { prefix: true }", "`oimg` is an image branch of cohort `other`"),
    ("join(orad, img)", "`img` is an image branch of cohort `train`"),
    ("join(ctab, img)", "the join's rows are the ids of the attribute table `clin`"),
])
def test_branches_from_different_cohorts(join, says):
    text = BRANCHES + f"features j = {join}\nmodel m = cnn(j, target: train.outcome, network: enc)\nvalidate v = evaluate(m)\n"
    errs = [d for d in errors(text) if d.code != "E242"]      # a rows cohort other than the target's is E242 as well
    e = only(errs, "E360")
    assert says in e.message and e.span.line == line_of(text, "features j")


def test_an_attribute_table_joins_the_image_branch():
    text = BRANCHES + "features j = join(img, ctab)\nmodel m = cnn(j, target: train.outcome, network: enc)\nvalidate v = evaluate(m)\n"
    assert errors(text) == []


def _fusion_files(tmp_path, table_ids):
    write_cohort(tmp_path / "img", 6, 4)
    (tmp_path / "clin.csv").write_text("pid,age\n" + "".join(f"{i},{50 + k}\n" for k, i in enumerate(table_ids)))
    return ('study "s" { seed: 1 }\n'
            'cohort train = manifest("img/manifest.csv") { image: t1, mask: seg, outcome: label as binary, patient: hospital }\n'
            'cohort clin = table("clin.csv") { id: pid }\n' + NET
            + "features img = patches(train) { patch: [16, 16, 16] }\nfeatures ctab = tabular(clin)\n"
            "features j = join(img, ctab)\nmodel m = cnn(j, target: train.outcome, network: enc)\n"
            "validate v = evaluate(m) { cv: stratified_kfold(2) }\n")


def test_a_tabular_branch_without_case_ids(tmp_path):
    # the table is keyed by the patients (the manifest's `hospital` column here), the join by case
    text = _fusion_files(tmp_path, ["site1", "site2"])
    e = only(errors(text, tmp_path), "E361")
    assert "has no case ids of `train`" in e.message and "`by: patient`" in e.hint
    assert errors(text.replace("join(img, ctab)", "join(img, ctab) { by: patient }"), tmp_path) == []
    # ids that are neither: the hint names the table's id column
    e = only(errors(_fusion_files(tmp_path, ["p1", "p2"]), tmp_path), "E361")
    assert "`id: <column>` on `clin`" in e.hint


def test_a_tabular_branch_missing_some_cases(tmp_path):
    e = only(errors(_fusion_files(tmp_path, ["c00", "c01", "c02", "c04", "c05"]), tmp_path), "E660")
    assert "1 case id(s) of `train` have no row" in e.message and "`c03`" in e.message
    assert errors(_fusion_files(tmp_path, ["c00", "c01", "c02", "c03", "c04", "c05"]), tmp_path) == []
