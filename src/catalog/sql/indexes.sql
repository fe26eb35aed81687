-- Indexes of user tables. indkey is sent as text ("1 2"): the int2vector-to-array cast yields an
-- array indexed from 0, which the driver refuses, and rebuilding it costs a subquery per index.
-- The constraint an index implements is matched by the reader from the constraints query
-- (conindid), cheaper than joining pg_constraint here; the definition texts some fixes need come
-- from index_defs.sql, for the few indexes that need them.
-- $1: oid[] of the indexed tables to read; the full read swaps the line marked as the scope filter for `$1 IS NULL`.
-- The lines marked `full read only` keep system tables' indexes out of the full read; the scoped
-- read leaves them out (its tables are ordinary or partitioned user tables already, and the reader
-- drops the indexes of tables it did not read): the joins cost 8% of the guard's read. It takes
-- each index's name by a lookup per index instead (`scoped read only`): a join planned while the
-- catalog is small is a merge join over the whole of pg_class, kept while the catalog grows.
SELECT i.indexrelid,
       i.indrelid,
       ic.relname::text AS name, -- full read only
       (SELECT ic.relname::text FROM pg_class ic WHERE ic.oid = i.indexrelid) AS name, -- scoped read only
       i.indisunique,
       i.indisprimary,
       i.indisvalid,
       i.indpred IS NOT NULL AS partial,
       i.indnkeyatts,
       i.indkey::text AS keys
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid -- full read only
JOIN pg_class c ON c.oid = i.indrelid -- full read only
JOIN pg_namespace n ON n.oid = c.relnamespace -- full read only
WHERE i.indrelid <> 0
  AND c.relkind IN ('r', 'p') -- full read only
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') -- full read only
  AND n.nspname NOT LIKE 'pg\_toast%' -- full read only
  AND i.indrelid = ANY($1::oid[]) -- scope
