-- The declared type of every live column of the given tables (`format_type`, as DDL spells it):
-- the backfill's read only (the keyset column must be an integer, a new realm column takes the
-- realms key's type), never the rules' or the migrate guard's.
-- $1: oid[] of the tables.
SELECT a.attrelid AS table_oid,
       a.attnum,
       format_type(a.atttypid, a.atttypmod) AS type_name
FROM pg_attribute a
WHERE a.attrelid = ANY($1::oid[])
  AND a.attnum > 0
  AND NOT a.attisdropped
