-- Primary key, unique, foreign key and check constraints of user tables. Constraints cloned onto
-- partitions (conparentid <> 0) are left out: the rules judge the one declared on the parent.
-- $1: oid[] of the owning tables to restrict to, or NULL for every table.
SELECT co.oid,
       co.conrelid,
       co.conname::text AS name,
       co.contype::text AS kind,
       co.conkey,
       co.confrelid,
       co.conindid,
       co.confkey,
       co.confdeltype::text AS on_delete,
       co.confupdtype::text AS on_update,
       co.confmatchtype::text AS match_type,
       co.condeferrable,
       co.condeferred,
       co.convalidated
FROM pg_constraint co
JOIN pg_class c ON c.oid = co.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE co.contype IN ('p', 'u', 'f', 'c')
  AND co.conparentid = 0
  AND c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND ($1::oid[] IS NULL OR co.conrelid = ANY($1::oid[]))
