-- The tables a scoped verify must look at, given some tables by raw (schema, name): those tables
-- (a partition stands for its partitioned root), the tables that reference them or that they
-- reference by foreign key (a change to a parent can make a child's key wrong), marked in_scope;
-- plus, not in scope, the tables those reference (to judge their foreign keys) and the realms table.
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
), fks AS (
    SELECT co.conrelid, co.confrelid
    FROM pg_constraint co
    WHERE co.contype = 'f' AND co.conparentid = 0
), core AS (
    SELECT oid FROM roots WHERE oid IS NOT NULL
    UNION
    SELECT fks.conrelid FROM fks JOIN roots ON roots.oid = fks.confrelid
    UNION
    SELECT fks.confrelid FROM fks JOIN roots ON roots.oid = fks.conrelid
), context AS (
    SELECT fks.confrelid AS oid FROM fks JOIN core ON core.oid = fks.conrelid
    UNION
    SELECT $3::oid WHERE $3::oid IS NOT NULL
)
SELECT oid, true AS in_scope FROM core
UNION ALL
SELECT oid, false FROM context WHERE oid NOT IN (SELECT oid FROM core)
