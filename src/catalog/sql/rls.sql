-- Row level security of every table outside the system schemas: one row per (table, policy), a
-- table without policies once with NULL policy columns, with the application role's standing
-- towards the table's owner. Read only when the rls-* rules run.
-- pg_get_expr takes ACCESS SHARE on the table (PostgreSQL 15): the policies of a table another
-- session holds or waits for in ACCESS EXCLUSIVE mode are not deparsed (`busy`, as in busy.sql),
-- so that verify never queues behind a migration.
-- $1: the realm column names, preferred first (a table's is the first it has); $2: the application role name ('' = not stated).
WITH RECURSIVE busy AS (
    SELECT l.relation
    FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.mode = 'AccessExclusiveLock'
      AND l.pid <> pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
),
app AS (
    SELECT r.oid, r.rolsuper, r.rolbypassrls FROM pg_roles r WHERE r.rolname = $2
),
-- The roles whose rights the application role has or can take (SET ROLE): itself and every
-- role it is a member of, directly or not.
app_roles (oid) AS (
    SELECT oid FROM app
    UNION
    SELECT m.roleid FROM pg_auth_members m JOIN app_roles a ON m.member = a.oid
)
SELECT c.oid,
       n.nspname::text AS schema,
       c.relname::text AS name,
       c.relrowsecurity AS enabled,
       c.relforcerowsecurity AS forced,
       pg_get_userbyid(c.relowner)::text AS owner,
       format_type(a.atttypid, a.atttypmod) AS realm_type,
       (SELECT count(*) FROM app) > 0 AS app_exists,
       coalesce((SELECT rolsuper FROM app), false) AS app_superuser,
       coalesce((SELECT rolbypassrls FROM app), false) AS app_bypassrls,
       c.relowner IN (SELECT oid FROM app) AS app_owns,
       c.relowner IN (SELECT oid FROM app_roles) AS app_member_of_owner,
       p.polname::text AS policy,
       p.polpermissive AS permissive,
       p.polcmd::text AS cmd,
       CASE WHEN p.oid IS NOT NULL THEN
           ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END
                 FROM unnest(p.polroles) r)
       END AS roles,
       CASE WHEN p.oid IS NOT NULL THEN
           (SELECT count(*) FROM app) = 0
           OR 0 = ANY (p.polroles)
           OR p.polroles && ARRAY(SELECT oid FROM app_roles)
       END AS applies_to_app,
       c.oid IN (SELECT relation FROM busy) AS busy,
       CASE WHEN c.oid NOT IN (SELECT relation FROM busy)
            THEN pg_get_expr(p.polqual, p.polrelid) END AS using_expr,
       CASE WHEN c.oid NOT IN (SELECT relation FROM busy)
            THEN pg_get_expr(p.polwithcheck, p.polrelid) END AS check_expr
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT a.atttypid, a.atttypmod FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attname = ANY ($1::text[]) AND NOT a.attisdropped
    ORDER BY array_position($1::text[], a.attname::text) LIMIT 1
) a ON true
LEFT JOIN pg_policy p ON p.polrelid = c.oid
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY c.oid, p.polname
