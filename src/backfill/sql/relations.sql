-- Every relation name (tables of any kind, partitions, indexes, views, sequences) outside the
-- system schemas: a new index's name must not be one of them (they share one namespace).
SELECT n.nspname::text, c.relname::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_%'
