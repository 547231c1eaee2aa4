"""`supervised`: training a MONAI network on a cohort (a fitted operator: fit on its training cohort; the
trained model is applied to any cohort by `predict_mask`, `segmentation_metrics` and `gradcam`).

    train fit = supervised(net, train) {
      loss: dice_ce                     # dice | dice_ce | focal | cross_entropy
      optimizer: adam, lr: 1e-3, schedule: cosine
      epochs: 40, batch: 2, patch: [32, 32, 32]       # patch in image axis order (x, y, z)
      sampling: pos_neg(pos: 1, neg: 1), samples: 2   # crops centred on / off the mask
      validate_every: 5, validation: 0.2              # keep the best checkpoint (validation Dice)
    }

The network's head (segmentation or classification) comes from the network stage. Training is deterministic
on CPU (seeded from the stage seed); it uses CUDA when `device: auto` finds it and never needs it. Checkpoints
are weights only (state_dict), loaded with `torch.load(weights_only=True)`. Intensities are z-scored per image
and channel (no statistic crosses cases, so nothing leaks).

The first section is self-contained (see radlang/registry.py); `run_supervised` is the run-time glue (the
stage cache: a trained network is reused on re-run, a progress bar, the checkpoint and the training report).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from radlang.ops.netio import (
    classification_crop,
    divisible_pad,
    grid_mismatch,
    load_case,
    load_weights,
    metrics_json,
    normalize_image,
    optimizer_call,
    predict_volume,
    save_weights,
    scheduler_code,
    scheduler_lambda,
    train_step,
)
from radlang.ops.networks import downsampling, network_call
from radlang.ops.segmentation_metrics import seg_scores
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Variant, out_of_range, variants

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def training_loss_code(name, head):
    """The MONAI / torch loss of a training stage (`loss`: dice, dice_ce, focal, cross_entropy) for a network head, as
    Python naming `torch` and `monai`: a classification head's target is [N, 1] class ids, a segmentation head's
    [N, 1, *patch] labels."""
    if head == "classification":
        if name == "focal":
            return "(lambda f: lambda logits, y: f(logits, y.view(-1, 1)))(monai.losses.FocalLoss(to_onehot_y=True, use_softmax=True))"
        return "(lambda ce: lambda logits, y: ce(logits, y.view(-1).long()))(torch.nn.CrossEntropyLoss())"
    if name == "dice":
        return "monai.losses.DiceLoss(to_onehot_y=True, softmax=True)"
    if name == "dice_ce":
        return "monai.losses.DiceCELoss(to_onehot_y=True, softmax=True)"
    if name == "focal":
        return "monai.losses.FocalLoss(to_onehot_y=True, use_softmax=True)"
    return "(lambda ce: lambda logits, y: ce(logits, y[:, 0].long()))(torch.nn.CrossEntropyLoss())"


def training_parts_source(fn_name, spec, params, head, doc=""):
    """`def <fn_name>():` returning what a training stage trains with, as code: `network`, () -> the MONAI network
    (network_call of the network stage's spec), `loss` (training_loss_code), `optimizer`, parameters -> the torch
    optimiser (optimizer_call), and `scheduler`, optimiser -> its per-epoch learning-rate schedule or None
    (scheduler_lambda). `radlang render` writes this source into study.py; `radlang run` runs the same text
    (training_parts_from_source)."""
    name, kwargs = network_call(spec)
    opt, okw = optimizer_call(params)
    parts = {"network": f"lambda: monai.networks.nets.{name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")",
             "loss": training_loss_code(params["loss"], head),
             "optimizer": f"lambda parameters: torch.optim.{opt}(parameters, " + ", ".join(f"{k}={v!r}" for k, v in okw.items()) + ")",
             "scheduler": scheduler_lambda(params["schedule"], params["epochs"])}
    lines = [f"def {fn_name}():"]
    if doc:
        lines.append(f'    """{doc}"""')
    lines += ["    import monai.losses", "    import monai.networks.nets", "    import torch", "", "    return {"]
    for k, v in parts.items():
        line = f"        {k!r}: {v},"
        if len(line) > 124 and k == "network":   # the constructor's keywords one a line
            line = "\n".join([f"        {k!r}: lambda: monai.networks.nets.{name}(", *(f"            {a}={b!r}," for a, b in kwargs.items()),
                              "        ),"])
        lines.append(line)
    return "\n".join([*lines, "    }", ""])


def training_parts_from_source(source, fn_name):
    """Define the training parts' function from its source (`training_parts_source`) and call it: {name: object}."""
    scope = {}
    exec(source, scope)  # noqa: S102 -- training_parts_source's code: settings as repr() literals
    return scope[fn_name]()


def sample_patches(image, label, params, seed):
    """Training crops of one case: `pos_neg` centres crops on mask voxels with probability pos/(pos+neg)
    (MONAI RandCropByPosNegLabel), `uniform` anywhere. With `slices`, crops are one slice thick (2D).
    `patch` is in image axis order (x, y, z); arrays are (z, y, x). Returns [(image, label), ...]."""
    import numpy as np
    from monai.transforms import RandCropByPosNegLabel, RandSpatialCropSamples, SpatialPad

    spatial = image.shape[1:]
    if params.get("patch"):
        roi = list(reversed([int(v) for v in params["patch"]]))
    else:
        roi = list(spatial[-2:]) if params["slices"] else list(spatial)
    if params["slices"]:
        roi = [1] + roi[-2:]
    n = int(params["samples"])
    pad = SpatialPad(roi)
    both = pad(np.concatenate([image, label.astype(np.float32)], 0))
    img, lab = both[: image.shape[0]], both[image.shape[0]:]
    s = params["sampling"]
    if s["kind"] == "pos_neg" and lab.max() > 0:
        crop = RandCropByPosNegLabel(spatial_size=roi, pos=float(s["pos"]), neg=float(s["neg"]), num_samples=n)
        crop.set_random_state(seed=int(seed))
        pairs = crop(np.concatenate([img, lab], 0), label=lab)
    else:
        crop = RandSpatialCropSamples(roi_size=roi, num_samples=n, random_size=False)
        crop.set_random_state(seed=int(seed))
        pairs = crop(np.concatenate([img, lab], 0))
    out = []
    c = image.shape[0]
    for p in pairs:
        p = np.asarray(p)
        im, lb = p[:c], p[c:].round().astype(np.int64)
        if params["slices"]:
            im, lb = im[:, 0], lb[:, 0]
        out.append((im.astype(np.float32), lb))
    return out


def train_network(cases, parts, params, seed, head, progress=None):
    """Train a network, with the `parts` of training_parts_source (network, loss, optimizer, scheduler), on cases [{"case", "image" [C, z, y, x], "label" ([1, z, y, x] or class int), "val": bool}].

    Segmentation: each epoch visits the training cases in a seeded order and takes `samples` crops per case
    (`sampling`); classification: one fixed crop per case. Mini-batches of `batch` crops; `optimizer`, `lr`,
    `schedule` (per epoch). Every `validate_every` epochs (if any validation cases) the model is scored on the
    validation cases (segmentation: mean foreground Dice of sliding-window predictions; classification: loss),
    and the best checkpoint is kept. Returns {"state": bytes, "history": [...], "best_epoch": int, ...}."""
    import math

    import numpy as np
    import torch

    # one intra-op thread: float sums in another order (another core count) give other weights, so the same spec and
    # data give the same network on any machine, in `radlang run`, its workers and the rendered script alike
    torch.set_num_threads(1)
    torch.manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    want = params.get("device", "auto")
    device = "cuda" if want == "auto" and torch.cuda.is_available() else ("cuda" if want == "cuda" else "cpu")
    net = parts["network"]().to(device)
    loss_fn = parts["loss"]
    opt = parts["optimizer"](net.parameters())
    epochs = int(params["epochs"])
    scheduler = parts["scheduler"](opt)
    train = [c for c in cases if not c["val"]]
    val = [c for c in cases if c["val"]]
    k = int(params.get("_divisor", 1))
    history, best, best_state, best_epoch = [], None, None, epochs
    every = int(params["validate_every"])
    for epoch in range(1, epochs + 1):
        net.train()
        order = rng.permutation(len(train))
        items = []
        for i in order:
            c = train[i]
            if head == "classification":
                items.append((classification_crop(c["image"], c.get("mask"), params["patch"])[0], np.array([c["label"]], dtype=np.int64)))
            else:
                items.extend(sample_patches(c["image"], c["label"], params, int(rng.integers(2**31 - 1))))
        losses = []
        bs = int(params["batch"])
        for b in range(0, len(items), bs):
            chunk = items[b:b + bs]
            xs, ys = [x for x, _ in chunk], [y for _, y in chunk]
            if head != "classification" and not params.get("patch"):
                xs, ys = divisible_pad(xs, k), divisible_pad(ys, k)
            x = torch.from_numpy(np.stack(xs)).to(device)
            y = torch.from_numpy(np.stack(ys)).to(device)
            losses.append(train_step(net, (x,), y, loss_fn, opt))
        if scheduler is not None:
            scheduler.step()
        rec = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else math.nan, "lr": float(opt.param_groups[0]["lr"])}
        if every and val and (epoch % every == 0 or epoch == epochs):
            if head == "classification":
                net.eval()
                with torch.no_grad():
                    xs = np.stack([classification_crop(c["image"], c.get("mask"), params["patch"])[0] for c in val])
                    ys = np.array([[c["label"]] for c in val], dtype=np.int64)
                    score = -float(loss_fn(net(torch.from_numpy(xs).to(device)), torch.from_numpy(ys).to(device)))
                rec["val_loss"] = -score
            else:
                dices = []
                for c in val:
                    prob = predict_volume(net, c["image"], params, head, device)
                    rows = seg_scores(prob.argmax(0), c["label"][0], prob.shape[0], c["geometry"]["spacing"])
                    dices.append(np.mean([r["dice"] for r in rows]))
                score = float(np.mean(dices))
                rec["val_dice"] = score
            if best is None or score > best:
                best, best_epoch = score, epoch
                best_state = save_weights(net.state_dict())
            rec["best_epoch"] = best_epoch
        history.append(rec)
        if progress is not None:
            progress(epoch, epochs, rec)
    state = best_state if best_state is not None else save_weights(net.state_dict())
    return {"state": state, "history": history, "best_epoch": best_epoch if best_state is not None else epochs,
            "device": device, "train_cases": [c["case"] for c in train], "val_cases": [c["case"] for c in val]}


def split_validation(patients, fraction, seed):
    """Patients held out for validation: a seeded fraction (at least one when fraction > 0 and there are ≥ 2)."""
    import numpy as np

    uniq = sorted(set(patients))
    if fraction <= 0 or len(uniq) < 2:
        return set()
    n = min(len(uniq) - 1, max(1, round(fraction * len(uniq))))
    rng = np.random.default_rng(int(seed) + 1)
    return set(np.array(uniq)[rng.permutation(len(uniq))[:n]].tolist())


# ----------------------------------------------------------------------------------------------
# settings


class PosNeg(Variant):
    call_name = "pos_neg"
    positional = ("pos", "neg")
    pos: float = Field(1.0, ge=0, description="weight of crops centred on a mask voxel")
    neg: float = Field(1.0, ge=0, description="weight of crops centred on a background voxel")


class Uniform(Variant):
    call_name = "uniform"


class SupervisedSettings(Settings):
    loss: Literal["dice", "dice_ce", "focal", "cross_entropy"] = Field("dice_ce", description="training loss")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="optimiser")
    lr: float = Field(1e-3, gt=0, le=10, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="weight decay")
    schedule: Literal["constant", "cosine", "poly", "step"] = Field("constant", description="learning-rate schedule (per epoch)")
    epochs: int = Field(50, ge=1, le=100000, description="epochs")
    batch: int = Field(2, ge=1, le=4096, description="crops per optimisation step")
    patch: list[int] | None = Field(None, description="crop size in voxels, image axis order (x, y, z); default: the whole image")
    sampling: Annotated[PosNeg | Uniform, variants(PosNeg, Uniform)] = Field(
        default_factory=PosNeg, description="`pos_neg(pos, neg)`: crops around the mask; `uniform`: anywhere")
    samples: int = Field(1, ge=1, le=256, description="crops per case per epoch")
    slices: bool = Field(False, description="train a 2D network slice by slice on 3D volumes")
    normalize: Literal["zscore", "none"] = Field("zscore", description="per-image, per-channel intensity normalisation")
    validate_every: int = Field(0, ge=0, description="score the validation cases every N epochs and keep the best checkpoint (0 = never)")
    validation: float = Field(0.2, ge=0, lt=1, description="fraction of training patients held out for validation")
    overlap: float = Field(0.25, ge=0, lt=1, description="sliding-window overlap at inference")
    sw_batch: int = Field(4, ge=1, description="windows per sliding-window batch")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU")

    @field_validator("patch")
    @classmethod
    def _patch(cls, v):
        if v is not None and (not 2 <= len(v) <= 3 or any(x < 4 for x in v)):
            raise out_of_range("`patch` lists 2 or 3 sizes of at least 4 voxels")
        return v


def _train_type(ctx) -> RType:
    net, coh, s = ctx.inputs["net"], ctx.inputs["cohort"], ctx.settings
    data_dims = 2 if s.slices else coh.dims
    if s.slices and coh.dims != 3:
        ctx.error("E210", "`slices: true` trains slice by slice on 3D volumes, but the cohort's images are 2D", setting="slices")
    elif net.dims == 3 and coh.dims == 2:
        ctx.error("E210", f"a 3D network ({net.detail}) cannot train on 2D images of cohort `{coh.cohort}`",
                  port="net", hint="use `dims: 2` on the network")
    elif s.slices and net.dims == 3:
        ctx.error("E210", "`slices: true` feeds 2D slices, but the network is 3D", port="net", hint="use `dims: 2` on the network")
    elif net.dims == 2 and coh.dims == 3 and not s.slices:
        ctx.error("E210", "a 2D network on 3D volumes", port="net", hint="add `slices: true` to train slice by slice, or use `dims: 3`")
    if coh.channels and net.channels and coh.channels != net.channels:
        ctx.error("E211", f"the network takes {net.channels} input channel(s), but cohort `{coh.cohort}` has {coh.channels} image column(s)",
                  port="net", hint=f"set `in_channels: {coh.channels}` on the network, or list {net.channels} image column(s) in the cohort")
    if s.patch is not None and len(s.patch) != data_dims:
        ctx.error("E306", f"`patch` has {len(s.patch)} sizes, but the network sees {data_dims}D data", setting="patch")
    if net.head == "segmentation":
        if not coh.has_mask:
            ctx.error("E203", f"training a segmentation network needs masks, but cohort `{coh.cohort}` has no mask column",
                      port="cohort", hint="add `mask: <column>` to the cohort")
    else:
        if coh.outcome not in ("binary", "multiclass"):
            ctx.error("E212", f"a classification network needs a binary or multiclass outcome; cohort `{coh.cohort}` has "
                      + (f"a {coh.outcome} outcome" if coh.outcome else "no outcome"), port="cohort")
        if s.loss in ("dice", "dice_ce"):
            ctx.error("E306", f"`{s.loss}` is a segmentation loss; a classification network trains with `cross_entropy` or `focal`", setting="loss")
        if s.patch is None:
            ctx.error("E305", "a classification network needs a fixed input size: set `patch` (cases are cropped around the mask)",
                      setting="patch")
        if s.slices:
            ctx.error("E306", "`slices` applies to segmentation", setting="slices")
    return RType("TrainedModel", cohort=coh.cohort, outcome=coh.outcome if net.head == "classification" else None, dims=net.dims,
                 channels=net.channels, head=net.head, classes=net.classes, has_mask=coh.has_mask, detail=f"trained {net.detail}")


def _human(n):
    for u in ("B", "KB", "MB", "GB"):
        if n < 1024 or u == "GB":
            return f"{n:.0f} {u}" if u == "B" else f"{n:.1f} {u}"
        n /= 1024


def _train_plan(stage, memory, study=None):
    from radlang.ops.networks import network_estimates, receptive_field

    if study is None:
        return []
    net_stage = study.by_name().get(stage.inputs["net"].stage)
    if net_stage is None:
        return []
    spec = {"arch": net_stage.op, "params": net_stage.params}
    p = stage.params
    dims = int(spec["params"]["dims"])
    lines = []
    if not p.get("patch"):
        lines.append(("info", "no `patch`: trains on whole images; set `patch` for a memory estimate"))
        return lines
    patch = list(reversed([int(v) for v in p["patch"]]))[-dims:]
    k = downsampling(spec)
    if any(v % k for v in patch):
        lines.append(("warning", (f"patch {p['patch']} is not divisible by {k} (the network's total downsampling); "
                                 f"use multiples of {k}")))
        return lines
    try:
        est = network_estimates(spec, patch, int(p["batch"]), p["optimizer"])
    except ImportError:
        return [("info", "install torch and monai for memory estimates")]
    except RuntimeError as e:
        if "smaller than kernel size" not in str(e):
            raise
        lines.append(("warning", (f"patch {p['patch']} is too small for {spec['arch']}: its feature maps shrink below a "
                                 "kernel before the last layer, so training would fail; use a larger patch "
                                 "(DenseNet and ResNet downsample by 32)")))
        return lines
    rf = receptive_field(spec)
    shape = "x".join(str(v) for v in p["patch"])
    lines.append(("info", f"{dims}D {spec['arch']}: {est['params']:,} parameters; receptive field "
                  + ("global" if rf is None else "x".join(map(str, rf)) + " voxels") + f" vs patch {shape}"))
    lines.append(("info", (f"training memory ≈ {_human(est['train_bytes'])} for batch {p['batch']} x patch {shape} "
                          f"(activations kept for backward {_human(est['saved_bytes'])})")))
    if memory is not None and est["train_bytes"] > memory:
        lines.append(("warning", (f"the training estimate {_human(est['train_bytes'])} exceeds the memory budget {_human(memory)}: "
                                 "lower `batch` or `patch`, or narrow the network")))
    return lines


# ----------------------------------------------------------------------------------------------
# run time


def training_parts_code(stage, study) -> list[tuple[str, str, str]]:
    """[("parts", function name, source)]: what a training stage trains with (training_parts_source of its network
    stage's spec and its settings), from the study alone. `run_supervised` runs this source; `radlang render` writes it
    into study.py and the stage passes it to `run_supervised` as `parts`."""
    net = study.by_name()[stage.inputs["net"].stage]
    name = f"training_parts_{stage.name}"
    doc = f"What `{stage.name}` trains: its network, loss, optimiser and learning-rate schedule."
    return [("parts", name, training_parts_source(name, {"arch": net.op, "params": net.params}, stage.params, stage.type.head, doc))]


def run_supervised(stage, ctx, parts=None):
    """Train (or reuse the cached training of) the stage's network; write the checkpoint and the training report.
    parts: the function that builds what it trains with, as study.py defines it (`radlang render`, from
    `training_parts_code`); None: the same source, run here."""
    from radlang.backends.cache import atomic_write_bytes, atomic_write_text
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic
    from radlang.ops.netio import load_cases

    spec = ctx.results[stage.inputs["net"].stage]
    df = ctx.results[stage.inputs["cohort"].stage]
    head = spec["head"]
    params = dict(stage.params)
    params["_divisor"] = spec["divisor"]
    k = ctx.stage_key(stage)
    result = ctx.cache.get(k)
    if result is None:
        if params.get("patch"):
            dims = int(spec["params"]["dims"])
            bad = [v for v in params["patch"][:dims] if v % params["_divisor"]]
            if head == "segmentation" and bad:
                raise RunError([Diagnostic("E624", f"`{stage.name}`: patch {params['patch']} is not divisible by {params['_divisor']}, "
                                           "the network's total downsampling", stage.span, hint=f"use multiples of {params['_divisor']}")])
        cases = load_cases(stage, ctx, df, normalize=params.get("normalize", "zscore"), labels=head == "segmentation",
                           classes=int(spec["params"]["out_channels"]), outcome=head == "classification")
        held = split_validation([c["patient"] for c in cases], float(params["validation"]), stage.seed) if params["validate_every"] else set()
        for c in cases:
            c["val"] = c["patient"] in held
        with ctx.progress(int(params["epochs"]), stage.name) as bar:
            t = bar.add_task(f"train {stage.name}", total=int(params["epochs"]))

            def progress(epoch, total, rec):
                bits = f"loss {rec['loss']:.4f}" + (f" val dice {rec['val_dice']:.3f}" if "val_dice" in rec else "")
                bar.update(t, completed=epoch, description=f"train {stage.name} ({bits})")

            if parts is None:
                _, name, source = training_parts_code(stage, ctx.study)[0]
                built = training_parts_from_source(source, name)
            else:
                built = parts()
            result = train_network(cases, built, params, stage.seed, head, progress=progress)
        ctx.cache.put(k, result)
    ctx.keys[stage.name] = k
    model_path = ctx.out / "models" / f"{stage.name}.pt"
    atomic_write_bytes(model_path, result["state"])
    atomic_write_text(ctx.out / "metrics" / f"{stage.name}_training.json",
                      metrics_json({"stage": stage.name, "history": result["history"], "best_epoch": result["best_epoch"],
                                    "train_cases": result["train_cases"], "validation_cases": result["val_cases"],
                                    "checkpoint": f"models/{stage.name}.pt"}))   # relative to the out folder: the same bytes anywhere
    return {"spec": spec, "params": params, "state": result["state"], "history": result["history"], "head": head,
            "best_epoch": result["best_epoch"], "checkpoint": str(model_path)}


register(Operator(
    name="supervised", kind="train", output="TrainedModel", settings=SupervisedSettings, fit="outcome",
    behaviour="fitted", run=run_supervised,
    inputs=(Port("net", ("Network",), doc="a `network` stage"), Port("cohort", ("Cohort",), doc="the training cohort")),
    positional=("net", "cohort"), infer=_train_type, impl=train_network, plan=_train_plan, version="1", sink=True,
    helpers=(grid_mismatch, load_case, normalize_image, training_loss_code, training_parts_source, training_parts_from_source,
             sample_patches, classification_crop, divisible_pad, predict_volume, seg_scores, save_weights, load_weights,
             split_validation, metrics_json, network_call, optimizer_call, scheduler_code, scheduler_lambda, train_step),
    study_code=training_parts_code,
    doc=("Supervised training of a MONAI network on a cohort: segmentation (masks; pos/neg crops, 2D slice-wise or 3D) "
         "or classification (binary / multiclass outcome). Deterministic on CPU; best checkpoint by validation; weights only."),
    examples=("train fit = supervised(net, train) { loss: dice_ce, epochs: 40, batch: 2, patch: [32, 32, 32], validate_every: 5 }",),
))
