-- The tables given by raw (schema, name) to the scoped read (scoped.sql splices this into its
-- `roots`), each with its partitioned root (NULL for a table that is not a partition).
-- $3: schemas text[], $4: names text[] (pairwise). The guard's read has none and leaves it out.
    UNION ALL
    SELECT r.oid
    FROM unnest($3::text[], $4::text[]) AS g(schema, name)
    JOIN pg_namespace n ON n.nspname = g.schema
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = g.name
    CROSS JOIN LATERAL (VALUES (c.oid), (pg_partition_root(c.oid))) AS r(oid)
    WHERE c.relkind IN ('r', 'p')
