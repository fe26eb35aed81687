-- The text of each key expression and of the predicate of the given indexes: the partial or
-- expression unique indexes whose key lacks the realm column, which the unique-without-realm fix
-- rebuilds with it (plain-column keys are written from the column names, no deparsing needed).
-- pg_get_indexdef and pg_get_expr take ACCESS SHARE on the table (PostgreSQL 15), so an index
-- whose table or index someone else holds, or waits for, in ACCESS EXCLUSIVE mode is skipped:
-- verify must never queue behind a migration (the migrate guard reads the committed state on a
-- second connection while the migration holds its locks, and would wait for itself).
-- $1: oid[] of the indexes (may be empty: the query is always sent, so the count stays constant).
SELECT i.indexrelid,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
             FROM generate_series(1, i.indnkeyatts::int) AS k ORDER BY k) AS key_defs,
       pg_get_expr(i.indpred, i.indrelid, true) AS predicate
FROM pg_index i
WHERE i.indexrelid = ANY($1::oid[])
  AND NOT EXISTS (SELECT 1 FROM busy WHERE busy.relation IN (i.indrelid, i.indexrelid))
