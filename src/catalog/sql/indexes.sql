-- Indexes of user tables. For unique non-primary indexes whose key lacks the realm column, also
-- the text of each key column or expression and of the predicate (pg_get_indexdef/pg_get_expr read
-- only the catalog, so no privilege on the table is needed): the fix for unique-without-realm
-- rebuilds the index from them. Only for those: deparsing every index costs more than the rest of
-- the query on a big catalog. The constraint an index implements is matched in Rust from the
-- constraints query (conindid), which is cheaper than joining pg_constraint here.
-- indkey is sent as text ("1 2"): the int2vector-to-array cast yields an array indexed from 0,
-- which the driver refuses, and rebuilding it costs a subquery per index.
-- $1: oid[] of the indexed tables to read; the full read swaps the line marked as the scope filter for `$1 IS NULL`; $2: the realm column.
SELECT i.indexrelid,
       i.indrelid,
       ic.relname::text AS name,
       i.indisunique,
       i.indisprimary,
       i.indisvalid,
       i.indpred IS NOT NULL AS partial,
       i.indnkeyatts,
       i.indkey::text AS keys,
       d.key_defs,
       d.predicate,
       am.amname::text AS method
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
                 FROM generate_series(1, i.indnkeyatts::int) AS k ORDER BY k) AS key_defs,
           pg_get_expr(i.indpred, i.indrelid, true) AS predicate
    WHERE i.indisunique AND NOT i.indisprimary
      AND NOT EXISTS (
          SELECT 1 FROM pg_attribute a
          WHERE a.attrelid = i.indrelid AND a.attname = $2::text
            AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])
      )
    -- OFFSET 0 keeps this a subquery, so the WHERE runs before the deparsing instead of
    -- becoming a join filter applied after it.
    OFFSET 0
) AS d ON true
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND i.indrelid = ANY($1::oid[]) -- scope
