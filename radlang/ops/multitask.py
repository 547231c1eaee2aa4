"""`multitask`: one shared network backbone with named heads, each with its own target, loss and metrics, refit inside
every training fold of `evaluate` like any other model.

    network enc = resnet(dims: 3, in_channels: 1, out_channels: 2) { depth: 10, widen_factor: 0.125 }
    features img = patches(train) { patch: [16, 16, 16] }
    model mt = multitask(img, target: train.outcome, network: enc) {
      heads: [binary(malignancy, target: train.outcome),
              multiclass(grade, target: train.clinical, column: grade, weight: 0.5),
              survival(risk, target: train.clinical, time: os_months, event: died)]
      combine: uncertainty          # fixed | uncertainty | pcgrad | mgda | ... (torchjd's aggregators)
    }
    validate v = evaluate(mt) { cv: stratified_kfold(5) }

The shared part is the `cnn` model's trunk (radlang/ops/net_models.py): the backbone's feature map, adaptive average
pooling to one vector per case, and the tabular branch (if the input is a join), imputed and standardised inside the
fold, concatenated to it. Each head reads that shared vector: [its own batch normalisation, with `task_norm: true`] ->
Linear(`hidden`) -> ReLU -> dropout -> Linear(outputs); `hidden: 0` makes it linear. Heads and their losses:

- `binary(name, ...)`, `multiclass(name, ...)`: class logits, cross-entropy; the classes are those of the training cases.
- `continuous(name, ...)`: one value, the mean squared error of the target standardised by its training mean and SD.
- `survival(name, ...)`: one log relative hazard, the negative Cox partial log-likelihood (Efron's ties; torchsurv's
  `neg_partial_log_likelihood`, divided by the batch's number of events), risk sets within the mini-batch.
- `segmentation(name, target: train.mask)`: a decoder head. Its output is the backbone's own decoder path
  (net_models.decoder_forward: a UNet's expanding path fed by the contracting path's skip connections, or a
  SegResNet's decoder) at the patch's size, [out_channels, *patch]; its loss MONAI's DiceCELoss against the mask's crop,
  which `patches(...) { mask_target: true }` adds to the input table as `mask:` columns (a target, never an input); the
  other heads pool the same deepest feature map. Its held-out metric is each case's Dice (MONAI's DiceMetric), with
  the mean per fold. A network without a decoder path (DenseNet121, ResNet) is E353; patches without the mask's crop
  E354; patch sides that are not multiples of the backbone's total downsampling E355.

A head's target is the cohort's outcome (`target: train.outcome`; a survival outcome gives time and event) or a
clinical column (`target: train.clinical, column: grade`; `time:` and `event:` for a survival head). A case whose
target is missing for one head is masked out of that head's loss only: that head's loss is computed on the batch's
other cases, and the case still trains the backbone and every other head (exactly the gradient of dropping it from
that head's loss; tests/deep/test_multitask.py). A mini-batch with no target (a survival head: no event) for a head
gives that head a zero loss.

Loss combination (`combine`), for head losses L_k and `weight` w_k:

- `fixed`: L = sum_k w_k L_k.
- `uncertainty`: homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018), with one learned
  log-variance s_k per head (initialised at 0, trained with the network): L = sum_k (exp(-s_k) / 2 * L_k + s_k / 2).
  With the s_k frozen it is `fixed` with w_k = exp(-s_k) / 2 (the s_k / 2 terms have no gradient).
- a torchjd aggregator (`pcgrad`, `mgda`, `imtl_g`, `aligned_mtl`, `config`, `graddrop`, `mean`, `random`, `upgrad`,
  `dualproj`, `cagrad`): Jacobian descent. `torchjd.autojac.mtl_backward` gives each head's parameters the gradient of
  its own loss and the shared parameters the Jacobian of the losses (one row per head, with respect to the shared
  vector's parameters); `torchjd.autojac.jac_to_grad` aggregates it into their gradient. PCGrad is gradient surgery
  (Yu et al. 2020): a task gradient is projected off another's when they conflict. UPGrad (Quinton & Rey 2024)
  projects each row onto the dual cone of all rows and DualProj (GEM's projection) projects their combination onto
  it; for both the head weights w_k are the preference vector that combines the rows (so on identical tasks both are
  `fixed` training on sum_k w_k L_k). CAGrad (Liu et al. 2021) takes the update that maximises the worst task's
  improvement within a ball of radius `cagrad_c` times the mean gradient's norm around the mean gradient. The other
  aggregators take no weights.
  With a segmentation head, whose decoder reads the encoder through its skip connections and not only through the
  shared vector, the Jacobian is taken with respect to every parameter (`torchjd.autojac.backward`) and aggregated as a
  whole.

Validation: `evaluate(mt)` measures the *primary* head, the one whose target is the model's `target` (the cohort's
outcome), with every metric, threshold, calibration and decision curve of that outcome, as for any model; the other
heads' held-out predictions of the same folds are scored too and reported per head under `heads` in the metrics file
(AUC for a binary head, accuracy / log-loss / AUC for a multiclass head, Harrell's C for a survival head, R² and MAE
for a continuous one, Dice per case and fold for a segmentation one), each on the held-out cases that have that head's target. Early stopping (an inner, patient-
grouped validation split of each fit, stratified by the primary head) watches sum_k w_k L_k on the validation cases,
whatever `combine` is. Training is deterministic on CPU (one intra-op thread, seeded); the fitted estimator keeps its
weights (and the learned log-variances) as NumPy arrays, saved in skops' format and applied by `radlang predict`
(the primary head's predictions).

The first section is self-contained (see radlang/registry.py); the estimator class is built on first use and named
`radlang.ops.multitask.RadMultiTaskModel`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from radlang.ops.fitted_recipe import run_recipe
from radlang.ops.net_models import (
    DECODERS,
    TRAINING_HELPERS,
    backbone_features,
    budget_warning,
    decoder_forward,
    fit_network,
    inner_validation,
    loss_code,
    mask_columns,
    network_input_checks,
    network_parts,
    network_parts_code,
    split_columns,
    task_loss,
)
from radlang.ops.networks import build_network
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym, Variant, variants

# torchjd's aggregators (UPGrad and DualProj solve their projections with quadprog, CAGrad its ball-constrained problem
# with cvxpy: `torchjd[full]`, the science extra)
AGGREGATORS = ("pcgrad", "mgda", "imtl_g", "aligned_mtl", "config", "graddrop", "mean", "random", "upgrad", "dualproj", "cagrad")

# ----------------------------------------------------------------------------------------------
# self-contained implementation


def multitask_module(spec, in_shape, n_tab, heads, hidden, dropout, task_norm, uncertainty, backbone=None):
    """The multi-task network: image backbone -> adaptive average pooling -> a vector, concatenated with the tabular
    vector: the shared representation; one head per entry of `heads` ({"name", "kind", "outputs"}) reading it, but a
    `segmentation` head: the backbone's own decoder path (decoder_forward: UNet's expanding path with its skip
    connections, or SegResNet's decoder), whose output [N, out_channels, *patch] is that head's. forward(image, tab) ->
    (shared vector [N, F], [head output per head]). With `uncertainty`, `log_vars` holds one learned log-variance per
    head (the loss weighting's s_k). backbone: () -> the MONAI network of `spec` (the fold pipeline's,
    make_multitask_code), or None: build_network(spec)."""
    import torch

    if backbone is None:
        def backbone():
            return build_network(spec)

    class MultiTaskNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.arch = spec["arch"]
            self.decoder = any(h["kind"] == "segmentation" for h in heads)
            self.backbone = backbone()
            dims = len(in_shape) - 1
            self.pool = torch.nn.AdaptiveAvgPool3d(1) if dims == 3 else torch.nn.AdaptiveAvgPool2d(1)
            with torch.device("meta"):   # the feature map's channels, from shapes only
                probe = backbone().eval()
                n_img = int(backbone_features(probe, spec["arch"], torch.empty((1,) + tuple(in_shape))).shape[1])
            self.n_img, self.n_tab = n_img, int(n_tab)
            n_feat = n_img + int(n_tab)
            self.heads = torch.nn.ModuleList()
            for h in heads:
                if h["kind"] == "segmentation":   # the decoder's output: no layers of its own
                    self.heads.append(torch.nn.Identity())
                    continue
                layers = [torch.nn.BatchNorm1d(n_feat)] if task_norm else []
                if int(hidden) > 0:
                    layers += [torch.nn.Linear(n_feat, int(hidden)), torch.nn.ReLU(), torch.nn.Dropout(float(dropout)),
                               torch.nn.Linear(int(hidden), int(h["outputs"]))]
                else:
                    layers.append(torch.nn.Linear(n_feat, int(h["outputs"])))
                self.heads.append(torch.nn.Sequential(*layers))
            if uncertainty:
                self.log_vars = torch.nn.Parameter(torch.zeros(len(heads)))

        def forward(self, image, tab):
            if self.decoder:
                fmap, seg = decoder_forward(self.backbone, self.arch, image)
            else:
                fmap, seg = backbone_features(self.backbone, self.arch, image), None
            vec = torch.flatten(self.pool(fmap), 1)
            z = torch.cat([vec, tab], 1) if self.n_tab else vec
            return z, [seg if h["kind"] == "segmentation" else layer(z) for h, layer in zip(heads, self.heads)]

    return MultiTaskNet()


def head_losses(outputs, target, heads, losses=None):
    """One loss per head (a list of K scalar tensors) from the heads' outputs and the packed targets [N, columns] (NaN: missing):
    a head reads its column (`col`; survival: time, then event). A head's loss is computed on the rows that have its
    target only; with none (survival: no event among them) it is 0 (still a function of the outputs). losses: one
    loss function per head (the fold pipeline's, make_multitask_code), or None: task_loss of each head's kind."""
    import torch

    out_losses = []
    for k, (h, out) in enumerate(zip(heads, outputs)):
        loss = losses[k] if losses is not None else task_loss(h["kind"])
        c = int(h["col"])
        rows = torch.nonzero(~torch.isnan(target[:, c])).flatten()
        kind = h["kind"]
        if kind == "survival":
            rows = torch.nonzero(~torch.isnan(target[:, c]) & ~torch.isnan(target[:, c + 1])).flatten()
            out_losses.append(loss(out[rows], target[rows, c:c + 2]) if len(rows) else out.sum() * 0.0)
        elif len(rows) == 0:
            out_losses.append(out.sum() * 0.0)
        elif kind == "segmentation":   # the mask's crop, voxel by voxel, in columns col .. col + voxels
            mask = target[rows, c:c + int(h["voxels"])].reshape((len(rows), 1) + tuple(out.shape[2:]))
            out_losses.append(loss(out[rows], mask))
        elif kind == "continuous":
            out_losses.append(loss(out[rows], target[rows, c]))
        else:
            out_losses.append(loss(out[rows], target[rows, c].long()))
    return out_losses


def segmentation_loss(logits, mask):
    """A segmentation head's loss (task_loss: loss_code's `segmentation`, MONAI's DiceCELoss) of a decoder's logits
    [n, C, *patch] against the binary mask [n, 1, *patch]."""
    return task_loss("segmentation")(logits, mask)


def dice_per_case(pred, truth):
    """MONAI's DiceMetric of predicted binary masks against the true ones ([n, *patch] each): one Dice per case, NaN
    for a case whose true mask is empty."""
    import numpy as np
    import torch
    from monai.metrics import DiceMetric

    if not len(pred):
        return np.zeros(0)
    d = DiceMetric(include_background=True, reduction="none", ignore_empty=True)(
        torch.from_numpy(np.asarray(pred, np.float32))[:, None], torch.from_numpy(np.asarray(truth, np.float32))[:, None])
    return d[:, 0].numpy().astype(np.float64)


def multitask_backward(net, combine, weights, cagrad_c=0.5):
    """The backward pass of one training step (netio.train_step's `backward`) for a loss combination: takes (losses
    [K] as a list of scalars, shared vector), fills the parameters' gradients, returns the reported training loss (see the module doc for
    each combination's exact form). The head weights are UPGrad's and DualProj's preference vector; cagrad_c is
    CAGrad's c (the radius of its ball around the mean gradient)."""
    import torch

    w = torch.tensor([float(v) for v in weights])
    if combine == "fixed":
        def backward(out):
            total = (w * torch.stack(out[0])).sum()
            total.backward()
            return total
        return backward
    if combine == "uncertainty":
        def backward(out):
            s = net.log_vars
            total = (torch.exp(-s) / 2 * torch.stack(out[0]) + s / 2).sum()
            total.backward()
            return total
        return backward
    from torchjd import aggregation as agg
    from torchjd.autojac import backward as jd_backward
    from torchjd.autojac import jac_to_grad, mtl_backward

    aggregator = {"pcgrad": agg.PCGrad, "mgda": agg.MGDA, "imtl_g": agg.IMTLG, "aligned_mtl": agg.AlignedMTL, "config": agg.ConFIG,
                  "graddrop": agg.GradDrop, "mean": agg.Mean, "random": agg.Random, "upgrad": lambda: agg.UPGrad(pref_vector=w),
                  "dualproj": lambda: agg.DualProj(pref_vector=w), "cagrad": lambda: agg.CAGrad(c=float(cagrad_c))}[combine]()

    def backward(out):
        losses, shared = out
        if getattr(net, "decoder", False):   # a decoder reads the encoder through its skip connections too, not only through the shared vector:
            jd_backward(losses)   # the Jacobian of the losses over every parameter, aggregated as a whole
        else:
            mtl_backward(losses, features=shared)
        jac_to_grad([p for p in net.parameters() if getattr(p, "jac", None) is not None], aggregator)
        return torch.stack([v.detach() for v in losses]).sum()
    return backward


def pack_targets(heads, values, ids):
    """The packed target array [N, columns] (float32, NaN where missing) of cases `ids` from each head's values
    ({case id: value}, [time, event] for survival, the mask's crop for segmentation: `voxels` columns), with each
    head's (first) column (`col`) and, for classification
    heads, its classes (binary: 0 and 1; multiclass: those of the rows given) and the class index in place of the
    value; continuous heads are
    standardised by these rows' mean and SD (`mean`, `sd`). Returns (array, heads with col/classes/mean/sd/outputs)."""
    import numpy as np

    cols, out = [], []
    for h in heads:
        h = dict(h)
        vals = values[h["name"]]
        h["col"] = len(cols)
        if h["kind"] == "segmentation":   # {case id: the mask's crop, flattened}: one column per voxel
            h["voxels"] = len(next(iter(vals.values()))) if vals else 0
            missing = np.full(h["voxels"], np.nan)
            cols.extend(np.stack([np.asarray(vals.get(str(i), missing), float) for i in ids], 1) if ids else np.zeros((h["voxels"], 0)))
        elif h["kind"] == "survival":
            pairs = [vals.get(str(i)) for i in ids]
            cols.append(np.array([np.nan if p is None else float(p[0]) for p in pairs]))
            cols.append(np.array([np.nan if p is None else float(p[1]) for p in pairs]))
            h["outputs"] = 1
        else:
            v = np.array([np.nan if vals.get(str(i)) is None else float(vals[str(i)]) for i in ids])
            if h["kind"] == "continuous":
                if "mean" not in h:
                    ok = v[~np.isnan(v)]
                    h["mean"] = float(ok.mean()) if len(ok) else 0.0
                    sd = float(ok.std()) if len(ok) else 1.0
                    h["sd"] = sd if sd > 0 else 1.0
                cols.append((v - h["mean"]) / h["sd"])
                h["outputs"] = 1
            else:
                if "classes" not in h:   # a binary head's are 0 and 1 (its second probability is always that of 1)
                    h["classes"] = [0.0, 1.0] if h["kind"] == "binary" else sorted(set(v[~np.isnan(v)].tolist()))
                idx = np.full(len(v), np.nan)
                ok = ~np.isnan(v) & np.isin(v, h["classes"])
                idx[ok] = np.searchsorted(np.asarray(h["classes"]), v[ok])
                cols.append(idx)
                h["outputs"] = max(len(h["classes"]), 2)
        out.append(h)
    return np.stack(cols, 1).astype(np.float32), out


def multitask_estimator_class(_made={}):  # noqa: B006 -- one class per process, so fitted models pickle and load by name
    """The scikit-learn estimator of a multi-task model (fit / predict_proba / predict / predict_heads). Built on first
    use and named `radlang.ops.multitask.RadMultiTaskModel`. fit(X, y): y is the primary head's target (what `evaluate`
    measures); the other heads' targets come in fold_inputs["heads"] ({head: {case id: value}}, dropped from saved
    models). Its fitted state is plain data: NumPy weights, the tabular branch's training means and SDs, each head's
    classes (or standardisation), the training history."""
    if "cls" in _made:
        return _made["cls"]
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin

    class RadMultiTaskModel(ClassifierMixin, BaseEstimator):
        # what a saved model leaves out: the fold's data, and the code the fold pipeline passes (the backbone and the
        # optimiser and its schedule rebuilt from the plain `network` and `params`, the losses from the heads' kinds, when
        # absent)
        transient = ("fold_inputs", "backbone", "losses", "optimizer", "scheduler")

        def __init__(self, network=None, params=None, seed=0, fold_inputs=None, backbone=None, losses=None, optimizer=None,
                     scheduler=None):
            self.network = network
            self.params = params
            self.seed = seed
            self.fold_inputs = fold_inputs
            self.backbone = backbone
            self.losses = losses
            self.optimizer = optimizer
            self.scheduler = scheduler

        def _parts(self):
            """{"backbone", "optimizer", "scheduler"}: as given (the fold pipeline's code), else network_parts'."""
            given = {"backbone": self.backbone, "optimizer": self.optimizer, "scheduler": self.scheduler}
            if any(v is None for v in given.values()):
                made = network_parts(self.network, self.params, "classification")
                given = {k: made[k] if v is None else v for k, v in given.items()}
            return given

        def _arrays(self, X):
            image = X[self.image_columns_].to_numpy(np.float32).reshape((len(X),) + tuple(self.image_shape_))
            tab = None
            if self.tabular_columns_:
                t = X[self.tabular_columns_].to_numpy(np.float64)
                t = np.where(np.isnan(t), self.tab_mean_, t)
                tab = ((t - self.tab_mean_) / self.tab_scale_).astype(np.float32)
            return image, tab

        def _module(self):
            p = self.params
            return multitask_module(self.network, self.image_shape_, len(self.tabular_columns_), self.heads_, p["hidden"],
                                    p["dropout"], p["task_norm"], p["combine"] == "uncertainty", self._parts()["backbone"])

        def fit(self, X, y):
            import torch

            p = self.params
            self.image_columns_, self.image_shape_, self.tabular_columns_ = split_columns(list(X.columns))
            if not self.image_columns_:
                raise ValueError("a network model needs image columns (a `patches` table) in its input")
            if self.tabular_columns_:
                t = X[self.tabular_columns_].to_numpy(np.float64)
                mean = np.nanmean(t, 0) if len(t) else np.zeros(t.shape[1])
                mean = np.where(np.isnan(mean), 0.0, mean)
                sd = np.nanstd(np.where(np.isnan(t), mean, t), 0)
                self.tab_mean_, self.tab_scale_ = mean, np.where(sd > 0, sd, 1.0)
            ids = [str(i) for i in X.index]
            primary = next(h for h in p["heads"] if h["primary"])
            y = np.asarray(y)
            if primary["kind"] == "survival":   # scikit-survival's structured array (event, time)
                names = y.dtype.names
                mine = {i: [float(y[names[1]][k]), float(y[names[0]][k])] for k, i in enumerate(ids)}
            else:
                mine = {i: float(v) for i, v in zip(ids, y)}
            given = (self.fold_inputs or {}).get("heads") or {}
            self.mask_columns_ = mask_columns(list(X.columns))
            if any(h["kind"] == "segmentation" for h in p["heads"]) and not self.mask_columns_:
                raise ValueError("a segmentation head needs the mask's crop in its input (`patches(...) { mask_target: true }`)")
            masks = dict(zip(ids, X[self.mask_columns_].to_numpy(np.float64)))
            values = {h["name"]: (mine if h["primary"] else masks if h["kind"] == "segmentation" else given.get(h["name"], {}))
                      for h in p["heads"]}
            out_channels = int(self.network["params"].get("out_channels") or 1)
            heads = [{**h, "outputs": out_channels} if h["kind"] == "segmentation" else h for h in p["heads"]]
            target, self.heads_ = pack_targets(heads, values, ids)
            prim = next(h for h in self.heads_ if h["primary"])
            self.classes_ = np.asarray(prim.get("classes", []), dtype=np.int64) if prim["kind"] in ("binary", "multiclass") else np.asarray([])
            strat = target[:, prim["col"] + (1 if prim["kind"] == "survival" else 0)]
            strat = np.nan_to_num(strat, nan=-1.0).astype(np.int64) if prim["kind"] != "continuous" else np.zeros(len(ids), np.int64)
            patients = (self.fold_inputs or {}).get("patients") or {}
            groups = np.asarray([patients.get(i, i) for i in ids])
            tr, va = inner_validation(strat, groups, float(p["validation"]), self.seed)
            image, tab = self._arrays(X)
            torch.manual_seed(int(self.seed))
            net = self._module()
            heads = self.heads_
            weights = [h["weight"] for h in heads]
            w = torch.tensor([float(v) for v in weights])
            losses = [self.losses[h["name"]] for h in heads] if self.losses is not None else None

            def loss_fn(out, tgt):
                return head_losses(out[1], tgt, heads, losses), out[0]

            def score(out, tgt):
                return (w * torch.stack(head_losses(out[1], tgt, heads, losses))).sum()

            backward = multitask_backward(net, p["combine"], weights, p["cagrad_c"])
            parts = self._parts()
            self.weights_, self.history_ = fit_network(net, image, tab, target, tr, va, p, self.seed, loss_fn=loss_fn,
                                                       backward=backward, score=score, optimizer=parts["optimizer"],
                                                       scheduler=parts["scheduler"])
            self.n_validation_ = len(va)
            return self

        def predict_heads(self, X):
            """{head name: held-out outputs}: class probabilities [N, classes] (binary: of the second class, [N]), a
            survival head's risk (the log relative hazard), a continuous head's value in the target's units, a
            segmentation head's predicted mask [N, *patch]."""
            import torch

            net = self._module()
            net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in self.weights_.items()})
            net.eval()
            image, tab = self._arrays(X)
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                outs = [[] for _ in self.heads_]
                with torch.no_grad():
                    for b in range(0, len(X), 64):
                        xt = torch.from_numpy(tab[b:b + 64]) if tab is not None else None
                        for k, o in enumerate(net(torch.from_numpy(image[b:b + 64]), xt)[1]):
                            outs[k].append(o.numpy().astype(np.float64))
            finally:
                torch.set_num_threads(threads)
            res = {}
            for h, o in zip(self.heads_, outs):
                o = np.concatenate(o) if o else np.zeros((0, int(h["outputs"])))
                if h["kind"] in ("binary", "multiclass"):
                    e = np.exp(o - o.max(1, keepdims=True))
                    P = e / e.sum(1, keepdims=True)
                    res[h["name"]] = P[:, 1] if h["kind"] == "binary" else P
                elif h["kind"] == "continuous":
                    res[h["name"]] = o[:, 0] * h["sd"] + h["mean"]
                elif h["kind"] == "segmentation":   # the predicted mask: the most likely channel is not the background
                    res[h["name"]] = (o.argmax(1) > 0).astype(np.uint8)
                else:
                    res[h["name"]] = o[:, 0]
            return res

        def held_out_heads(self, X):
            """What a validation fold keeps of every head: {"outputs": predict_heads(X), "classes": {head: its training
            classes}} (a multiclass head's probability columns follow its classes); a segmentation head's output is
            each held-out case's Dice (dice_per_case) against the mask's crop in X."""
            out = self.predict_heads(X)
            for h in self.heads_:
                if h["kind"] == "segmentation":
                    pred = out[h["name"]]
                    truth = X[self.mask_columns_].to_numpy(np.float64).reshape(pred.shape) > 0
                    out[h["name"]] = dice_per_case(pred, truth)
            return {"outputs": out, "classes": {h["name"]: list(h.get("classes", [])) for h in self.heads_}}

        def _primary(self):
            return next(h for h in self.heads_ if h["primary"])

        def predict_proba(self, X):
            prim = self._primary()
            p = self.predict_heads(X)[prim["name"]]
            return np.stack([1 - p, p], 1) if prim["kind"] == "binary" else p

        def predict(self, X):
            prim = self._primary()
            if prim["kind"] in ("binary", "multiclass"):
                return self.classes_[np.argmax(self.predict_proba(X), 1)]
            return self.predict_heads(X)[prim["name"]]

    RadMultiTaskModel.__module__ = "radlang.ops.multitask"
    RadMultiTaskModel.__qualname__ = "RadMultiTaskModel"
    _made["cls"] = RadMultiTaskModel
    return RadMultiTaskModel


def head_specs(heads):
    """The heads as the estimator reads them, from the plain `heads` settings: name, kind, weight, and whether it is
    the primary head (its target is the cohort's outcome: what `evaluate` measures)."""
    return [{"name": h["name"], "kind": h["kind"], "weight": float(h["weight"]),
             "primary": str(h.get("target") or "").rpartition(".")[2] == "outcome"} for h in heads]


def make_multitask(params, seed, fold_inputs=None, backbone=None, losses=None, optimizer=None, scheduler=None):
    """The unfitted multi-task model of one fit, from a model stage's split settings (with `networks`) and what it
    trains with (make_multitask_code's backbone, one loss per head by name, optimiser and learning-rate schedule)."""
    hyper = {**params["hyper"], "heads": head_specs(params["hyper"]["heads"])}
    return multitask_estimator_class()(network=params["networks"]["network"], params=hyper, seed=seed, fold_inputs=fold_inputs,
                                       backbone=backbone, losses=losses, optimizer=optimizer, scheduler=scheduler)


def make_multitask_code(params, seed):
    """(import lines, {keyword: Python source}): what the fold pipeline passes to make_multitask besides its settings:
    the backbone, the optimiser and its learning-rate schedule (network_parts_code), and each head's loss by name
    (loss_code of its kind)."""
    parts = network_parts_code(params["networks"]["network"], params["hyper"], "classification")
    heads = params["hyper"]["heads"]
    losses = "{" + ", ".join(f"{h['name']!r}: {loss_code(h['kind'])}" for h in heads) + "}"
    lines = ["import monai.networks.nets", "import torch"] + (["import monai.losses"] if any(h["kind"] == "segmentation" for h in heads) else [])
    return lines, {"backbone": parts["backbone"], "losses": losses, "optimizer": parts["optimizer"], "scheduler": parts["scheduler"]}


# ----------------------------------------------------------------------------------------------
# run-time glue: each head's targets, read from the validation's cohort tables (evaluation_run calls it through
# `fold_data`)


def head_columns(head) -> dict:
    """The cohort table's columns a head reads: {"value": column} or {"time": column, "event": column}."""
    attr = str(head.get("target") or "").rpartition(".")[2]
    if attr == "outcome":
        return {"time": "time", "event": "event"} if head["kind"] == "survival" else {"value": "outcome"}
    if head["kind"] == "survival":
        return {"time": f"clinical.{head['time']}", "event": f"clinical.{head['event']}"}
    return {"value": f"clinical.{head['column']}"}


def multitask_fold_data(stage, data, ext_data, splits):
    """Every head's target per training case ({"heads": {head: {case id: value or [time, event]}}}; a missing value is
    left out: masked from that head's loss), and the problems found before any fold runs: a column the cohort table
    does not have (E536), values a head's kind cannot take (E537). Only the training cohort's targets are read: an
    external cohort's (or `radlang predict`'s new) cases are never trained on, and need no target but the primary one
    that `evaluate` measures. Returns (fold inputs, diagnostics)."""
    import numpy as np
    import pandas as pd

    from radlang.diagnostics import Diagnostic

    tables = [("training", data)]
    diags, heads = [], {}

    def names(xs, n=8):
        xs = list(xs)
        return ", ".join(f"`{x}`" for x in xs[:n]) + (f" and {len(xs) - n} more" if len(xs) > n else "")

    for h in stage.params["heads"]:
        if h["kind"] == "segmentation":   # its target is the mask's crop in the input table, not a cohort column
            continue
        cols = head_columns(h)
        got = {}
        for what, df in tables:
            info = df.attrs.get("radlang", {})
            where = f"the {what} cohort `{info.get('name', '?')}` ({info.get('source', '?')})"
            absent = [c for c in cols.values() if c not in df.columns]
            if absent:
                orig = ", ".join(f"`{c.removeprefix('clinical.')}`" for c in absent)
                diags.append(Diagnostic("E536", f"`{stage.name}`: head `{h['name']}` reads column(s) {orig}, which {where} does not have",
                                        stage.span, hint="list the column among the cohort's `clinical` columns, or give the head another target"))
                continue
            vals = {k: pd.to_numeric(df[c], errors="coerce").to_numpy(float) for k, c in cols.items()}
            text = {k: df[c].astype(str).str.strip() for k, c in cols.items()}
            for k, v in vals.items():   # a value that is not a number (blank and NA are missing, not wrong)
                bad = np.isnan(v) & ~text[k].isin(["", "nan", "NaN", "NA", "None", "<NA>"]).to_numpy()
                if h["kind"] == "binary" and k == "value":
                    bad |= ~np.isnan(v) & ~np.isin(v, [0.0, 1.0])
                if h["kind"] == "multiclass" and k == "value":
                    bad |= ~np.isnan(v) & (v != np.round(v))
                if k == "event":
                    bad |= ~np.isnan(v) & ~np.isin(v, [0.0, 1.0])
                if k == "time":
                    bad |= ~np.isnan(v) & (v <= 0)
                if bad.any():
                    want = {"value": {"binary": "0 or 1", "multiclass": "an integer class", "continuous": "a number"}.get(h["kind"]),
                            "event": "0 or 1", "time": "a positive number"}[k]
                    diags.append(Diagnostic("E537", f"`{stage.name}`: head `{h['name']}` ({h['kind']}): case(s) {names(df['case_id'][bad])} of {where} "
                                            f"have a value in column `{cols[k].removeprefix('clinical.')}` that is not {want}", stage.span,
                                            hint="fix the values, or leave them blank: a missing target masks that case out of this head's loss only"))
            for i, cid in enumerate(df["case_id"].astype(str)):
                if h["kind"] == "survival":
                    if not (np.isnan(vals["time"][i]) or np.isnan(vals["event"][i])):
                        got[cid] = [float(vals["time"][i]), float(vals["event"][i])]
                elif not np.isnan(vals["value"][i]):
                    got[cid] = float(vals["value"][i])
        heads[h["name"]] = got
    if diags:
        return {}, diags
    return {"heads": heads}, diags


def head_metrics(stage, preds, heads_out, data, params, seed, binary_metrics, multiclass_metrics, survival_metrics):
    """The held-out metrics of every head but the primary one (whose metrics are the validation's own), each on the
    cross-validated cases that have that head's target. preds: the validation's prediction rows (set, repeat, fold,
    case_id, patient_id; the folds in order); heads_out: per fold, {"outputs": {head: held-out outputs}, "classes":
    {head: training classes}} in the fold's row order; data: the cohort rows; params: the validation's settings (a
    binary head gets its threshold-free metrics, with its bootstrap)."""
    import numpy as np

    fold_data, _ = multitask_fold_data(stage, data, None, [])
    truth = fold_data.get("heads", {})
    cv = preds[preds["set"] == "cv"].reset_index(drop=True)
    out = {}
    for h in head_specs(stage.params["heads"]):
        y = truth.get(h["name"], {})
        if h["primary"] or not heads_out:
            continue
        if h["kind"] == "segmentation":   # each held-out case's Dice, per fold
            per = [np.asarray(fold["outputs"][h["name"]], float) for fold in heads_out]
            every = np.concatenate(per)
            out[h["name"]] = {"kind": "segmentation", "n_cases": int((~np.isnan(every)).sum()),
                              "dice": {"mean": float(np.nanmean(every)) if (~np.isnan(every)).any() else None,
                                       "per_fold": [float(np.nanmean(d)) if (~np.isnan(d)).any() else None for d in per]}}
            continue
        if h["kind"] == "multiclass":   # each fold's classes are its training cases': onto the classes of the whole cohort
            every = sorted({int(v) for v in y.values()})
            parts = []
            for fold in heads_out:
                P = np.asarray(fold["outputs"][h["name"]])
                full = np.zeros((len(P), len(every)))
                for j, c in enumerate(fold["classes"][h["name"]]):
                    full[:, every.index(int(c))] = P[:, j]
                parts.append(full)
            pred = np.concatenate(parts)
        else:
            pred = np.concatenate([np.asarray(fold["outputs"][h["name"]]) for fold in heads_out])
        keep = np.asarray([c in y for c in cv["case_id"].astype(str)])
        ids = list(cv["case_id"].astype(str)[keep])
        m = {"kind": h["kind"], "n_cases": int(keep.sum())}
        out[h["name"]] = m
        if not ids:
            continue
        t = np.asarray([y[c] for c in ids], dtype=float)
        if h["kind"] == "binary":
            want = [x for x in params["metrics"] if x in ("auc", "brier", "calibration", "net_benefit", "roc")] or ["auc", "brier"]
            m.update(binary_metrics(t, pred[keep], None, cv["patient_id"].astype(str)[keep].to_numpy(), {**params, "metrics": want}, seed))
        elif h["kind"] == "multiclass":
            m.update(multiclass_metrics(np.searchsorted(np.asarray(every), t.astype(int)), pred[keep], {"metrics": ["auc"]}))
        elif h["kind"] == "survival":
            folds = [f"{r}:{f}" for r, f in zip(cv["repeat"][keep], cv["fold"][keep])]
            m.update(survival_metrics(t[:, 0], t[:, 1], pred[keep], folds))
        else:
            from radlang.ops.clinical_metrics import regression_metrics

            reg = regression_metrics(t, pred[keep], None, {"metrics": ["r2", "mae"]}, seed)
            m.update(mae=reg["mae"], r2=reg["r2"]["estimate"])
    return out


# ----------------------------------------------------------------------------------------------
# declarations


class Head(Variant):
    positional = ("name",)
    name: str = Field(description="the head's name (its metrics are reported under it)")
    target: str | None = Field(None, description="`<cohort>.outcome`, or `<cohort>.clinical` with `column` (survival: `time`, `event`)")
    column: str | None = Field(None, description="the clinical column of a binary, multiclass or continuous head")
    weight: float = Field(1.0, ge=0, description="its weight in `combine: fixed` (and in the early-stopping loss)")

    _s = field_validator("name", "target", "column", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


class BinaryHead(Head):
    call_name = "binary"


class MulticlassHead(Head):
    call_name = "multiclass"


class ContinuousHead(Head):
    call_name = "continuous"


class SurvivalHead(Head):
    call_name = "survival"
    time: str | None = Field(None, description="the clinical column of the follow-up time")
    event: str | None = Field(None, description="the clinical column of the event indicator (1 = event)")

    _t = field_validator("time", "event", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


class SegmentationHead(Head):
    call_name = "segmentation"


AnyHead = Annotated[BinaryHead | MulticlassHead | ContinuousHead | SurvivalHead | SegmentationHead,
                    variants(BinaryHead, MulticlassHead, ContinuousHead, SurvivalHead, SegmentationHead)]


class MultitaskSettings(Settings):
    heads: list[AnyHead] = Field(default_factory=list, description=("the heads: `binary(name, target: c.outcome)`, "
                                 "`multiclass(name, target: c.clinical, column: grade, weight: 0.5)`, `continuous(...)`, "
                                 "`survival(name, target: c.clinical, time: t, event: e)`, `segmentation(name, target: c.mask)` (a decoder); "
                                 "the head on the model's `target` is primary"))
    combine: Literal[("fixed", "uncertainty") + AGGREGATORS] = Field(  # type: ignore[valid-type]
        "fixed", description="loss combination: fixed weights, homoscedastic uncertainty weighting, or a torchjd aggregator")
    cagrad_c: float = Field(0.5, ge=0, le=100, description="`combine: cagrad`: CAGrad's c, the radius of its ball around the mean "
                            "gradient, relative to that gradient's norm (0: the mean gradient)")
    task_norm: bool = Field(False, description="each head normalises the shared vector with its own batch normalisation")
    epochs: int = Field(30, ge=1, le=100000, description="maximum epochs (early stopping may end sooner)")
    batch: int = Field(8, ge=2, le=4096, description="cases per optimisation step")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="optimiser")
    lr: float = Field(1e-3, gt=0, le=10, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="weight decay")
    schedule: Literal["constant", "cosine", "poly", "step"] = Field("constant", description="learning-rate schedule (per epoch)")
    hidden: int = Field(32, ge=0, le=4096, description="units of each head's hidden layer (0: linear heads)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before each head's output layer")
    validation: float = Field(0.2, ge=0, lt=1, description="fraction of the training patients held out for early stopping (0: none)")
    patience: int = Field(5, ge=1, description="epochs without a lower validation loss before training stops")

    _s = field_validator("optimizer", "schedule", "combine", mode="before")(lambda cls, v: str(v) if isinstance(v, Sym) else v)


def _multitask_type(ctx) -> RType:
    src, tgt, net = ctx.inputs["input"], ctx.inputs["target"], ctx.inputs.get("network")
    s = ctx.settings
    if tgt.outcome not in ("binary", "multiclass", "survival"):
        ctx.error("E244", f"`multitask` cannot be validated on a {tgt.outcome} outcome (`{tgt.detail}`)", port="target",
                  hint="its primary head (the one on the model's `target`) is binary, multiclass or survival; a continuous target can be another head")
    ctx.mixed_cohorts(src, tgt)
    network_input_checks(ctx, src, net)
    if len(s.heads) < 2:
        ctx.error("E345", f"a multi-task model needs at least two heads; it has {len(s.heads)}", setting="heads",
                  hint=f"add a head on `{tgt.detail}` and one per other target, or use `cnn` for one target")
    seen, primary = set(), []
    for h in s.heads:
        if h.name in seen:
            ctx.error("E295", f"two heads are named `{h.name}`", setting="heads", hint="give each head its own name: its metrics are reported under it")
        seen.add(h.name)
        kind = h.call_name
        if h.target is None:
            ctx.error("E291", f"head `{h.name}` has no target column", setting="heads",
                      hint=(f"give it the mask: `segmentation({h.name}, target: {tgt.cohort}.mask)`" if kind == "segmentation" else
                            f"give it one: `{kind}({h.name}, target: {tgt.cohort}.outcome)` or `{kind}({h.name}, target: {tgt.cohort}.clinical, "
                            + ("time: <column>, event: <column>)`" if kind == "survival" else "column: <column>)`")))
            continue
        cohort, _, attr = h.target.partition(".")
        if attr not in ("outcome", "clinical", "mask"):
            ctx.error("E294", f"head `{h.name}`: `{h.target}` is not a target: a head reads a cohort's outcome, a clinical column or its mask",
                      setting="heads", hint=f"`target: {cohort}.outcome`, or `target: {cohort}.clinical` with `column:`")
            continue
        if src.cohort and cohort != src.cohort:
            ctx.error("E292", f"head `{h.name}` is trained on cohort `{cohort}`, but the network reads the images of cohort `{src.cohort}`",
                      setting="heads", hint=f"every head of one network reads the cohort of its input: `target: {src.cohort}.{attr}`")
            continue
        if kind == "segmentation" or attr == "mask":
            segmentation_head_checks(ctx, h, attr, src, net)
            continue
        if attr == "clinical":
            missing = ["time", "event"] if kind == "survival" else ["column"]
            missing = [m for m in missing if getattr(h, m) is None]
            if missing:
                ctx.error("E291", f"head `{h.name}` reads `{h.target}` but names no {' or '.join(f'`{m}`' for m in missing)}", setting="heads",
                          hint="name the clinical column(s): " + ", ".join(f"`{m}: <column>`" for m in missing))
            continue
        primary.append(h.name)
        want = {"binary": "binary", "multiclass": "multiclass", "survival": "survival"}.get(kind)
        outcome = ctx.types.get(cohort).outcome if ctx.types.get(cohort) is not None else None
        if outcome and want != outcome:
            ctx.error("E294", f"head `{h.name}` is a {kind} head, but the outcome of cohort `{cohort}` is {outcome}", setting="heads",
                      hint=f"make it `{outcome}({h.name}, target: {h.target})`")
    if len(primary) != 1 and len(s.heads) >= 2:
        ctx.error("E293", (f"no head predicts the model's target `{tgt.detail}`" if not primary else
                           f"heads {', '.join(f'`{p}`' for p in primary)} all predict the model's target `{tgt.detail}`"), setting="heads",
                  hint=f"exactly one head has `target: {tgt.cohort}.outcome`: the primary head that `evaluate` measures")
    return RType("Model", cohort=src.cohort, outcome=tgt.outcome, head="classification", patch=src.patch, detail="multitask model")   # a network's head


def segmentation_head_checks(ctx, h, attr, src, net):
    """A segmentation head: its target is the mask (E294), its input holds the mask's crop (E354), and its network has
    a decoder path (E353) that gives back the patch's size (E355: each side a multiple of the total downsampling)."""
    if h.call_name != "segmentation" or attr != "mask":
        ctx.error("E294", (f"head `{h.name}`: a segmentation head's target is the cohort's mask, not `{h.target}`" if attr != "mask" else
                           f"head `{h.name}` is a {h.call_name} head, but `{h.target}` is a mask"), setting="heads",
                  hint=f"`segmentation({h.name}, target: {src.cohort or 'train'}.mask)`")
        return
    if src.patch is not None and not src.has_mask:
        ctx.error("E354", f"head `{h.name}` segments the mask, but its input `{src.detail}` does not hold the mask's crop", port="input",
                  hint="add `mask_target: true` to the `patches` stage (the mask is then a target, never an input)")
    if net is None:
        return
    arch = net.detail.split(" ", 1)[-1].lower().rstrip("0123456789")
    if not arch.startswith(DECODERS):
        ctx.error("E353", f"head `{h.name}` needs a decoder path, but `{net.detail}` has none: its deepest feature map has no way back "
                  "to the patch", port="network", hint="use a `unet` or `segresnet` network: their decoders take the encoder's skip features")
    elif src.patch is not None and net.divisor and any(int(v) % int(net.divisor) for v in src.patch):
        ctx.error("E355", f"head `{h.name}`: the patch {'x'.join(map(str, src.patch))} is not a multiple of the backbone's total "
                  f"downsampling ({net.divisor}), so the decoder cannot give back its size", port="input",
                  hint=f"use patch sides that are multiples of {net.divisor}")


def multitask_plan_estimate(spec, shape, n_tab, heads, p, batch):
    """(network on the meta device, `training_memory` of one step for a batch) of a multi-task model."""
    import torch

    from radlang.ops.networks import training_memory

    class Outputs(torch.nn.Module):   # the heads' outputs side by side: one output tensor, as training_memory reads it
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image, tab):
            return torch.cat([o.flatten(1) for o in self.net(image, tab)[1]], 1)

    with torch.device("meta"):
        net = multitask_module(spec, shape, n_tab, heads, p["hidden"], p["dropout"], p["task_norm"], p["combine"] == "uncertainty")
        tab = torch.empty((batch, n_tab)) if n_tab else None
        est = training_memory(Outputs(net), (torch.empty([batch] + list(shape)), tab), p["optimizer"])
    for h in heads:
        if h["kind"] == "segmentation":   # its loss keeps tensors of the output's size for backward (softmax, one-hot, products)
            loss = segmentation_saved_bytes([batch, int(h["outputs"])] + list(shape[1:]))
            est = {**est, "saved_bytes": est["saved_bytes"] + loss, "train_bytes": est["train_bytes"] + 2 * loss}
    return net, est


def segmentation_saved_bytes(out_shape):
    """The bytes the segmentation loss (segmentation_loss: MONAI's DiceCELoss, which does not run on PyTorch's meta
    device) saves for backward on decoder logits of `out_shape`: counted on a small real batch of the same channels
    and dimensions (per logit), times the logits of `out_shape`."""
    import math

    import torch

    small = [2, out_shape[1]] + [4] * (len(out_shape) - 2)
    seen = {}

    def pack(t):
        base = t._base if t._base is not None else t
        if not (base.requires_grad and base.is_leaf):
            seen.setdefault(id(base), base.numel() * base.element_size())
        return t

    logits = torch.zeros(small, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        segmentation_loss(logits * 1.0, torch.zeros([2, 1] + small[2:]))
    return int(sum(seen.values()) / math.prod(small) * math.prod(out_shape))


def _multitask_plan(stage, memory, study=None):
    from radlang.ops.net_models import _human, tabular_width

    if study is None:
        return []
    by = study.by_name()
    src = by[stage.inputs["input"].stage]
    net_stage = by[stage.inputs["network"].stage]
    p, t = stage.params, src.type
    if t.patch is None:
        return []
    shape = [int(t.channels or 1)] + list(reversed([int(v) for v in t.patch]))
    n_tab = tabular_width(study, src.name)
    out_channels = int(net_stage.params.get("out_channels") or 1)
    heads = [{**h, "outputs": out_channels if h["kind"] == "segmentation" else 1 if h["kind"] in ("survival", "continuous") else 2}
             for h in head_specs(p["heads"])]
    try:
        net, est = multitask_plan_estimate({"arch": net_stage.op, "params": net_stage.params}, shape, n_tab or 0, heads, p, int(p["batch"]))
    except ImportError:
        return [("info", "install torch and monai for parameter counts and memory estimates")]
    pref = ", preference vector " + ", ".join(f"{h['name']} {h['weight']:g}" for h in heads)
    combine = {"fixed": "fixed weights " + ", ".join(f"{h['name']} {h['weight']:g}" for h in heads),
               "uncertainty": "homoscedastic uncertainty weighting: sum_k exp(-s_k)/2 L_k + s_k/2, s_k learned"}.get(
        p["combine"], f"Jacobian descent with torchjd's {p['combine']} aggregator on the shared parameters"
        + {"upgrad": pref, "dualproj": pref, "cagrad": f", c = {p['cagrad_c']:g}"}.get(p["combine"], ""))
    lines = [("info", (f"shared: {t.dims}D {net_stage.op} backbone ({sum(int(q.numel()) for q in net.backbone.parameters()):,} parameters) "
                      f"-> a {net.n_img}-vector" + (f" + {n_tab} tabular column(s)" if n_tab else "")
                      + (" + the tabular columns (counted at run time)" if n_tab is None else ""))),
             ("info", "heads: " + "; ".join(f"{h['name']} ({h['kind']}{', primary: what evaluate measures' if h['primary'] else ''})" for h in heads)
              + (" (each with its own batch normalisation)" if p["task_norm"] else "")),
             *[("info", (f"{h['name']}: the {net_stage.op} decoder ({sum(int(q.numel()) for q in net.backbone.parameters()):,} backbone parameters in "
                         f"all, encoder and decoder) with its skip connections -> {out_channels} x {'x'.join(map(str, t.patch))} logits; "
                         "MONAI DiceCELoss against the mask's crop; held-out Dice per case (MONAI DiceMetric)"))
               for h in heads if h["kind"] == "segmentation"],
             ("info", f"loss: {combine}; a head's missing targets are masked out of its loss only"),
             ("info", (f"training memory ≈ {_human(est['train_bytes'])} for batch {p['batch']} (activations kept for backward "
                       f"{_human(est['saved_bytes'])}); {est['params']:,} parameters in all"))]
    return lines + budget_warning(est, memory)


register(Operator(
    name="multitask", kind="model", output="Model", settings=MultitaskSettings,
    inputs=(Port("input", ("Features",), doc="image patches (`patches`), or patches joined with a tabular branch"),
            Port("target", ("Outcome",), doc="the outcome the primary head predicts, e.g. `train.outcome` (what `evaluate` measures)"),
            Port("network", ("Network",), doc="the shared backbone: a `network` stage (densenet121, resnet, segresnet, unet)")),
    positional=("input", "target"), fit="outcome", behaviour="fitted", run=run_recipe, impl=make_multitask,
    helpers=(multitask_estimator_class, multitask_module, head_losses, segmentation_loss, dice_per_case, multitask_backward, pack_targets,
             head_specs, make_multitask_code) + TRAINING_HELPERS,
    infer=_multitask_type, plan=_multitask_plan, fold_data=multitask_fold_data, version="1",
    doc="One shared network backbone with named heads (binary, multiclass, continuous, survival, and segmentation: the "
        "backbone's decoder path against the mask's crop, DiceCE loss, held-out Dice), each with its own target "
        "(a cohort column or the mask; a missing value masks that head's loss only), loss and held-out metrics; losses combined by fixed "
        "weights, homoscedastic uncertainty weighting or a torchjd aggregator (PCGrad, UPGrad, DualProj, CAGrad, MGDA, IMTL-G, ...). Refit inside every "
        "training fold; `evaluate` measures the primary head and reports every head. Deterministic on CPU.",
    examples=(("model mt = multitask(img, target: train.outcome, network: enc) { heads: [binary(malignancy, target: train.outcome), "
               "continuous(age, target: train.clinical, column: age)], combine: uncertainty, epochs: 2 }"),
              ("model jd = multitask(img, target: train.outcome, network: enc) { heads: [binary(malignancy, target: train.outcome), "
               "continuous(age, target: train.clinical, column: age, weight: 0.5)], combine: pcgrad, task_norm: true, epochs: 2 }")),
))


def __getattr__(name):
    """`radlang.ops.multitask.RadMultiTaskModel`: the estimator class, built on first use (see multitask_estimator_class)."""
    if name == "RadMultiTaskModel":
        return multitask_estimator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
