-- Citus's metadata on a coordinator: every table Citus knows, its class and distribution column,
-- and its colocation group. Read only where `citus_profile.sql` found pg_dist_partition.
-- partmethod 'h' is hash-distributed; 'n' with repmodel 't' a reference table, otherwise a local
-- table added to Citus's metadata (a "citus local" table).
SELECT p.logicalrelid::oid::bigint AS table_oid,
       CASE WHEN p.partmethod = 'h' THEN 'distributed'
            WHEN p.partmethod = 'n' AND p.repmodel = 't' THEN 'reference'
            WHEN p.partmethod = 'n' AND p.colocationid <> 0 THEN 'single-shard'
            ELSE 'local' END AS class,
       CASE WHEN p.partkey IS NOT NULL
            THEN column_to_column_name(p.logicalrelid, p.partkey) END AS column_name,
       p.colocationid::bigint AS colocation_id
FROM pg_dist_partition p
