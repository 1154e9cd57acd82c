-- JIT compilation off for this database (issue 13 item 5).
--
-- PostgreSQL compiles a query with LLVM once its estimated cost passes
-- jit_above_cost (100000). Every query of this pool is short (index
-- lookups in one chat), but estimates grow with the tables: at 10M
-- messages the send path's badge query (store::badge::of_members: its
-- mention count is an Append over the 16 partitions of `messages`) is
-- estimated at ~124k, and compiling it took ~67 ms of an 89 ms execution
-- whose real work was 0.01 ms (EXPLAIN ANALYZE, `make bench-growth`).
-- Send latency p50 went from 9 ms at 1M messages to 64 ms at 10M for that
-- reason alone. JIT pays off for long analytical scans, which this
-- database does not serve.
--
-- A database setting, not a per-connection SET: through PgBouncer in
-- transaction pooling mode a session SET would land on whichever server
-- connection ran it. It applies to server sessions started after this
-- migration (restart PgBouncer's pool or the processes to apply it to
-- open ones).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
END
$$;
