-- Indexes of user tables. For unique non-primary indexes also the text of each key column or
-- expression and of the predicate (pg_get_indexdef/pg_get_expr read only the catalog, so no
-- privilege on the table is needed): the fix for unique-without-realm rebuilds the index from them.
-- $1: oid[] of the indexed tables to restrict to, or NULL for every table.
SELECT i.indexrelid,
       i.indrelid,
       ic.relname::text AS name,
       i.indisunique,
       i.indisprimary,
       i.indisvalid,
       i.indpred IS NOT NULL AS partial,
       i.indnkeyatts,
       -- int2vector casts to an array indexed from 0, which the driver refuses: rebuild it.
       ARRAY(SELECT k FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS u(k, n) ORDER BY n) AS keys,
       co.conname::text AS constraint_name,
       CASE WHEN i.indisunique AND NOT i.indisprimary THEN
           ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
                 FROM generate_series(1, i.indnkeyatts::int) AS k ORDER BY k)
       END AS key_defs,
       CASE WHEN i.indisunique AND NOT i.indisprimary THEN
           pg_get_expr(i.indpred, i.indrelid, true)
       END AS predicate,
       am.amname::text AS method
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_constraint co
       ON co.conindid = i.indexrelid AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x')
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND ($1::oid[] IS NULL OR i.indrelid = ANY($1::oid[]))
