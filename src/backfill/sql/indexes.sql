-- Indexes with their key columns ('' for an expression column), validity and shape, and the
-- server's definition of the unique ones that are partial or on an expression and lack the realm
-- column ($1): the planner rebuilds those with it added. pg_get_indexdef takes ACCESS SHARE on
-- the table (PostgreSQL 15), so an index whose table or index another session holds, or waits
-- for, in ACCESS EXCLUSIVE mode gets no definition rather than making this read queue; the
-- planner then says to try again. Last, the index's tablespace (NULL: the database's default),
-- which pg_get_indexdef leaves out.
SELECT n.nspname::text, c.relname::text, ic.relname::text, i.indisunique, i.indisprimary,
       i.indisvalid, i.indpred IS NOT NULL,
       ARRAY(SELECT coalesce(a.attname::text, '')
             FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(num, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
             ORDER BY k.ord),
       CASE WHEN i.indisunique AND NOT i.indisprimary
                 AND (i.indpred IS NOT NULL OR 0 = ANY (i.indkey::int2[]))
                 AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                 WHERE a.attrelid = i.indrelid AND a.attname = $1
                                   AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]))
                 AND NOT EXISTS (SELECT 1 FROM busy WHERE busy.relation IN (i.indrelid, i.indexrelid))
            THEN pg_get_indexdef(i.indexrelid) END,
       (SELECT t.spcname::text FROM pg_tablespace t WHERE t.oid = ic.reltablespace)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'realmguard')
  AND n.nspname NOT LIKE 'pg\_%'
ORDER BY 1, 2, 3
