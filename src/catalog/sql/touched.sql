-- Tables whose definition the current transaction changed (or created), read from the locks it
-- holds: every DDL statement takes a lock stronger than ROW EXCLUSIVE on each table it changes
-- (drops included, which leave no trace in the catalog rows themselves), and holds it until
-- COMMIT. Plain DML takes ROW EXCLUSIVE at most and cannot change the schema. The one lock that
-- does not mean "changed" is the SHARE ROW EXCLUSIVE a new foreign key takes on the table it
-- references. An index's lock stands for its table, a partition's for its partitioned root.
-- No parameters.
-- The lookups from the locks run inside LATERAL ... OFFSET 0, so that they stay index lookups
-- driven by the few locks whatever the plan's estimates (see scoped.sql, which splices this in).
WITH mine AS (
    SELECT COALESCE(pg_partition_root(COALESCE(i.indrelid, l.relation)), i.indrelid, l.relation) AS rel, l.mode
      FROM pg_locks l
      LEFT JOIN LATERAL (SELECT x.indrelid FROM pg_index x WHERE x.indexrelid = l.relation OFFSET 0) AS i ON true
     WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
       AND l.mode NOT IN ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock')
), changed AS (
    SELECT rel FROM mine WHERE mode <> 'ShareRowExclusiveLock'
    UNION
    -- ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE on both ends. The child owns the constraint the
    -- rules judge; the parent's shape does not change, and scoping from a parent such as the
    -- realms table would drag in every table that references it. The child is the end with a
    -- foreign key to the other that this transaction (or a subtransaction of it) wrote: age() of
    -- such a row's xmin is 0 or below. An older key between two locked tables (the parent's own
    -- key to the realms table, when a new table references both) does not make its owner changed.
    SELECT m.rel FROM mine m
     CROSS JOIN LATERAL (
           SELECT 1 FROM pg_constraint co
            WHERE co.conrelid = m.rel AND co.contype = 'f'
              AND co.confrelid IN (SELECT p.rel FROM mine p)
              AND age(co.xmin) <= 0
            LIMIT 1
     ) AS fk
     WHERE m.mode = 'ShareRowExclusiveLock'
)
SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name
  FROM changed t
  JOIN pg_class c ON c.oid = t.rel
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
