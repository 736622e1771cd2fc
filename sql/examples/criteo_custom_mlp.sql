-- Criteo-style click-through prediction with a custom model: 13 integer count features and
-- 26 categorical (hex-hashed) features, as in the Criteo display-advertising logs. Categorical
-- values are hashed into buckets in SQL and embedded by the model ("hashing trick"), so no
-- vocabulary is needed and unseen values still map somewhere.
--
--   psql -v rows=20000 -f sql/examples/criteo_custom_mlp.sql      (then run the scheduler)
--
-- With real Criteo data, load the TSV into criteo_sample (columns clicked, i1..i13, c1..c26)
-- with COPY and skip step 1.

-- 1. A synthetic sample with Criteo's layout. Clicks depend on c1, c2 and i1 (plus 5% noise),
--    so a model must learn the categorical embeddings to beat the base rate.
SELECT setseed(0.17);
CREATE TABLE criteo_sample AS
WITH r AS (
  SELECT g AS id,
         array(SELECT CASE WHEN random() < 0.1 THEN NULL ELSE floor(random() * 50)::int END
                 FROM generate_series(1, 13) WHERE g > 0) AS i,
         array(SELECT floor(random() * 10 * k)::int FROM generate_series(1, 26) k
                WHERE g > 0) AS c,
         random() AS noise
    FROM generate_series(1, :rows) g)
SELECT id,
       (((c[1] % 3 = 0)::int + (c[2] % 2 = 0)::int + (coalesce(i[1], 0) > 25)::int >= 2)
          <> (noise < 0.05))::int AS clicked,
       i[1] AS i1,
       i[2] AS i2,
       i[3] AS i3,
       i[4] AS i4,
       i[5] AS i5,
       i[6] AS i6,
       i[7] AS i7,
       i[8] AS i8,
       i[9] AS i9,
       i[10] AS i10,
       i[11] AS i11,
       i[12] AS i12,
       i[13] AS i13,
       to_hex((c[1] * 2654435761::bigint + 1) % 4294967296) AS c1,
       to_hex((c[2] * 2654435761::bigint + 2) % 4294967296) AS c2,
       to_hex((c[3] * 2654435761::bigint + 3) % 4294967296) AS c3,
       to_hex((c[4] * 2654435761::bigint + 4) % 4294967296) AS c4,
       to_hex((c[5] * 2654435761::bigint + 5) % 4294967296) AS c5,
       to_hex((c[6] * 2654435761::bigint + 6) % 4294967296) AS c6,
       to_hex((c[7] * 2654435761::bigint + 7) % 4294967296) AS c7,
       to_hex((c[8] * 2654435761::bigint + 8) % 4294967296) AS c8,
       to_hex((c[9] * 2654435761::bigint + 9) % 4294967296) AS c9,
       to_hex((c[10] * 2654435761::bigint + 10) % 4294967296) AS c10,
       to_hex((c[11] * 2654435761::bigint + 11) % 4294967296) AS c11,
       to_hex((c[12] * 2654435761::bigint + 12) % 4294967296) AS c12,
       to_hex((c[13] * 2654435761::bigint + 13) % 4294967296) AS c13,
       to_hex((c[14] * 2654435761::bigint + 14) % 4294967296) AS c14,
       to_hex((c[15] * 2654435761::bigint + 15) % 4294967296) AS c15,
       to_hex((c[16] * 2654435761::bigint + 16) % 4294967296) AS c16,
       to_hex((c[17] * 2654435761::bigint + 17) % 4294967296) AS c17,
       to_hex((c[18] * 2654435761::bigint + 18) % 4294967296) AS c18,
       to_hex((c[19] * 2654435761::bigint + 19) % 4294967296) AS c19,
       to_hex((c[20] * 2654435761::bigint + 20) % 4294967296) AS c20,
       to_hex((c[21] * 2654435761::bigint + 21) % 4294967296) AS c21,
       to_hex((c[22] * 2654435761::bigint + 22) % 4294967296) AS c22,
       to_hex((c[23] * 2654435761::bigint + 23) % 4294967296) AS c23,
       to_hex((c[24] * 2654435761::bigint + 24) % 4294967296) AS c24,
       to_hex((c[25] * 2654435761::bigint + 25) % 4294967296) AS c25,
       to_hex((c[26] * 2654435761::bigint + 26) % 4294967296) AS c26
  FROM r;

-- 2. Features: log counts (missing = 0) and categorical values hashed to 1,000,003 buckets,
--    as one array per row. Hash ids are exact in float32 (< 2^24); normalisation is off so
--    they reach the model unchanged.
CREATE VIEW criteo_features AS
SELECT id, clicked,
       ARRAY[ln(1 + coalesce(i1, 0)),
             ln(1 + coalesce(i2, 0)),
             ln(1 + coalesce(i3, 0)),
             ln(1 + coalesce(i4, 0)),
             ln(1 + coalesce(i5, 0)),
             ln(1 + coalesce(i6, 0)),
             ln(1 + coalesce(i7, 0)),
             ln(1 + coalesce(i8, 0)),
             ln(1 + coalesce(i9, 0)),
             ln(1 + coalesce(i10, 0)),
             ln(1 + coalesce(i11, 0)),
             ln(1 + coalesce(i12, 0)),
             ln(1 + coalesce(i13, 0)),
             abs(hashtext(coalesce(c1, ''))) % 1000003,
             abs(hashtext(coalesce(c2, ''))) % 1000003,
             abs(hashtext(coalesce(c3, ''))) % 1000003,
             abs(hashtext(coalesce(c4, ''))) % 1000003,
             abs(hashtext(coalesce(c5, ''))) % 1000003,
             abs(hashtext(coalesce(c6, ''))) % 1000003,
             abs(hashtext(coalesce(c7, ''))) % 1000003,
             abs(hashtext(coalesce(c8, ''))) % 1000003,
             abs(hashtext(coalesce(c9, ''))) % 1000003,
             abs(hashtext(coalesce(c10, ''))) % 1000003,
             abs(hashtext(coalesce(c11, ''))) % 1000003,
             abs(hashtext(coalesce(c12, ''))) % 1000003,
             abs(hashtext(coalesce(c13, ''))) % 1000003,
             abs(hashtext(coalesce(c14, ''))) % 1000003,
             abs(hashtext(coalesce(c15, ''))) % 1000003,
             abs(hashtext(coalesce(c16, ''))) % 1000003,
             abs(hashtext(coalesce(c17, ''))) % 1000003,
             abs(hashtext(coalesce(c18, ''))) % 1000003,
             abs(hashtext(coalesce(c19, ''))) % 1000003,
             abs(hashtext(coalesce(c20, ''))) % 1000003,
             abs(hashtext(coalesce(c21, ''))) % 1000003,
             abs(hashtext(coalesce(c22, ''))) % 1000003,
             abs(hashtext(coalesce(c23, ''))) % 1000003,
             abs(hashtext(coalesce(c24, ''))) % 1000003,
             abs(hashtext(coalesce(c25, ''))) % 1000003,
             abs(hashtext(coalesce(c26, ''))) % 1000003
       ]::real[] AS x
  FROM criteo_sample;
CREATE VIEW criteo_train AS SELECT * FROM criteo_features WHERE id % 5 <> 0;
CREATE VIEW criteo_valid AS SELECT * FROM criteo_features WHERE id % 5 = 0;

SELECT cerebro.load_dataset('criteo_train', 'criteo_train', features => ARRAY['x'],
                            label => 'clicked', normalization => 'none');
SELECT cerebro.load_dataset('criteo_valid', 'criteo_valid', like_dataset => 'criteo_train');

-- 3. The model: hashed embeddings for the categorical part, concatenated with the numeric
--    part, then an MLP. `hash_buckets` folds the 1,000,003 SQL buckets into a smaller table.
SELECT cerebro.register_model('criteo_mlp', entry_point => 'build', source => $py$
import keras
from keras import layers, ops

NUMERIC = 13


def build(config):
    ds = config["dataset"]
    width = ds["feature_shape"][0]
    buckets = int(config.get("hash_buckets", 10007))
    x = keras.Input(shape=(width,))
    numeric = x[:, :NUMERIC]
    ids = ops.mod(ops.cast(x[:, NUMERIC:], "int32"), buckets)
    emb = layers.Embedding(buckets, int(config.get("embedding_dim", 8)))(ids)
    h = layers.Concatenate()([numeric, layers.Flatten()(emb)])
    for units in config.get("hidden", [64, 32]):
        h = layers.Dense(int(units), activation="relu")(h)
    out = layers.Dense(ds["num_classes"], activation="softmax")(h)
    model = keras.Model(x, out, name="criteo_mlp")
    model.compile(optimizer=keras.optimizers.Adam(float(config.get("learning_rate", 1e-3))),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
$py$, param_schema => '{
    "hash_buckets":  {"type": "int", "min": 2, "max": 1000003, "default": 10007},
    "embedding_dim": {"type": "int", "min": 1, "max": 256, "default": 8},
    "hidden":        {"type": "int_list", "default": [64, 32]},
    "learning_rate": {"type": "float", "min": 1e-6, "max": 1.0, "default": 0.001}
  }', dataset => 'criteo_train');

-- 4. A grid search over the embedding size and learning rate.
SELECT cerebro.launch('criteo', model => 'criteo_mlp', train => 'criteo_train',
         valid => 'criteo_valid', search => 'grid', max_epochs => 3, seed => 7,
         space => '{"embedding_dim": {"choice": [4, 16]},
                    "learning_rate": {"choice": [0.003, 0.01]}}',
         params => '{"batch_size": 128, "hash_buckets": 1009}');
