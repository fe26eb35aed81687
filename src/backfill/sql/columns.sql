-- Every ordinary table (not a partition) outside the system schemas, with its columns in order.
SELECT n.nspname::text, c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
       pg_get_userbyid(c.relowner)::text,
       a.attname::text, format_type(a.atttypid, a.atttypmod),
       -- NOT NULL that holds for every row: PostgreSQL 18 also sets attnotnull for a NOT VALID
       -- not-null constraint (contype 'n', absent before 18), which old rows may break; that
       -- constraint's name comes last, so the plan can validate it.
       a.attnotnull AND nv.conname IS NULL,
       nv.conname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN LATERAL (
    SELECT k.conname::text FROM pg_constraint k
    WHERE k.conrelid = c.oid AND k.contype = 'n' AND NOT k.convalidated
      AND a.attnum = ANY (k.conkey)
    LIMIT 1) nv ON true
WHERE c.relkind = 'r' AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1, 2, a.attnum
