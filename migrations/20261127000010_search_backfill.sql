-- no-transaction
-- Fills search_tsv of the messages that existed before the trigger, 5,000
-- rows per committed batch (row locks held for one batch only). Runs as
-- one DO statement outside a transaction block so it may COMMIT.
DO $$
DECLARE
    last_id BIGINT := 0;
    batch_end BIGINT;
BEGIN
    LOOP
        SELECT max(id) INTO batch_end FROM (
            SELECT id FROM messages WHERE id > last_id ORDER BY id LIMIT 5000
        ) batch;
        EXIT WHEN batch_end IS NULL;
        UPDATE messages SET search_tsv = to_tsvector('simple', translate(content, '<>', '  '))
        WHERE id > last_id AND id <= batch_end AND search_tsv IS NULL;
        last_id := batch_end;
        COMMIT;
    END LOOP;
END
$$;
