-- The triggers a backfill installed to fill the realm column of rows written by code that does
-- not know it yet: those whose PL/pgSQL function carries the backfill's marker comment. With the
-- function's schema and name (trigger functions take no arguments), so the drop names it fully
-- whatever the search_path of the session that later runs it.
SELECT n.nspname::text, c.relname::text, t.tgname::text, pn.nspname::text, p.proname::text
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_namespace pn ON pn.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE NOT t.tgisinternal
  AND l.lanname = 'plpgsql'
  AND p.pronargs = 0
  AND p.prosrc LIKE '%-- realmguard backfill: rows written without %'
ORDER BY 1, 2, 3
