"""AutoML procedures that steer through the same verbs as humans.

Each procedure is incremental and keeps no state of its own: everything it needs (the
configs, their parameters, status and measured objectives, who stopped what) is read back
from the tables at every step, so a step can run any time, twice, or after a crash, and it
learns from configs that humans added, stopped or cloned. Steps run under a row lock on the
workload, so concurrent steps serialize and never duplicate a suggestion.

- ``hyperopt``: TPE (hyperopt's ``tpe.suggest`` driven with a ``Domain`` and a ``Trials``
  rebuilt from the tables); keeps ``parallelism`` configs in flight until ``num_configs``.
  Running configs are told as +inf loss (a pessimistic lie that spreads suggestions out).
- ``asha``: asynchronous successive halving over ``num_configs`` random configs; a config
  finishing a rung epoch (min_epochs * eta^k) continues only if it is in the top 1/eta of
  that rung so far, else it is stopped; stopped configs are resumed when they later rank in
  the top 1/eta. ``hyperband`` runs ASHA brackets with min_epochs * eta^s, s = 0..s_max.
- ``pbt``: every ``interval`` epochs a config in the bottom quantile is stopped and replaced
  by a clone of a top-quantile config with perturbed parameters.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np

from . import search, steering, store
from .errors import CerebroError

PROCEDURES = ("hyperopt", "asha", "hyperband", "pbt")
NOT_TOLD = "not_told"


# -- reading the tables ----------------------------------------------------------------------
def _configs(plpy: Any, w: store.Workload) -> list[dict[str, Any]]:
    """Configs with their best objective (as a loss: negated when maximised)."""
    out = store.config_summaries(plpy, w.workload_id)
    for d in out:
        d["loss"] = None if d["best"] is None else w.sign * d["best"]
    return out


def _objective_at(plpy: Any, w: store.Workload, epoch: int) -> dict[int, float]:
    """Each config's objective (as a loss) in its metrics row of ``epoch``."""
    return {
        k: w.sign * v
        for k, v in store.objectives_at(plpy, w.workload_id, w.objective, epoch).items()
    }


# -- options ------------------------------------------------------------------------------------
def check_options(
    procedure: str, options: dict[str, Any], max_epochs: int, n_partitions: int
) -> dict[str, Any]:
    """Validate and complete a procedure's options (stored in workloads.options)."""
    procedures: dict[str, dict[str, Any]] = {
        "hyperopt": {"parallelism": n_partitions, "n_startup_jobs": 5},
        "asha": {"min_epochs": 1, "eta": 3},
        "hyperband": {"min_epochs": 1, "eta": 3},
        "pbt": {
            "interval": 1,
            "quantile": 0.25,
            "perturb": [0.8, 1.2],
            "resample_probability": 0.25,
        },
    }
    known = procedures.get(procedure, {})
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise CerebroError(
            f"search {procedure!r} does not take option(s) {unknown}",
            hint=f"options of {procedure}: {', '.join(sorted(known)) or 'none'}",
        )
    out = {**known, **options}
    _check_option_values(out, max_epochs)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_option_values(out: dict[str, Any], max_epochs: int) -> None:
    """Each option's type and range, named with what is accepted."""
    for k in ("parallelism", "n_startup_jobs", "min_epochs", "eta", "interval"):
        if k in out and (not isinstance(out[k], int) or isinstance(out[k], bool) or out[k] < 1):
            raise CerebroError(f"option {k} must be a positive integer, got {out[k]!r}")
    if "eta" in out and out["eta"] < 2:
        raise CerebroError(
            f"option eta must be at least 2, got {out['eta']}",
            hint="eta is the halving rate: 3 keeps the top third at each rung",
        )
    if "min_epochs" in out and out["min_epochs"] > max_epochs:
        raise CerebroError(f"min_epochs ({out['min_epochs']}) exceeds max_epochs ({max_epochs})")
    q = out.get("quantile", 0.25)
    if not _is_number(q) or not 0 < q <= 0.5:
        raise CerebroError(f"option quantile must be a number in (0, 0.5], got {q!r}")
    p = out.get("resample_probability", 0.0)
    if not _is_number(p) or not 0 <= p <= 1:
        raise CerebroError(f"option resample_probability must be a number in [0, 1], got {p!r}")
    factors = out.get("perturb", [1.0])
    if (
        not isinstance(factors, list)
        or not factors
        or not all(_is_number(f) and f > 0 for f in factors)
    ):
        raise CerebroError(
            f"option perturb must be a non-empty list of positive numbers, got {factors!r}",
            hint="perturb => [0.8, 1.2] scales a cloned config's numbers by 0.8 or 1.2",
        )


# -- hyperopt TPE -------------------------------------------------------------------------------
def _hp_space(space: search.Space) -> dict[str, Any]:
    from hyperopt import hp

    out = {}
    for name, (prim, a) in space.entries.items():
        if prim == "choice":
            out[name] = hp.choice(name, list(range(len(a))))
        elif prim == "uniform":
            out[name] = hp.uniform(name, a[0], a[1])
        elif prim == "quniform":
            out[name] = hp.quniform(name, a[0], a[1], a[2])
        elif prim == "loguniform":
            out[name] = hp.loguniform(name, math.log(a[0]), math.log(a[1]))
        elif prim == "qloguniform":
            out[name] = hp.qloguniform(name, math.log(a[0]), math.log(a[1]), a[2])
        elif prim == "randint":
            out[name] = hp.randint(name, int(a[0]), int(a[1]))
    return out


def to_internal(space: search.Space, params: dict[str, Any]) -> tuple[dict | None, str | None]:
    """hyperopt's internal values of a config (choice -> index), or why it is outside."""
    vals: dict[str, Any] = {}
    for name, (prim, a) in space.entries.items():
        if name not in params:
            return None, f"parameter {name!r} is missing"
        v = params[name]
        if prim == "choice":
            if v not in a:
                return None, f"{name}={v!r} is not one of the choices {a}"
            vals[name] = a.index(v)
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return None, f"{name}={v!r} is not a number"
        low, high = a[0], a[1]
        if not low <= v <= high:
            return None, f"{name}={v!r} is outside [{low}, {high}]"
        vals[name] = v
    return vals, None


def from_internal(space: search.Space, vals: dict[str, Any]) -> dict[str, Any]:
    out = dict(space.fixed)
    for name, (prim, a) in space.entries.items():
        v = vals[name]
        if prim == "choice":
            out[name] = a[int(v)]
        elif prim == "randint":
            out[name] = int(v)
        elif prim in ("quniform", "qloguniform") and all(float(x).is_integer() for x in a):
            out[name] = round(float(v))
        else:
            out[name] = float(v)
    return out


def _trial_docs(
    plpy: Any,
    w: store.Workload,
    space: search.Space,
    domain: Any,
    trials: Any,
    configs: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Tell TPE every config so far (human ones too) as a finished hyperopt trial.

    A config outside the search space cannot be told; that is noted once as an event.
    Running configs are told as +inf loss, failed ones as failures.
    """
    from hyperopt import base

    already_noted = store.event_config_ids(plpy, w.workload_id, NOT_TOLD)
    docs = []
    for tid, c in enumerate(configs):
        vals, why = to_internal(space, c["params"])
        if vals is None:
            if c["config_id"] not in already_noted:
                store.record_event(
                    plpy,
                    NOT_TOLD,
                    workload_id=w.workload_id,
                    config_id=c["config_id"],
                    actor="automl:hyperopt",
                    detail={"reason": f"outside the search space: {why}"},
                )
            continue
        if c["status"] == "failed":
            result = {"status": base.STATUS_FAIL}
        elif c["loss"] is None or c["status"] == "active":
            result = {"status": base.STATUS_OK, "loss": float("inf")}
        else:
            result = {"status": base.STATUS_OK, "loss": float(c["loss"])}
        misc = {
            "tid": tid,
            "cmd": domain.cmd,
            "workdir": None,
            "idxs": {k: [tid] for k in vals},
            "vals": {k: [v] for k, v in vals.items()},
        }
        doc = trials.new_trial_docs([tid], [None], [result], [misc])[0]
        doc["state"] = base.JOB_STATE_DONE
        docs.append(doc)
    return docs


def _tpe_step(plpy: Any, w: store.Workload) -> int:
    from hyperopt import Domain, Trials, base, tpe

    space = search.parse_space(w.space, w.param_schema, w.fixed_params)
    opts = w.options
    configs = _configs(plpy, w)
    automl_made = sum(1 for c in configs if c["source"] == "automl")
    in_flight = sum(1 for c in configs if c["status"] == "active")
    budget = (w.num_configs or 0) - automl_made
    want = min(budget, opts["parallelism"] - in_flight)
    domain = Domain(lambda p: 0.0, _hp_space(space))
    trials = Trials()
    docs = _trial_docs(plpy, w, space, domain, trials, configs)
    if want <= 0:
        return 0
    if docs:
        trials.insert_trial_docs(docs)
        trials.refresh()
    for i in range(want):
        tid = len(configs) + i
        seed = int(np.random.default_rng([int(w.seed) % (2**63), tid]).integers(2**31 - 1))
        new = tpe.suggest([tid], domain, trials, seed, n_startup_jobs=opts["n_startup_jobs"])
        vals = {k: v[0] for k, v in new[0]["misc"]["vals"].items() if v}
        params = {
            **search.defaults(w.param_schema),
            **w.fixed_params,
            **from_internal(space, vals),
        }
        store.insert_config(plpy, w.workload_id, params, int(w.seed) * 1000 + tid)
        new[0]["result"] = {"status": base.STATUS_OK, "loss": float("inf")}
        new[0]["state"] = base.JOB_STATE_DONE
        trials.insert_trial_docs(new)
        trials.refresh()
    return want


# -- ASHA / Hyperband ---------------------------------------------------------------------------
def rungs(min_epochs: int, eta: int, max_epochs: int) -> list[int]:
    out, r = [], min_epochs
    while r < max_epochs:
        out.append(r)
        r *= eta
    return out


def _bracket_of(w: store.Workload, configs: list[dict[str, Any]], config_id: int) -> int:
    if w.search != "hyperband":
        return 0
    n = len(_brackets(w))
    ids = [c["config_id"] for c in configs]
    return ids.index(config_id) % n


def _brackets(w: store.Workload) -> list[int]:
    o = w.options
    out: list[int] = []
    m = o["min_epochs"]
    while m <= w.max_epochs or not out:  # s = 0 .. floor(log_eta(max / min))
        out.append(m)
        m *= o["eta"]
    return out


def _asha_on_epoch(plpy: Any, w: store.Workload, config_id: int, epoch: int) -> None:
    configs = _configs(plpy, w)
    me = next(c for c in configs if c["config_id"] == config_id)
    b = _bracket_of(w, configs, config_id)
    rs = rungs(_brackets(w)[b], w.options["eta"], me["max_epochs"])
    if epoch not in rs or me["status"] != "active":
        return
    # a human who resumed this config after AutoML stopped it has the last word at this rung
    if (me["last_actor"] or "").startswith("human:") and _human_resumed(plpy, config_id):
        return
    scores = {
        k: v for k, v in _objective_at(plpy, w, epoch).items() if _bracket_of(w, configs, k) == b
    }
    if config_id not in scores:
        return
    top = sorted(scores, key=lambda k: (scores[k], k))[: len(scores) // w.options["eta"]]
    if config_id not in top:
        store.set_status(plpy, config_id, "stopped")


def _human_resumed(plpy: Any, config_id: int) -> bool:
    last = store.last_stop_or_resume(plpy, config_id)
    return last is not None and last["action"] == "resume" and last["actor"].startswith("human:")


def _asha_step(plpy: Any, w: store.Workload) -> int:
    """Promote configs that ASHA stopped and that now rank in the top 1/eta of their rung."""
    configs = _configs(plpy, w)
    eta = w.options["eta"]
    promoted = 0
    for c in configs:
        if c["status"] != "stopped" or c["last_actor"] != f"automl:{w.search}":
            continue
        b = _bracket_of(w, configs, c["config_id"])
        rs = rungs(_brackets(w)[b], eta, c["max_epochs"])
        if c["epoch"] not in rs:
            continue
        scores = {
            k: v
            for k, v in _objective_at(plpy, w, c["epoch"]).items()
            if _bracket_of(w, configs, k) == b
        }
        top = sorted(scores, key=lambda k: (scores[k], k))[: len(scores) // eta]
        if c["config_id"] in top:
            store.set_status(plpy, c["config_id"], "active")
            promoted += 1
    return promoted


# -- PBT ----------------------------------------------------------------------------------------
def _pbt_on_epoch(plpy: Any, w: store.Workload, config_id: int, epoch: int) -> None:
    o = w.options
    if epoch % o["interval"] != 0 or epoch >= w.max_epochs:
        return
    configs = [c for c in _configs(plpy, w) if c["status"] in ("active", "completed")]
    latest = {}
    for c in configs:
        v = store.latest_objective(plpy, c["config_id"], w.objective)
        if v is not None:
            latest[c["config_id"]] = w.sign * v
    if config_id not in latest or len(latest) < 2:
        return
    ranked = sorted(latest, key=lambda k: (latest[k], k))
    cut = max(1, int(len(ranked) * o["quantile"]))
    if config_id not in ranked[-cut:]:
        return
    rng = random.Random(int(w.seed) * 7919 + config_id * 31 + epoch)
    donor = rng.choice(ranked[:cut])
    donor_params = next(c["params"] for c in configs if c["config_id"] == donor)
    space = search.parse_space(w.space, w.param_schema, w.fixed_params)
    new = _perturb(space, donor_params, o, rng)
    store.set_status(plpy, config_id, "stopped")
    steering.clone(plpy, donor, json.dumps(new), False, None, None)


def _perturb(
    space: search.Space, params: dict[str, Any], o: dict[str, Any], rng: random.Random
) -> dict[str, Any]:
    """Explore: scale numeric searched params, resample choices with some probability."""
    out = {}
    for name, (prim, a) in space.entries.items():
        v = params.get(name)
        if prim == "choice":
            if rng.random() < o["resample_probability"]:
                out[name] = rng.choice(a)
        elif isinstance(v, (int, float)):
            x = v * rng.choice(o["perturb"])
            x = min(max(x, a[0]), a[1])
            out[name] = round(x) if prim in ("randint",) else x
    return out


# -- entry points ---------------------------------------------------------------------------
def step(plpy: Any, workload_id: int) -> int:
    """Run one step of the workload's procedure (suggest or promote). Returns configs changed."""
    w = steering.workload(plpy, workload_id, lock=True)
    if w.search not in PROCEDURES or w.status != "active":
        return 0
    prev = store.set_actor(plpy, f"automl:{w.search}")
    try:
        if w.search == "hyperopt":
            return _tpe_step(plpy, w)
        if w.search in ("asha", "hyperband"):
            return _asha_step(plpy, w)
        return 0
    finally:
        store.set_actor(plpy, prev)


def on_epoch(plpy: Any, config_id: int, epoch: int) -> None:
    """Called in the transaction that commits ``config_id``'s epoch ``epoch``."""
    workload_id = store.workload_of_config(plpy, config_id)
    if workload_id is None:
        return
    w = steering.workload(plpy, workload_id, lock=True)
    if w.search not in ("asha", "hyperband", "pbt"):
        return
    prev = store.set_actor(plpy, f"automl:{w.search}")
    try:
        if w.search == "pbt":
            _pbt_on_epoch(plpy, w, config_id, epoch)
        else:
            _asha_on_epoch(plpy, w, config_id, epoch)
    finally:
        store.set_actor(plpy, prev)
