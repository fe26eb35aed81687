-- Indexes of user tables. indkey is sent as text ("1 2"): the int2vector-to-array cast yields an
-- array indexed from 0, which the driver refuses, and rebuilding it costs a subquery per index.
-- The constraint an index implements is matched by the reader from the constraints query
-- (conindid), cheaper than joining pg_constraint here; the definition texts some fixes need come
-- from index_defs.sql, for the few indexes that need them.
-- $1: oid[] of the indexed tables to read; the full read swaps the line marked as the scope filter for `$1 IS NULL`.
SELECT i.indexrelid,
       i.indrelid,
       ic.relname::text AS name,
       i.indisunique,
       i.indisprimary,
       i.indisvalid,
       i.indpred IS NOT NULL AS partial,
       i.indnkeyatts,
       i.indkey::text AS keys
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND i.indrelid = ANY($1::oid[]) -- scope
