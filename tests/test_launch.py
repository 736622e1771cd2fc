"""cerebro.launch: what it creates, and every bad input refused with nothing created."""

import json

import psycopg
import pytest

GOOD_SPACE = {
    "hidden": {"choice": [[8], [16]]},
    "learning_rate": {"choice": [0.1, 0.01]},
    "dropout": 0.1,
}


@pytest.fixture(scope="module")
def data(dsn, blobs_table):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "select cerebro.load_dataset('ln_tr', %s, array['a', 'b'], 'lbl', "
            "num_partitions => 2)",
            [blobs_table],
        )
        c.execute(
            "select cerebro.load_dataset('ln_va', %s, like_dataset => 'ln_tr', "
            "num_partitions => 1)",
            [blobs_table],
        )
        c.execute(
            "select cerebro.load_dataset('ln_other', %s, array['a', 'c'], 'lbl', "
            "num_partitions => 1)",
            [blobs_table],
        )
    return True


def _counts(conn):
    return conn.execute(
        "select (select count(*) from cerebro.workloads), "
        "(select count(*) from cerebro.configs), "
        "(select count(*) from cerebro.events)"
    ).fetchone()


def test_grid_launch_creates_workload_configs_and_events(conn, data):
    wid = conn.execute(
        "select cerebro.launch('ln_grid', 'mlp', 'ln_tr', 'ln_va', 'grid', %s, "
        "max_epochs => 3, objective => 'valid_accuracy')",
        [json.dumps(GOOD_SPACE)],
    ).fetchone()[0]
    w = conn.execute(
        "select search, objective, objective_direction, max_epochs, num_configs "
        "from cerebro.workloads where workload_id = %s",
        [wid],
    ).fetchone()
    assert w == ("grid", "valid_accuracy", "max", 3, 4)
    params = [
        r[0]
        for r in conn.execute(
            "select params from cerebro.configs where workload_id = %s order by config_id", [wid]
        )
    ]
    assert [(p["hidden"], p["learning_rate"]) for p in params] == [
        ([8], 0.1),
        ([8], 0.01),
        ([16], 0.1),
        ([16], 0.01),
    ]
    # fixed values and the model's defaults are filled in
    assert all(
        p["dropout"] == 0.1 and p["optimizer"] == "adam" and p["batch_size"] == 64 for p in params
    )
    actions = conn.execute(
        "select actor, action from cerebro.events where workload_id = %s order by event_id", [wid]
    ).fetchall()
    assert actions[0] == ("human:postgres", "launch")
    assert actions[1:] == [("automl:grid", "add")] * 4
    board = conn.execute(
        "select count(*), min(rank) from cerebro.leaderboard where workload_id = %s", [wid]
    ).fetchone()
    assert board == (4, 1)


def test_random_launch_is_seeded(conn, data):
    space = json.dumps(
        {"learning_rate": {"loguniform": [1e-4, 1e-1]}, "hidden": {"choice": [[4], [8], [16]]}}
    )
    ids = [
        conn.execute(
            "select cerebro.launch(%s, 'mlp', 'ln_tr', 'ln_va', 'random', %s, "
            "num_configs => 5, seed => %s)",
            [f"ln_rand{i}", space, s],
        ).fetchone()[0]
        for i, s in enumerate((3, 3, 4))
    ]
    got = [
        [
            r[0]
            for r in conn.execute(
                "select params from cerebro.configs where workload_id = %s order by config_id", [w]
            )
        ]
        for w in ids
    ]
    assert got[0] == got[1] and got[0] != got[2]
    assert all(1e-4 <= p["learning_rate"] <= 1e-1 for p in got[0])


@pytest.mark.parametrize(
    "args, message",
    [
        (
            "'b1', 'nope', 'ln_tr', 'ln_va', 'grid', '{\"a\": {\"choice\": [1]}}'",
            "model 'nope' does not exist",
        ),
        ("'b2', 'mlp', 'nope', 'ln_va', 'grid', '{}'", "training dataset 'nope' does not exist"),
        ("'b3', 'mlp', 'ln_tr', 'nope', 'grid', '{}'", "validation dataset 'nope' does not exist"),
        ("'b4', 'mlp', 'ln_tr', 'ln_va', 'grid', '{}'", "search space is empty"),
        (
            "'b5', 'mlp', 'ln_tr', 'ln_va', 'grid', '{\"hiden\": {\"choice\": [[4]]}}'",
            "does not take parameter 'hiden'",
        ),
        (
            "'b6', 'mlp', 'ln_tr', 'ln_other', 'grid', '{\"hidden\": [[4]]}'",
            "does not match the encoding",
        ),
        (
            "'b7', 'mlp', 'ln_tr', 'ln_va', 'grid', "
            '\'{"learning_rate": {"loguniform": [1e-4, 1]}}\'',
            "grid search takes only choice",
        ),
        (
            "'b8', 'mlp', 'ln_tr', 'ln_va', 'hyperband2', '{\"hidden\": [[4]]}'",
            "search 'hyperband2' is not known",
        ),
        (
            "'b9', 'mlp', 'ln_tr', 'ln_va', 'random', '{\"hidden\": {\"choice\": [[4]]}}'",
            "needs num_configs",
        ),
        (
            "'b10', 'mlp', 'ln_tr', null, 'grid', '{\"hidden\": [[4]]}'",
            "needs a validation dataset",
        ),
        (
            "'b11', 'mlp', 'ln_tr', 'ln_va', 'grid', '{\"hidden\": [[4]]}', "
            "objective => 'accuracy'",
            "objective 'accuracy' is not known",
        ),
        (
            "'b12', 'mlp', 'ln_tr', 'ln_va', 'grid', '{\"learning_rate\": {\"uniform\": [1, 0]}}'",
            "low < high",
        ),
        (
            "'b13', 'mlp', 'ln_tr', 'ln_va', 'grid', '{\"optimizer\": {\"choice\": [\"adamx\"]}}'",
            "is not one of",
        ),
        ("'b14', 'mlp', 'ln_tr', 'ln_va', 'grid', '{\"dataset\": 1}'", "reserved"),
        (
            "'b15', 'mlp', 'ln_tr', 'ln_va', 'grid', '{\"hidden\": [[4]]}', max_epochs => 0",
            "max_epochs must be at least 1",
        ),
        (
            "'b16', 'mlp', 'ln_tr', 'ln_va', 'grid', '{\"hidden\": {\"choice\": [[4], [8]]}}', "
            "num_configs => 3",
            "has 2 configs, not 3",
        ),
        ("'ln_grid', 'mlp', 'ln_tr', 'ln_va', 'grid', '{\"hidden\": [[4]]}'", "already exists"),
    ],
)
def test_bad_launches_create_nothing(conn, data, args, message):
    conn.execute(
        "select cerebro.launch('ln_grid', 'mlp', 'ln_tr', 'ln_va', 'grid', "
        "'{\"hidden\": [[4]]}') where not exists (select 1 from cerebro.workloads "
        "where name = 'ln_grid')"
    )
    before = _counts(conn)
    with pytest.raises(psycopg.Error) as e:
        conn.execute(f"select cerebro.launch({args})")
    assert message in e.value.diag.message_primary, e.value.diag.message_primary
    assert _counts(conn) == before
