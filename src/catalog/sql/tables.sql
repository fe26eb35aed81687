-- Ordinary and partitioned tables (partitions included and flagged, so the rules can skip them)
-- outside the system schemas and realmguard's own, each with its live columns aggregated into
-- arrays so the whole catalog costs one round trip.
-- $1: oid[] to restrict to, or NULL for every table.
SELECT c.oid,
       n.nspname::text AS schema,
       c.relname::text AS name,
       c.relkind::text AS kind,
       c.relispartition,
       c.relrowsecurity,
       -- int2vector casts to an array indexed from 0, which the driver refuses: rebuild it.
       CASE WHEN pt.partrelid IS NOT NULL THEN
           ARRAY(SELECT k FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS u(k, n) ORDER BY n)
       END AS partition_key,
       cols.nums,
       cols.names,
       cols.types,
       cols.not_null
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
LEFT JOIN LATERAL (
    SELECT array_agg(a.attnum ORDER BY a.attnum) AS nums,
           array_agg(a.attname::text ORDER BY a.attnum) AS names,
           array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS types,
           array_agg(a.attnotnull ORDER BY a.attnum) AS not_null
    FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
) cols ON true
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND ($1::oid[] IS NULL OR c.oid = ANY($1::oid[]))
