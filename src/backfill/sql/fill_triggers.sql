-- The triggers a backfill installed to fill the realm column of rows written by code that does
-- not know it yet: those whose PL/pgSQL function carries the backfill's marker comment. With the
-- function, as the server names it for DROP FUNCTION (schema-qualified when off the search_path).
SELECT n.nspname::text, c.relname::text, t.tgname::text, p.oid::regprocedure::text
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_language l ON l.oid = p.prolang
WHERE NOT t.tgisinternal
  AND l.lanname = 'plpgsql'
  AND p.prosrc LIKE '%-- realmguard backfill: rows written without %'
ORDER BY 1, 2, 3
