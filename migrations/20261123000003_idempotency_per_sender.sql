-- Client frame ids are chosen by clients, so two users may pick the same
-- one: idempotency is per sender, not per chat. (A retry always comes from
-- the same user.)
ALTER TABLE messages DROP CONSTRAINT messages_chat_client;
ALTER TABLE messages ADD CONSTRAINT messages_chat_sender_client UNIQUE (chat_id, sender_id, client_id);
ALTER TABLE chat_events DROP CONSTRAINT chat_events_client;
ALTER TABLE chat_events ADD CONSTRAINT chat_events_user_client UNIQUE (chat_id, user_id, client_id);
