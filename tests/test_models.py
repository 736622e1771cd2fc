"""Custom model registration, roles, and segment safety of the training path."""

import json

import psycopg
import pytest

GOOD = """
import keras

def build(config):
    ds = config["dataset"]
    m = keras.Sequential([keras.Input(tuple(ds["feature_shape"])),
                          keras.layers.Dense(config.get("units", 4), activation="relu"),
                          keras.layers.Dense(ds["num_classes"], activation="softmax")])
    m.compile(optimizer=keras.optimizers.SGD(config.get("lr", 0.1)),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if config.get("touch_db"):
        import plpy
        plpy.execute("select 1")
    return m
"""

BROKEN = {
    "syntax": ("def build(config)\n    return 1\n", "does not compile: line 1"),
    "no_entry": ("import keras\ndef make(config):\n    pass\n", "has no function 'build'"),
    "raises": (
        "def build(config):\n    raise ValueError('boom')\n",
        "failed to build: ValueError: boom (line 2)",
    ),
    "import_fails": ("import no_such_module_xyz\n", "raised while loading: ModuleNotFoundError"),
    "not_model": ("def build(config):\n    return 42\n", "returned int, not a keras.Model"),
    "not_compiled": (
        "import keras\ndef build(config):\n    return keras.Sequential("
        "[keras.Input((8,)), keras.layers.Dense(1)])\n",
        "not compiled",
    ),
    "reads_db": (
        "import plpy\ndef build(config):\n    plpy.execute('select 1')\n",
        "not allowed in the training and evaluation path",
    ),
}


def _count(conn):
    return conn.execute("select count(*) from cerebro.models").fetchone()[0]


def test_register_and_train_custom_model(conn, blobs_table):
    conn.execute(
        "select cerebro.load_dataset('cm', %s, array['a', 'b'], 'lbl', num_partitions => 2)",
        [blobs_table],
    )
    mid = conn.execute(
        "select cerebro.register_model('tiny', %s, param_schema => %s)",
        [
            GOOD,
            json.dumps(
                {"units": {"default": 4}, "lr": {"default": 0.1}, "touch_db": {"default": False}}
            ),
        ],
    ).fetchone()[0]
    row = conn.execute(
        "select name, kind, entry_point from cerebro.models where model_id = %s", [mid]
    ).fetchone()
    assert row == ("tiny", "custom", "build")
    res = conn.execute(
        "select loss, rows, cerebro.state_info(state)->'arrays' from "
        "cerebro.run_subepoch('tiny', 'cm', 0, '{\"units\": 6}')"
    ).fetchone()
    assert res[1] == 2000 and res[0] > 0
    kernels = [a["shape"] for a in res[2] if a["name"].endswith("kernel")]
    assert kernels[:2] == [[2, 6], [6, 2]]


def test_model_touching_the_database_in_training_fails_segment_safety(conn, blobs_table):
    conn.execute("select 1 from cerebro.models where name = 'tiny'")
    if not conn.execute("select 1 from cerebro.datasets where name = 'cm'").fetchone():
        pytest.skip("needs test_register_and_train_custom_model")
    with pytest.raises(psycopg.Error) as e:
        conn.execute("select * from cerebro.run_subepoch('tiny', 'cm', 0, '{\"touch_db\": true}')")
    assert "not allowed in the training and evaluation path" in e.value.diag.message_primary
    # the guard is lifted afterwards: coordinator functions still reach the database
    assert conn.execute("select count(*) from cerebro.datasets where name = 'cm'").fetchone() == (
        1,
    )


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_scripts_are_refused(conn, case):
    source, message = BROKEN[case]
    before = _count(conn)
    with pytest.raises(psycopg.Error) as e:
        conn.execute("select cerebro.register_model(%s, %s)", [f"bad_{case}", source])
    assert message in e.value.diag.message_primary
    assert _count(conn) == before


def test_script_that_never_returns_is_stopped(conn):
    source = "def build(config):\n    while True:\n        pass\n"
    before = _count(conn)
    with pytest.raises(psycopg.Error) as e:
        conn.execute("select cerebro.register_model('loops', %s, build_timeout => 2)", [source])
    assert "did not finish within 2 s" in e.value.diag.message_primary
    assert _count(conn) == before
    # the backend is still usable afterwards
    assert conn.execute("select 1").fetchone() == (1,)


def test_only_admins_register_code(conn):
    conn.execute("drop role if exists t_alice; drop role if exists t_bob")
    conn.execute(
        "create role t_alice in role cerebro_user; create role t_bob in role cerebro_admin"
    )
    try:
        conn.execute("set role t_alice")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select cerebro.register_model('by_alice', %s)", [GOOD])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "insert into cerebro.models (name, kind, source, entry_point) "
                "values ('sneaky', 'custom', 'x', 'build')"
            )
        conn.execute("reset role")
        conn.execute("set role t_bob")
        conn.execute("select cerebro.register_model('by_bob', %s)", [GOOD])
        assert (
            conn.execute("select owner from cerebro.models where name = 'by_bob'").fetchone()
            is not None
        )
    finally:
        conn.execute("reset role")
        conn.execute("delete from cerebro.models where name = 'by_bob'")
        conn.execute("drop role t_alice; drop role t_bob")


def test_duplicate_and_invalid_names(conn):
    with pytest.raises(psycopg.Error) as e:
        conn.execute("select cerebro.register_model('mlp', %s)", [GOOD])
    assert "model 'mlp' already exists" in e.value.diag.message_primary
    with pytest.raises(psycopg.Error) as e:
        conn.execute("select cerebro.register_model('Bad Name', %s)", [GOOD])
    assert "is not valid" in e.value.diag.message_primary
