-- The tables a scoped verify must look at, given some tables by raw (schema, name): those tables
-- (a partition stands for its partitioned root), the tables that reference them (except for the
-- realms table) or that they reference by foreign key (a change to a parent can make a child's key wrong), marked in_scope;
-- plus, not in scope, the tables those reference (to judge their foreign keys) and the realms table.
-- Every step is an index lookup, so the cost follows the tables given, not the catalog size: the
-- referencing side goes through pg_depend's reference index, as pg_constraint has no index on
-- confrelid.
-- $1: schemas text[], $2: names text[] (pairwise), $3: realms table oid or NULL.
WITH given AS (
    SELECT c.oid
    FROM unnest($1::text[], $2::text[]) AS g(schema, name)
    JOIN pg_namespace n ON n.nspname = g.schema
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = g.name
    WHERE c.relkind IN ('r', 'p')
), roots AS (
    SELECT oid FROM given
    UNION
    SELECT pg_partition_root(oid) FROM given
), children AS (
    SELECT co.conrelid AS oid
    FROM roots r
    JOIN pg_depend d
      ON d.refclassid = 'pg_class'::regclass AND d.refobjid = r.oid
     AND d.classid = 'pg_constraint'::regclass
    JOIN pg_constraint co ON co.oid = d.objid
    WHERE co.contype = 'f' AND co.conparentid = 0 AND co.confrelid = r.oid
      -- Not the realms table's: every realm-scoped table references it, so a migration that adds
      -- one (and locks realms for its foreign key) would otherwise verify the whole catalog. No
      -- rule on a child depends on the realms table beyond the child's own foreign key to it,
      -- and changing that key locks the child, which puts it in the given tables.
      AND r.oid IS DISTINCT FROM $3::oid
), core AS (
    SELECT oid FROM roots WHERE oid IS NOT NULL
    UNION
    SELECT oid FROM children
    UNION
    SELECT co.confrelid
    FROM roots r
    JOIN pg_constraint co ON co.conrelid = r.oid
    WHERE co.contype = 'f' AND co.conparentid = 0
), context AS (
    SELECT co.confrelid AS oid
    FROM core
    JOIN pg_constraint co ON co.conrelid = core.oid
    WHERE co.contype = 'f' AND co.conparentid = 0
    UNION
    SELECT $3::oid WHERE $3::oid IS NOT NULL
)
SELECT oid, true AS in_scope FROM core
UNION ALL
SELECT oid, false FROM context WHERE oid NOT IN (SELECT oid FROM core)
