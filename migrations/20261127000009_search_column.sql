-- Full-text search on PostgreSQL (issue 10): a tsvector per message, kept
-- by a trigger (BEFORE INSERT, and on UPDATE OF content: an edit replaces
-- the old words, a delete blanks them).
--
-- Not a GENERATED ... STORED column: adding one rewrites the whole table
-- under an ACCESS EXCLUSIVE lock. A nullable column without default is a
-- catalog change only; the next two migrations backfill in small
-- committed batches and build the GIN index CONCURRENTLY, so sends keep
-- committing while a large table is converted.
--
-- `<` and `>` become spaces first: PostgreSQL's parser would otherwise
-- read `<b>` or `x<y>z` as markup and leave it out of the index, and
-- chat text is not HTML.
ALTER TABLE messages ADD COLUMN search_tsv tsvector;

CREATE FUNCTION messages_search_tsv() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_tsv := to_tsvector('simple', translate(NEW.content, '<>', '  '));
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_search_tsv
    BEFORE INSERT OR UPDATE OF content ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_search_tsv();

