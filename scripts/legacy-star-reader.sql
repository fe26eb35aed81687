-- The OLD application reading a membership as many ORMs and hand-written code do: `SELECT *` by
-- id. Run with `pgbench -M prepared`, it is a prepared statement from its first execution (psycopg 3
-- prepares after five, pgjdbc after five by default): adding realm_id changes its result type, and
-- its next execution fails with SQLSTATE 0A000 (cached plan must not change result type).
--   pgbench -M prepared -D n=… -f scripts/legacy-star-reader.sql
\set m random(1, :n)
SELECT * FROM memberships WHERE id = :m;
