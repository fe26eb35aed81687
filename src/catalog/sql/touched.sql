-- Tables whose definition the current transaction changed (or created), read from the locks it
-- holds: every DDL statement takes a lock stronger than ROW EXCLUSIVE on each table it changes
-- (drops included, which leave no trace in the catalog rows themselves), and holds it until
-- COMMIT. Plain DML takes ROW EXCLUSIVE at most and cannot change the schema. The one lock that
-- does not mean "changed" is the SHARE ROW EXCLUSIVE a new foreign key takes on the table it
-- references. An index's lock stands for its table, a partition's for its partitioned root.
-- No parameters.
WITH mine AS (
    SELECT COALESCE(pg_partition_root(COALESCE(i.indrelid, l.relation)), i.indrelid, l.relation) AS rel, l.mode
      FROM pg_locks l
      LEFT JOIN pg_index i ON i.indexrelid = l.relation
     WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
       AND l.mode NOT IN ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock')
), changed AS (
    SELECT rel FROM mine WHERE mode <> 'ShareRowExclusiveLock'
    UNION
    -- ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE on both ends. The child owns the constraint the
    -- rules judge; the parent's shape does not change, and scoping from a parent such as the
    -- realms table would drag in every table that references it.
    SELECT m.rel FROM mine m
     WHERE m.mode = 'ShareRowExclusiveLock'
       AND EXISTS (SELECT 1 FROM pg_constraint co JOIN mine p ON p.rel = co.confrelid
                    WHERE co.contype = 'f' AND co.conrelid = m.rel)
)
SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name
  FROM changed t
  JOIN pg_class c ON c.oid = t.rel
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
