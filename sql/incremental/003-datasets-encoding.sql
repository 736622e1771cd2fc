-- 0.2.0: image and text datasets. `encoding` says how a source row became a feature tensor
-- ({"kind": "numeric"} | {"kind": "image", "size": [h, w], "channels": c} |
--  {"kind": "text", "max_length": n, "lowercase": true, "vocabulary_size": v}); the WordPiece
-- vocabulary of a text dataset is kept apart so that the training path never reads it.
alter table cerebro.datasets add column encoding jsonb not null default '{"kind": "numeric"}';
alter table cerebro.datasets add column vocabulary text[];
alter table cerebro.datasets add constraint datasets_text_has_vocabulary
    check ((encoding ->> 'kind' = 'text') = (vocabulary is not null));

-- load_dataset gained image and text parameters: drop the 0.1.0 signature (an upgrade would
-- otherwise keep it as an ambiguous overload).
drop function if exists cerebro.load_dataset(text, text, text[], text, int, int, bigint, text,
                                             text, text);
