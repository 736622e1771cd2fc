"""Caps on every size a user chooses (cerebro.limits): the pure checks and estimates, then
launch and load_dataset refusing over-limit values with nothing written."""

from __future__ import annotations

import json
import re

import psycopg
import pytest

from cerebro_udfs import automl, limits, search
from cerebro_udfs.errors import CerebroError
from cerebro_udfs.roster import ESTIMATES, PARAMS, WIDTHS
from helpers import ROOT, make_db

MIGRATION = ROOT / "sql" / "incremental" / "006-security.sql"


# -- the defaults ---------------------------------------------------------------------------
def test_defaults_equal_the_migration():
    text = MIGRATION.read_text()
    block = text[text.index("insert into cerebro.limits") :]
    block = block[: block.index(";\n")]
    rows = re.findall(r"\('(max_[a-z_]+)', ([0-9.e+]+), '", block)
    assert rows, "no limit rows found in the migration"
    assert {name: float(v) for name, v in rows} == limits.DEFAULTS


# -- the messages ---------------------------------------------------------------------------
def test_over_limit_names_the_value_the_limit_and_the_update():
    err = limits.over_limit("max_configs", 1000.0, 5000, "num_configs")
    assert err is not None
    assert err.message == "num_configs 5000 is over the limit max_configs = 1000"
    assert err.hint == (
        "an admin raises it: UPDATE cerebro.limits SET value = 5000 WHERE name = 'max_configs'"
    )


def test_over_limit_with_what_the_user_can_do():
    err = limits.over_limit("max_buffer_bytes", 100.0, 120, "a buffer of", "use fewer rows")
    assert err is not None
    assert err.hint == (
        "use fewer rows, or an admin raises it: UPDATE cerebro.limits SET value = 120 "
        "WHERE name = 'max_buffer_bytes'"
    )


def test_within_the_limit_and_none_pass():
    assert limits.over_limit("max_configs", 1000.0, 1000, "num_configs") is None
    limits.check_value(limits.DEFAULTS, "max_configs", None, "num_configs")
    limits.check_value(limits.DEFAULTS, "max_configs", 3, "num_configs")
    with pytest.raises(CerebroError, match="over the limit max_configs = 2"):
        limits.check_value({"max_configs": 2.0}, "max_configs", 3, "num_configs")


def test_unknown_limit_names_are_a_programming_error():
    with pytest.raises(KeyError, match="max_confgs"):
        limits.over_limit("max_confgs", 1.0, 2, "x")


# -- the estimates --------------------------------------------------------------------------
CLASSES_3 = {"feature_shape": [4], "task": "classification", "num_classes": 3}


def test_mlp_estimate_is_exact():
    # 4*7+7 + 7*5+5 + 5*3+3 = 35 + 40 + 18
    assert ESTIMATES["mlp"]({"hidden": [7, 5]}, CLASSES_3) == 93
    regression = {"feature_shape": [2, 3], "task": "regression", "num_classes": None}
    assert ESTIMATES["mlp"]({"hidden": [7]}, regression) == 6 * 7 + 7 + 7 + 1
    assert WIDTHS["mlp"]({"hidden": [7, 5]}) == [7, 5]


@pytest.mark.parametrize(
    "model, params, shape, classes, reference",
    [
        # the reference counts of the roster's docstrings (keras.applications' for the images)
        ("resnet50", {}, [224, 224, 3], 1000, 25_636_712),
        ("mobilenet", {}, [224, 224, 3], 1000, 3_538_984),
        ("bert_base", {"vocabulary_size": 30522}, [512], 2, 109_482_240 + 768 * 2 + 2),
        (
            "distilbert",
            {"vocabulary_size": 30522},
            [512],
            2,
            66_362_880 + 768 * 2 + 2 + 768**2 + 768,
        ),
    ],
)
def test_full_size_estimates_match_the_references(model, params, shape, classes, reference):
    ds = {"feature_shape": shape, "task": "classification", "num_classes": classes}
    full = {k: v["default"] for k, v in PARAMS[model].items() if v["default"] is not None}
    assert ESTIMATES[model]({**full, **params}, ds) == reference


def _ds(shape, classes=None, **extra):
    task = "classification" if classes else "regression"
    return {"feature_shape": shape, "task": task, "num_classes": classes, **extra}


def _encoder(layers, hidden, heads, inter, positions, **extra):
    return {
        "num_layers": layers,
        "hidden_dim": hidden,
        "num_heads": heads,
        "intermediate_dim": inter,
        "max_positions": positions,
        **extra,
    }


SMALL = [
    ("mlp", {"hidden": [7, 5]}, _ds([4], 3)),
    ("resnet50", {"width": 4, "blocks": [1, 2]}, _ds([32, 32, 3], 10)),
    ("resnet50", {"width": 8, "blocks": [2, 1, 1]}, _ds([32, 32, 1])),
    ("mobilenet", {"alpha": 0.35}, _ds([32, 32, 3], 10)),
    ("mobilenet", {"alpha": 1.3}, _ds([32, 32, 1], 4)),
    ("bert_base", _encoder(2, 16, 2, 32, 16, vocabulary_size=100), _ds([16], 2)),
    ("distilbert", _encoder(1, 16, 4, 24, 16), _ds([8], 3, vocabulary_size=120)),
]


@pytest.mark.parametrize("model, params, ds", SMALL)
def test_estimates_equal_keras_count_params(model, params, ds):
    from cerebro_udfs.roster import ROSTER

    built = ROSTER[model]({**params, "dataset": ds})
    # exact, but mobilenet's base is tabled for 3 channels (1 channel: 0.02% fewer)
    tolerance = 1e-3 if model == "mobilenet" else 0
    assert ESTIMATES[model](params, ds) == pytest.approx(built.count_params(), rel=tolerance)


def test_widths_of_the_roster():
    assert WIDTHS["resnet50"]({"width": 64, "blocks": [3, 4, 6, 3]}) == [256, 512, 1024, 2048]
    assert WIDTHS["mobilenet"]({"alpha": 0.5}) == [1280]
    assert WIDTHS["mobilenet"]({"alpha": 1.4}) == [1792]
    assert WIDTHS["bert_base"]({"hidden_dim": 64, "intermediate_dim": 256}) == [64, 256]


def test_check_sizes_names_the_config_and_the_limit():
    caps = dict(limits.DEFAULTS)
    with pytest.raises(CerebroError) as e:
        limits.check_sizes(caps, "mlp", {"hidden": [70000], "batch_size": 8}, CLASSES_3)
    assert e.value.message == (
        'mlp config {"batch_size": 8, "hidden": [70000]}: layer width 70000 is over the limit '
        "max_layer_width = 65536"
    )
    with pytest.raises(CerebroError) as e:
        limits.check_sizes(caps, "mlp", {"hidden": [60000, 60000]}, CLASSES_3)
    n = 4 * 60000 + 60000 + 60000 * 60000 + 60000 + 60000 * 3 + 3
    assert e.value.message == (
        f'mlp config {{"hidden": [60000, 60000]}}: estimated parameters {n} is over the limit '
        "max_model_params = 500000000"
    )
    limits.check_sizes(caps, "mlp", {"hidden": [64]}, CLASSES_3)
    limits.check_sizes(caps, "my_custom", {"hidden": [10**9]}, CLASSES_3)  # no estimate
    with pytest.raises(CerebroError, match="vocabulary_size 2000000 is over the limit"):
        limits.check_sizes(caps, "my_custom", {"vocabulary_size": 2_000_000}, CLASSES_3)


def test_largest_config_of_a_space():
    space = search.parse_space(
        {
            "hidden": {"choice": [[8], [512, 512], [64]]},
            "learning_rate": {"loguniform": [1e-4, 1e-1]},
            "optimizer": {"choice": ["adam", "sgd"]},
        },
        PARAMS["mlp"],
        {"dropout": 0.1},
    )
    got = limits.largest_config("mlp", space.entries, dict(space.fixed), CLASSES_3)
    assert got["hidden"] == [512, 512] and got["dropout"] == 0.1
    bert = search.parse_space(
        {"hidden_dim": {"quniform": [64, 1024, 64]}, "num_layers": {"randint": [1, 25]}},
        PARAMS["bert_base"],
        {},
    )
    got = limits.largest_config("bert_base", bert.entries, {}, {"feature_shape": [128]})
    assert got["hidden_dim"] == 1024 and got["num_layers"] == 24


def test_model_name_from_a_spec():
    assert limits.model_name("mlp") == "mlp"
    assert limits.model_name({"name": "mlp", "kind": "roster", "entry_point": "mlp"}) == "mlp"
    assert limits.model_name({"name": "mine", "kind": "custom", "entry_point": "build"}) == "mine"


# -- weights paths --------------------------------------------------------------------------
class FakePlpy:
    """Answers the role query and the caps query; records what was asked."""

    def __init__(self, member: bool, caps: dict[str, float] | None = None) -> None:
        self.member = member
        self.rows = [{"name": k, "value": v} for k, v in (caps or {}).items()]
        self.queries: list[str] = []

    def prepare(self, query, types):
        return query

    def execute(self, query, args=None):
        self.queries.append(query)
        if query == limits.READ_FILES_SQL:
            return [{"ok": self.member}]
        if "from cerebro.weights" in query:  # store.own_upload: none of these are uploads
            return []
        assert query == limits.CAPS_SQL, query
        return self.rows


def test_weights_need_pg_read_server_files_before_the_path_is_looked_at(monkeypatch):
    import os.path

    def looked(*args):
        raise AssertionError("the path was looked at")

    monkeypatch.setattr(os.path, "isfile", looked)
    monkeypatch.setattr(os.path, "exists", looked)
    plpy = FakePlpy(member=False)
    with pytest.raises(CerebroError) as e:
        limits.check_weights(plpy, {"weights": "/etc/shadow"})
    assert e.value.message == (
        "weights paths are files on the server: using one needs the pg_read_server_files role"
    )
    assert "/etc/shadow" not in e.value.message + (e.value.hint or "")
    limits.check_weights(FakePlpy(member=True), {"weights": "/etc/shadow"})
    quiet = FakePlpy(member=False)
    limits.check_weights(quiet, {"hidden": [8], "weights": None})
    assert quiet.queries == []


def test_check_config_runs_weights_then_sizes():
    with pytest.raises(CerebroError, match="pg_read_server_files"):
        limits.check_config(
            FakePlpy(False), "mlp", {"hidden": [10**6], "weights": "/x"}, CLASSES_3
        )
    with pytest.raises(CerebroError, match="max_layer_width = 100"):
        limits.check_config(
            FakePlpy(True, {"max_layer_width": 100}),
            {"name": "mlp", "kind": "roster", "entry_point": "mlp"},
            {"hidden": [128], "weights": "/x"},
            CLASSES_3,
        )
    limits.check_config(FakePlpy(False), "mlp", {"hidden": [128]}, CLASSES_3)


# -- option values (validated at launch) ----------------------------------------------------
@pytest.mark.parametrize(
    "procedure, options, says",
    [
        ("asha", {"eta": 1}, "option eta must be at least 2, got 1"),
        ("asha", {"eta": True}, "option eta must be a positive integer, got True"),
        ("hyperband", {"min_epochs": 0}, "option min_epochs must be a positive integer, got 0"),
        ("pbt", {"interval": 0}, "option interval must be a positive integer, got 0"),
        ("pbt", {"perturb": []}, "option perturb must be a non-empty list of positive numbers"),
        ("pbt", {"perturb": [0.8, -1]}, "option perturb must be a non-empty list"),
        ("pbt", {"perturb": 1.2}, "option perturb must be a non-empty list"),
        ("pbt", {"resample_probability": 1.5}, "resample_probability must be a number in [0, 1]"),
        ("pbt", {"resample_probability": "x"}, "resample_probability must be a number in [0, 1]"),
        ("pbt", {"quantile": 0}, "option quantile must be a number in (0, 0.5], got 0"),
        ("pbt", {"quantile": 0.75}, "option quantile must be a number in (0, 0.5], got 0.75"),
        ("pbt", {"quantile": "a"}, "option quantile must be a number in (0, 0.5], got 'a'"),
    ],
)
def test_bad_option_values(procedure, options, says):
    with pytest.raises(CerebroError) as e:
        automl.check_options(procedure, options, 10, 2)
    assert says in e.value.message


def test_good_option_values():
    out = automl.check_options("pbt", {"perturb": [0.5, 2], "resample_probability": 0}, 10, 2)
    assert out["perturb"] == [0.5, 2] and out["quantile"] == 0.25


# -- on the server: refused, and nothing written ---------------------------------------------
@pytest.fixture(scope="module")
def ldb(server_dsn):
    dsn = make_db(server_dsn, "cerebro_limits")
    with psycopg.connect(dsn, autocommit=True) as c:
        # reading any of these fails: a check that comes before the read never reaches it
        c.execute("create view boom as select (1 / 0)::float8 as a, 'x'::text as lbl")
        c.execute("create view boom_img as select (1 / 0)::text::bytea as img, 1 as lbl")
        c.execute("create view boom_txt as select (1 / 0)::text as txt, 1 as lbl")
    return dsn


def _catalog(c):
    return c.execute(
        "select (select count(*) from cerebro.workloads), (select count(*) from cerebro.configs),"
        " (select count(*) from cerebro.datasets), (select count(*) from cerebro.buffers)"
    ).fetchone()


def _refused(dsn, query, args=(), setup=()):
    with psycopg.connect(dsn, autocommit=True) as c:
        before = _catalog(c)
        with c.transaction(force_rollback=True):
            for s in setup:
                c.execute(s)
            with pytest.raises(psycopg.Error) as e:
                c.execute(query, args)
        assert _catalog(c) == before
    return e.value.diag


LAUNCH = "select cerebro.launch('lim', 'mlp', 'tr', 'va', %s, %s{})"


@pytest.mark.parametrize(
    "search_name, space, extra, setup, message",
    [
        (
            "random",
            {"hidden": [8]},
            "num_configs => 5000",
            (),
            "num_configs 5000 is over the limit max_configs = 1000",
        ),
        (
            "grid",
            {"hidden": {"choice": [[8], [16]]}, "learning_rate": {"choice": [0.1, 0.01]}},
            "",
            ("update cerebro.limits set value = 3 where name = 'max_configs'",),
            "the grid over this space: num_configs 4 is over the limit max_configs = 3",
        ),
        (
            "hyperopt",
            {"learning_rate": {"loguniform": [1e-4, 1e-1]}},
            "num_configs => 10, options => '{\"parallelism\": 100}'",
            (),
            "options.parallelism 100 is over the limit max_parallelism = 64",
        ),
        (
            "grid",
            {"hidden": [8]},
            "max_epochs => 200000",
            (),
            "max_epochs 200000 is over the limit max_epochs = 100000",
        ),
        (
            "grid",
            {"hidden": [8]},
            "priority => -2000000",
            (),
            "priority -2000000: its absolute value 2000000 is over the limit max_priority = "
            "1000000",
        ),
        (
            "grid",
            {"hidden": {"choice": [[8], [70000]]}},
            "",
            (),
            'mlp config {"activation": "relu", "batch_size": 64, "dropout": 0.0, '
            '"hidden": [70000], "learning_rate": 0.001, "optimizer": "adam"}: layer width '
            "70000 is over the limit max_layer_width = 65536",
        ),
        (
            "hyperopt",
            {"hidden": {"choice": [[8], [30000, 30000]]}},
            "num_configs => 4",
            (),
            "the largest mlp config of this space: estimated parameters 900180002 is over the "
            "limit max_model_params = 500000000",
        ),
    ],
)
def test_over_limit_launches_write_nothing(ldb, search_name, space, extra, setup, message):
    query = LAUNCH.format(", " + extra if extra else "")
    diag = _refused(ldb, query, [search_name, json.dumps(space)], setup)
    assert diag.message_primary == "cerebro: " + message
    assert diag.message_hint.startswith("an admin raises it: UPDATE cerebro.limits SET value")


def test_weights_need_the_role_at_launch(ldb):
    role = "cerebro_lim_user"
    with psycopg.connect(ldb, autocommit=True) as c:
        # roles are cluster-wide: reuse it (it may own rows in other test databases)
        if not c.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
            c.execute(f"create role {role}")
        c.execute(f"grant cerebro_user to {role}")
        c.execute(f"grant select on public.src to {role}")
    space = {"hidden": [8], "weights": {"choice": [None, "/no/such/file.weights.h5"]}}
    diag = _refused(
        ldb,
        "select cerebro.launch('lim_w', 'mlp', 'lim_own', null, 'grid', %s, "
        "objective => 'train_loss')",
        [json.dumps(space)],
        (
            f"set session authorization {role}",
            "select cerebro.load_dataset('lim_own', 'public.src', array['a', 'b'], 'lbl', "
            "num_partitions => 1)",
        ),
    )
    assert diag.message_primary == (
        "cerebro: weights paths are files on the server: using one needs the "
        "pg_read_server_files role"
    )
    assert "/no/such" not in (diag.message_hint or "")


LOAD = "select cerebro.load_dataset('lim_ds', %s, {})"


@pytest.mark.parametrize(
    "source, args, setup, message",
    [
        (
            "boom",
            "array['a'], 'lbl', num_partitions => 300",
            (),
            "num_partitions 300 is over the limit max_partitions = 256",
        ),
        (
            "boom_img",
            "array['img'], 'lbl', image_size => array[2000, 64]",
            (),
            "image_size side 2000 is over the limit max_image_side = 1024",
        ),
        (
            "boom_txt",
            "array['txt'], 'lbl', max_length => 10000",
            (),
            "max_length 10000 is over the limit max_text_length = 8192",
        ),
        (
            "boom_txt",
            "array['txt'], 'lbl', vocabulary_size => 2000000",
            (),
            "vocabulary_size 2000000 is over the limit max_vocabulary_size = 1000000",
        ),
        (
            "boom_img",
            "array['img'], 'lbl', image_size => array[64, 64], buffer_rows => 10000",
            (),
            "a buffer of 10000 rows x 49156 bytes = 491560000 is over the limit "
            "max_buffer_bytes = 268435456",
        ),
        (
            "src",
            "array['a', 'b'], 'lbl', num_partitions => 2, buffer_rows => 100",
            ("update cerebro.limits set value = 1000 where name = 'max_buffer_bytes'",),
            "a buffer of 100 rows x 12 bytes = 1200 is over the limit max_buffer_bytes = 1000",
        ),
    ],
)
def test_over_limit_loads_write_nothing(ldb, source, args, setup, message):
    diag = _refused(ldb, LOAD.format(args), [source], setup)
    assert diag.message_primary == "cerebro: " + message


def test_default_buffer_rows_fit_a_lowered_cap(ldb):
    with psycopg.connect(ldb, autocommit=True) as c:
        with c.transaction(force_rollback=True):
            c.execute("update cerebro.limits set value = 1200 where name = 'max_buffer_bytes'")
            c.execute(LOAD.format("array['a', 'b'], 'lbl', num_partitions => 2"), ["src"])
            rows = c.execute(
                "select buffer_rows from cerebro.datasets where name = 'lim_ds'"
            ).fetchone()
            assert rows == (100,)
