-- The relations another session holds, or waits for, in ACCESS EXCLUSIVE mode in this database.
-- pg_get_indexdef and pg_get_expr take ACCESS SHARE on the table (PostgreSQL 15), so a read that
-- must never queue deparses nothing of these. Put in front of the query that uses `busy`
-- (concat! of this file and that one).
WITH busy AS (
    SELECT l.relation
    FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.mode = 'AccessExclusiveLock'
      AND l.pid <> pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
