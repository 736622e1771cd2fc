"""AutoML procedures: hyperopt TPE, ASHA/Hyperband, PBT — steering through the same verbs."""

from __future__ import annotations

import json
import os
import signal
import statistics

import pytest

from helpers import fetch_all as _q
from helpers import make_db, run_to_end, scheduler, wait_for

pytestmark = pytest.mark.slow  # every test trains through the scheduler daemon


@pytest.fixture(scope="module")
def adsn(server_dsn):
    return make_db(server_dsn, "cerebro_test_automl")


def test_hyperopt_suggests_step_by_step_and_survives_kills(adsn):
    space = {"learning_rate": {"loguniform": [1e-4, 0.3]}, "hidden": {"choice": [[4], [8]]}}
    wid = _q(
        adsn,
        "select cerebro.launch('tpe', 'mlp', 'tr', 'va', 'hyperopt', %s, "
        "num_configs => 6, max_epochs => 1, seed => 3, "
        'options => \'{"parallelism": 2, "n_startup_jobs": 2}\')',
        [json.dumps(space)],
    )[0][0]
    assert (
        _q(adsn, "select count(*) from cerebro.configs where workload_id = %s", [wid])[0][0] == 2
    )  # parallelism in flight
    # a human config inside the space is told; one outside is recorded as not told
    _q(
        adsn,
        "insert into cerebro.configs (workload_id, params) values (%s, %s), (%s, %s) returning 1",
        [
            wid,
            json.dumps({"learning_rate": 0.01, "hidden": [8]}),
            wid,
            json.dumps({"learning_rate": 0.01, "hidden": [99]}),
        ],
    )
    _q(adsn, "select cerebro.automl_step(%s)", [wid])
    why = _q(adsn, "select detail->>'reason' from cerebro.events where action = 'not_told'")
    assert len(why) == 1 and "hidden=[99] is not one of the choices" in why[0][0]
    for target in (3, 6):  # kill mid-search, twice
        p = scheduler(adsn)
        wait_for(
            adsn,
            f"select count(*) from cerebro.metrics m join cerebro.configs c "
            f"using (config_id) where c.workload_id = {wid}",
            lambda n, t=target: n >= t,
            timeout=300,
        )
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    run_to_end(adsn)
    rows = _q(
        adsn,
        "select source, status, count(*) from cerebro.configs where workload_id = "
        "%s group by 1, 2 order by 1, 2",
        [wid],
    )
    assert rows == [("automl", "completed", 6), ("human", "completed", 2)]
    actors = _q(
        adsn,
        "select actor, count(*) from cerebro.events where workload_id = %s and "
        "action = 'add' group by 1 order by 1",
        [wid],
    )
    assert actors == [("automl:hyperopt", 6), ("human:postgres", 2)]


def test_tpe_beats_random_on_average(adsn):
    """Over 5 seeds, TPE's best valid_loss after 20 configs beats random search's."""
    space = json.dumps({"learning_rate": {"loguniform": [1e-5, 1.0]}})
    ids = {}
    for seed in range(5):
        for search, opts in (
            ("hyperopt", '{"parallelism": 2, "n_startup_jobs": 5}'),
            ("random", "{}"),
        ):
            ids[(search, seed)] = _q(
                adsn,
                "select cerebro.launch(%s, 'mlp', 'tr', 'va', %s, %s, num_configs => 20, "
                'max_epochs => 1, seed => %s, params => \'{"hidden": [8], '
                '"batch_size": 32}\', options => %s)',
                [f"cmp-{search}-{seed}", search, space, seed + 100, opts],
            )[0][0]
    run_to_end(adsn, timeout=900)
    best = {
        k: _q(
            adsn, "select min(best_objective) from cerebro.leaderboard where workload_id = %s", [w]
        )[0][0]
        for k, w in ids.items()
    }
    tpe = statistics.mean(best[("hyperopt", s)] for s in range(5))
    rnd = statistics.mean(best[("random", s)] for s in range(5))
    print(f"TPE mean best valid_loss {tpe:.4f} vs random {rnd:.4f}")
    assert tpe < rnd


def test_asha_stops_the_bad_configs_and_respects_a_human(adsn):
    lrs = [1e-5, 2e-5, 4e-5, 0.05, 0.1, 0.2]
    wid = _q(
        adsn,
        "select cerebro.launch('asha', 'mlp', 'tr', 'va', 'asha', %s, "
        "num_configs => 6, max_epochs => 3, seed => 1, "
        'params => \'{"hidden": [8], "batch_size": 32}\', '
        'options => \'{"min_epochs": 1, "eta": 3}\')',
        [json.dumps({"learning_rate": {"uniform": [1e-5, 0.2]}})],
    )[0][0]
    # replace the random samples by configs whose ranking is known (the human adds them;
    # the sampled ones are stopped before anything runs)
    _q(
        adsn,
        "update cerebro.configs set status = 'stopped' where workload_id = %s returning 1",
        [wid],
    )
    for lr in lrs:
        _q(
            adsn,
            "insert into cerebro.configs (workload_id, params) values (%s, %s) returning 1",
            [wid, json.dumps({"learning_rate": lr})],
        )
    run_to_end(adsn)
    got = {
        r[0]: (r[1], r[2])
        for r in _q(
            adsn,
            "select (params->>'learning_rate')::float8, epoch, status from cerebro.configs "
            "where workload_id = %s and source = 'human'",
            [wid],
        )
    }
    for lr in lrs[:3]:
        assert got[lr] == (1, "stopped"), got  # never past the first rung
    assert max(e for e, _ in got.values()) == 3
    stops = _q(
        adsn,
        "select count(*) from cerebro.events e join cerebro.configs c "
        "using (config_id) where c.workload_id = %s and e.action = 'stop' "
        "and e.actor = 'automl:asha'",
        [wid],
    )[0][0]
    assert stops >= 3
    # a human resumes one that ASHA stopped: it trains on, and ASHA does not stop it again
    victim = _q(
        adsn,
        "select config_id from cerebro.configs where workload_id = %s and "
        "(params->>'learning_rate')::float8 = %s",
        [wid, lrs[0]],
    )[0][0]
    _q(
        adsn,
        "update cerebro.configs set status = 'active' where config_id = %s returning 1",
        [victim],
    )
    run_to_end(adsn)
    assert _q(adsn, "select epoch, status from cerebro.configs where config_id = %s", [victim])[
        0
    ] == (3, "completed")


def test_pbt_exploits_by_cloning_and_stopping(adsn):
    wid = _q(
        adsn,
        "select cerebro.launch('pbt', 'mlp', 'tr', 'va', 'pbt', %s, "
        "num_configs => 4, max_epochs => 3, seed => 2, "
        'params => \'{"hidden": [8], "batch_size": 32}\', '
        "options => '{\"interval\": 1}')",
        [json.dumps({"learning_rate": {"loguniform": [1e-5, 0.1]}})],
    )[0][0]
    run_to_end(adsn)
    clones = _q(
        adsn,
        "select c.status, c.epoch, c.clone_epoch from cerebro.configs c "
        "where c.workload_id = %s and c.source = 'clone'",
        [wid],
    )
    actors = {
        r[0]
        for r in _q(
            adsn,
            "select distinct e.actor from cerebro.events e join "
            "cerebro.configs c using (config_id) where c.workload_id "
            "= %s and e.action in ('clone', 'stop')",
            [wid],
        )
    }
    assert clones and actors == {"automl:pbt"}
    # a clone starts from its donor's epoch and either finishes or is itself exploited
    assert all(
        ce >= 1 and (st, ep) in (("completed", 3), ("stopped", ep)) and ep >= ce
        for st, ep, ce in clones
    )
    assert (
        _q(
            adsn,
            "select count(*) from cerebro.configs where workload_id = %s and status = 'active'",
            [wid],
        )[0][0]
        == 0
    )


def test_hyperband_brackets(adsn):
    """Two brackets (min_epochs 1 and 3): only the first one stops configs at epoch 1."""
    wid = _q(
        adsn,
        "select cerebro.launch('hb', 'mlp', 'tr', 'va', 'hyperband', %s, "
        "num_configs => 6, max_epochs => 3, seed => 5, "
        'params => \'{"hidden": [8], "batch_size": 32}\', '
        'options => \'{"min_epochs": 1, "eta": 3}\')',
        [json.dumps({"learning_rate": {"loguniform": [1e-5, 0.2]}})],
    )[0][0]
    run_to_end(adsn)
    rows = _q(
        adsn,
        "select config_id, epoch, status from cerebro.configs where "
        "workload_id = %s order by config_id",
        [wid],
    )
    first, second = rows[0::2], rows[1::2]  # brackets are assigned round robin
    assert all(r[1:] == (3, "completed") for r in second)
    assert sum(1 for r in first if r[1:] == (1, "stopped")) >= 2  # top 1/3 of 3 goes on
    stops = {
        r[0]
        for r in _q(
            adsn,
            "select actor from cerebro.events e join cerebro.configs c "
            "using (config_id) where c.workload_id = %s and "
            "e.action = 'stop'",
            [wid],
        )
    }
    assert stops == {"automl:hyperband"}
