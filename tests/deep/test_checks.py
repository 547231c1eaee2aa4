"""Type and setting errors of deep-learning stages are diagnostics from `radlang check`, before anything runs."""

import subprocess
import sys

from radlang.compiler import compile_source

COHORTS = '''
cohort ct2d = manifest("m.csv") { image: ct, mask: seg, outcome: malignant as binary, dims: 2 }
cohort ct3d = manifest("m.csv") { image: ct, mask: seg, outcome: malignant as binary }
cohort mr = manifest("m.csv") { image: [t1, t2, flair], mask: habitats, site: hospital }
cohort test = manifest("t.csv") { image: ct, mask: seg, outcome: malignant as binary }
'''


def codes(body):
    res = compile_source(COHORTS + body, "spec.rad")
    return [(d.code, d.message) for d in res.diagnostics if d.is_error], res


def test_3d_network_on_2d_data_is_a_type_error():
    errs, _ = codes('''
network net = unet(dims: 3, in_channels: 1, out_channels: 2)
train fit = supervised(net, ct2d) { epochs: 1 }
validate s = segmentation_metrics(fit, test)
''')
    assert [c for c, _ in errs] == ["E210"]
    assert "3D network" in errs[0][1] and "2D images" in errs[0][1]


def test_2d_network_on_volumes_needs_slices():
    errs, _ = codes('''
network net = unet(dims: 2, in_channels: 1, out_channels: 2)
train fit = supervised(net, ct3d) { epochs: 1 }
validate s = segmentation_metrics(fit, test)
''')
    assert [c for c, _ in errs] == ["E210"]
    ok, res = codes('''
network net = unet(dims: 2, in_channels: 1, out_channels: 2)
train fit = supervised(net, ct3d) { epochs: 1, slices: true }
validate s = segmentation_metrics(fit, test)
''')
    assert ok == [] and res.ok


def test_channel_mismatch_is_a_type_error():
    errs, _ = codes('''
network net = segresnet(dims: 3, in_channels: 1, out_channels: 4)
train fit = supervised(net, mr) { epochs: 1 }
segment hab = predict_mask(fit, mr)
features f = pyradiomics(mr.image, hab)
''')
    assert ("E211" in [c for c, _ in errs]) and any("3 image column" in m for _, m in errs)


def test_habitat_network_with_matching_channels_checks():
    errs, res = codes('''
network net = segresnet(dims: 3, in_channels: 3, out_channels: 4)
train fit = supervised(net, mr) { epochs: 1, patch: [32, 32, 16] }
segment necrosis = predict_mask(fit, mr) { label: 2 }
validate s = segmentation_metrics(fit, test_mr)
cohort test_mr = manifest("t.csv") { image: [t1, t2, flair], mask: habitats }
''')
    assert errs == [], errs
    assert res.study.stage("necrosis").type.classes == 2


def test_gradcam_on_a_tabular_model_is_a_type_error():
    errs, _ = codes('''
network net = unet(dims: 3, in_channels: 1, out_channels: 2)
train fit = supervised(net, ct3d) { epochs: 1 }
explain cam = gradcam(fit, test)
''')
    assert [c for c, _ in errs] == ["E209"] and "classification" in errs[0][1]
    res = compile_source('''
cohort t = manifest("m.csv") { image: ct, mask: seg, outcome: y as binary }
features rad = pyradiomics(t.image, t.mask)
model clf = logistic(rad, target: t.outcome)
explain cam = gradcam(clf, t)
''', "spec.rad")
    e = [d for d in res.diagnostics if d.is_error]
    assert [d.code for d in e] == ["E209"] and "tabular" in e[0].message


def test_network_settings_are_validated():
    errs, _ = codes('''
network net = unet(dims: 3, in_channels: 1, out_channels: 2) { channels: [8, 16, 32], strides: [2, 2], kernel_size: 4 }
train fit = supervised(net, ct3d) { epochs: 0, loss: dise }
validate s = segmentation_metrics(fit, test)
''')
    got = sorted(c for c, _ in errs)
    assert got == ["E302", "E304", "E304"], errs
    assert any("odd" in m for _, m in errs) and any("dice" in m for _, m in errs)
    errs, _ = codes('''
network net = unet(dims: 3, in_channels: 1, out_channels: 2) { channels: [8, 16, 32], strides: [2] }
train fit = supervised(net, ct3d) { epochs: 1 }
validate s = segmentation_metrics(fit, test)
''')
    assert [c for c, _ in errs] == ["E306"] and "one entry fewer" in errs[0][1]


def test_scoring_on_the_training_cohort_is_a_design_error():
    errs, _ = codes('''
network net = unet(dims: 3, in_channels: 1, out_channels: 2)
train fit = supervised(net, ct3d) { epochs: 1 }
validate s = segmentation_metrics(fit, ct3d)
''')
    assert [c for c, _ in errs] == ["E503"]


def test_check_does_not_import_torch(tmp_path):
    spec = tmp_path / "s.rad"
    spec.write_text(COHORTS + '''
network net = unet(dims: 3, in_channels: 1, out_channels: 2)
train fit = supervised(net, ct3d) { epochs: 1 }
validate s = segmentation_metrics(fit, test)
''')
    # the manifests it names, so that check's data checks run too (they never open an image: empty files do)
    for name in ("m.csv", "t.csv"):
        (tmp_path / name).write_text("case_id,ct,seg,malignant\n" + "".join(f"c{i},c{i}.nii.gz,s{i}.nii.gz,{i % 2}\n" for i in range(4)))
    for i in range(4):
        (tmp_path / f"c{i}.nii.gz").touch()
        (tmp_path / f"s{i}.nii.gz").touch()
    code = ("import sys; from radlang.cli import main; rc = main(['check', sys.argv[1]]); "
            "bad = [m for m in ('torch', 'monai', 'SimpleITK', 'radiomics', 'sklearn') if m in sys.modules]; "
            "print(rc, bad)")
    out = subprocess.run([sys.executable, "-c", code, str(spec)], check=False, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "0 []", out.stdout + out.stderr


def test_plan_states_parameters_receptive_field_memory_and_gradcam_resolution():
    from radlang.backends.plan import plan_json

    res = compile_source(COHORTS + '''
network seg3d = unet(dims: 3, in_channels: 1, out_channels: 2) { channels: [8, 16, 32], strides: [2, 2], num_res_units: 0 }
train fit3d = supervised(seg3d, ct3d) { epochs: 1, batch: 2, patch: [32, 32, 32] }
validate s3 = segmentation_metrics(fit3d, test)
network seg2d = unet(dims: 2, in_channels: 1, out_channels: 2) { channels: [8, 16, 32], strides: [2, 2], num_res_units: 0 }
train fit2d = supervised(seg2d, ct3d) { epochs: 1, batch: 8, patch: [64, 64], slices: true }
validate s2 = segmentation_metrics(fit2d, test)
network cnn = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10 }
train cls = supervised(cnn, ct3d) { loss: cross_entropy, epochs: 1, batch: 2, patch: [32, 32, 32] }
explain cam = gradcam(cls, test) { layer: "layer4" }
''', "spec.rad")
    assert res.ok, res.diagnostics

    def notes(memory):
        pj = plan_json(res.study, memory=memory)
        return {s["name"]: [(n["severity"], n["text"]) for n in s["notes"]] for s in pj["stages"]}

    big = notes("8GB")
    assert any("parameters" in t for _, t in big["seg3d"]) and any("receptive field" in t and "15 x 15 x 15" in t for _, t in big["seg3d"])
    assert any("15 x 15 voxels" in t for _, t in big["seg2d"])
    for fit in ("fit3d", "fit2d"):
        assert any("training memory" in t for _, t in big[fit]) and not any(sev == "warning" for sev, _ in big[fit])
    small = notes("1MB")
    assert any(sev == "warning" and "exceeds the memory budget" in t for sev, t in small["fit3d"])
    assert any(sev == "warning" and "exceeds the memory budget" in t for sev, t in small["fit2d"])
    # ResNet10 3D on 32^3: layer4 has total stride 16 (max-pool, layers 2-4), so 2x2x2 cells of 16^3 voxels;
    # the same shape as a real forward pass on CPU shows
    import torch

    from radlang.ops.networks import build_network

    net = build_network({"arch": "resnet", "params": res.study.stage("cnn").params}).eval()
    seen = {}
    net.layer4.register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape[2:])))
    with torch.no_grad():
        net(torch.zeros(1, 1, 32, 32, 32))
    assert seen["shape"] == (2, 2, 2)
    cam = " ".join(t for _, t in big["cam"])
    assert "2x2x2 cells" in cam and "16x16x16 voxels" in cam
