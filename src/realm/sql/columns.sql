-- Every column of every user table, in column order, with what the copy needs beyond the
-- catalog model: the type (for the realm literal's cast and to compare both sides), whether the
-- column is generated (left to the target) and the sequence behind an identity or serial column
-- (moved past the copied ids on the target). realmguard's own schema is never part of a realm.
SELECT n.nspname::text AS schema,
       c.relname::text AS name,
       a.attname::text AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attgenerated <> '' AS generated,
       CASE WHEN a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%'
            THEN pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname)
       END AS sequence
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_%'
ORDER BY n.nspname, c.relname, a.attnum
