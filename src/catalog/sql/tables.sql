-- Ordinary and partitioned tables (partitions included and flagged, so the rules can skip them)
-- outside the system schemas and realmguard's own, each with its live columns aggregated into
-- arrays so the whole catalog costs one round trip.
-- $1: oid[] to read; the full read swaps the line marked as the scope filter for `$1 IS NULL`.
SELECT c.oid,
       n.nspname::text AS schema,
       c.relname::text AS name,
       c.relkind::text AS kind,
       c.relispartition,
       c.relrowsecurity,
       -- int2vector as text ("1 2"): its array cast is indexed from 0, which the driver refuses.
       pt.partattrs::text AS partition_key,
       cols.nums,
       cols.names,
       cols.not_null
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
-- No ORDER BY inside the aggregates (a sort per table costs a third of the query); the three
-- arrays come from the same rows in the same order, which is all the reader relies on.
LEFT JOIN LATERAL (
    SELECT array_agg(a.attnum) AS nums,
           array_agg(a.attname::text) AS names,
           array_agg(a.attnotnull) AS not_null
    FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
) cols ON true
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND c.oid = ANY($1::oid[]) -- scope
