-- Read-only broadcast channels (seed 002 §7.2, issue 13 item 4).
--
-- A channel with read_only = true accepts messages only from its owner and
-- admins; members read, react and mark read. The worker checks it in the
-- same transaction that commits a send (worker/src/send_checks.rs), so a
-- change of the flag or of a role applies to the next batch. Only channels
-- can be read-only (gateway/src/chat_policy.rs); the CHECK keeps the rule
-- in the database too.
ALTER TABLE chats ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE chats ADD CONSTRAINT chats_read_only_channel
    CHECK (NOT read_only OR type IN ('private_channel', 'public_channel'));
