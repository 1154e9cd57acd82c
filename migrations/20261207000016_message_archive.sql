-- Time-based archival of messages (issue 13 item 5, seed 002 §7.5
-- "partition by chatId (hash) + time-based archival"; the policy is in
-- docs/architecture.md, "Database growth").
--
-- A workspace may set `archive_after_days` (NULL, the default: never).
-- Once an hour one worker moves each chat's messages older than that, as
-- a prefix of the chat's seqs, from `messages` to `messages_archive`
-- (worker/src/archival.rs); `chats.archived_seq` is the highest seq moved,
-- so a REST page knows which table holds a seq without probing both.
ALTER TABLE workspaces ADD COLUMN archive_after_days INTEGER
    CHECK (archive_after_days BETWEEN 30 AND 36500);
ALTER TABLE chats ADD COLUMN archived_seq BIGINT NOT NULL DEFAULT 0;

-- The archive: the columns of `messages` (without the search vector:
-- archived messages are not searched), the message's reactions as they
-- were when it moved (the `reactions` rows go with the message), and when
-- it moved. Partitioned by month of `created_at`, so an operator can
-- detach a whole month, dump it to object storage and drop it; the
-- worker creates each month's partition before it moves rows into it.
-- The key holds the partition key; (chat_id, seq) stays unique because
-- rows arrive only from `messages`, where it is a key, in the statement
-- that deletes them there. No foreign keys: creating a partition copies
-- them, and copying one locks the referenced table against writes
-- (SHARE ROW EXCLUSIVE on `chats`, which every send updates), so each new
-- month would pause the write path. Deleting a chat deletes its archived
-- rows itself (store::chat::delete); users are never deleted.
CREATE TABLE messages_archive (
    id          BIGINT NOT NULL,
    chat_id     BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    sender_id   BIGINT NOT NULL,
    content     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    reply_to    BIGINT,
    mentions    BIGINT[] NOT NULL DEFAULT '{}',
    priority    TEXT NOT NULL DEFAULT 'normal',
    created_at  TIMESTAMPTZ NOT NULL,
    edited_at   TIMESTAMPTZ,
    deleted_at  TIMESTAMPTZ,
    reactions   JSONB NOT NULL DEFAULT '[]',
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, seq, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX messages_archive_id ON messages_archive (id);

-- A reply may point at a message that has moved to the archive, where a
-- key cannot follow it. Messages are otherwise never hard-deleted (a
-- delete blanks the content) except with their whole chat, and the worker
-- checks at commit that a reply's target is in the same chat, hot or
-- archived (worker/src/send_checks.rs), so the key's only remaining
-- effect would be clearing the links of replies to archived messages.
ALTER TABLE messages DROP CONSTRAINT messages_reply_to_fkey;
