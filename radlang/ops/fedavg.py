"""`fedavg`: federated training across the sites of a cohort. Each site (a value of the cohort's `site` column, or
one cohort per site with `clients:`) is a client that trains on its own cases only; the server sees the clients'
weights, their case counts and aggregate metrics, never a case.

    federate fed = fedavg(clin, target: train.outcome) {
      model: cox                          # linear | logistic | cox (inferred from the outcome when omitted)
      strategy: fedadam                   # fedavg | fedprox (mu) | fedadam | fedyogi | fedadagrad
      rounds: 30, local_epochs: 1, batch: 16, lr: 0.01, server_lr: 0.03
      seeds: [1, 2, 3, 4, 5]
      test: test                          # a held-out cohort with the same sites: per-site and pooled test metrics
    }

A run simulates the federation in-process (radlang/ops/fed_engine.py: deterministic, no Ray, each client's update
computed from the global weights and its own data only) and, in the same run, trains the reference models of
FLamby's benchmark on the same budget: centralised training on the pooled training cases and local training at
each site. It writes `metrics/<stage>_federated.json` (per seed: per-site and pooled test metrics of the
federated model and of the references, and per round and client the local loss and the drift
||w_k - w_global||), `metrics/<stage>_drift.png` and `models/<stage>.json` (the final weights of every seed).
`radlang render --target flower` emits the same rounds as a Flower app (radlang/backends/render/flower.py).

Features are standardised with the federation-wide mean and SD computed from each site's case count and per-feature
sums (`standardize: federated`), so no case leaves its site for that either.

A network model declared as for `evaluate` (`cnn` on image patches, optionally joined with a tabular branch, or
`multitask`) is trained the same way when it is the input (radlang/ops/fed_networks.py): its own module, loss and
training loop; only its tabular branch is standardised (federated); a multi-task model's head targets are fixed for
the federation from what the sites share (their classes, a continuous head's sums).

    model fused = cnn(both, target: north.outcome, network: enc) { hidden: 8 }
    federate fed = fedavg(fused) {
      clients: [north.outcome, south.outcome, east.outcome]     # one cohort per site; `both` is computed at each
      tests: [north_test.outcome, south_test.outcome, east_test.outcome]
      rounds: 5, batch: 8
    }
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from radlang.ops.fed_engine import (
    client_seed,
    client_update,
    fed_loss,
    fed_model,
    federated_rounds,
    federation_scaling,
    get_weights,
    pick_clients,
    pooled_scaling,
    predict_scores,
    score_metric,
    server_update,
    set_weights,
    site_moments,
    stop_message,
    weight_distance,
    weighted_average,
)
from radlang.ops.fed_networks import (
    engine_parts,
    federation_heads,
    net_arrays,
    net_factory,
    net_loss,
    net_scores,
    net_target,
    net_update,
    proximal_backward,
)
from radlang.ops.multitask import head_losses, multitask_backward, multitask_module, pack_targets, segmentation_loss
from radlang.ops.net_models import TRAINING_HELPERS, fusion_module
from radlang.registry import Operator, Port, register
from radlang.types import RType
from radlang.values import Settings, Sym, contradiction

SERVER_OPTIMISERS = ("fedadam", "fedyogi", "fedadagrad")
MODEL_FOR = {"survival": "cox", "binary": "logistic", "multiclass": "logistic", "continuous": "linear"}
OUTCOMES_OF = {"cox": ("survival",), "logistic": ("binary", "multiclass"), "linear": ("continuous",)}


class FedSettings(Settings):
    by: str = Field("site", description="the cohort attribute whose values are the federation's clients (only `site`)")
    model: Literal["linear", "logistic", "cox"] | None = Field(
        None, description="the torch model: linear regression, logistic regression or a linear Cox model (default: from the outcome)")
    strategy: Literal["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad"] = Field(
        "fedavg", description="server aggregation: FedAvg (weighted by cases), FedProx, or a server optimiser (Reddi et al.)")
    rounds: int = Field(20, ge=1, description="communication rounds")
    local_epochs: int = Field(1, ge=1, description="local epochs per round")
    batch: int = Field(16, ge=0, description="local mini-batch size (0: a site's whole data)")
    lr: float | None = Field(None, gt=0, description="the clients' SGD learning rate (default 0.01; a network model trains with its own optimiser and `lr`)")
    mu: float | None = Field(None, ge=0, description="FedProx's proximal weight (only with `strategy: fedprox`; default 0.01)")
    server_lr: float | None = Field(None, gt=0, description="the server optimiser's learning rate eta (Flower's default per strategy)")
    beta_1: float | None = Field(None, ge=0, lt=1, description="server momentum (FedAdam, FedYogi)")
    beta_2: float | None = Field(None, ge=0, lt=1, description="server second-moment decay (FedAdam, FedYogi)")
    tau: float | None = Field(None, gt=0, description="the server optimiser's adaptivity (epsilon)")
    fraction: float = Field(1.0, gt=0, le=1, description="the fraction of sites sampled each round")
    min_clients: int | None = Field(None, ge=1, description="a round goes on while this many sampled sites succeed (default: all)")
    seeds: list[int] | None = Field(None, description="seeds to repeat the study with (default: the stage seed)")
    standardize: Literal["federated", "none"] = Field("federated", description="z-score features with the federation's mean and SD (from per-site sums)")
    references: bool = Field(True, description="also train the centralised (pooled) and local-only reference models")
    clients: list[str] | None = Field(None, description=("one cohort per site, as their outcomes: `[north.outcome, south.outcome]`; "
                                                         "each cohort is a client named after it (instead of a `site` column)"))
    tests: list[str] | None = Field(None, description="with `clients`: each client's held-out test cohort, in the same order (`[north_test.outcome, ...]`)")

    @field_validator("clients", "tests", mode="before")
    @classmethod
    def _refs(cls, v):
        return [str(x) for x in v] if isinstance(v, list) else v

    @field_validator("by", "model", "strategy", mode="before")
    @classmethod
    def _sym(cls, v):
        return str(v) if isinstance(v, Sym) else v

    @field_validator("standardize", mode="before")
    @classmethod
    def _none(cls, v):
        return "none" if v is None else (str(v) if isinstance(v, Sym) else v)   # `standardize: none` reads as the none value

    @model_validator(mode="after")
    def _strategy_settings(self):
        if self.mu is not None and self.strategy != "fedprox":
            raise contradiction(f"`mu` is FedProx's proximal weight; it has no meaning with `strategy: {self.strategy}`")
        server = [k for k in ("server_lr", "beta_1", "beta_2", "tau") if getattr(self, k) is not None]
        if server and self.strategy not in SERVER_OPTIMISERS:
            raise contradiction(f"{', '.join(f'`{k}`' for k in server)}: server optimiser settings need "
                                f"`strategy: fedadam`, `fedyogi` or `fedadagrad`, not `{self.strategy}`")
        return self


# ----------------------------------------------------------------------------------------------
# self-contained implementation


def fed_params(params):
    """The plain settings completed with the strategy's server defaults (Flower's FedAdam, FedYogi and FedAdagrad
    defaults, flwr.server.strategy) and FedProx's mu."""
    defaults = {"fedadam": {"server_lr": 0.1, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-9},
                "fedyogi": {"server_lr": 0.01, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3},
                "fedadagrad": {"server_lr": 0.1, "beta_1": 0.0, "beta_2": 0.0, "tau": 1e-9}}.get(params["strategy"], {})
    out = dict(params)
    for k, v in defaults.items():
        if out.get(k) is None:
            out[k] = v
    if params["strategy"] == "fedprox" and out.get("mu") is None:
        out["mu"] = 0.01
    if out.get("lr") is None and out.get("model") not in ("cnn", "multitask"):   # a network model's optimiser has its own
        out["lr"] = 0.01
    return out


def site_clients(cohort, feats, kind, outcome, role, case_ids=None):
    """Split a cohort table and its feature table into clients {site: (X, y)} (sites by name, cases in table order).
    Returns (clients, columns, problems): problems are dicts {code, site, case, message} for a missing or empty site,
    one site only, a site without cases, cases with a missing or non-finite feature value (nothing is imputed: one NaN
    would reach the federation's mean and SD), and (training) a site with one outcome class or no event. `case_ids`,
    when given (a dict), receives each site's case ids in the order of its rows."""
    import numpy as np

    problems = []
    if "site" not in cohort.columns:
        return {}, [], [{"code": "E610", "message": f"the {role} cohort has no site column"}]
    ids = cohort["case_id"].astype(str)
    sites = cohort["site"].fillna("").astype(str).str.strip()
    for cid in ids[sites == ""]:
        problems.append({"code": "E610", "case": cid, "message": "no site"})
    feats = feats.set_axis(feats.index.astype(str), axis=0)
    columns = [str(c) for c in feats.columns]
    clients = {}
    out_cols = ["time", "event"] if outcome == "survival" else ["outcome"]
    for site in sorted(set(sites) - {""}):
        rows = cohort[(sites == site).to_numpy()]
        rows = rows[rows["case_id"].astype(str).isin(feats.index)]
        if len(rows) == 0:
            problems.append({"code": "E612", "site": site, "message": f"no {role} case has features"})
            continue
        X = feats.loc[rows["case_id"].astype(str)].to_numpy(dtype=np.float64)
        y = rows[out_cols].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(X)
        for r in np.flatnonzero(bad.any(axis=1)):
            cols = [columns[j] for j in np.flatnonzero(bad[r])]
            problems.append({"code": "E614", "site": site, "case": str(rows["case_id"].iloc[r]),
                             "message": f"no finite value in {', '.join(f'`{c}`' for c in cols[:5])}"
                                        + (f" and {len(cols) - 5} more column(s)" if len(cols) > 5 else "")})
        if case_ids is not None:
            case_ids[site] = list(rows["case_id"].astype(str))
        if role == "training":
            if kind == "logistic" and len(np.unique(y)) < 2:
                problems.append({"code": "E613", "site": site, "message": f"every training case has outcome {y[0, 0]:g}: one class only"})
            if kind == "cox" and y[:, 1].sum() == 0:
                problems.append({"code": "E613", "site": site, "message": "no training case has an event"})
        clients[site] = (X, y)
    if role == "training" and len(clients) == 1:
        problems.append({"code": "E611", "site": next(iter(clients)), "message": "is the only site: a federation needs two or more"})
    return clients, columns, problems


def evaluate_sites(kind, make, weights, test, predict=None):
    """Test metrics of one model: per site (its own test cases) and pooled (every test case). `predict(make, weights,
    X)` gives the scores (predict_scores unless given: a network's, radlang/ops/fed_networks.py `net_scores`)."""
    import numpy as np

    predict = predict or predict_scores
    per = {s: score_metric(kind, y, predict(make, weights, X)) for s, (X, y) in sorted(test.items())}
    if not test:
        return {"sites": {}, "pooled": None}
    X = np.concatenate([X for _, (X, _) in sorted(test.items())])
    y = np.concatenate([y for _, (_, y) in sorted(test.items())])
    return {"sites": per, "pooled": score_metric(kind, y, predict(make, weights, X))}


def federated_study(clients, test, kind, n_outputs, params, seeds, clock=None, net=None):
    """The whole simulated study: standardise with the federation's moments, then for every seed the federated rounds,
    and (with `references`) centralised training on the pooled training cases and local training at every site, on the
    same budget (rounds x local_epochs local epochs); each model is scored on every site's test cases and on all of them.
    `net` (radlang/ops/fed_networks.py): a torch network trained by its own loop instead of the linear model of `kind`
    (which then names the metric); only its tabular columns are standardised, its image columns (the first
    net["n_image"]) are left as they are.
    Returns {"scaling", "moments", "seeds": [{seed, federated, centralised, local, history, weights}]}, or {"stopped": ...}
    when a round of some seed had fewer successful clients than `min_clients`."""
    import numpy as np

    params = fed_params(params)
    skip = int(net["n_image"]) if net else 0
    moments = {s: site_moments(X[:, skip:]) for s, (X, _) in sorted(clients.items())}
    width = len(next(iter(clients.values()))[0][0])
    mean, sd = federation_scaling(list(moments.values()), skip, params["standardize"], width - skip)
    clients = {s: ((X - mean) / sd, y) for s, (X, y) in clients.items()}
    test = {s: ((X - mean) / sd, y) for s, (X, y) in test.items()}
    make, loss, update, predict = engine_parts(kind, width, n_outputs, net)
    plain = {**params, "strategy": "fedavg", "fraction": 1.0, "min_clients": None}
    runs = []
    for seed in seeds:
        fed = federated_rounds(clients, make, loss, params, seed, clock=clock, update=update)
        if "stopped" in fed:
            return {"stopped": {**fed["stopped"], "seed": int(seed)}}
        row = {"seed": int(seed), "federated": evaluate_sites(kind, make, fed["weights"], test, predict), "history": fed["history"],
               "weights": [w.tolist() for w in fed["weights"]]}
        if params["references"]:
            pooled = {"pooled": (np.concatenate([X for _, (X, _) in sorted(clients.items())]),
                                 np.concatenate([y for _, (_, y) in sorted(clients.items())]))}
            cen = federated_rounds(pooled, make, loss, plain, seed, update=update)
            row["centralised"] = evaluate_sites(kind, make, cen["weights"], test, predict)
            row["local"] = {s: evaluate_sites(kind, make, federated_rounds({s: clients[s]}, make, loss, plain, seed, update=update)["weights"],
                                              test, predict)
                            for s in sorted(clients)}
        runs.append(row)
    return {"scaling": {"mean": [float(v) for v in mean], "sd": [float(v) for v in sd]},
            "moments": {s: {"n": m["n"]} for s, m in moments.items()}, "seeds": runs}


def summarise(study, metric):
    """Mean, minimum and maximum over seeds of every model's pooled test metric (the rows of the benchmark table)."""
    rows = {}

    def add(name, ev):
        if ev["pooled"] is not None:
            rows.setdefault(name, []).append(ev["pooled"])

    for r in study["seeds"]:
        add("federated", r["federated"])
        if "centralised" in r:
            add("centralised", r["centralised"])
            for s, ev in r["local"].items():
                add(f"local {s}", ev)
    return {k: {"metric": metric, "mean": sum(v) / len(v), "min": min(v), "max": max(v), "seeds": len(v)} for k, v in rows.items()}


def drift_plot(study, title):
    """PNG bytes: per round, each client's drift ||w_k - w_global|| and local loss (the first seed's run). Fixed size,
    dpi and no metadata, so the same history gives the same bytes."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hist = study["seeds"][0]["history"]
    sites = sorted({s for h in hist for s in h["clients"]})
    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    for i, (key, label) in enumerate((("drift", "drift ||w_k - w_global||"), ("loss", "local training loss"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for s in sites:
            pts = [(h["round"], h["clients"][s][key]) for h in hist if s in h["clients"]]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=f"site {s}")
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return buf.getvalue()


def boundary_record(study, params, n_tabular):
    """What crossed the privacy boundary in the federated protocol, and what the simulation pooled for evaluation only.
    n_tabular: the features standardised with federated statistics."""
    import numpy as np

    width = sum(int(np.size(w)) for w in study["seeds"][0]["weights"])
    rounds = [{"round": h["round"], "sites": sorted(h["clients"])} for h in study["seeds"][0]["history"]]
    return {
        "server_to_clients": f"the global weights ({width} numbers) at the start of every round",
        "clients_to_server": "per round and site: the locally trained weights, the site's case count and its mean local loss",
        "standardisation": (f"per site: the case count and the sums of x and x^2 of {n_tabular} feature(s)"
                            if params["standardize"] == "federated" and n_tabular else "nothing"),
        "case_level_data": "none",
        "rounds": rounds,
        "simulation_only": ("the pooled test metric and the centralised reference pool case-level test predictions or training "
                            "cases; they are benchmark references computed in the simulation, not part of the federated protocol"),
    }


# what a federated network adds to the engine: radlang/ops/fed_networks.py and the network operators' own code
NETWORK_ENGINE = (net_factory, net_loss, net_arrays, net_target, proximal_backward, net_update, net_scores, federation_heads,
                  engine_parts, fusion_module, multitask_module, head_losses, segmentation_loss, multitask_backward, pack_targets) + TRAINING_HELPERS

# ----------------------------------------------------------------------------------------------
# declarations

NETWORK_MODELS = {"cnn model": "cnn", "multitask model": "multitask"}   # a model input's type detail -> the operator


def client_cohorts(entries) -> list[str]:
    """The cohorts of `clients:` / `tests:` entries (`north.outcome` -> `north`)."""
    return [str(e).split(".", 1)[0] for e in entries or []]


def _client_checks(ctx, s, cohort, outcome):
    """`clients:` and `tests:` (one cohort per site): E544-E549. Returns the outcome the clients share (or None)."""
    clients, tests = client_cohorts(s.clients), client_cohorts(s.tests)
    for key, entries in (("clients", s.clients or []), ("tests", s.tests or [])):
        for e in entries:
            if not str(e).endswith(".outcome") or str(e).count(".") != 1:
                ctx.error("E547", f"`{key}` lists `{e}`: a client is a cohort's outcome", setting=key,
                          hint=f"write `{str(e).split('.', 1)[0]}.outcome`: the cohort's cases and outcome are the client's data")
    if s.tests is not None and s.clients is None:
        ctx.error("E549", "`tests` pairs test cohorts with `clients`, and there are no `clients`", setting="tests",
                  hint="list one cohort per site as `clients: [...]`, or give one test cohort with a site column as `test:`")
    if s.clients is None:
        return None
    seen = set()
    for c in clients + tests:
        if c in seen:
            ctx.error("E544", f"cohort `{c}` is listed twice among the clients and their test cohorts", setting="tests" if c in tests else "clients",
                      hint="each site is one cohort, and its test cohort is another")
        seen.add(c)
    if len(set(clients)) < 2:
        ctx.error("E546", f"a federation needs two or more client cohorts; `clients` lists {len(set(clients))}", setting="clients",
                  hint="list one cohort per site, or train centrally")
    if s.tests is not None and len(tests) != len(clients):
        ctx.error("E549", f"`tests` lists {len(tests)} cohort(s) for {len(clients)} client(s)", setting="tests",
                  hint="give each client its test cohort, in the order of `clients`")
    if ctx.inputs.get("test") is not None and s.tests is not None:
        ctx.error("E549", "both `test` and `tests` are given", port="test", hint="with `clients`, give each client its test cohort in `tests`")
    if cohort and cohort not in clients:
        ctx.error("E548", f"the federated model's features and target come from cohort `{cohort}`, which is not one of its clients",
                  setting="clients", hint=f"declare the features on one of the clients ({', '.join(f'`{c}`' for c in clients)}): "
                  "the same recipe is computed at every client on its own cases")
    kinds = {c: getattr(ctx.types.get(c), "outcome", None) for c in clients + tests}
    want = outcome or kinds.get(clients[0])
    for c, k in kinds.items():
        if k and want and k != want:
            ctx.error("E545", f"client cohort `{c}` has a {k} outcome, the federation a {want} one", setting="tests" if c in tests else "clients",
                      hint="every client trains the same model: give the cohorts the same outcome")
    for c in clients + tests:
        t = ctx.types.get(c)
        first = ctx.types.get(clients[0])
        if t is not None and first is not None and (t.dims, t.channels) != (first.dims, first.channels):
            ctx.error("E545", f"client cohort `{c}` has {t.channels or 0} image channel(s) of {t.dims or 0}D, `{clients[0]}` "
                      f"{first.channels or 0} of {first.dims or 0}D", setting="tests" if c in tests else "clients",
                      hint="every client computes the same features: give the cohorts the same image columns")
    return want


def _fed_type(ctx) -> RType:
    src, tgt, s = ctx.inputs["input"], ctx.inputs.get("target"), ctx.settings
    if s.by != "site":
        ctx.error("E335", f"`by: {s.by}`: the federation's clients are the cohort's sites", setting="by", hint="write `by: site`")
    network = None
    if src.kind == "Model":
        network = NETWORK_MODELS.get(src.detail or "")
        if network is None:
            ctx.error("E541", f"`fedavg` trains a network model (`cnn`, `multitask`) or a feature table, not a {src.detail or src.describe()}",
                      port="input", hint="pass the model's feature table and target: `fedavg(features, target: cohort.outcome) { model: ... }`")
        given = [f"`{k}`" for k in ("model", "lr") if getattr(s, k) is not None] + (["`target`"] if tgt is not None else [])
        if given:
            ctx.error("E542", f"{', '.join(given)}: the {src.detail} that `{ctx.stmt.name}` trains declares its own target, optimiser "
                      "and learning rate", setting="model" if s.model is not None else ("lr" if s.lr is not None else None),
                      port="target" if tgt is not None and s.model is None and s.lr is None else None,
                      hint="set them on the `cnn` or `multitask` model; `fedavg` sets the rounds, local epochs, batch and strategy")
        if s.batch == 1:
            ctx.error("E543", "`batch: 1` with a network: batch normalisation needs two cases per step", setting="batch",
                      hint="use `batch: 2` or more, or `batch: 0` (a site's whole data per step)")
        cohort, outcome = src.cohort, src.outcome
    else:
        if tgt is None and s.clients is None:
            ctx.error("E547", "a federated feature table needs its target: `target: <cohort>.outcome`, or one cohort per site in `clients`",
                      port="input", hint="write `fedavg(features, target: train.outcome)`")
        if tgt is not None:
            ctx.mixed_cohorts(src, tgt)
        cohort = tgt.cohort if tgt is not None else src.cohort
        outcome = tgt.outcome if tgt is not None else None
    shared = _client_checks(ctx, s, cohort, outcome)
    outcome = outcome or shared
    if network is None:
        model = s.model or MODEL_FOR.get(outcome or "", "linear")
        if outcome and outcome not in OUTCOMES_OF[model]:
            ctx.error("E285", f"a federated `{model}` model cannot fit a {outcome} outcome", setting="model",
                      hint=f"for a {outcome} outcome use `model: {MODEL_FOR[outcome]}`")
    coh = ctx.types.get(cohort) if cohort else None
    untargeted = network is None and src.kind != "Model" and tgt is None and s.clients is None   # E547 said it
    if coh is not None and not coh.has_site and s.clients is None and not untargeted:
        ctx.error("E286", f"federated training needs sites, but cohort `{cohort}` has no site column", port="target" if tgt is not None else "input",
                  hint=f"add `site: <column>` to cohort `{cohort}` (each site is a client), or list one cohort per site as `clients`")
    test = ctx.inputs.get("test")
    if test is not None:
        if test.outcome != outcome:
            ctx.error("E287", f"the test cohort `{test.cohort}` has {'no' if not test.outcome else 'a ' + test.outcome} outcome, "
                      f"but the model is trained on a {outcome} outcome", port="test")
        if not test.has_site:
            ctx.error("E286", f"per-site test metrics need sites, but the test cohort `{test.cohort}` has no site column", port="test",
                      hint=f"add `site: <column>` to cohort `{test.cohort}`")
        if test.cohort == cohort or test.cohort in client_cohorts(s.clients):
            ctx.error("E288", f"`{test.cohort}` is both a training and the test cohort", port="test",
                      hint="name a held-out cohort of the same sites as `test`")
    what = network or s.model or MODEL_FOR.get(outcome or "", "linear")
    return RType("TrainedModel", cohort=cohort, outcome=outcome, has_site=True, detail=f"federated {what} ({s.strategy})")


def _plan(stage, memory, study=None):
    p = fed_params(stage.params)
    seeds = p.get("seeds") or [stage.seed]
    runs = 1 + (2 if p["references"] else 0)
    lines = [("info", (f"{p['strategy']}: {p['rounds']} rounds x {p['local_epochs']} local epoch(s) per site, {len(seeds)} seed(s); "
                       f"{'centralised and local-only references on the same budget' if p['references'] else 'no references'} "
                       f"(about {runs}x the federated training time)"))]
    if p.get("clients"):
        lines.append(("info", f"clients: {', '.join(client_cohorts(p['clients']))} (one cohort per site)"))
    return lines


def network_training(stage, hyper) -> str:
    """What a `fedavg` stage does to the network model it trains (`hyper`: that model's settings), for the model's
    `plan`: net_update's local training, from the global weights every round, on all of a site's cases (no inner
    validation split, so no early stopping), with a fresh optimiser and learning-rate schedule each round."""
    p = fed_params(stage.params)
    batch = f"mini-batches of {p['batch']}" if p["batch"] else "one batch of the site's cases"
    prox = f", FedProx's proximal term (mu {p['mu']:g})" if p["strategy"] == "fedprox" else ""
    return (f"trained by `{stage.name}` ({p['strategy']}): {p['rounds']} rounds x {p['local_epochs']} local epoch(s) at each site "
            f"on all its cases in {batch}, from the global weights with a fresh {hyper['optimizer']} optimiser (lr {float(hyper['lr']):g}) "
            f"and `{hyper['schedule']}` schedule each round{prox}; no early stopping")


def federated_batch(stage, hyper) -> int:
    """The mini-batch a `fedavg` stage trains a network model in (its own `batch`; 0, a site's cases at once, is planned
    at the model's own `batch`: the site sizes are known only at run time)."""
    return int(fed_params(stage.params)["batch"]) or int(hyper["batch"])


def federated_tabular(stage) -> str:
    """How a `fedavg` stage prepares a network model's tabular columns, for the model's `plan` (federated_study)."""
    if fed_params(stage.params)["standardize"] == "federated":
        return f"standardised by `{stage.name}` with the federation's mean and SD (from per-site sums), not imputed"
    return f"used by `{stage.name}` as they are (`standardize: none`), not imputed"


def sources(stage, ctx):
    """(the feature stage, the network model stage or None, the cohort the features are declared on)."""
    by = ctx.study.by_name()
    first = by[stage.inputs["input"].stage]
    if first.kind == "model":
        return by[first.inputs["input"].stage], first, first.type.cohort
    return first, None, first.type.cohort


def model_kind(stage, model_stage=None):
    """The model a federated stage trains (`cnn` and `multitask` for a network model) and the kind of its test metric
    (score_metric's `cox`, `logistic` or `linear`)."""
    if model_stage is not None:
        if model_stage.op == "multitask":
            from radlang.ops.multitask import head_specs

            primary = next(h for h in head_specs(model_stage.params["heads"]) if h["primary"])
            return "multitask", "cox" if primary["kind"] == "survival" else "logistic"
        return model_stage.op, "logistic"
    kind = stage.params.get("model") or MODEL_FOR.get(stage.type.outcome or "", "linear")
    return kind, kind


def stage_clients(stage, ctx):
    """The stage's training and test clients from its inputs' results: (clients, test, feature columns, model outputs,
    net). Clients are the sites of the cohort's `site` column, or (`clients:`) one cohort per site, each named after
    its cohort, whose features are the same recipe computed on its own cases. net: the network (radlang/ops/
    fed_networks.py) of a `cnn` or `multitask` input, its columns ordered image first, else None. Bad sites stop the run
    with E610-E613, naming the cohort and the site (or case); a client cohort whose features have other columns, E545."""
    from radlang.backends.executor import RunError
    from radlang.backends.refit import features_for
    from radlang.diagnostics import Diagnostic
    from radlang.ops.net_models import split_columns

    hints = {"E610": "give every case a site (the `site:` column of the cohort)",
             "E611": "a federation needs two or more sites; train centrally instead",
             "E612": "give the site training cases, or leave it out of the test cohort",
             "E613": "a site's local training needs both outcome classes (events for a Cox model): merge it with another site or leave it out",
             "E614": "fill the value at its site (the federation imputes nothing), or leave the case or the column out",
             "E545": "every client computes the same features: give the cohorts the same columns"}

    def fail(problems, cohort_label):
        diags = []
        for q in problems:
            where = ", ".join(x for x in (f"site `{q['site']}`" if q.get("site") else "", f"case `{q['case']}`" if q.get("case") else "") if x)
            name = q.get("cohort", cohort_label)
            source = ctx.results[name].attrs.get("radlang", {}).get("source") if name in ctx.results else None
            cohort = f"cohort `{name}`" + (f" ({source})" if source and q["code"] == "E614" else "")
            diags.append(Diagnostic(q["code"], f"`{stage.name}`: {cohort}: {where + ': ' if where else ''}{q['message']}",
                                    stage.span, hint=hints[q["code"]]))
        raise RunError(diags)

    outcome = stage.type.outcome
    feat_stage, model_stage, cohort_name = sources(stage, ctx)
    kind = model_kind(stage, model_stage)[1]
    columns = [str(c) for c in ctx.results[feat_stage.name].columns]
    if model_stage is not None:
        vox, _, tab = split_columns(columns)
        columns = vox + tab

    def table(name):
        """A cohort's feature table, in the federation's columns (E545 when it has others)."""
        feats = ctx.results[feat_stage.name] if name == cohort_name else features_for(ctx, feat_stage, ctx.results[name])
        have = [str(c) for c in feats.columns]
        missing, extra = [c for c in columns if c not in have], [c for c in have if c not in columns]
        if missing or extra:
            fail([{"code": "E545", "cohort": name, "message": "its features differ from those of `" + cohort_name + "`: "
                   + "; ".join(x for x in (f"missing {', '.join(missing[:5])}" if missing else "",
                                           f"extra {', '.join(extra[:5])}" if extra else "") if x)}], name)
        return feats.set_axis(have, axis=1)[columns]

    ids, clients, test, problems = {}, {}, {}, []
    named = client_cohorts(stage.params.get("clients"))
    if named:
        tests = client_cohorts(stage.params.get("tests"))
        for i, c in enumerate(named):
            got, _, probs = site_clients(ctx.results[c].assign(site=c), table(c), kind, outcome, "training", ids)
            clients.update(got)
            problems += [{**q, "cohort": c} for q in probs if q["code"] != "E611"]   # one site per cohort, by construction
            if i < len(tests):
                got, _, probs = site_clients(ctx.results[tests[i]].assign(site=c), table(tests[i]), kind, outcome, "test")
                test.update(got)
                if probs:
                    fail(probs, tests[i])
        if problems:
            fail(problems, named[0])
    else:
        clients, _, problems = site_clients(ctx.results[cohort_name], table(cohort_name), kind, outcome, "training", ids)
        if problems:
            fail(problems, cohort_name)
    test_ref = stage.inputs.get("test")
    if test_ref is not None:
        test, _, problems = site_clients(ctx.results[test_ref.stage], table(test_ref.stage), kind, outcome, "test")
        problems += [{"code": "E612", "site": s, "message": f"has test cases in `{test_ref.stage}` but no training case in `{cohort_name}`"}
                     for s in sorted(set(test) - set(clients))]
        if problems:
            fail(problems, test_ref.stage)
    n_outputs = 1 if kind != "logistic" or outcome == "binary" else int(max(y.max() for _, y in clients.values())) + 1
    net = None
    if model_stage is not None:
        net = network_of(stage, ctx, model_stage, columns, clients, ids, max(n_outputs, 2))
    return clients, test, columns, n_outputs, net


def network_of(stage, ctx, model_stage, columns, clients, ids, n_classes):
    """The federated network of a `cnn` or `multitask` model stage (radlang/ops/fed_networks.py's `net`); for a
    multi-task model the clients' targets become the packed heads' targets (each site's own cases, with the heads'
    classes and standardisation fixed for the federation). Column problems of a head are the model's E536 / E537."""
    from radlang.backends.executor import RunError
    from radlang.ops.fed_networks import federation_heads
    from radlang.ops.multitask import head_specs, multitask_fold_data, pack_targets
    from radlang.ops.net_models import split_columns

    by = ctx.study.by_name()
    net_stage = by[model_stage.inputs["network"].stage]
    vox, shape, tab = split_columns(columns)
    net = {"op": model_stage.op, "spec": {"arch": net_stage.op, "params": net_stage.params}, "hyper": dict(model_stage.params),
           "shape": shape, "n_image": len(vox), "n_tab": len(tab), "n_outputs": n_classes}
    if model_stage.op != "multitask":
        return net
    named = client_cohorts(stage.params.get("clients"))
    values = {}
    for c in named or [sources(stage, ctx)[2]]:
        data = ctx.results[c]
        got, diags = multitask_fold_data(model_stage, data, None, [])
        if diags:
            raise RunError(diags)
        for site, case_ids in ids.items():
            if named and site != c:
                continue
            values[site] = {h: {i: v[i] for i in case_ids if i in v} for h, v in got["heads"].items()}
    heads = federation_heads(head_specs(model_stage.params["heads"]), [values[s] for s in sorted(values)])
    for site, (X, _) in list(clients.items()):
        clients[site] = (X, pack_targets(heads, values[site], ids[site])[0])
    net["heads"] = heads
    return net


def run_fedavg(stage, ctx):
    """Simulate the federation (cached by content), write the metrics JSON, the drift plot and the final weights."""
    from radlang.backends.cache import atomic_write_bytes, atomic_write_text
    from radlang.backends.executor import RunError
    from radlang.diagnostics import Diagnostic
    from radlang.ops.netio import metrics_json

    p = stage.params
    outcome = stage.type.outcome
    _, model_stage, _ = sources(stage, ctx)
    model, kind = model_kind(stage, model_stage)

    clients, test, columns, n_outputs, net = stage_clients(stage, ctx)
    seeds = p.get("seeds") or [stage.seed]
    k = ctx.stage_key(stage, *[ctx.keys.get(c) for c in client_cohorts(p.get("clients")) + client_cohorts(p.get("tests"))])
    study = ctx.cache.get(k)
    if study is None:
        study = federated_study(clients, test, kind, n_outputs, {**p, "model": model}, seeds, net=net)
        if "stopped" in study:
            raise RunError([Diagnostic("E690", f"`{stage.name}`: seed {study['stopped']['seed']}, {stop_message(study['stopped'])}", stage.span,
                                       hint="fix the failing site's data, or lower `min_clients` to let rounds go on without it")])
        ctx.cache.put(k, study)
    ctx.keys[stage.name] = k
    for r in study["seeds"]:
        for h in r["history"]:
            for site, msg in h["failed"].items():
                ctx.warn("W690", f"`{stage.name}`: seed {r['seed']}, round {h['round']}: site `{site}` failed ({msg}); "
                         f"the round went on with {len(h['clients'])} site(s)")
    metric = {"cox": "c_index", "logistic": "auc", "linear": "rmse"}[kind]
    full = fed_params({**p, "model": model})
    n_tab = net["n_tab"] if net else len(columns)
    record = {"stage": stage.name, "model": model, "metric": metric, "outcome": outcome, "features": columns,
              "settings": {k2: full.get(k2) for k2 in sorted(full)}, "sites": study["moments"], "scaling": study["scaling"],
              "summary": summarise(study, metric), "seeds": study["seeds"],
              "boundary": boundary_record(study, full, n_tab)}
    if net:
        record["network"] = {k2: net[k2] for k2 in ("op", "spec", "shape", "n_image", "n_tab") if k2 in net}
    ctx.boundary[stage.name] = record["boundary"]
    atomic_write_text(ctx.out / "metrics" / f"{stage.name}_federated.json", metrics_json(record))
    atomic_write_bytes(ctx.out / "metrics" / f"{stage.name}_drift.png",
                       drift_plot(study, f"{stage.name}: {full['strategy']}, seed {study['seeds'][0]['seed']}"))
    atomic_write_text(ctx.out / "models" / f"{stage.name}.json",
                      metrics_json({"model": model, "features": columns, "scaling": study["scaling"], "n_outputs": n_outputs,
                                    "weights": {str(r["seed"]): r["weights"] for r in study["seeds"]}}))
    fed = record["summary"].get("federated")
    if fed is not None:
        ctx.summary.append(f"{stage.name}: {full['strategy']} pooled-test {metric} {fed['mean']:.3f} (min {fed['min']:.3f}, "
                           f"{fed['seeds']} seed(s))")
    return record


# ----------------------------------------------------------------------------------------------
# the Flower target (`radlang render --target flower`, radlang/backends/render/flower.py)

FLOWER_ENGINE = (fed_params, fed_model, fed_loss, get_weights, set_weights, client_seed, client_update, weighted_average,
                 server_update, pick_clients, weight_distance, federated_rounds, stop_message, site_moments, pooled_scaling,
                 federation_scaling, predict_scores, score_metric) + NETWORK_ENGINE


def flower_app(stage, ctx, site_data=False):
    """The stage as a Flower app: {relative path: text}, from a run context in which its upstream stages ran (they give
    the feature columns and the sites). The engine is the source of the very functions the simulation runs
    (FLOWER_ENGINE, with the network operators' code a `cnn` or `multitask` model trains with), so both targets compute
    the same numbers. With `site_data`, each site's training and test cases
    are added as `sites/<site>/train.csv` and `test.csv`: the files its SuperNode reads (for a deployment on one
    machine; at real sites each hospital writes its own)."""
    import inspect
    import json
    from pathlib import Path

    here = Path(__file__).parent / "_flower_app"
    _, model_stage, _ = sources(stage, ctx)
    model, kind = model_kind(stage, model_stage)
    out_cols = ["time", "event"] if stage.type.outcome == "survival" else ["outcome"]
    clients, test, columns, n_outputs, net = stage_clients(stage, ctx)
    width = len(next(iter(clients.values()))[1][0])
    target_cols = [f"target{j}" for j in range(width)] if net and net["op"] == "multitask" else out_cols   # packed heads' targets
    spec = {"stage": stage.name, "model": kind, "features": columns, "outcome_columns": out_cols, "target_columns": target_cols,
            "n_features": len(columns), "n_outputs": n_outputs, "net": net, "sites": sorted(clients),
            "seeds": list(stage.params.get("seeds") or [stage.seed]), "params": fed_params({**stage.params, "model": model})}
    engine = ['"""The federated engine of radlang (radlang/ops/fed_engine.py), inlined: the functions `radlang run` simulates with."""']
    engine += [inspect.getsource(f).rstrip("\n") for f in FLOWER_ENGINE]
    files = {"radlang_fed/__init__.py": '"""A federated radlang stage as a Flower app."""\n',
             "radlang_fed/engine.py": "\n\n\n".join(engine) + "\n",
             "radlang_fed/spec.json": json.dumps(spec, indent=1, sort_keys=True) + "\n",
             "radlang_fed/server_app.py": (here / "server_app.py").read_text(encoding="utf-8"),
             "radlang_fed/client_app.py": (here / "client_app.py").read_text(encoding="utf-8"),
             "pyproject.toml": FLOWER_PYPROJECT.format(name=stage.name.replace("_", "-"), extra=NETWORK_DEPENDENCIES.get(model, ""))}
    if site_data:
        for site, (X, y) in sorted(clients.items()):
            files[f"sites/{site}/train.csv"] = site_csv(X, y, columns, target_cols)
            if site in test:
                files[f"sites/{site}/test.csv"] = site_csv(*test[site], columns, out_cols)
    return files


NETWORK_DEPENDENCIES = {"cnn": ', "monai"', "multitask": ', "monai", "torchsurv", "torchjd"'}


def site_csv(X, y, columns, out_cols):
    """One site's cases as the CSV its ClientApp reads (17 significant digits: the same float64 values)."""
    import numpy as np
    import pandas as pd

    df = pd.DataFrame(np.column_stack([X, y]), columns=list(columns) + list(out_cols))
    return df.to_csv(index=False, float_format="%.17g", lineterminator="\n")


FLOWER_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "radlang-fed-{name}"
version = "1.0.0"
description = "A federated radlang stage as a Flower app (radlang render --target flower)"
dependencies = ["flwr>=1.42", "torch", "numpy", "pandas", "lifelines", "scikit-learn"{extra}]

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "radlang"

[tool.flwr.app.components]
serverapp = "radlang_fed.server_app:app"
clientapp = "radlang_fed.client_app:app"

[tool.flwr.app.config]
out = "result.json"
timeout = 600.0
"""


register(Operator(
    name="fedavg", kind="federate", output="TrainedModel", settings=FedSettings, fit="outcome",
    behaviour="fitted", run=run_fedavg, sink=True, plan=_plan,
    inputs=(Port("input", ("Features", "Model"), doc=("a feature table of the training cohort (e.g. `tabular(train)`), or a network "
                                                        "model (`cnn`, `multitask`) to train federated")),
            Port("target", ("Outcome",), optional=True,
                 doc="the training cohort's outcome, e.g. `train.outcome`; its `site` column defines the clients (a network model has its own)"),
            Port("test", ("Cohort",), optional=True, doc="a held-out cohort of the same sites: per-site and pooled test metrics")),
    positional=("input", "target"), infer=_fed_type, version="3", flower=flower_app,
    impl=federated_study,
    helpers=(fed_params, site_clients, evaluate_sites, summarise, drift_plot, boundary_record, fed_model, fed_loss, get_weights,
             set_weights, client_seed, client_update, weighted_average, server_update, pick_clients, weight_distance,
             federated_rounds, stop_message, site_moments, pooled_scaling, predict_scores, score_metric,
             federation_scaling) + NETWORK_ENGINE,
    doc=("Federated training across the cohort's sites, or across one cohort per site (`clients:`), each site a client that "
         "trains on its own cases: FedAvg, FedProx, FedAdam, FedYogi or FedAdagrad over linear, logistic or Cox models written "
         "as torch modules, or over a `cnn` (fusion) or `multitask` network model with its own training loop; per-site and "
         "pooled test metrics with centralised and local-only references, client drift per round; `render --target flower` "
         "emits a Flower app."),
    examples=("federate fed = fedavg(clin, target: train.outcome) { strategy: fedprox, mu: 0.1, rounds: 10 }",
              "federate fed = fedavg(clin, target: train.outcome) { strategy: fedadam, server_lr: 0.03, rounds: 10, seeds: [1, 2] }"),
))
