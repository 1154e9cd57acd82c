-- Issue 13 item 5 (seed 002 §7.5): messages and chat events partitioned by
-- hash of chat_id, 16 partitions each.
--
-- Why hash by chat: every hot query names one chat (the send path's
-- inserts and checks, sync from PostgreSQL, REST paging, edits, deletes,
-- reactions), so the planner reads one partition of 1/16 of the table and
-- one set of smaller indexes; vacuum and index maintenance work per
-- partition; a partition can be moved, reindexed or dumped alone. Time
-- ranges would put every write of the pool into the newest partition and
-- make (chat_id, seq) uniqueness span partitions, which PostgreSQL cannot
-- enforce. Ageing out old messages is the archival policy in
-- docs/architecture.md (Database growth), by chat and date inside the
-- partitions.
--
-- What changes for queries: a unique constraint of a partitioned table
-- must contain the partition key, so the primary key is (chat_id, id) and
-- rows that point at a message (reactions, urgent_messages, reply_to) do
-- so by (chat_id, message id). Message ids stay globally unique: they come
-- from one sequence. A lookup by id alone (rare: REST by message id) uses
-- the per-partition index on id, probing each partition.
--
-- The copy runs inside this migration's transaction and holds an ACCESS
-- EXCLUSIVE lock on messages and chat_events meanwhile: on a deployment
-- with millions of rows, run it in a maintenance window (1M messages and
-- their events took 12 s on the benchmark machine; docs/architecture.md).

-- 1. Detach what points at the old table, and keep its id sequence.
ALTER TABLE reactions DROP CONSTRAINT reactions_message_id_fkey;
ALTER TABLE urgent_messages DROP CONSTRAINT urgent_messages_message_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_reply_to_fkey;
ALTER SEQUENCE messages_id_seq OWNED BY NONE;
ALTER TABLE messages RENAME TO messages_unpartitioned;
ALTER TABLE chat_events RENAME TO chat_events_unpartitioned;

-- 2. The partitioned tables: same columns, defaults and checks.
CREATE TABLE messages (LIKE messages_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY HASH (chat_id);
CREATE TABLE chat_events (LIKE chat_events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY HASH (chat_id);
DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE messages_p%s PARTITION OF messages FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            lpad(i::text, 2, '0'), i);
        EXECUTE format(
            'CREATE TABLE chat_events_p%s PARTITION OF chat_events FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            lpad(i::text, 2, '0'), i);
    END LOOP;
END
$$;

-- 3. The rows (search_tsv is copied as it is: the trigger comes after).
INSERT INTO messages SELECT * FROM messages_unpartitioned;
INSERT INTO chat_events SELECT * FROM chat_events_unpartitioned;
DROP TABLE messages_unpartitioned;
DROP TABLE chat_events_unpartitioned;
ALTER SEQUENCE messages_id_seq OWNED BY messages.id;

-- 4. Keys and indexes, built once over the copied rows. The search index
--    (messages_search) is built by `worker migrate` afterwards, partition
--    by partition without blocking writes (store::text_index::ensure_index).
ALTER TABLE messages ADD CONSTRAINT messages_pkey PRIMARY KEY (chat_id, id);
ALTER TABLE messages ADD CONSTRAINT messages_chat_seq UNIQUE (chat_id, seq);
ALTER TABLE messages ADD CONSTRAINT messages_chat_sender_client UNIQUE (chat_id, sender_id, client_id);
ALTER TABLE messages ADD CONSTRAINT messages_chat_id_fkey
    FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE;
ALTER TABLE messages ADD CONSTRAINT messages_sender_id_fkey
    FOREIGN KEY (sender_id) REFERENCES users (id);
CREATE INDEX messages_id ON messages (id);
CREATE INDEX messages_sender ON messages (sender_id);
-- A reply points into its own chat (the worker checks it; the key holds it).
UPDATE messages r SET reply_to = NULL
WHERE reply_to IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.chat_id = r.chat_id AND m.id = r.reply_to);
ALTER TABLE messages ADD CONSTRAINT messages_reply_to_fkey
    FOREIGN KEY (chat_id, reply_to) REFERENCES messages (chat_id, id) ON DELETE SET NULL (reply_to);

ALTER TABLE chat_events ADD CONSTRAINT chat_events_pkey PRIMARY KEY (chat_id, seq, sub);
ALTER TABLE chat_events ADD CONSTRAINT chat_events_user_client UNIQUE (chat_id, user_id, client_id);
ALTER TABLE chat_events ADD CONSTRAINT chat_events_event_seq UNIQUE (chat_id, event_seq);
ALTER TABLE chat_events ADD CONSTRAINT chat_events_chat_id_fkey
    FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE;

-- 5. Reactions and urgent messages point at (chat, message).
ALTER TABLE reactions ADD COLUMN chat_id BIGINT;
UPDATE reactions r SET chat_id = m.chat_id FROM messages m WHERE m.id = r.message_id;
DELETE FROM reactions WHERE chat_id IS NULL;
ALTER TABLE reactions ALTER COLUMN chat_id SET NOT NULL;
ALTER TABLE reactions ADD CONSTRAINT reactions_message_fkey
    FOREIGN KEY (chat_id, message_id) REFERENCES messages (chat_id, id) ON DELETE CASCADE;
DELETE FROM urgent_messages u
WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.chat_id = u.chat_id AND m.id = u.message_id);
ALTER TABLE urgent_messages ADD CONSTRAINT urgent_messages_message_fkey
    FOREIGN KEY (chat_id, message_id) REFERENCES messages (chat_id, id) ON DELETE CASCADE;

-- 6. The search trigger of migration 9, on the partitioned table (each
--    partition inherits it).
CREATE TRIGGER messages_search_tsv
    BEFORE INSERT OR UPDATE OF content ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_search_tsv();
