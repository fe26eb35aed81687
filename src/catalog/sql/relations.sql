-- Every relation name (tables of any kind, partitions, indexes, views, sequences) outside the
-- system schemas (realmguard's own included): a new index's name must not be one of them (they
-- share one namespace per schema).
SELECT n.nspname::text AS schema, c.relname::text AS name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_%'
