-- Resolve the configured realms table: "schema.table" exactly, or a bare name through the
-- search_path in its order (as PostgreSQL would resolve it in a query). Always one row: the
-- schema a bare name would be created in, and the table when it exists, with the type of its
-- single-column primary key (what a realm column must be declared as).
-- $1: schema or NULL, $2: table name.
SELECT current_schema()::text AS default_schema, r.oid, r.schema, r.name, r.key_type
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name,
           (SELECT format_type(a.atttypid, a.atttypmod)
              FROM pg_constraint co
              JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = co.conkey[1]
             WHERE co.conrelid = c.oid AND co.contype = 'p' AND cardinality(co.conkey) = 1) AS key_type
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relname = $2::text
      AND c.relkind IN ('r', 'p')
      AND CASE WHEN $1::text IS NULL THEN n.nspname = ANY (current_schemas(false))
               ELSE n.nspname = $1::text END
    ORDER BY array_position(current_schemas(false), n.nspname)
    LIMIT 1
) AS r ON true
