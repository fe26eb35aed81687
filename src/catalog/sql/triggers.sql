-- Every user trigger, with its function's schema and name and whether it is one a backfill
-- installed to fill the realm column of rows written by code that does not know it yet: a
-- PL/pgSQL function without arguments that carries the backfill's marker comment ($1,
-- backfill::plan::FILL_MARKER).
SELECT n.nspname::text AS schema, c.relname::text AS table_name, t.tgname::text AS name,
       pn.nspname::text AS function_schema, p.proname::text AS function_name,
       l.lanname = 'plpgsql' AND p.pronargs = 0
           AND strpos(p.prosrc, $1) > 0 AS fills_realm
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_namespace pn ON pn.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE NOT t.tgisinternal
  -- The schemas tables.sql reads.
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY 1, 2, 3
