-- Issue 11 item 2: a contiguous per-chat event counter and fenced shard
-- leases.
--
-- Every event of a chat (message.new, message.updated, message.deleted,
-- message.reaction) gets `event_seq` = 1, 2, 3, ... with no holes among
-- committed rows: it is taken from chats.last_event under the chat row's
-- lock inside the committing transaction, so a rolled-back batch gives its
-- numbers back. Gateways and clients detect a missed event of any kind as a
-- jump in eventSeq (message seqs alone only reveal missed messages), and
-- the topic-publish script refuses to append event N+2 after N.
ALTER TABLE chats ADD COLUMN last_event BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chat_events ADD COLUMN event_seq BIGINT;

-- Existing events are numbered in their (seq, sub) order, and their stored
-- frames gain the number, so a replay from PostgreSQL carries it too. The
-- frame text ends with its payload object (`...,"payload":{...}}`): the
-- field is spliced in as text, because a jsonb round trip would reorder the
-- envelope and frames must start with `{"type":`.
UPDATE chat_events ev
SET event_seq = numbered.n,
    frame = left(ev.frame, -2) || ',"eventSeq":' || numbered.n || '}}'
FROM (
    SELECT chat_id, seq, sub,
           row_number() OVER (PARTITION BY chat_id ORDER BY seq, sub) AS n
    FROM chat_events
) numbered
WHERE ev.chat_id = numbered.chat_id AND ev.seq = numbered.seq AND ev.sub = numbered.sub;

UPDATE chats c
SET last_event = counted.n
FROM (SELECT chat_id, max(event_seq) AS n FROM chat_events GROUP BY chat_id) counted
WHERE c.id = counted.chat_id;

ALTER TABLE chat_events ALTER COLUMN event_seq SET NOT NULL;
ALTER TABLE chat_events ADD CONSTRAINT chat_events_event_seq UNIQUE (chat_id, event_seq);

-- Fencing epochs. A worker that takes an ingest shard's lease draws a new
-- epoch from one global sequence (so epochs order across shards, and
-- survive a Redis restart, which forgets every lease). Each commit checks,
-- holding a share lock on the shard's row, that the epoch it was given is
-- still the shard's: a worker that lost its lease without noticing (Redis
-- restarted, a long GC-like pause) cannot commit after the new owner
-- started, and the new owner's bump waits for its in-flight commit.
CREATE SEQUENCE fence_epochs;
CREATE TABLE shard_fences (
    shard  INT PRIMARY KEY,
    epoch  BIGINT NOT NULL
);
