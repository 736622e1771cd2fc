"""Image and text datasets: decoding, resizing, WordPiece tokenisation, reuse by like_dataset,
and an end-to-end predict on raw image bytes."""

from __future__ import annotations

import io
import json

import numpy as np
import psycopg
import pytest
from PIL import Image

from helpers import fresh_database, run_to_end


def _png(a: np.ndarray, fmt: str = "PNG") -> bytes:
    b = io.BytesIO()
    Image.fromarray(a).save(b, format=fmt)
    return b.getvalue()


def _images(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((h, w, 3)) * 255).astype(np.uint8) for _ in range(n)]


def _buffers(c: psycopg.Connection, name: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    shape, task = c.execute(
        "select feature_shape, task from cerebro.datasets where name = %s", (name,)
    ).fetchone()
    rows = c.execute(
        "select b.x, b.y, b.num_rows from cerebro.buffers b join cerebro.datasets "
        "d using (dataset_id) where d.name = %s order by __dist_key__, buffer_id",
        (name,),
    ).fetchall()
    x = np.concatenate([np.frombuffer(r[0], "<f4").reshape(r[2], *shape) for r in rows])
    y = np.concatenate(
        [np.frombuffer(r[1], "<i4" if task == "classification" else "<f4") for r in rows]
    )
    return x, y, shape


@pytest.fixture(scope="module")
def db(server_dsn):
    return fresh_database(server_dsn, "cerebro_encoding")


def test_png_images_decode_exactly_and_jpeg_is_resized(db):
    imgs = _images(12, 10, 14)
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("create table pics (id int primary key, img bytea, lbl int)")
        for i, a in enumerate(imgs):
            c.execute("insert into pics values (%s, %s, %s)", (i, _png(a), i))
        c.execute(
            "select cerebro.load_dataset('pics', 'pics', array['img'], 'lbl', "
            "num_partitions => 2, image_size => array[10, 14])"
        )
        x, y, shape = _buffers(c, "pics")
        assert shape == [10, 14, 3]
        classes = c.execute("select classes from cerebro.datasets where name = 'pics'").fetchone()[
            0
        ]
        for xi, yi in zip(x, y):  # label = id, so every row maps back to its image
            assert np.array_equal(xi, imgs[classes[yi]].astype(np.float32) / 255.0)

        c.execute("create table jpgs as select id, img, lbl from pics")
        c.execute("update jpgs set img = %s where id = 0", (_png(imgs[0], "JPEG"),))
        c.execute(
            "select cerebro.load_dataset('gray', 'jpgs', array['img'], 'lbl', "
            "num_partitions => 1, image_size => array[8, 8], channels => 1)"
        )
        x, _, shape = _buffers(c, "gray")
        assert shape == [8, 8, 1] and x.min() >= 0.0 and x.max() <= 1.0
        enc = c.execute("select encoding from cerebro.datasets where name = 'gray'").fetchone()[0]
        assert enc == {"kind": "image", "size": [8, 8], "channels": 1, "scale": "1/255"}


def test_bad_images_and_options_are_refused_and_create_nothing(db):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("create table broken (id int, img bytea, lbl int)")
        c.execute(
            "insert into broken values (1, %s, 0), (2, 'not an image', 1)",
            (_png(_images(1, 8, 8)[0]),),
        )
        cases = {
            "select cerebro.load_dataset('b1', 'broken', array['img'], 'lbl')": (
                "say what size to decode to"
            ),
            "select cerebro.load_dataset('b2', 'broken', array['img'], 'lbl', "
            "image_size => array[8, 8])": "row 2 of the source cannot be decoded",
            "select cerebro.load_dataset('b3', 'broken', array['img', 'id'], 'lbl')": (
                "must be the only feature"
            ),
            "select cerebro.load_dataset('b4', 'broken', array['id'], 'lbl', "
            "image_size => array[8, 8])": "image_size does not apply to numeric features",
            "select cerebro.load_dataset('b5', 'broken', array['img'], 'lbl', "
            "image_size => array[8, 8], channels => 2)": "channels must be 1",
        }
        for q, want in cases.items():
            with pytest.raises(psycopg.Error) as e:
                c.execute(q)
            assert want in e.value.diag.message_primary, q
        c.execute("delete from broken where id = 2")
        c.execute("insert into broken values (3, null, 0)")
        with pytest.raises(psycopg.Error, match="NULL in row 2"):
            c.execute(
                "select cerebro.load_dataset('b6', 'broken', array['img'], 'lbl', "
                "image_size => array[8, 8])"
            )
        assert (
            c.execute("select count(*) from cerebro.datasets where name like 'b_'").fetchone()[0]
            == 0
        )


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "great", "##s", "bad"]


def test_text_with_a_given_vocabulary_tokenises_wordpiece_and_pads(db):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("create table revs (id int, txt text, y int)")
        c.execute("insert into revs values (1, 'The movies GREAT zzz', 1)")
        c.execute(
            "select cerebro.load_dataset('given', 'revs', array['txt'], 'y', "
            "num_partitions => 1, max_length => 8, vocabulary => %s)",
            (VOCAB,),
        )
        x, _, shape = _buffers(c, "given")
        assert shape == [8]
        # [CLS] the movie ##s great [UNK] [SEP] [PAD]
        assert x[0].tolist() == [2, 5, 6, 8, 7, 1, 3, 0]
        c.execute("insert into revs values (2, %s, 0)", (" ".join(["bad"] * 20),))
        c.execute(
            "select cerebro.load_dataset('trunc', 'revs', array['txt'], 'y', "
            "num_partitions => 1, max_length => 6, vocabulary => %s)",
            (VOCAB,),
        )
        x, y, _ = _buffers(c, "trunc")
        assert x[y == 0][0].tolist() == [2, 9, 9, 9, 9, 3]  # truncated, [SEP] kept
        with pytest.raises(psycopg.Error, match="must start with '\\[PAD\\]'"):
            c.execute(
                "select cerebro.load_dataset('nv', 'revs', array['txt'], 'y', "
                "vocabulary => array['the', '[PAD]'])"
            )


def test_learnt_vocabulary_is_reused_by_like_dataset(db):
    words = ["good", "fine", "awful", "boring", "superb", "plot", "actor", "film"]
    rng = np.random.default_rng(3)
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("create table corpus (id int primary key, txt text, y int)")
        for i in range(200):
            c.execute(
                "insert into corpus values (%s, %s, %s)",
                (i, " ".join(rng.choice(words, 6)) + "!", i % 2),
            )
        c.execute(
            "select cerebro.load_dataset('ctr', 'corpus', array['txt'], 'y', "
            "num_partitions => 2, max_length => 10, vocabulary_size => 200)"
        )
        vocab, enc = c.execute(
            "select vocabulary, encoding from cerebro.datasets where name = 'ctr'"
        ).fetchone()
        assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        assert set(words) <= set(vocab)  # every frequent word is one token
        assert enc["vocabulary_size"] == len(vocab) <= 200 and enc["max_length"] == 10
        x, _, _ = _buffers(c, "ctr")
        assert (x[:, 0] == 2).all() and (x[:, 7] == vocab.index("!")).all()
        assert not (x == 1).any()  # nothing unknown in its own corpus
        c.execute("create view later as select * from corpus where id < 50")
        c.execute(
            "select cerebro.load_dataset('cva', 'later', like_dataset => 'ctr', "
            "num_partitions => 1)"
        )
        v2, e2 = c.execute(
            "select vocabulary, encoding from cerebro.datasets where name = 'cva'"
        ).fetchone()
        assert v2 == vocab and e2 == enc
        with pytest.raises(psycopg.Error, match="cannot be given with like_dataset"):
            c.execute(
                "select cerebro.load_dataset('cva2', 'later', like_dataset => 'ctr', "
                "max_length => 20)"
            )


@pytest.mark.slow
def test_predict_on_raw_image_bytes_after_training(server_dsn):
    """Two visibly different classes (dark and bright images) learnt from PNG bytes; predict
    decodes raw bytes of new images with the training encoding."""
    dsn = fresh_database(server_dsn, "cerebro_encoding_predict")
    rng = np.random.default_rng(5)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("create table shots (id int primary key, img bytea, kind text)")
        for i in range(120):
            bright = i % 2
            a = (rng.random((12, 12, 3)) * 100 + (150 if bright else 0)).astype(np.uint8)
            c.execute(
                "insert into shots values (%s, %s, %s)",
                (i, _png(a), "bright" if bright else "dark"),
            )
        c.execute(
            "select cerebro.load_dataset('shots', 'shots', array['img'], 'kind', "
            "num_partitions => 2, image_size => array[8, 8])"
        )
        c.execute(
            "select cerebro.launch('img', 'mlp', 'shots', null, 'grid', %s, "
            "max_epochs => 2, seed => 1, objective => 'train_loss')",
            (json.dumps({"learning_rate": {"choice": [0.01]}, "batch_size": {"choice": [16]}}),),
        )
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        cid = c.execute(
            "select config_id from cerebro.configs where status = 'completed'"
        ).fetchone()[0]
        assert (
            c.execute("select cerebro.predict(%s, 'shots', 'guess')", (cid,)).fetchone()[0] == 120
        )
        right = c.execute(
            "select avg((g.kind = s.kind)::int) from guess g join shots s using (id)"
        ).fetchone()[0]
        assert right > 0.95
