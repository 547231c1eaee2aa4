"""`network` operators: MONAI's own network classes, their main settings validated before anything runs.

    network net = unet(dims: 3, in_channels: 1, out_channels: 2) { channels: [16, 32, 64], strides: [2, 2] }
    network seg = segresnet(dims: 3, in_channels: 4, out_channels: 4) { init_filters: 8 }
    network att = attention_unet(dims: 2, in_channels: 1, out_channels: 3)
    network cnn = densenet121(dims: 3, in_channels: 1, out_channels: 2)
    network res = resnet(dims: 3, depth: 18, in_channels: 1, out_channels: 2)

A network stage is a description; it is trained by `train fit = supervised(net, cohort) {...}`
(radlang/ops/supervised.py). `radlang plan` shows, for each network, the parameter count and the
receptive field; a `train` stage adds the training memory for its patch and batch.

A network's stage value (`run_network`) is the recipe the training stage builds with the operator's `impl`,
with its head (segmentation or classification), its total downsampling and its default Grad-CAM layer; the
training, inference and Grad-CAM stages read these from it and build the network with its operator's `impl`.
Adding a network is a settings model, a branch of `network_call`, its entry in SEGMENTATION_NETS or
CLASSIFICATION_NETS, LABELS (and CAM_LAYERS), `downsampling` and `receptive_field` branches when it downsamples, and a
`_register` line: all in this module.

Self-contained functions (see radlang/registry.py): `build_network` builds the MONAI module (`network_call`: which constructor, with what arguments) from the
plain spec {"arch": ..., "params": ...}; `receptive_field` follows kernel sizes and strides exactly
(interval propagation along every path, skip connections included); `network_estimates` runs the
network on PyTorch's `meta` device (shapes only: no data, no arithmetic) to count parameters and the
tensors autograd keeps for the backward pass.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from radlang.registry import Operator, register
from radlang.types import RType
from radlang.values import Settings, contradiction, out_of_range

SEGMENTATION_NETS = ("unet", "segresnet", "attention_unet")
CLASSIFICATION_NETS = ("densenet121", "resnet")
CAM_LAYERS = {"densenet121": "class_layers.relu", "resnet": "layer4"}   # Grad-CAM's default target layer

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def build_network(spec):
    """The MONAI network (a torch.nn.Module) for a plain network spec {"arch": name, "params": settings}."""
    from monai.networks import nets

    name, kwargs = network_call(spec)
    return getattr(nets, name)(**kwargs)


def network_call(spec):
    """(the `monai.networks.nets` constructor, its keyword arguments) for a plain network spec: `build_network` calls it,
    and `radlang render` writes it into the stage's function."""
    a, p = spec["arch"], spec["params"]
    io = {"spatial_dims": int(p["dims"]), "in_channels": int(p["in_channels"]), "out_channels": int(p["out_channels"])}
    if a == "unet":
        return "UNet", {**io, "channels": tuple(p["channels"]), "strides": tuple(p["strides"]), "kernel_size": int(p["kernel_size"]),
                        "up_kernel_size": int(p["up_kernel_size"]), "num_res_units": int(p["num_res_units"]), "act": p["act"],
                        "norm": None if p["norm"] == "none" else p["norm"], "dropout": float(p["dropout"])}
    if a == "attention_unet":
        return "AttentionUnet", {**io, "channels": tuple(p["channels"]), "strides": tuple(p["strides"]),
                                 "kernel_size": int(p["kernel_size"]), "up_kernel_size": int(p["up_kernel_size"]),
                                 "dropout": float(p["dropout"])}
    if a == "segresnet":
        norm = ("GROUP", {"num_groups": int(p["groups"])}) if p["norm"] == "group" else p["norm"]
        return "SegResNet", {**io, "init_filters": int(p["init_filters"]), "blocks_down": tuple(p["blocks_down"]),
                             "blocks_up": tuple(p["blocks_up"]), "norm": norm, "dropout_prob": float(p["dropout"]) or None,
                             "upsample_mode": p["upsample"]}
    if a == "densenet121":
        return "DenseNet121", {**io, "dropout_prob": float(p["dropout"])}
    if a == "resnet":
        return f"resnet{int(p['depth'])}", {"spatial_dims": io["spatial_dims"], "n_input_channels": io["in_channels"],
                                            "num_classes": io["out_channels"], "widen_factor": float(p.get("widen_factor", 1.0))}
    raise ValueError(f"unknown network {a!r}")


def network_code(arch, params, seed):
    """The MONAI constructor call a network stage's settings make (`network_call`), as Python."""
    name, kwargs = network_call({"arch": arch, "params": params})
    return [f"monai.networks.nets.{name}(", *(f"    {k}={v!r}," for k, v in kwargs.items()), ")"]


def receptive_field(spec):
    """The receptive field, in voxels per axis, of the central output voxel of a segmentation network,
    from its kernel sizes and strides (exact interval propagation through every conv, transposed conv,
    upsampling and skip connection; padding as MONAI pads). None for classification networks, whose
    global pooling sees the whole input."""
    import math

    a, p = spec["arch"], spec["params"]

    def conv(iv, k, s, pad=None):
        pad = (k - 1) // 2 if pad is None else pad
        return (iv[0] * s - pad, iv[1] * s - pad + k - 1)

    def tconv(iv, k, s, pad=None):
        pad = (k - 1) // 2 if pad is None else pad
        return (math.ceil((iv[0] + pad - k + 1) / s), (iv[1] + pad) // s)

    def linear_up(iv):   # nontrainable linear upsampling by 2 (align_corners=False)
        return (math.floor((iv[0] + 0.5) / 2 - 0.5), math.ceil((iv[1] + 0.5) / 2 - 0.5))

    def union(x, y):
        return (min(x[0], y[0]), max(x[1], y[1]))

    if a == "unet":
        k, uk, nres, strides = int(p["kernel_size"]), int(p["up_kernel_size"]), int(p["num_res_units"]), list(p["strides"])

        def down(iv, s):
            for _ in range(max(nres, 1) - 1):
                iv = conv(iv, k, 1)
            return conv(iv, k, s)

        def block(iv, i):
            if nres > 0:
                iv = conv(iv, k, 1)
            iv = tconv(iv, uk, strides[i])
            sub = block(iv, i + 1) if i + 1 < len(strides) else down(iv, 1)
            return down(union(iv, sub), strides[i])

        rf = block((0, 0), 0)
    elif a == "attention_unet":
        k, uk, strides = int(p["kernel_size"]), int(p["up_kernel_size"]), list(p["strides"])

        def convblock(iv, s):
            return conv(conv(iv, k, 1), k, s)

        def layer(iv, i):
            iv = conv(iv, 3, 1)                       # merge
            low = tconv(iv, uk, strides[i])           # upconv of the submodule's output
            if i + 1 < len(strides):
                low = layer(low, i + 1)
            return union(iv, convblock(low, strides[i]))

        rf = convblock(layer((0, 0), 0), 1)           # head, then the attention layers (final 1x1 conv adds nothing)
    elif a == "segresnet":
        down_blocks, up_blocks = list(p["blocks_down"]), list(p["blocks_up"])
        nontrain = p["upsample"] != "deconv"

        def res(iv, n):
            for _ in range(n):
                iv = conv(conv(iv, 3, 1), 3, 1)
            return iv

        n_levels = len(down_blocks)
        level_iv = {}
        cur = (0, 0)
        for j in reversed(range(len(up_blocks))):    # the last up stage is nearest the output
            cur = res(cur, up_blocks[j])
            lvl = n_levels - 2 - j
            level_iv[lvl] = union(level_iv.get(lvl, cur), cur)   # skip: x + encoder output at lvl
            cur = linear_up(cur) if nontrain else tconv(cur, 2, 2, 0)   # back through upsampling
            # 1x1 conv before upsampling adds nothing
        level_iv[n_levels - 1] = union(level_iv.get(n_levels - 1, cur), cur)
        # encoder, backwards from the deepest level
        need = None
        for lvl in reversed(range(n_levels)):
            iv = level_iv[lvl] if need is None else union(level_iv[lvl], need)
            iv = res(iv, down_blocks[lvl])
            if lvl > 0:
                iv = conv(iv, 3, 2)                  # strided downsampling conv
            need = iv
        rf = conv(need, 3, 1)                        # the initial conv
    else:
        return None
    size = rf[1] - rf[0] + 1
    return [size] * int(p["dims"])


def network_estimates(spec, patch, batch, optimizer="adam"):
    """Compile-time estimates for training `spec` on patches of `patch` voxels, `batch` at a time, in float32
    (see `training_memory`), with the output shape."""
    import torch

    cin = int(spec["params"]["in_channels"])
    with torch.device("meta"):
        net = build_network(spec)
    return training_memory(net, (torch.empty((int(batch), cin) + tuple(int(v) for v in patch), device="meta"),), optimizer)


def training_memory(net, inputs, optimizer="adam"):
    """Parameter count, the bytes of tensors autograd saves for the backward pass (measured by running `net(*inputs)`
    on PyTorch's `meta` device: shapes only, no data; `net` and `inputs` live there), the output shape, and the
    training memory of one step in float32:

        memory = 2 x saved activations      (saved tensors + their gradients while the backward pass runs)
               + params x (weights, grads, optimizer state: Adam 2, SGD 1)
               + input and target batch

    The factor 2 is the peak of the backward pass, where each layer's output gradient is alive next to
    the activations not yet released (checked against measured peak memory in tests/deep)."""
    import torch

    seen = {}

    def pack(t):
        base = t._base if t._base is not None else t
        if base.requires_grad and base.is_leaf:     # parameters are counted separately
            return t
        seen.setdefault(id(base), base.numel() * base.element_size())
        return t

    net.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = net(*inputs)
    n_params = sum(int(q.numel()) for q in net.parameters())
    saved = int(sum(seen.values()))
    states = {"adam": 2, "adamw": 2, "sgd": 1}.get(optimizer, 2)
    io = sum(int(x.numel()) * 4 for x in inputs if x is not None) + int(y.numel()) * 4
    total = 2 * saved + n_params * 4 * (2 + states) + io
    return {"params": n_params, "saved_bytes": saved, "train_bytes": int(total), "output_shape": list(y.shape)}


def layer_resolution(spec, patch, layer):
    """The spatial shape of a named layer's output for an input patch (on the meta device; the forward
    pass stops at that layer)."""
    import torch

    class _Reached(Exception):
        pass

    def hook(m, i, o):
        shape["s"] = list(o.shape[2:])
        raise _Reached

    with torch.device("meta"):
        net = build_network(spec)
        mod = dict(net.named_modules()).get(layer)
        if mod is None:
            return None
        shape = {}
        h = mod.register_forward_hook(hook)
        net.eval()
        try:
            net(torch.empty((1, int(spec["params"]["in_channels"])) + tuple(int(v) for v in patch)))
        except _Reached:
            pass
        finally:
            h.remove()
    return shape.get("s")


# ----------------------------------------------------------------------------------------------
# settings


class NetSettings(Settings):
    dims: Literal[2, 3] = Field(3, description="spatial dimensions of the network: 2 (slices) or 3 (volumes)")
    in_channels: int = Field(1, ge=1, le=64, description="input channels: one per co-registered image column")
    out_channels: int = Field(2, ge=1, le=256, description="segmentation: classes including background; classification: classes")


def _odd(v):
    if v % 2 != 1:
        raise ValueError("kernel sizes must be odd (MONAI pads them symmetrically)")
    return v


class _LevelSettings(NetSettings):
    """Settings shared by the encoder-decoder networks (UNet, AttentionUnet): one entry per level."""

    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 128], min_length=2, max_length=8,
                                description="feature channels per level, top to bottom")
    strides: list[int] = Field(default_factory=lambda: [2, 2, 2], min_length=1, max_length=7,
                               description="downsampling stride between levels (one fewer than channels)")
    kernel_size: int = Field(3, ge=1, le=7, description="convolution kernel size")
    up_kernel_size: int = Field(3, ge=1, le=7, description="transposed-convolution kernel size")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout probability")

    _k = field_validator("kernel_size", "up_kernel_size")(lambda cls, v: _odd(v))

    @field_validator("channels")
    @classmethod
    def _chan(cls, v):
        if any(c < 1 for c in v):
            raise out_of_range("channels must be ≥ 1")
        return v

    @field_validator("strides")
    @classmethod
    def _str(cls, v):
        if any(s < 1 or s > 4 for s in v):
            raise out_of_range("strides must be between 1 and 4")
        return v

    @model_validator(mode="after")
    def _levels(self):
        if len(self.strides) != len(self.channels) - 1:
            raise contradiction(f"`strides` needs one entry fewer than `channels`: {len(self.channels)} channels, "
                             f"so {len(self.channels) - 1} strides (got {len(self.strides)})")
        return self


class UNetSettings(_LevelSettings):
    num_res_units: int = Field(2, ge=0, le=4, description="residual units per level (0 = plain convolutions)")
    norm: Literal["instance", "batch", "none"] = Field("instance", description="normalisation layer")
    act: Literal["prelu", "relu", "leakyrelu"] = Field("prelu", description="activation")


class AttentionUNetSettings(_LevelSettings):
    pass


class SegResNetSettings(NetSettings):
    init_filters: int = Field(8, ge=1, le=128, description="filters of the first level (doubled per level)")
    blocks_down: list[int] = Field(default_factory=lambda: [1, 2, 2, 4], min_length=1, max_length=6,
                                   description="residual blocks per encoder level")
    blocks_up: list[int] = Field(default_factory=lambda: [1, 1, 1], min_length=0, max_length=5,
                                 description="residual blocks per decoder level (one fewer than blocks_down)")
    norm: Literal["group", "instance", "batch"] = Field("group", description="normalisation layer")
    groups: int = Field(8, ge=1, description="groups of group normalisation")
    upsample: Literal["deconv", "nontrainable"] = Field("nontrainable", description="decoder upsampling")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout probability")

    @model_validator(mode="after")
    def _check(self):
        if len(self.blocks_up) != len(self.blocks_down) - 1:
            raise contradiction(f"`blocks_up` needs one entry fewer than `blocks_down` ({len(self.blocks_down) - 1}, got {len(self.blocks_up)})")
        if self.norm == "group" and self.init_filters % self.groups:
            raise contradiction(f"group normalisation: `init_filters` ({self.init_filters}) must be a multiple of `groups` ({self.groups})")
        return self


class DenseNetSettings(NetSettings):
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout probability")


class ResNetSettings(NetSettings):
    depth: Literal[10, 18, 34, 50] = Field(18, description="ResNet depth")
    widen_factor: float = Field(1.0, gt=0, le=4, description="scales every layer's channels (64, 128, 256, 512 at 1.0)")


# ----------------------------------------------------------------------------------------------
# compile time: types and plan


def _head(name):
    return "segmentation" if name in SEGMENTATION_NETS else "classification"


LABELS = {"unet": "UNet", "segresnet": "SegResNet", "attention_unet": "AttentionUnet", "densenet121": "DenseNet121", "resnet": "ResNet"}


def _net_type(ctx) -> RType:
    s, name = ctx.settings, ctx.stmt.op.name
    if _head(name) == "classification" and s.out_channels < 2:
        ctx.error("E302", "a classification network needs `out_channels` ≥ 2 (one per class)", setting="out_channels")
    if _head(name) == "segmentation" and s.out_channels < 2:
        ctx.error("E302", "a segmentation network needs `out_channels` ≥ 2 (background and at least one class)",
                  setting="out_channels", hint="use 2 for a binary mask, or 1 + the number of habitats")
    label = LABELS[name] + (f"{s.depth}" if name == "resnet" else "")
    return RType("Network", dims=s.dims, channels=s.in_channels, head=_head(name), classes=s.out_channels,
                 divisor=backbone_downsampling({"arch": name, "params": s.model_dump()}), detail=f"{s.dims}D {label}")


def spec_of(stage) -> dict:
    return {"arch": stage.op, "params": stage.params}


def downsampling(spec) -> int:
    """The network's total downsampling: a segmentation network's input sides must be multiples of it."""
    p = spec["params"]
    if spec["arch"] in ("unet", "attention_unet"):
        k = 1
        for s in p["strides"]:
            k *= int(s)
        return k
    if spec["arch"] == "segresnet":
        return 2 ** (len(p["blocks_down"]) - 1)
    return 1


def backbone_downsampling(spec) -> int:
    """The smallest patch side of the network's image backbone (its deepest feature map), for a network model's patch:
    its total downsampling: DenseNet121 32 (stride-2 stem, max pooling, three transitions), ResNet 16 (max pooling,
    three stride-2 layers), SegResNet and UNet as `downsampling`; twice that for a UNet with instance normalisation,
    whose deepest map must hold more than one voxel to be normalised (MONAI's InstanceNorm refuses one)."""
    if spec["arch"] in ("unet", "attention_unet") and spec["params"].get("norm") == "instance":
        return 2 * downsampling(spec)
    return {"densenet121": 32, "resnet": 16}.get(spec["arch"]) or downsampling(spec)


def cam_layer(arch) -> str | None:
    """Grad-CAM's default target layer of a classification network (None: the `gradcam` stage names one)."""
    return CAM_LAYERS.get(arch)


def run_network(stage, ctx):
    """A network stage trains nothing: its value is the recipe a training stage builds (with the operator's `impl`),
    its head, its total downsampling and its default Grad-CAM layer."""
    spec = spec_of(stage)
    return {**spec, "head": _head(stage.op), "divisor": downsampling(spec), "cam_layer": cam_layer(stage.op)}


def _human(n):
    for u in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or u == "TB":
            return f"{n:.1f} {u}" if u != "B" else f"{n} B"
        n /= 1024


def _net_plan(stage, memory):
    spec = spec_of(stage)
    lines = []
    try:
        import torch  # noqa: F401
    except ImportError:
        return [("info", "install torch and monai for parameter counts")]
    dims = int(stage.params["dims"])
    est = network_estimates(spec, [64] * dims, 1)
    lines.append(("info", f"{est['params']:,} parameters ({_human(est['params'] * 4)} float32)"))
    rf = receptive_field(spec)
    if rf is None:
        lines.append(("info", "receptive field: the whole input (global pooling)"))
    else:
        extra = " (normalisation over the whole patch adds global context)" if stage.params.get("norm") in ("instance", "group") else ""
        lines.append(("info", "receptive field of the convolutions: " + " x ".join(map(str, rf)) + " voxels" + extra))
    return lines


def _register(name, settings, doc, example):
    register(Operator(
        name=name, kind="network", output="Network", settings=settings, behaviour="stateless", run=run_network, infer=_net_type,
        impl=build_network, helpers=(network_call,), plan=_net_plan, doc=doc, examples=(example,),
        library_code=lambda params, seed: network_code(name, params, seed),
    ))


_register("unet", UNetSettings, "MONAI UNet (residual units optional), 2D or 3D, for segmentation.",
          "network net = unet(dims: 3, in_channels: 1, out_channels: 2) { channels: [16, 32, 64], strides: [2, 2] }")
_register("attention_unet", AttentionUNetSettings, "MONAI AttentionUnet (attention-gated skip connections), 2D or 3D, for segmentation.",
          "network net = attention_unet(dims: 2, in_channels: 1, out_channels: 2) { channels: [16, 32, 64], strides: [2, 2] }")
_register("segresnet", SegResNetSettings, "MONAI SegResNet (residual encoder-decoder, as in BraTS), 2D or 3D, for segmentation.",
          "network net = segresnet(dims: 3, in_channels: 4, out_channels: 4) { init_filters: 8 }")
_register("densenet121", DenseNetSettings, "MONAI DenseNet121, 2D or 3D, for image classification (Grad-CAM capable).",
          "network cnn = densenet121(dims: 3, in_channels: 1, out_channels: 2)")
_register("resnet", ResNetSettings, "MONAI ResNet (depth 10, 18, 34 or 50), 2D or 3D, for image classification (Grad-CAM capable).",
          "network cnn = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 18 }")
