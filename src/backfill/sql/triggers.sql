SELECT n.nspname::text, c.relname::text, t.tgname::text
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1, 2, 3
