-- What the Citus profile needs beyond the realm shape, for the tables the main read covers, in one
-- row of JSON arrays (one round trip): the realm column's type and collation per table, identity
-- and serial columns of a type narrower than bigint, user triggers (row or statement), rewrite
-- rules, each table's size (for the distribution plan's lock estimates) and policies with subqueries. `citus` says whether
-- Citus's metadata is there (a coordinator, or a worker), which decides whether pg_dist_partition
-- is read next.
-- $1: the realm column's name; $2: whether to read the profile facts (false: only `citus`).
WITH rels AS (
    SELECT c.oid, c.relkind, c.reltuples, c.relpages
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE $2::bool
      AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard', 'citus', 'columnar')
      AND n.nspname NOT LIKE 'pg\_toast%'
      AND n.nspname NOT LIKE 'pg\_temp\_%'
)
SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL AS citus,
       (SELECT coalesce(json_agg(json_build_object(
                   'table', a.attrelid::bigint,
                   'type', format_type(a.atttypid, a.atttypmod),
                   'collation', CASE WHEN a.attcollation <> 0 THEN co.collname::text END)), '[]')
          FROM rels r
          JOIN pg_attribute a ON a.attrelid = r.oid AND a.attname = $1::text AND NOT a.attisdropped
          LEFT JOIN pg_collation co ON co.oid = a.attcollation) AS realm_types,
       (SELECT coalesce(json_agg(json_build_object(
                   'table', a.attrelid::bigint,
                   'column', a.attname::text,
                   'type', format_type(a.atttypid, a.atttypmod),
                   'kind', CASE WHEN a.attidentity <> '' THEN 'identity' ELSE 'serial' END)), '[]')
          FROM rels r
          JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE a.atttypid IN ('int2'::regtype, 'int4'::regtype)
           AND (a.attidentity <> ''
                OR EXISTS (SELECT 1 FROM pg_depend d
                             JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                            WHERE d.classid = 'pg_class'::regclass
                              AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum
                              AND d.deptype = 'a'))) AS identities,
       (SELECT coalesce(json_agg(json_build_object(
                   'table', t.tgrelid::bigint,
                   'name', t.tgname::text,
                   'row', (t.tgtype & 1) = 1)), '[]')
          FROM rels r
          JOIN pg_trigger t ON t.tgrelid = r.oid
         WHERE NOT t.tgisinternal AND t.tgparentid = 0) AS triggers,
       (SELECT coalesce(json_agg(json_build_object(
                   'table', w.ev_class::bigint,
                   'name', w.rulename::text)), '[]')
          FROM rels r
          JOIN pg_rewrite w ON w.ev_class = r.oid
         WHERE w.rulename <> '_RETURN') AS rules,
       (SELECT coalesce(json_agg(json_build_object(
                   'table', r.oid::bigint,
                   'rows', greatest(r.reltuples, 0)::bigint,
                   'bytes', pg_total_relation_size(r.oid))), '[]')
          FROM rels r) AS sizes,
       -- Row level security policies with a subquery (SubLink), which Citus refuses on its
       -- tables; their expressions are deparsed so the plan can rewrite them.
       (SELECT coalesce(json_agg(json_build_object(
                   'table', p.polrelid::bigint,
                   'name', p.polname::text,
                   'qual', pg_get_expr(p.polqual, p.polrelid),
                   'check', pg_get_expr(p.polwithcheck, p.polrelid))), '[]')
          FROM rels r
          JOIN pg_policy p ON p.polrelid = r.oid
         WHERE p.polqual::text LIKE '%{SUBLINK%'
            OR p.polwithcheck::text LIKE '%{SUBLINK%') AS policies
