-- The scoped read in ONE statement (the migrate guard runs it before every migration's COMMIT, so
-- each round trip counts): the realms table, the tables to look at, and their columns,
-- constraints, indexes and index definition texts, each part as the text of an array of its rows
-- (`ARRAY(SELECT part FROM part)::text`, read by catalog::pgtext) in one row.
-- The parts are the other files of this directory, spliced in where a line holds only `{name}`;
-- their oid-array parameter becomes the array of an earlier part's oids (`scope`, or `wanted` for
-- index_defs), so every lookup stays an index scan even on the generic plan: a join on the part
-- would be planned as a hash join over the whole of pg_class, pg_constraint and pg_index.
--
-- The tables to look at, given some tables by raw (schema, name) or, for the guard, the tables
-- the current transaction changed (touched.sql): those tables (a partition stands for its
-- partitioned root), the tables that reference them (except for the realms table) or that they
-- reference by foreign key (a change to a parent can make a child's key wrong), marked in_scope;
-- plus, not in scope, the tables those reference (to judge their foreign keys) and the realms
-- table. Every step is an index lookup, so the cost follows the tables given, not the catalog
-- size: the referencing side goes through pg_depend's reference index, as pg_constraint has no
-- index on confrelid.
-- $1: realms table schema or NULL, $2: realms table name (NULL: none), $3: schemas text[],
-- $4: names text[] (pairwise), $5: also take the tables this transaction changed,
-- $6: a value to set enable_seqscan back to (transaction-local) once this statement is planned,
-- or NULL (see Catalog::load_changed).
WITH realm AS (
{realms}
), touched AS (
    SELECT t.* FROM (
{touched}
    ) AS t
    WHERE $5::bool
), roots AS (
    -- The tables to start from. A changed table is a root already (the lock read maps a
    -- partition or an index to its partitioned root); a table given by name brings its root
    -- too. Duplicates are harmless here: `core` below is a UNION.
    SELECT oid FROM touched
{named}
), children AS (
    -- Each step below looks up from the few tables at hand inside a LATERAL ... OFFSET 0 (which
    -- the planner cannot flatten into a join it could drive from the other side), and its
    -- constant conditions are written so that no index can serve them (`::int8`): the guard runs
    -- this statement on a generic plan made while the catalog was a few pages, with statistics
    -- that call a scan of every foreign key or dependency cheap, and keeps that plan while the
    -- catalog grows.
    SELECT ch.oid
    FROM roots r
    CROSS JOIN LATERAL (
        SELECT co.conrelid AS oid
        FROM pg_depend d
        JOIN pg_constraint co ON co.oid = d.objid
        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = r.oid
          AND d.classid::int8 = 'pg_constraint'::regclass::int8
          AND co.contype = 'f' AND co.conparentid::int8 = 0 AND co.confrelid = r.oid
        OFFSET 0
    ) AS ch
    -- Not the realms table's: every realm-scoped table references it, so a migration that adds
    -- one (and locks realms for its foreign key) would otherwise verify the whole catalog. No
    -- rule on a child depends on the realms table beyond the child's own foreign key to it,
    -- and changing that key locks the child, which puts it in the given tables.
    WHERE r.oid IS DISTINCT FROM (SELECT oid FROM realm)
), core AS (
    SELECT oid FROM roots WHERE oid IS NOT NULL
    UNION
    SELECT oid FROM children
    UNION
    SELECT p.oid FROM roots r CROSS JOIN LATERAL (
        SELECT co.confrelid AS oid
        FROM pg_constraint co
        WHERE co.conrelid = r.oid AND co.contype = 'f' AND co.conparentid::int8 = 0
        OFFSET 0
    ) AS p
), context AS (
    SELECT p.oid FROM core CROSS JOIN LATERAL (
        SELECT co.confrelid AS oid
        FROM pg_constraint co
        WHERE co.conrelid = core.oid AND co.contype = 'f' AND co.conparentid::int8 = 0
        OFFSET 0
    ) AS p
    UNION
    -- The realms table, to judge the foreign keys to it; only when there is a table to judge
    -- (the guard of a migration that changed no table reads nothing more than the changes).
    SELECT oid FROM realm WHERE oid IS NOT NULL AND EXISTS (SELECT FROM core)
), scope AS (
    SELECT oid, true AS in_scope FROM core
    UNION ALL
    SELECT oid, false FROM context WHERE oid NOT IN (SELECT oid FROM core)
), tab AS (
{tables}
), con AS (
{constraints}
), idx AS (
{indexes}
), wanted AS (
    -- The unique indexes whose definition text a fix may need (partial, or with an expression
    -- in the key); the reader keeps the texts of those whose key also lacks the realm column.
    SELECT indexrelid AS oid FROM idx
    WHERE indisunique AND NOT indisprimary
      AND (partial OR 0 = ANY (string_to_array(keys, ' ')::int2[]))
), def AS (
{index_defs}
)
SELECT r.default_schema, r.oid AS realms_oid, r.key_type,
       ARRAY(SELECT ROW(schema, name) FROM touched)::text AS touched,
       ARRAY(SELECT ROW(oid, in_scope) FROM scope)::text AS scope,
       ARRAY(SELECT tab FROM tab)::text AS tables,
       ARRAY(SELECT con FROM con)::text AS constraints,
       ARRAY(SELECT idx FROM idx)::text AS indexes,
       ARRAY(SELECT def FROM def)::text AS index_defs,
       ARRAY(SELECT oid FROM wanted) AS wanted,
       CASE WHEN $6::text IS NOT NULL THEN set_config('enable_seqscan', $6::text, true) END AS restored
FROM realm r
