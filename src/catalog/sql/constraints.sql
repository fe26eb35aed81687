-- Primary key, unique, foreign key, check and exclusion constraints, and NOT VALID not-null
-- constraints (PostgreSQL 18+; it sets attnotnull for those too, though old rows may hold NULL,
-- so the reader clears the column's not_null for them). Constraints cloned onto
-- partitions (conparentid <> 0) are left out: the rules judge the one declared on the parent.
-- No join to filter out system tables: the reader keeps the constraints of the tables it read,
-- which is cheaper than joining pg_class and pg_namespace for every constraint.
-- $1: oid[] of the owning tables to read; the full read swaps the line marked as the scope filter for `$1 IS NULL`.
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
WHERE (co.contype IN ('p', 'u', 'f', 'c', 'x') OR (co.contype = 'n' AND NOT co.convalidated))
  AND co.conparentid = 0
  AND co.conrelid <> 0
  AND co.conrelid = ANY($1::oid[]) -- scope
