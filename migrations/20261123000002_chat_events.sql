-- The per-chat event log: every event recipients see (message.new,
-- message.updated, message.deleted, message.reaction), stored as the exact
-- frame text that was published. It gives
--   * idempotency: a retried client frame id finds its event and gets the
--     original ack instead of a second event;
--   * exact replay: sync falls back to this table when the Redis topic
--     stream no longer holds the gap, and re-publishing after a worker crash
--     sends byte-identical frames.
-- (seq, sub) is the topic stream entry id "<seq>-<sub>".
CREATE TABLE chat_events (
    chat_id     BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    sub         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    user_id     BIGINT NOT NULL,
    message_id  BIGINT NOT NULL,
    frame       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, seq, sub),
    CONSTRAINT chat_events_client UNIQUE (chat_id, client_id)
);
