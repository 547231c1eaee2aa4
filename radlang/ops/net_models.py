"""`cnn`: a network as an outcome model, refit inside every training fold of `evaluate` like a scikit-learn model.

    network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10, widen_factor: 0.125 }
    features img = patches(train) { patch: [16, 16, 16] }
    model net = cnn(img, target: train.outcome, network: enc) { epochs: 20, batch: 8, lr: 1e-3 }

    features both = join(img, rad)                                          # intermediate fusion: image + radiomics
    model fused = cnn(both, target: train.outcome, network: enc) { hidden: 16 }

The input is a feature table whose `voxel:` columns are image patches (the `patches` operator, radlang/ops/image_patches.py)
and whose other columns, if any, are a tabular branch (radiomics, clinical values, joined by `join`). The network's
backbone (the `network` stage: DenseNet121's dense blocks, ResNet's residual layers, SegResNet's encoder, UNet's
contracting path) maps the image to a feature map; adaptive average pooling reduces it to one vector per case; the
tabular branch, imputed with and standardised by its training-fold means and SDs, is concatenated to it; an MLP head
(`hidden` units; 0 = linear) gives the outputs of the validation's outcome (`loss_code`), trained end to end:
- binary, multiclass: class logits, cross-entropy (`RadNetClassifier`: predict_proba);
- continuous: one value, the mean squared error of the target standardised by the fit's mean and SD (`RadNetRegressor`:
  predict in the target's units; evaluate's R², MAE, RMSE);
- survival: one log relative hazard, the negative Cox partial log-likelihood (Efron's ties, torchsurv) per event, with
  risk sets within each mini-batch (radlang/ops/survival_models.py's `cox_batch_loss`, shared with `multitask`'s
  survival heads); the survival function S(t|x) = exp(-exp(risk) H0(t)) takes Breslow's baseline H0 on the fit's cases
  at the kept weights, as `survival_mlp` does (`RadNetSurvival`: predict the risk, survival_at(X, times); evaluate's
  C-index, td-AUC, Brier, IBS and KM groups inside folds).

Inside each fit (a training fold, or every training case for the final model) a validation split of `validation` of
the patients (stratified, group-aware: a patient's cases stay together) is held out for early stopping: training
stops after `patience` epochs without a lower validation loss and the best epoch's weights are kept. Training is
deterministic on CPU: one intra-op thread and seeded, so two runs give bit-identical weights and metrics.

The fitted estimator keeps its weights as NumPy arrays (never a torch module), so the final model is saved in skops'
format with the rest of the pipeline and `radlang predict` loads it without running code (only trusted types).

The first section is self-contained (see radlang/registry.py); the estimator class is built on first use
(`net_estimator_class`, like radlang/ops/select.py's selector) and named `radlang.ops.net_models.RadNetClassifier`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from radlang.ops.fitted_recipe import run_recipe
from radlang.ops.netio import (
    batched_outputs,
    make_optimizer,
    make_scheduler,
    optimizer_call,
    scheduler_code,
    scheduler_lambda,
    train_step,
    training_code,
)
from radlang.ops.networks import build_network, network_call
from radlang.ops.survival_models import breslow, breslow_survival, concordance, cox_batch_loss, step_at
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def backbone_features(net, arch, x):
    """The feature map of a MONAI network's image backbone for input x [N, C, *spatial] (before any pooling or head):
    DenseNet121's dense blocks (+ ReLU), ResNet's residual layers, SegResNet's encoder, UNet's contracting path."""
    import torch

    if arch == "densenet121":
        return torch.relu(net.features(x))
    if arch == "resnet":
        x = net.act(net.bn1(net.conv1(x)))
        if not net.no_max_pool:
            x = net.maxpool(x)
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))
    if arch == "segresnet":
        return net.encode(x)[0]
    if arch == "unet":
        m = net.model
        while isinstance(m, torch.nn.Sequential) and len(m) == 3 and hasattr(m[1], "submodule"):
            x = m[0](x)
            m = m[1].submodule
        return m(x)
    raise ValueError(f"network {arch!r} has no image backbone for a network model")


def decoder_forward(net, arch, x):
    """(the backbone's deepest feature map, the decoder's output [N, out_channels, *spatial of x]) of a MONAI network
    with a decoder path: UNet's expanding path, fed by the contracting path's skip connections (each level's features
    concatenated with the upsampled deeper ones, as UNet's own forward does), or SegResNet's decoder (the encoder's
    levels added back as it upsamples). The feature map is backbone_features' (so pooling it is the same shared
    vector); the output is the network's own forward output."""
    import torch

    if arch == "unet":
        def walk(m, h):
            if isinstance(m, torch.nn.Sequential) and len(m) == 3 and hasattr(m[1], "submodule"):
                d = m[0](h)
                y, bottom = walk(m[1].submodule, d)
                return m[2](torch.cat([d, y], dim=m[1].dim)), bottom
            y = m(h)
            return y, y
        out, bottom = walk(net.model, x)
        return bottom, out
    if arch == "segresnet":
        bottom, down = net.encode(x)
        down.reverse()
        return bottom, net.decode(bottom, down)
    raise ValueError(f"network {arch!r} has no decoder path for a segmentation head")


def fusion_module(spec, in_shape, n_tab, n_out, hidden, dropout, backbone=None):
    """The network model: image backbone -> adaptive average pooling -> a vector, and a tabular vector, into an MLP
    head. The head's first layer is a sum of two linear maps, one per branch (exactly a linear map of their
    concatenation), so with the image vector at zero it is the tabular-only head. in_shape: [C, *spatial] or None
    (no image branch); backbone: () -> the MONAI network of `spec` (the fold pipeline's, network_parts_code), or None:
    build_network(spec)."""
    import torch

    if backbone is None:
        def backbone():
            return build_network(spec)

    class FusionNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.arch = spec["arch"] if in_shape is not None else None
            width = int(hidden) if int(hidden) > 0 else int(n_out)
            n_img = 0
            if in_shape is not None:
                self.backbone = backbone()
                dims = len(in_shape) - 1
                self.pool = torch.nn.AdaptiveAvgPool3d(1) if dims == 3 else torch.nn.AdaptiveAvgPool2d(1)
                with torch.device("meta"):   # the feature map's channels, from shapes only
                    probe = backbone().eval()
                    n_img = int(backbone_features(probe, spec["arch"], torch.empty((1,) + tuple(in_shape))).shape[1])
                self.image_in = torch.nn.Linear(n_img, width, bias=n_tab == 0)
            if n_tab:
                self.tab_in = torch.nn.Linear(int(n_tab), width)
            self.n_img, self.n_tab = n_img, int(n_tab)
            self.rest = (torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Dropout(float(dropout)), torch.nn.Linear(width, int(n_out)))
                         if int(hidden) > 0 else torch.nn.Identity())

        def image_vector(self, image):
            """The pooled backbone features [N, n_img]: adaptive average pooling to 1 = the spatial mean of the map."""
            return torch.flatten(self.pool(backbone_features(self.backbone, self.arch, image)), 1)

        def head(self, vec, tab):
            z = self.image_in(vec) if vec is not None else 0
            if tab is not None and self.n_tab:
                z = z + self.tab_in(tab)
            return self.rest(z)

        def forward(self, image, tab):
            return self.head(self.image_vector(image) if self.n_img else None, tab)

    return FusionNet()


def split_columns(columns):
    """The image columns (`voxel:<c>:<z>:<y>:<x>`, possibly `<table>.`-prefixed by a join), in the order of a
    [C, *spatial] array, that patch shape (None when there are none), and the tabular columns. The image branches of a
    join (one per prefix, each one patch) are stacked as channels, in the order they come: they share one patch size.
    The mask's crop (`mask:<z>:<y>:<x>`, a segmentation head's target: mask_columns) is neither."""
    groups, tab = {}, []
    for c in columns:
        c = str(c)
        if "voxel:" in c:
            groups.setdefault(c.split("voxel:", 1)[0], []).append(c)
        elif not c.rpartition(".")[2].startswith("mask:"):
            tab.append(c)
    if not groups:
        return [], None, tab
    vox, shape = [], None
    for prefix, cols in groups.items():
        idx = [tuple(int(v) for v in c.split("voxel:", 1)[1].split(":")) for c in cols]
        dims = [max(i[d] for i in idx) + 1 for d in range(len(idx[0]))]
        n = 1
        for s in dims:
            n *= s
        if n != len(cols) or len(set(idx)) != len(idx):
            raise ValueError(f"the image columns {prefix or ''}voxel:* do not form one patch: {len(cols)} columns for a "
                             f"{'x'.join(map(str, dims))} patch")
        if shape is not None and dims[1:] != shape[1:]:
            raise ValueError(f"joined image branches have different patch shapes: {'x'.join(map(str, shape[1:]))} and "
                             f"{'x'.join(map(str, dims[1:]))}")
        vox += [c for _, c in sorted(zip(idx, cols))]
        shape = dims if shape is None else [shape[0] + dims[0]] + shape[1:]
    return vox, shape, tab


def mask_columns(columns):
    """The columns of the mask's crop (`mask:<z>:<y>:<x>`, possibly `<table>.`-prefixed), in array order."""
    cols = [str(c) for c in columns if str(c).rpartition(".")[2].startswith("mask:")]
    return [c for _, c in sorted((tuple(int(v) for v in c.rpartition("mask:")[2].split(":")), c) for c in cols)]


def inner_validation(y, groups, fraction, seed):
    """(train rows, validation rows) of a fit: about `fraction` of the patients held out, stratified by class, a
    patient's cases on one side. No split (all rows train) when fraction is 0 or a class has too few patients."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(y)
    rows = np.arange(n)
    if fraction <= 0:
        return rows, rows[:0]
    k = max(2, round(1 / fraction))
    per_class = [len(set(np.asarray(groups)[np.asarray(y) == c])) for c in np.unique(y)]
    if min(per_class) < k:
        return rows, rows[:0]
    tr, va = next(StratifiedGroupKFold(k, shuffle=True, random_state=int(seed)).split(rows, y, groups))
    return tr, va


def fit_network(net, image, tab, y, tr, va, params, seed, loss_fn=None, backward=None, score=None, adapt=None, optimizer=None,
                scheduler=None):
    """Train `net` on rows `tr` (mini-batches of `batch`, in a seeded order each epoch) with early stopping on the
    validation rows `va` (the lowest validation loss; `patience` epochs without improvement stop it). One intra-op
    thread while training, so the weights are the same on any machine. The loss is the mean cross-entropy unless
    `loss_fn` (and `train_step`'s `backward`) are given, with `score` (output, target) -> the validation loss. The
    optimiser is `optimizer(parameters)` when given (network_parts' `optimizer`), else make_optimizer's of `params`; its
    per-epoch learning-rate schedule `scheduler(optimiser)` when given (network_parts' `scheduler`), else make_scheduler's
    of `params` (its `schedule` over its `epochs`).
    Returns (best state of `net` as NumPy arrays, history).

    adapt: None, or (module, batch) for a trainer that adds a loss to the label loss (DANN, radlang/ops/dann.py):
    `module` holds `net` and its own parameters, all optimised together (net's first, in the same order), and
    batch(inputs, target, rows, progress) -> (module inputs, target, loss function) of one step, with progress the
    fraction of the planned steps (epochs x batches) already taken, from 0 to 1."""
    import numpy as np
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(int(seed))
        rng = np.random.default_rng(int(seed))
        trained = adapt[0] if adapt is not None else net
        opt = optimizer(trained.parameters()) if optimizer is not None else make_optimizer(params, trained.parameters())
        epochs = int(params["epochs"])
        sched = scheduler(opt) if scheduler is not None else make_scheduler(opt, params["schedule"], epochs)
        if loss_fn is None:
            ce = torch.nn.CrossEntropyLoss()

            def loss_fn(logits, target):
                return ce(logits, target)
        val_loss = score or loss_fn

        def batch_of(rows):
            xi = torch.from_numpy(image[rows]) if image is not None else None
            xt = torch.from_numpy(tab[rows]) if tab is not None else None
            return (xi, xt), torch.from_numpy(y[rows])

        def snapshot():
            return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}

        bs = int(params["batch"])
        per_epoch = sum(1 for b in range(0, len(tr), bs) if min(bs, len(tr) - b) >= 2 or len(tr) <= 1)
        planned, done = epochs * per_epoch, 0
        history, best, best_state, waited = [], None, None, 0
        for epoch in range(1, epochs + 1):
            net.train()
            order = np.asarray(tr)[rng.permutation(len(tr))]
            losses = []
            for b in range(0, len(order), bs):
                rows = order[b:b + bs]
                if len(rows) < 2 and len(order) > 1:   # batch normalisation needs two samples; the case is drawn again next epoch
                    continue
                inputs, target = batch_of(rows)
                if adapt is None:
                    losses.append(train_step(net, inputs, target, loss_fn, opt, backward))
                else:
                    losses.append(train_step(trained, *adapt[1](inputs, target, rows, done / max(planned - 1, 1)), opt))
                done += 1
            if sched is not None:
                sched.step()
            rec = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan")}
            if len(va):
                net.eval()
                with torch.no_grad():
                    inputs, target = batch_of(np.asarray(va))
                    rec["val_loss"] = float(val_loss(net(*inputs), target))
                if best is None or rec["val_loss"] < best:
                    best, best_state, waited = rec["val_loss"], snapshot(), 0
                else:
                    waited += 1
            history.append(rec)
            if len(va) and waited >= int(params["patience"]):
                break
        return (best_state if best_state is not None else snapshot()), history
    finally:
        torch.set_num_threads(threads)


def loss_code(task):
    """A network model's training loss of outputs [N, outputs] against its training target, as Python: cross-entropy of
    the class logits (`classification`; a multi-task head's `binary`, `multiclass`); the mean squared error of the one
    output against the target standardised by its training mean and SD (`regression`, `continuous`); the Cox partial
    likelihood of the one output, a log relative hazard, against [N, 2] = (time, event) (`survival`: cox_batch_loss, with
    risk sets within the mini-batch); MONAI's DiceCELoss (Dice + cross-entropy, equally weighted) of a decoder's logits
    [N, C, *patch] against the binary mask [N, 1, *patch], one-hot: softmax over the channels, class 1 = the ROI
    (`segmentation`)."""
    if task in ("classification", "binary", "multiclass"):
        return "torch.nn.CrossEntropyLoss()"
    if task in ("regression", "continuous"):
        return "lambda out, target: torch.nn.functional.mse_loss(out[:, 0], target)"
    if task == "segmentation":
        return "monai.losses.DiceCELoss(softmax=True, to_onehot_y=True)"
    return "lambda out, target: cox_batch_loss(out[:, 0], target[:, 0], target[:, 1])"


def task_loss(task):
    """loss_code's loss, run."""
    import monai.losses  # binds `monai` for the code
    import torch

    return eval(loss_code(task), {"torch": torch, "monai": monai, "cox_batch_loss": cox_batch_loss})  # loss_code's code


def network_parts_code(spec, params, task):
    """{keyword: Python source}: what a network model trains with, as code: `backbone`, () -> the MONAI network
    (network_call), `loss` (loss_code), `optimizer`, parameters -> the torch optimiser (optimizer_call), and
    `scheduler`, optimiser -> its per-epoch learning-rate schedule or None (scheduler_lambda). The fold
    pipeline passes them to the estimator (`pipeline_source` writes them; `radlang render` shows them in study.py);
    an estimator built without them runs this same code (network_parts). The source names `torch`, `monai` and
    `cox_batch_loss`."""
    name, kwargs = network_call(spec)
    opt, okw = optimizer_call(params)
    return {"backbone": f"lambda: monai.networks.nets.{name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")",
            "loss": loss_code(task),
            "optimizer": f"lambda parameters: torch.optim.{opt}(parameters, " + ", ".join(f"{k}={v!r}" for k, v in okw.items()) + ")",
            "scheduler": scheduler_lambda(params["schedule"], params["epochs"])}


def network_parts(spec, params, task):
    """network_parts_code's objects: its code, run."""
    import monai.networks.nets  # binds `monai` for the code
    import torch

    scope = {"torch": torch, "monai": monai, "cox_batch_loss": cox_batch_loss}
    return {k: eval(v, scope) for k, v in network_parts_code(spec, params, task).items()}  # network_parts_code's code


def net_estimator_class(task="classification", _made={}):  # noqa: B006 -- one class per task and process, so fitted models load by name
    """The scikit-learn estimator that trains a network model for a task: `classification` (fit / predict_proba /
    predict: `radlang.ops.net_models.RadNetClassifier`), `regression` (predict: the value in the target's units;
    `RadNetRegressor`) or `survival` (predict: the risk, a log relative hazard; survival_at(X, times) from Breslow's
    baseline hazard on the fit's cases, as `survival_mlp`; `RadNetSurvival`). Built on first use (torch and
    scikit-learn are imported then) and named in this module, so a saved model (skops) loads it by name. Its fitted
    state is plain data: NumPy weights, the tabular branch's training means and SDs, the classes (or the target's
    mean and SD, or the baseline hazard), the training history."""
    if task in _made:
        return _made[task]
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    class RadNetBase(BaseEstimator):
        """network: {"arch", "params"} of a MONAI network; params: the `cnn` settings; fold_inputs: {"patients":
        {case id: patient id}} for the group-aware inner validation split (dropped from saved models)."""

        task = "classification"

        # what a saved model leaves out: the fold's data, and the code the fold pipeline passes (rebuilt from the
        # plain `network` and `params` by network_parts when absent)
        transient = ("fold_inputs", "backbone", "loss", "optimizer", "scheduler")

        def __init__(self, network=None, params=None, seed=0, fold_inputs=None, backbone=None, loss=None, optimizer=None,
                     scheduler=None):
            self.network = network
            self.params = params
            self.seed = seed
            self.fold_inputs = fold_inputs
            self.backbone = backbone
            self.loss = loss
            self.optimizer = optimizer
            self.scheduler = scheduler

        def _parts(self):
            """{"backbone", "loss", "optimizer", "scheduler"}: as given (the fold pipeline's code), else network_parts'."""
            given = {"backbone": self.backbone, "loss": self.loss, "optimizer": self.optimizer, "scheduler": self.scheduler}
            if any(v is None for v in given.values()):
                made = network_parts(self.network, self.params, self.task)
                given = {k: made[k] if v is None else v for k, v in given.items()}
            return given

        def _arrays(self, X):
            image = None
            if self.image_columns_:
                image = X[self.image_columns_].to_numpy(np.float32).reshape((len(X),) + tuple(self.image_shape_))
            tab = None
            if self.tabular_columns_:
                t = X[self.tabular_columns_].to_numpy(np.float64)
                t = np.where(np.isnan(t), self.tab_mean_, t)
                tab = ((t - self.tab_mean_) / self.tab_scale_).astype(np.float32)
            return image, tab

        def _n_out(self):
            return len(self.classes_) if self.task == "classification" else 1

        def _module(self):
            shape = self.image_shape_ if self.image_columns_ else None
            return fusion_module(self.network, shape, len(self.tabular_columns_), self._n_out(),
                                 self.params["hidden"], self.params["dropout"], self._parts()["backbone"])

        def _target(self, y):
            """(the training target array, the inner split's stratification labels) of the outcome y."""
            y = np.asarray(y)
            if self.task == "regression":
                y = y.astype(np.float64)
                self.y_mean_ = float(y.mean()) if len(y) else 0.0
                sd = float(y.std()) if len(y) else 1.0
                self.y_scale_ = sd if sd > 0 else 1.0
                return ((y - self.y_mean_) / self.y_scale_).astype(np.float32), np.zeros(len(y), np.int64)
            if self.task == "survival":   # scikit-survival's structured array (event, time)
                event, time = y[y.dtype.names[0]].astype(np.float64), y[y.dtype.names[1]].astype(np.float64)
                return np.stack([time, event], 1).astype(np.float32), event.astype(np.int64)
            self.classes_ = np.unique(y)
            target = np.searchsorted(self.classes_, y).astype(np.int64)
            return target, target

        def fit(self, X, y):
            import torch

            self.image_columns_, self.image_shape_, self.tabular_columns_ = split_columns(list(X.columns))
            if not self.image_columns_:
                raise ValueError("a network model needs image columns (a `patches` table) in its input")
            if self.tabular_columns_:
                t = X[self.tabular_columns_].to_numpy(np.float64)
                mean = np.nanmean(t, 0) if len(t) else np.zeros(t.shape[1])
                mean = np.where(np.isnan(mean), 0.0, mean)
                sd = np.nanstd(np.where(np.isnan(t), mean, t), 0)
                self.tab_mean_, self.tab_scale_ = mean, np.where(sd > 0, sd, 1.0)
            target, strat = self._target(y)
            image, tab = self._arrays(X)
            patients = (self.fold_inputs or {}).get("patients") or {}
            groups = np.asarray([patients.get(str(i), str(i)) for i in X.index])
            tr, va = inner_validation(strat, groups, float(self.params["validation"]), self.seed)
            parts = self._parts()
            torch.manual_seed(int(self.seed))
            net = self._module()
            state, history = fit_network(net, image, tab, target, tr, va, self.params, self.seed, loss_fn=parts["loss"],
                                         adapt=self._adaptation(net, X, image), optimizer=parts["optimizer"],
                                         scheduler=parts["scheduler"])
            self.weights_ = state
            self.history_ = history
            self.n_validation_ = len(va)
            if self.task == "survival":   # Breslow's baseline cumulative hazard on the fit's cases, at the kept weights
                yy = np.asarray(y)
                self.base_times_, self.base_hazard_ = breslow(yy[yy.dtype.names[1]], yy[yy.dtype.names[0]], self._outputs(X)[:, 0])
            return self

        def _adaptation(self, net, X, image):
            """What a subclass adds to training (fit_network's `adapt`); None (this class): the label loss alone."""

        def _outputs(self, X):
            """The network's outputs [N, outputs] (class logits, the standardised value, or the log relative hazard)."""
            import torch

            net = self._module()
            net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in self.weights_.items()})
            net.eval()
            image, tab = self._arrays(X)
            out = batched_outputs(net, image, tab, len(X))
            return out if out is not None else np.zeros((0, self._n_out()))

    class RadNetClassifier(ClassifierMixin, RadNetBase):
        def predict_proba(self, X):
            o = self._outputs(X)
            e = np.exp(o - o.max(1, keepdims=True)) if len(o) else o
            return e / e.sum(1, keepdims=True) if len(o) else o

        def predict(self, X):
            return self.classes_[np.argmax(self.predict_proba(X), 1)]

    class RadNetRegressor(RegressorMixin, RadNetBase):
        task = "regression"

        def predict(self, X):
            """The predicted value, in the target's units."""
            return self._outputs(X)[:, 0] * self.y_scale_ + self.y_mean_

    class RadNetSurvival(RadNetBase):
        task = "survival"

        def predict(self, X):
            """Risk scores (the log relative hazard): higher means an earlier event."""
            return self._outputs(X)[:, 0]

        def survival_at(self, X, times):
            """S(t | x) for every row of X (rows) at every time (columns)."""
            return breslow_survival(self.predict(X), self.base_times_, self.base_hazard_, times)

        def score(self, X, y):
            """Harrell's C."""
            return concordance(y[y.dtype.names[1]], y[y.dtype.names[0]], self.predict(X))

    for cls in (RadNetClassifier, RadNetRegressor, RadNetSurvival):
        cls.__module__ = "radlang.ops.net_models"
        cls.__qualname__ = cls.__name__
        _made[cls.task] = cls
    return _made[task]


def make_cnn(params, seed, fold_inputs=None, backbone=None, loss=None, optimizer=None, scheduler=None):
    """The unfitted network model of one fit, from a model stage's split settings (radlang.ops.models.split_params,
    with `networks`: the spec of its `network` input) and what it trains with (make_cnn_code's backbone, loss, optimiser
    and learning-rate schedule); the validation's outcome kind (fold_inputs["outcome"]) chooses the estimator: a
    classifier, a regressor or a survival model."""
    task = {"continuous": "regression", "survival": "survival"}.get((fold_inputs or {}).get("outcome"), "classification")
    return net_estimator_class(task)(network=params["networks"]["network"], params=params["hyper"], seed=seed, fold_inputs=fold_inputs,
                                     backbone=backbone, loss=loss, optimizer=optimizer, scheduler=scheduler)


def make_cnn_code(params, seed):
    """(import lines, {keyword: Python source}): what the fold pipeline passes to make_cnn besides its settings
    (network_parts_code of the network, the settings and the model's head); `pipeline_source` writes it."""
    return (["import monai.networks.nets", "import torch"],
            network_parts_code(params["networks"]["network"], params["hyper"], params["head"]))


# ----------------------------------------------------------------------------------------------
# declarations

BACKBONES = ("densenet121", "resnet", "segresnet", "unet")
DECODERS = ("segresnet", "unet")     # backbones with a decoder path (a segmentation head of `multitask`)


class CnnSettings(Settings):
    epochs: int = Field(30, ge=1, le=100000, description="maximum epochs (early stopping may end sooner)")
    batch: int = Field(8, ge=2, le=4096, description="cases per optimisation step")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="optimiser")
    lr: float = Field(1e-3, gt=0, le=10, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="weight decay")
    schedule: Literal["constant", "cosine", "poly", "step", "ganin"] = Field(
        "constant", description="learning-rate schedule (per epoch); `ganin`: lr / (1 + 10 p)^0.75, p the training progress (Ganin et al. 2016)")
    hidden: int = Field(32, ge=0, le=4096, description="units of the MLP head's hidden layer (0: a linear head)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the head's output layer")
    validation: float = Field(0.2, ge=0, lt=1, description="fraction of the training patients held out for early stopping (0: none)")
    patience: int = Field(5, ge=1, description="epochs without a lower validation loss before training stops")

    _s = field_validator("optimizer", "schedule", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


def _cnn_type(ctx, outcomes=("binary", "multiclass", "continuous", "survival")) -> RType:
    src, tgt, net = ctx.inputs["input"], ctx.inputs["target"], ctx.inputs.get("network")
    if tgt.outcome not in outcomes:
        ctx.error("E244", f"`{ctx.stmt.op.name}` cannot fit a {tgt.outcome} outcome (`{tgt.detail}`)", port="target",
                  hint=f"`{ctx.stmt.op.name}` fits {', '.join(outcomes)} outcomes")
    ctx.mixed_cohorts(src, tgt)
    network_input_checks(ctx, src, net)
    head = {"continuous": "regression", "survival": "survival"}.get(tgt.outcome, "classification")   # a network's head
    return RType("Model", cohort=src.cohort, outcome=tgt.outcome, head=head, patch=src.patch, detail="cnn model")


def network_input_checks(ctx, src, net):
    """A network model's image input and network, checked together (E256, E254, E255); shared by `cnn` and `multitask`."""
    if src.patch is None:
        ctx.error("E256", f"the input of a network model has no fixed-size image branch: `{src.detail or src.kind}`", port="input",
                  hint="give it a `patches(...) { patch: [...] }` table (joined with the tabular branch, if any)")
    if net is not None:
        arch = net.detail.split(" ", 1)[-1].lower().rstrip("0123456789")
        if net.head == "segmentation" and not arch.startswith(("unet", "segresnet")):
            ctx.error("E254", f"`{net.detail}` has no image backbone a network model can use", port="network",
                      hint=f"use one of: {', '.join(BACKBONES)}")
        if src.patch is not None:
            if net.dims != src.dims:
                ctx.error("E254", f"a {net.dims}D network cannot read the {src.dims}D patches of `{src.detail}`", port="network",
                          hint=f"set `dims: {src.dims}` on the network, or `dims: {net.dims}` on the patches")
            if net.channels and src.channels and net.channels != src.channels:
                ctx.error("E254", f"the network takes {net.channels} channel(s), the patches have {src.channels}", port="network",
                          hint=f"set `in_channels: {src.channels}` on the network")
            if net.divisor and min(src.patch) < net.divisor:
                ctx.error("E255", f"the patch {'x'.join(map(str, src.patch))} is smaller than the backbone's total downsampling "
                          f"({net.divisor}; twice the strides' product for a UNet with instance normalisation): its deepest "
                          "feature map would be empty, one cell of padding, or one voxel instance normalisation refuses", port="input",
                          hint=f"use patches of at least {net.divisor} voxels per side, or a shallower network")


def _human(n):
    for u in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or u == "GB":
            return f"{n:.1f} {u}" if u != "B" else f"{n} B"
        n /= 1024


def tabular_width(study, name) -> int | None:
    """The columns a feature table holds besides its image patches, when `plan` can know them (a `tabular` stage that
    lists its columns, or joins of such tables and patches); None when only the run knows (PyRadiomics features)."""
    s = study.by_name()[name]
    if s.type.patch is not None and s.op != "join":
        return 0
    if s.op == "tabular" and s.params.get("columns"):
        return len(s.params["columns"])
    if s.op == "join":
        widths = [tabular_width(study, r.stage) for _, r in sorted(s.inputs.items())]
        return None if any(w is None for w in widths) else sum(widths)
    return None


def branch_plan(study, stage, adapt=None):
    """`plan`'s lines for one network model: its image branch (backbone, patch, pooled vector, parameters), its tabular
    branch, its head, the training memory of one step (estimated on PyTorch's meta device, like a training stage's), and
    how it is trained: early stopping where its own fit runs, and each `fedavg` stage's rounds of local epochs
    (radlang.ops.fedavg.network_training) where one trains it.
    adapt: None, or (net, image batch, tabular batch) -> (module, inputs) of a trainer that wraps the network (DANN)."""
    import torch

    from radlang.ops.fedavg import federated_batch, federated_tabular, network_training
    from radlang.ops.networks import training_memory

    by = study.by_name()
    src = by[stage.inputs["input"].stage]
    net_stage = by[stage.inputs["network"].stage]
    spec = {"arch": net_stage.op, "params": net_stage.params}
    p, t = stage.params, src.type
    if t.patch is None:
        return [], None
    shape = [int(t.channels or 1)] + list(reversed([int(v) for v in t.patch]))
    n_tab = tabular_width(study, src.name)
    # its own fit (a validation's folds and final model) stops early; a `fedavg` stage that consumes it trains it its way
    users = [s for s in study.stages if any(r.stage == stage.name for r in s.inputs.values())]
    fed = [s for s in users if s.op == "fedavg"]
    own_fit = len(fed) < len(users) or not users
    batch = int(p["batch"]) if own_fit else federated_batch(fed[0], p)
    outputs, loss = {"continuous": ("a value", "the mean squared error of the standardised target"),
                     "survival": ("a log relative hazard", "the Cox partial likelihood (risk sets within each mini-batch)")}.get(
        stage.type.outcome, ("classes", "cross-entropy"))
    with torch.device("meta"):
        net = fusion_module(spec, shape, n_tab or 0, 1 if outputs != "classes" else 2, p["hidden"], p["dropout"])
        tab = torch.empty((batch, n_tab)) if n_tab else None
        module, inputs = adapt(net, torch.empty([batch] + shape), tab) if adapt is not None else (net, (torch.empty([batch] + shape), tab))
        est = training_memory(module, inputs)
    image_params = sum(int(q.numel()) for q in net.backbone.parameters())
    patch = "x".join(map(str, t.patch))
    lines = [("info", (f"image branch: {t.dims}D {net_stage.op} backbone ({image_params:,} parameters) on {shape[0]} channel(s) x {patch} "
                      f"voxels -> adaptive average pooling -> a {net.n_img}-vector"))]
    prepared = "imputed and standardised inside each fold" if own_fit else federated_tabular(fed[0])
    if n_tab is None:
        lines.append(("info", f"tabular branch: the other columns of `{src.name}` (counted at run time), {prepared}"))
    elif n_tab:
        lines.append(("info", f"tabular branch: {n_tab} column(s) of `{src.name}`, {prepared}"))
    head = f"MLP {net.n_img}{f' + {n_tab}' if n_tab else ''} -> {p['hidden']} -> {outputs}" if int(p["hidden"]) else f"linear head -> {outputs}"
    lines.append(("info", f"head: {head}, trained on {loss}; {est['params']:,} parameters in all"))
    stopping = f"; early stopping on {p['validation']:.0%} of each fit's patients" if own_fit else ""
    lines.append(("info", (f"training memory ≈ {_human(est['train_bytes'])} for batch {batch} (activations kept for backward "
                          f"{_human(est['saved_bytes'])}){stopping}")))
    return lines + [("info", network_training(s, p)) for s in fed], est


def _cnn_plan(stage, memory, study=None):
    if study is None:
        return []
    try:
        lines, est = branch_plan(study, stage)
    except ImportError:
        return [("info", "install torch and monai for parameter counts and memory estimates")]
    return lines + budget_warning(est, memory)


def budget_warning(est, memory) -> list:
    """plan's warning when a network's training estimate exceeds the memory budget (none when within, or unknown)."""
    if memory is None or est is None or est["train_bytes"] <= memory:
        return []
    return [("warning", (f"the training estimate {_human(est['train_bytes'])} exceeds the memory budget {_human(memory)}: "
                         "lower `batch` or the patch, or narrow the network"))]


# what every network model's fit reaches: listed among each such operator's helpers, for the rendered script
TRAINING_HELPERS = (backbone_features, decoder_forward, split_columns, mask_columns, inner_validation, fit_network, build_network, network_call,
                    make_optimizer, optimizer_call, make_scheduler, scheduler_code, scheduler_lambda, train_step, batched_outputs, loss_code, task_loss, network_parts_code,
                    network_parts, cox_batch_loss,
                    breslow, step_at, breslow_survival, concordance)


register(Operator(
    name="cnn", kind="model", output="Model", settings=CnnSettings,
    inputs=(Port("input", ("Features",), doc="image patches (`patches`), or patches joined with a tabular branch"),
            Port("target", ("Outcome",), doc="the training cohort's outcome (binary, multiclass, continuous or survival), e.g. `train.outcome`"),
            Port("network", ("Network",), doc="the backbone: a `network` stage (densenet121, resnet, segresnet, unet)")),
    positional=("input", "target"), fit="outcome", behaviour="fitted", run=run_recipe, impl=make_cnn,
    helpers=(net_estimator_class, fusion_module, make_cnn_code) + TRAINING_HELPERS,
    library_code=training_code, infer=_cnn_type, plan=_cnn_plan, version="1",
    doc="A network (a MONAI backbone, adaptive pooling, an MLP head) trained on image patches, with an optional tabular "
        "branch (intermediate fusion), for a binary, multiclass, continuous (MSE of the standardised target) or survival "
        "(Cox partial likelihood, Breslow baseline) outcome; refit inside every training fold with early stopping on an "
        "inner, patient-grouped validation split. Deterministic on CPU.",
    examples=("model net = cnn(img, target: train.outcome, network: enc) { epochs: 20, batch: 8 }",),
))


def __getattr__(name):
    """`radlang.ops.net_models.RadNetClassifier` (RadNetRegressor, RadNetSurvival): the estimator classes, built on first
    use (see net_estimator_class)."""
    task = {"RadNetClassifier": "classification", "RadNetRegressor": "regression", "RadNetSurvival": "survival"}.get(name)
    if task is not None:
        return net_estimator_class(task)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
