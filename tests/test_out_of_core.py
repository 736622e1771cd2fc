"""Data larger than the partition cache (issue 15, item 5; bench P11).

The scheduler daemon passes ``CEREBRO_PARTITION_CACHE_MB`` of its own environment in every
unit's config (``partition_cache_mb``) and the worker backend's partition cache takes that
limit, so a daemon can train with a cache too small for its data without restarting the
server. Then every sub-epoch decodes its partition from the rows of its statement, and the
results must be those of a cached run, bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from cerebro.schedule import ConfigView
from cerebro.scheduler.unit import Unit
from cerebro_udfs import cache, training
from helpers import create_source, fresh_conn, fresh_database, launch, run_to_end

ENV = "CEREBRO_PARTITION_CACHE_MB"
PARAMS = {"hidden": [8], "batch_size": 32}
DATASET_ROW = {"dataset_id": 1, "version": "v1", "feature_shape": [2], "task": "classification"}


def _db(server_dsn: str, name: str) -> str:
    """A fresh database whose 'tr' partitions are 6 buffers of 100 rows (so decoding one
    stitches buffers together), and 'va' one partition per worker."""
    dsn = fresh_database(server_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as c:
        create_source(c)
        c.execute(
            "select cerebro.load_dataset('tr', 'src', array['a', 'b'], 'lbl', "
            "num_partitions => 2, buffer_rows => 100, seed => 1)"
        )
        c.execute("create view va_src as select * from src where id % 4 = 0")
        c.execute(
            "select cerebro.load_dataset('va', 'va_src', like_dataset => 'tr', "
            "num_partitions => 2)"
        )
    return dsn


@pytest.fixture(scope="module")
def db(server_dsn: str) -> Iterator[str]:
    yield _db(server_dsn, "cerebro_ooc")


# --- pure ----------------------------------------------------------------------------------


def _unit() -> Unit:
    view = ConfigView(
        config_id=1,
        workload_id=1,
        epoch=0,
        partitions_done=[],
        valid_done=[],
        priority=0,
        workload_seed=11,
        n_train=2,
        n_valid=0,
        extra={"params": PARAMS, "seed": 11000},
    )
    return Unit(view, "train", 0, 0)


def test_the_daemon_passes_its_partition_cache_limit(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert "partition_cache_mb" not in json.loads(_unit().config(DATASET_ROW))
    monkeypatch.setenv(ENV, "0")
    assert json.loads(_unit().config(DATASET_ROW))["partition_cache_mb"] == 0


def _buffers(rows_each: list[int]) -> list[tuple]:
    """Buffers as the transition function collects them (out of order), 2 features each."""
    rng = np.random.default_rng(3)
    out = []
    for i, n in enumerate(rows_each):
        x = rng.random((n, 2), dtype=np.float32)
        out.append((i, x.astype("<f4").tobytes(), np.arange(n, dtype="<i4").tobytes(), n))
    return out[::-1]


def test_partition_arrays_decode_the_same_and_obey_the_limit():
    bufs = _buffers([5, 7, 3])
    want_x = np.concatenate([np.frombuffer(b[1], "<f4").reshape(b[3], 2) for b in bufs[::-1]])
    want_y = np.concatenate([np.frombuffer(b[2], "<i4") for b in bufs[::-1]])
    cfg = {"dataset": {"feature_shape": [2], "task": "classification"}, "cache_key": "k"}
    GD: dict = {}
    x, y = training._partition_arrays(GD, list(bufs), cfg)
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    assert training._partition_arrays(GD, [], cfg)[0] is x  # cached: served without buffers
    x0, _ = training._partition_arrays(GD, list(bufs), {**cfg, "partition_cache_mb": 0})
    assert np.array_equal(x0, want_x) and x0 is not x  # the limit evicted it
    info = cache.info(GD)["partitions"]
    assert (info["items"], info["bytes"], info["max_bytes"]) == (0, 0, 0)
    assert (info["hits"], info["misses"]) == (1, 2)
    one = _buffers([4])
    x1, y1 = training._partition_arrays({}, one, cfg)
    assert np.array_equal(x1, np.frombuffer(one[0][1], "<f4").reshape(4, 2))
    assert np.array_equal(y1, np.arange(4))


# --- in the server ----------------------------------------------------------------------------


def _aggregate(c: psycopg.Connection, cfg: dict) -> float:
    return c.execute(
        "select (cerebro.train_subepoch(null, cerebro.model_spec('mlp'), %s) within group "
        "(order by buffer_id, x, y, num_rows)).loss from cerebro.buffers where dataset_id = "
        "(select dataset_id from cerebro.datasets where name = 'tr') and __dist_key__ = 0",
        [json.dumps(cfg)],
    ).fetchone()[0]


def test_the_aggregate_takes_the_units_limit(db):
    """In one worker-like backend: cached by default (a miss, then a hit); with the unit's
    limit of 0 MB the partition is evicted and every sub-epoch decodes it again; the same
    losses either way (fresh init from the same seed)."""
    with fresh_conn(db) as c:
        cfg = c.execute(
            "select cerebro.subepoch_config('mlp', 'tr', %s, 5, 0)", [json.dumps(PARAMS)]
        ).fetchone()[0]
        cached = [_aggregate(c, cfg) for _ in range(2)]
        info = c.execute("select cerebro.cache_info()").fetchone()[0]["partitions"]
        assert (info["items"], info["hits"], info["misses"]) == (1, 1, 1)
        small = [_aggregate(c, {**cfg, "partition_cache_mb": 0}) for _ in range(2)]
        info = c.execute("select cerebro.cache_info()").fetchone()[0]["partitions"]
    assert (info["items"], info["bytes"], info["max_bytes"]) == (0, 0, 0)
    assert (info["hits"], info["misses"]) == (1, 3)
    assert cached[0] == cached[1] == small[0] == small[1]


def _units(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(
            "select config_id, epoch, kind, partition, (result->>'loss')::float8, "
            "(result->>'rows')::int from cerebro.units where outcome = 'ok' "
            "order by config_id, epoch, kind, partition"
        ).fetchall()


@pytest.mark.slow
def test_a_daemon_with_a_tiny_cache_trains_to_the_same_results(server_dsn, db, monkeypatch):
    """The same grid (4 configs x 2 epochs, validation) under a daemon whose cache holds
    nothing and under one with the server's cache: every unit's loss is equal."""
    cached = _db(server_dsn, "cerebro_ooc_cached")
    launch(cached, "g")
    launch(db, "g")
    monkeypatch.delenv(ENV, raising=False)
    run_to_end(cached)
    monkeypatch.setenv(ENV, "0")
    run_to_end(db)
    a, b = _units(cached), _units(db)
    assert len(a) == 4 * 2 * 4 and a == b  # 4 configs x 2 epochs x (2 train + 2 valid)
    with psycopg.connect(db, autocommit=True) as c:
        assert (
            c.execute(
                "select count(*) from cerebro.configs where status = 'completed'"
            ).fetchone()[0]
            == 4
        )
