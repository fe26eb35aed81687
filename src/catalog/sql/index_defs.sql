-- The text of each key column or expression and of the predicate of the given indexes: the unique
-- indexes whose key lacks the realm column, which the unique-without-realm fix rebuilds with it.
-- pg_get_indexdef and pg_get_expr read only the catalog, so no privilege on the table is needed.
-- Asked only for those indexes because deparsing costs more than reading every index.
-- $1: oid[] of the indexes (may be empty: the query is always sent, so the count stays constant).
SELECT i.indexrelid,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
             FROM generate_series(1, i.indnkeyatts::int) AS k ORDER BY k) AS key_defs,
       pg_get_expr(i.indpred, i.indrelid, true) AS predicate
FROM pg_index i
WHERE i.indexrelid = ANY($1::oid[])
