-- The backfill's read of the given tables' indexes: each index's tablespace when not the
-- database's default (pg_get_indexdef leaves it out, and a replacing index must stay there),
-- and for the indexes in $2 (the unique ones the planner rebuilds per realm from their
-- definition) the server's definition text. pg_get_indexdef takes ACCESS SHARE on the table
-- (PostgreSQL 15), so an index whose table or index another session holds, or waits for, in
-- ACCESS EXCLUSIVE mode gets no definition rather than making this read queue; the planner then
-- says to try again. Put behind busy.sql (concat!).
-- $1: oid[] of the tables, $2: oid[] of the indexes whose definition is wanted.
SELECT i.indexrelid,
       (SELECT t.spcname::text FROM pg_tablespace t WHERE t.oid = ic.reltablespace) AS tablespace,
       CASE WHEN i.indexrelid = ANY($2::oid[])
                 AND NOT EXISTS (SELECT 1 FROM busy WHERE busy.relation IN (i.indrelid, i.indexrelid))
            THEN pg_get_indexdef(i.indexrelid) END AS definition
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY($1::oid[])
