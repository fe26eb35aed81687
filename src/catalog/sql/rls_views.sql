-- Views outside the system schemas: whether they run with the caller's rights
-- (security_invoker, PostgreSQL 15+), whether the application role may read them, and the
-- relations their query reads directly (the reader follows views of views).
-- $1: the application role name ('' = not stated: every view counts as readable).
WITH app AS (SELECT r.oid FROM pg_roles r WHERE r.rolname = $1)
SELECT v.oid,
       n.nspname::text AS schema,
       v.relname::text AS name,
       coalesce((SELECT o.option_value::bool FROM pg_options_to_table(v.reloptions) o
                 WHERE o.option_name = 'security_invoker'), false) AS security_invoker,
       CASE WHEN (SELECT count(*) FROM app) = 0 THEN true
            ELSE has_table_privilege((SELECT oid FROM app), v.oid, 'SELECT') END AS app_can_read,
       ARRAY(SELECT DISTINCT d.refobjid::bigint
             FROM pg_rewrite w
             JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
                             AND d.refclassid = 'pg_class'::regclass
             WHERE w.ev_class = v.oid AND d.refobjid <> v.oid) AS reads
FROM pg_class v
JOIN pg_namespace n ON n.oid = v.relnamespace
WHERE v.relkind = 'v'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY v.oid
