"""load_dataset: rows, shapes, labels, seeded order, partitions, like_dataset."""

import json

import numpy as np
import pytest


def _buffers(conn, name):
    rows = conn.execute(
        "select b.__dist_key__, b.buffer_id, b.num_rows, b.x, b.y, d.feature_shape, d.task "
        "from cerebro.buffers b join cerebro.datasets d using (dataset_id) where d.name = %s "
        "order by 1, 2",
        [name],
    ).fetchall()
    out = {}
    for part, _, n, x, y, shape, task in rows:
        xs = np.frombuffer(x, "<f4").reshape(n, *shape)
        ys = np.frombuffer(y, "<i4" if task == "classification" else "<f4")
        px, py = out.get(part, (np.empty((0, *shape), np.float32), np.empty(0, ys.dtype)))
        out[part] = (np.concatenate([px, xs]), np.concatenate([py, ys]))
    return out


def test_round_trip_rows_labels_and_partitions(conn, blobs_table):
    conn.execute(
        "select cerebro.load_dataset('pk_a', %s, array['a', 'b'], 'lbl', "
        "num_partitions => 3, buffer_rows => 500, seed => 5, "
        "normalization => 'none')",
        [blobs_table],
    )
    meta = conn.execute(
        "select num_rows, rows_per_partition, classes, feature_shape, task "
        "from cerebro.datasets where name = 'pk_a'"
    ).fetchone()
    assert meta == (4000, [1334, 1333, 1333], ["in", "out"], [2], "classification")
    parts = _buffers(conn, "pk_a")
    assert sorted(parts) == [0, 1, 2]
    x = np.concatenate([parts[p][0] for p in range(3)])
    y = np.concatenate([parts[p][1] for p in range(3)])
    src = np.array(conn.execute("select a, b, lbl from public.blobs").fetchall(), dtype=object)
    # every source row appears exactly once, with its own label
    packed = sorted(zip(map(float, x[:, 0]), map(float, x[:, 1]), [["in", "out"][i] for i in y]))
    source = sorted(
        zip(
            np.float32(src[:, 0].astype(float)).tolist(),
            np.float32(src[:, 1].astype(float)).tolist(),
            src[:, 2],
        )
    )
    assert packed == source
    # buffers hold at most buffer_rows rows
    n_buf = conn.execute(
        "select max(b.num_rows), count(*) from cerebro.buffers b join "
        "cerebro.datasets d using (dataset_id) where d.name = 'pk_a'"
    ).fetchone()
    assert n_buf[0] == 500 and n_buf[1] == 9


def test_shuffle_is_seeded(conn, blobs_table):
    for name, seed in (("pk_s1", 11), ("pk_s2", 11), ("pk_s3", 12)):
        conn.execute(
            "select cerebro.load_dataset(%s, %s, array['a', 'b'], 'lbl', "
            "num_partitions => 2, seed => %s)",
            [name, blobs_table, seed],
        )
    a, b, c = (_buffers(conn, n) for n in ("pk_s1", "pk_s2", "pk_s3"))
    np.testing.assert_array_equal(a[0][0], b[0][0])
    assert not np.array_equal(a[0][0], c[0][0])
    # the order is a real shuffle, not the source order
    src_first = conn.execute("select a from public.blobs order by id limit 20").fetchall()
    assert not np.allclose(a[0][0][:20, 0], [r[0] for r in src_first])


def test_expressions_normalisation_and_integer_classes(conn, blobs_table):
    conn.execute(
        "select cerebro.load_dataset('pk_e', %s, array['a', 'log(1 + c)', 'b * 2'], "
        "'c', num_partitions => 1)",
        [blobs_table],
    )
    meta = conn.execute(
        "select classes, task, normalization, statistics from cerebro.datasets where name = 'pk_e'"
    ).fetchone()
    assert meta[0] == list(range(7)) and meta[1] == "classification"
    assert meta[2]["method"] == "standard"
    x, y = _buffers(conn, "pk_e")[0]
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-3)
    # raw statistics of log(1 + c): c in 0..6, base-10 log as in PostgreSQL
    assert meta[3]["max"][1] == pytest.approx(np.log10(7), rel=1e-6)
    # the label index equals c (classes sorted numerically)
    raw = np.array(meta[3]["mean"])
    assert raw.shape == (3,)
    assert set(np.unique(y)) == set(range(7))


def test_regression_and_like_dataset(conn, blobs_table):
    conn.execute(
        "select cerebro.load_dataset('pk_r', %s, array['a', 'b'], 'target', num_partitions => 2)",
        [blobs_table],
    )
    conn.execute("create table public.blobs_valid as select * from public.blobs where id <= 500")
    conn.execute(
        "select cerebro.load_dataset('pk_rv', 'public.blobs_valid', "
        "like_dataset => 'pk_r', num_partitions => 1)"
    )
    r, rv = conn.execute(
        "select normalization, task, features, label from cerebro.datasets "
        "where name in ('pk_r', 'pk_rv') order by name"
    ).fetchall()
    assert r == rv  # same encoding, normalisation, features and label
    assert r[1] == "regression"
    _, y = _buffers(conn, "pk_rv")[0]
    assert y.dtype == np.float32 and len(y) == 500


def test_array_features_keep_their_shape(conn):
    conn.execute(
        "create table public.imgs as select i as id, "
        "array[[i % 3, 1, 2], [3, 4, i % 5]]::real[] as img, (i % 2)::bool::text as lbl "
        "from generate_series(1, 60) i"
    )
    conn.execute(
        "select cerebro.load_dataset('pk_img', 'public.imgs', array['img'], 'lbl', "
        "num_partitions => 2)"
    )
    shape, norm = conn.execute(
        "select feature_shape, normalization->>'method' from "
        "cerebro.datasets where name = 'pk_img'"
    ).fetchone()
    assert shape == [2, 3] and norm == "none"
    x, _ = _buffers(conn, "pk_img")[0]
    assert x.shape[1:] == (2, 3)
    assert set(x[:, 1, 1]) == {4.0}
    # next to a scalar, the array is flattened
    conn.execute(
        "select cerebro.load_dataset('pk_img2', 'public.imgs', array['id', 'img'], "
        "'lbl', num_partitions => 1, normalization => 'none')"
    )
    x2, _ = _buffers(conn, "pk_img2")[0]
    assert x2.shape[1:] == (7,)
    assert json.loads(json.dumps(x2[:, 5].tolist())) and set(x2[:, 5]) == {4.0}
