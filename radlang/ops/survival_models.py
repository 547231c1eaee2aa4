"""The survival estimator behind the survival model operators (`cox`, `random_survival_forest`,
`gradient_boosted_survival`, `survival_mlp`, declared in radlang/ops/models.py): one scikit-learn estimator,
`RadSurvival`, so the fold engine refits it inside every training fold like any other model.

Self-contained (the renderer inlines it). `predict` gives a risk score (higher = earlier event) and
`survival_at(X, times)` the survival probabilities the Brier score and calibration need:
- `cox`: lifelines' CoxPHFitter (Efron ties; `alpha` is its `penalizer`, `l1_ratio` mixes L1 into it); the
  survival function comes from the Breslow baseline hazard estimated on the training fold (`breslow`);
- `survival_mlp`: a multilayer perceptron trained with the Cox partial-likelihood loss of torchsurv (full batch,
  seeded, one thread: the same bytes on every CPU run); its weights are kept as NumPy arrays, so prediction and the
  saved model need no torch; survival function from the Breslow baseline as for `cox`;
- `random_survival_forest`, `gradient_boosted_survival`: scikit-survival (GPL-3, the optional `survival-gpl`
  extra), imported when they are fit.
The fitted state is NumPy arrays (and scikit-survival's own estimators), so skops saves and loads it. A `cox` or
`survival_mlp` pipeline of plain steps (imputation, scaling, the model) is saved without skops, as JSON
(`survival_artefact`: the fill values, centres and scales, the coefficients or weights, the Breslow baseline), and
`SavedSurvival` applies it in NumPy with the same arithmetic, so it gives the same numbers as the fitted pipeline.
"""

from __future__ import annotations


def breslow(time, event, risk):
    """Breslow's estimate of the baseline cumulative hazard from training outcomes and linear predictors `risk`:
    H0(t) = sum over event times s <= t of d(s) / sum_{j: t_j >= s} exp(risk_j). Returns (event times, H0 there)."""
    import numpy as np

    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    w = np.exp(np.asarray(risk, float))
    uniq, inv = np.unique(time, return_inverse=True)
    deaths = np.bincount(inv, weights=event.astype(float), minlength=len(uniq))
    at_risk = np.bincount(inv, weights=w, minlength=len(uniq))[::-1].cumsum()[::-1]
    keep = deaths > 0
    return uniq[keep], np.cumsum(deaths[keep] / at_risk[keep])


def step_at(xs, ys, times, before):
    """The right-continuous step function through (xs, ys) at `times`; `before` where a time precedes xs[0]."""
    import numpy as np

    idx = np.searchsorted(np.asarray(xs, float), np.asarray(times, float), side="right") - 1
    vals = np.asarray(ys, float)[np.clip(idx, 0, None)] if len(xs) else np.zeros(len(idx))
    return np.where(idx >= 0, vals, before)


def breslow_survival(risk, base_times, base_hazard, times):
    """S(t | x) = exp(-exp(risk) H0(t)) for every risk (rows) at every time (columns), from Breslow's baseline
    (`breslow`'s event times and cumulative hazard)."""
    import numpy as np

    h0 = step_at(base_times, base_hazard, np.asarray(times, float), 0.0)
    return np.exp(-np.exp(np.asarray(risk, float))[:, None] * h0[None, :])


def cox_batch_loss(risk, time, event):
    """The negative Cox partial log-likelihood (Efron's ties; torchsurv's `neg_partial_log_likelihood`, summed) of log
    relative hazards `risk` [n] divided by the number of events: risk sets within the rows given (a mini-batch). With
    no event among them it is 0 (still a function of `risk`, so backward runs). The loss of a network's survival
    head (`cnn` with a survival outcome, a `multitask` survival head)."""
    from torchsurv.loss.cox import neg_partial_log_likelihood

    event = event > 0
    if not bool(event.any()):
        return risk.sum() * 0.0
    return neg_partial_log_likelihood(risk, event, time, ties_method="efron", reduction="sum") / event.sum()


def mlp_forward(weights, X):
    """The MLP's log relative hazard in NumPy: ReLU hidden layers, a linear output. weights: [W1, b1, ..., Wk, bk]."""
    import numpy as np

    h = np.asarray(X, float)
    for i in range(0, len(weights), 2):
        h = h @ weights[i].T + weights[i + 1]
        if i + 2 < len(weights):
            h = np.maximum(h, 0.0)
    return h[:, 0]


def mlp_fit(X, time, event, hidden, epochs, lr, weight_decay, dropout, seed):
    """Train the MLP with torchsurv's negative Cox partial log-likelihood (Efron ties), full batch, with Adam;
    deterministic on CPU. Returns the weights as NumPy arrays for mlp_forward."""
    import numpy as np
    import torch
    from torchsurv.loss.cox import neg_partial_log_likelihood

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(int(seed))
        layers, width = [], X.shape[1]
        for h in hidden:
            layers += [torch.nn.Linear(width, int(h)), torch.nn.ReLU()] + ([torch.nn.Dropout(float(dropout))] if dropout > 0 else [])
            width = int(h)
        layers.append(torch.nn.Linear(width, 1))
        net = torch.nn.Sequential(*layers).double()
        opt = torch.optim.Adam(net.parameters(), lr=float(lr), weight_decay=float(weight_decay))
        x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
        t = torch.from_numpy(np.ascontiguousarray(time, dtype=np.float64))
        e = torch.from_numpy(np.ascontiguousarray(event, dtype=bool))
        net.train()
        for _ in range(int(epochs)):
            opt.zero_grad(set_to_none=True)
            loss = neg_partial_log_likelihood(net(x)[:, 0], e, t, ties_method="efron", reduction="mean")
            loss.backward()
            opt.step()
        return [p.detach().numpy().copy() for layer in net if isinstance(layer, torch.nn.Linear) for p in (layer.weight, layer.bias)]
    finally:
        torch.set_num_threads(threads)


def linear_risk(kind, X, mean, coef, weights):
    """The log relative hazard of a `cox` model ((X - mean) @ coef) or of a `survival_mlp` (its network on X). X is
    made C-contiguous first: a matrix product's rounding depends on the memory layout, and a fitted pipeline hands on
    either layout, so a model gives the same bits whichever way its input was laid out."""
    import numpy as np

    X = np.ascontiguousarray(X, dtype=float)
    if kind == "cox":
        return (X - mean) @ coef
    return mlp_forward(weights, X)


def survival_artefact(pipe):
    """A fitted `cox` or `survival_mlp` pipeline as JSON bytes (format radlang-survival/1) when each step before the
    model is one whose transform is plain arithmetic on the columns: SimpleImputer (fill NaN), StandardScaler and
    RobustScaler (subtract, divide), MinMaxScaler (multiply, add); None for any other pipeline (skops saves it). Saving
    needs neither skops nor pickle, and the file runs no code when it is read. Python writes every float in its
    shortest exact form, so the loaded model (`SavedSurvival`) computes the same numbers as `pipe`; the same
    model gives the same bytes."""
    import json
    import math

    import numpy as np

    steps = getattr(pipe, "steps", None)
    if not steps or type(steps[-1][1]).__name__ != "RadSurvival" or steps[-1][1].kind not in ("cox", "survival_mlp"):
        return None
    ops = []
    for _, step in steps[:-1]:
        kind, p = type(step).__name__, step.get_params()
        if kind == "SimpleImputer":
            mv = p["missing_values"]
            if p["add_indicator"] or not (isinstance(mv, float) and math.isnan(mv)) or len(step.statistics_) != step.n_features_in_ \
                    or np.isnan(np.asarray(step.statistics_, float)).any():
                return None
            ops.append(["fill", step.statistics_])
        elif kind == "StandardScaler":
            ops += ([["subtract", step.mean_]] if p["with_mean"] else []) + ([["divide", step.scale_]] if p["with_std"] else [])
        elif kind == "RobustScaler":
            ops += ([["subtract", step.center_]] if p["with_centering"] else []) + ([["divide", step.scale_]] if p["with_scaling"] else [])
        elif kind == "MinMaxScaler" and not p["clip"]:
            ops += [["multiply", step.scale_], ["add", step.min_]]
        else:
            return None
    model, columns = steps[-1][1], getattr(pipe, "feature_names_in_", None)
    if columns is None:         # fit on an array without column names: nothing to check new cases' columns against
        return None
    state = {"format": "radlang-survival/1", "kind": model.kind, "columns": [str(c) for c in columns],
             "steps": [[op, np.asarray(v, float).tolist()] for op, v in ops], "mean": np.asarray(model.mean_, float).tolist(),
             "coef": np.asarray(model.coef_, float).tolist() if model.kind == "cox" else None,
             "weights": [np.asarray(w, float).tolist() for w in model.weights_] if model.kind == "survival_mlp" else None,
             "base_times": np.asarray(model.base_times_, float).tolist(), "base_hazard": np.asarray(model.base_hazard_, float).tolist()}
    try:
        return (json.dumps(state, sort_keys=True, allow_nan=False) + "\n").encode()
    except ValueError:          # a non-finite number has no JSON form: skops saves the model
        return None


def concordance(time, event, risk, weights=None):
    """Harrell's C of risk scores, as scikit-survival's concordance_index_censored computes it: a pair is comparable
    when the shorter time is an event (an event is also comparable with a censoring at the same time); a higher risk
    for the earlier event is concordant, risks within 1e-8 count 1/2. `weights` (one per case; IPCW squared for Uno's
    C) weight the pairs by their event case. NaN when no pair is comparable."""
    import numpy as np

    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, float)
    w = np.ones(len(time)) if weights is None else np.asarray(weights, float)
    ti, tj = time[event][:, None], time[None, :]
    comparable = (ti < tj) | ((ti == tj) & ~event[None, :])
    ri, rj = risk[event][:, None], risk[None, :]
    tied = np.abs(rj - ri) <= 1e-8
    we = w[event]
    num = float(we @ ((rj < ri) & ~tied & comparable).sum(axis=1) + 0.5 * (we @ (tied & comparable).sum(axis=1)))
    den = float(we @ comparable.sum(axis=1))
    return num / den if den else float("nan")


def survival_estimator_class(_made={}):  # noqa: B006 -- one class per process, so fitted models pickle and load by name
    """The scikit-learn estimator class of the survival models, built on first use (scikit-learn is imported then,
    not when radlang checks a spec) and named `radlang.ops.survival_models.RadSurvival` (this module resolves that
    name to it), so a saved model (skops) loads it by name."""
    if "cls" in _made:
        return _made["cls"]
    import numpy as np
    from sklearn.base import BaseEstimator
    from sklearn.utils.validation import validate_data

    class RadSurvival(BaseEstimator):
        """kind: cox | random_survival_forest | gradient_boosted_survival | survival_mlp; y: a structured array
        (event: bool, time: float), as scikit-survival takes it."""

        def __init__(self, kind="cox", alpha=0.0, l1_ratio=0.0, n_estimators=100, max_depth=None, min_samples_leaf=3,
                     max_features="sqrt", learning_rate=0.1, subsample=1.0, hidden=(32,), epochs=200, lr=1e-3,
                     weight_decay=1e-4, dropout=0.0, seed=0):
            self.kind = kind
            self.alpha = alpha
            self.l1_ratio = l1_ratio
            self.n_estimators = n_estimators
            self.max_depth = max_depth
            self.min_samples_leaf = min_samples_leaf
            self.max_features = max_features
            self.learning_rate = learning_rate
            self.subsample = subsample
            self.hidden = hidden
            self.epochs = epochs
            self.lr = lr
            self.weight_decay = weight_decay
            self.dropout = dropout
            self.seed = seed

        def fit(self, X, y):
            Xa = validate_data(self, X, reset=True, dtype=float)
            event = np.ascontiguousarray(y[y.dtype.names[0]], dtype=bool)
            time = np.ascontiguousarray(y[y.dtype.names[1]], dtype=float)
            if self.kind == "cox":
                import pandas as pd
                from lifelines import CoxPHFitter

                # a column constant in this training fold has no effect to estimate (lifelines would divide by its zero SD)
                varies = np.flatnonzero(Xa.max(axis=0) > Xa.min(axis=0))
                cols = [f"x{j}" for j in varies]
                df = pd.DataFrame(Xa[:, varies], columns=cols).assign(_time=time, _event=event.astype(int))
                from lifelines.exceptions import ConvergenceError

                cph = CoxPHFitter(penalizer=float(self.alpha), l1_ratio=float(self.l1_ratio))
                try:
                    cph.fit(df, duration_col="_time", event_col="_event")
                except ConvergenceError:
                    raise ValueError(f"the Cox model did not converge on {len(df)} cases and {len(cols)} features "
                                     f"(penalty alpha {self.alpha:g}): raise `alpha`, or select fewer or less collinear features") from None
                self.coef_ = np.zeros(Xa.shape[1])
                self.coef_[varies] = cph.params_.loc[cols].to_numpy(dtype=float)
                self.mean_ = Xa.mean(axis=0)
            elif self.kind == "survival_mlp":
                self.mean_ = np.zeros(Xa.shape[1])
                self.weights_ = mlp_fit(Xa, time, event, list(self.hidden), self.epochs, self.lr, self.weight_decay, self.dropout, self.seed)
            else:
                from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest

                if self.kind == "random_survival_forest":
                    model = RandomSurvivalForest(n_estimators=int(self.n_estimators), max_depth=self.max_depth,
                                                 min_samples_leaf=int(self.min_samples_leaf), max_features=self.max_features,
                                                 random_state=int(self.seed), n_jobs=1)
                else:
                    model = GradientBoostingSurvivalAnalysis(loss="coxph", n_estimators=int(self.n_estimators),
                                                             learning_rate=float(self.learning_rate), max_depth=int(self.max_depth or 3),
                                                             subsample=float(self.subsample), random_state=int(self.seed))
                self.model_ = model.fit(Xa, y)
            if self.kind in ("cox", "survival_mlp"):
                self.base_times_, self.base_hazard_ = breslow(time, event, self._linear(Xa))
            return self

        def _linear(self, Xa):
            return linear_risk(self.kind, Xa, self.mean_, getattr(self, "coef_", None), getattr(self, "weights_", None))

        def predict(self, X):
            """Risk scores: higher means an earlier event."""
            Xa = validate_data(self, X, reset=False, dtype=float)
            if self.kind in ("cox", "survival_mlp"):
                return self._linear(Xa)
            return np.asarray(self.model_.predict(Xa), float)

        def survival_at(self, X, times):
            """S(t | x) for every row of X (rows) at every time (columns)."""
            Xa = validate_data(self, X, reset=False, dtype=float)
            times = np.asarray(times, float)
            if self.kind in ("cox", "survival_mlp"):
                return breslow_survival(self._linear(Xa), self.base_times_, self.base_hazard_, times)
            grid = np.asarray(self.model_.unique_times_, float)
            surv = np.asarray(self.model_.predict_survival_function(Xa, return_array=True), float)
            return np.stack([step_at(grid, row, times, 1.0) for row in surv]) if len(surv) else np.empty((0, len(times)))

        def score(self, X, y):
            """Harrell's C: what an inner-CV grid search maximises."""
            return concordance(y[y.dtype.names[1]], y[y.dtype.names[0]], self.predict(X))

    RadSurvival.__module__ = "radlang.ops.survival_models"
    RadSurvival.__qualname__ = "RadSurvival"
    _made["cls"] = RadSurvival
    return RadSurvival


def survival_target(time, event):
    """The structured outcome array (event: bool, time: float) the survival estimators take."""
    import numpy as np

    y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    y["event"] = np.asarray(event).astype(bool)
    y["time"] = np.asarray(time, float)
    return y


SURVIVAL_HELPERS = (survival_estimator_class, breslow, step_at, mlp_forward, mlp_fit, linear_risk, breslow_survival, concordance,
                    survival_target)


class SavedSurvival:
    """A survival model read back from its JSON artefact (`survival_artefact`), for `radlang predict` and SHAP: its
    steps' arithmetic, then the model, in NumPy, in the order scikit-learn applies them, so `predict` (the risk score)
    and `survival_at` give the numbers of the pipeline that was saved."""

    def __init__(self, state):
        import numpy as np

        self.kind = state["kind"]
        self.columns = list(state["columns"])
        self.ops = [(op, np.asarray(v, float)) for op, v in state["steps"]]
        self.mean = np.asarray(state["mean"], float)
        self.coef = None if state["coef"] is None else np.asarray(state["coef"], float)
        self.weights = None if state["weights"] is None else [np.asarray(w, float) for w in state["weights"]]
        self.base_times = np.asarray(state["base_times"], float)
        self.base_hazard = np.asarray(state["base_hazard"], float)

    def _inputs(self, X):
        import numpy as np

        Z = np.array(X[self.columns] if hasattr(X, "columns") else X, dtype=float)
        if Z.ndim != 2 or Z.shape[1] != len(self.columns):
            raise ValueError(f"the model reads {len(self.columns)} columns, not {Z.shape[-1]}")
        for op, v in self.ops:
            if op == "fill":
                missing = np.isnan(Z)
                Z[missing] = np.broadcast_to(v, Z.shape)[missing]
            elif op == "subtract":
                Z -= v
            elif op == "divide":
                Z /= v
            elif op == "multiply":
                Z *= v
            elif op == "add":
                Z += v
            else:
                raise ValueError(f"unknown step {op!r} in a saved survival model")
        return Z

    def predict(self, X):
        """Risk scores: higher means an earlier event."""
        return linear_risk(self.kind, self._inputs(X), self.mean, self.coef, self.weights)

    def survival_at(self, X, times):
        """S(t | x) for every row of X (rows) at every time (columns)."""
        import numpy as np

        return breslow_survival(self.predict(X), self.base_times, self.base_hazard, np.asarray(times, float))


def __getattr__(name):
    """`radlang.ops.survival_models.RadSurvival`: the estimator class, built on first use (see survival_estimator_class)."""
    if name == "RadSurvival":
        return survival_estimator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
