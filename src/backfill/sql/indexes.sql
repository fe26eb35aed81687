-- Indexes with their key columns ('' for an expression column), validity and shape.
SELECT n.nspname::text, c.relname::text, ic.relname::text, i.indisunique, i.indisprimary,
       i.indisvalid, i.indpred IS NOT NULL,
       ARRAY(SELECT coalesce(a.attname::text, '')
             FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(num, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
             ORDER BY k.ord)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1, 2, 3
