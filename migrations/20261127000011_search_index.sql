-- no-transaction
-- The GIN index of message search, built without blocking writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_search ON messages USING gin (search_tsv);
