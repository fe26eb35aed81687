//! Prepared `SELECT *`: adding the realm column changes what `SELECT *` and `RETURNING *` return
//! on a table, and a session that prepared such a statement before the change gets SQLSTATE
//! 0A000 `cached plan must not change result type` when it next executes it. The server cannot
//! be told not to, so the plan and the start of a run name the tables, and pg_stat_statements
//! (when readable) the statements (see `docs/backfill-design.md`, "Prepared statements").

use super::exec::StoredStep;
use super::plan::Phase;
use crate::db::{describe_pg_error, quote_ident};
use crate::lint::model::ident;
use serde::Serialize;
use sqlparser::ast::{
    Cte, FromTable, ObjectName, Query, Select, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, Statement, TableFactor, TableObject, TableWithJoins, UpdateTableFromKind,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// What the column steps still to run do to `SELECT *`, and what pg_stat_statements has seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreparedReport {
    /// "schema.table" of each table a pending column step adds a column to, in plan order.
    pub tables: Vec<String>,
    pub pg_stat_statements: Seen,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Seen {
    /// The view was read: the statements whose result holds a `*` of one of the tables.
    Available {
        statements: Vec<StarStatement>,
        /// Statements of other roles whose text the view hides from us (no pg_read_all_stats).
        hidden: i64,
        /// Statements with a `*` this parser could not read, so not checked.
        unparsed: i64,
    },
    NotAvailable {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StarStatement {
    /// "schema.table" whose `*` the statement returns.
    pub table: String,
    pub calls: i64,
    /// The normalized text pg_stat_statements keeps, on one line.
    pub query: String,
}

impl PreparedReport {
    /// The statements seen (none when the view could not be read).
    pub fn statements(&self) -> &[StarStatement] {
        match &self.pg_stat_statements {
            Seen::Available { statements, .. } => statements,
            Seen::NotAvailable { .. } => &[],
        }
    }
}

/// The tables a column step not yet done adds a column to, in step order.
pub fn shape_changes(steps: &[StoredStep]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for s in steps {
        let id = (s.step.schema.clone(), s.step.table.clone());
        if s.step.phase == Phase::Column && !s.done && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// The report for `steps`; None when no pending step changes a table's columns.
pub async fn report(
    conn: &mut sqlx::PgConnection,
    steps: &[StoredStep],
) -> crate::backfill::error::Result<Option<PreparedReport>> {
    let tables = shape_changes(steps);
    if tables.is_empty() {
        return Ok(None);
    }
    Ok(Some(PreparedReport {
        tables: tables.iter().map(|(s, t)| format!("{s}.{t}")).collect(),
        pg_stat_statements: seen(conn, &tables).await?,
    }))
}

async fn seen(
    conn: &mut sqlx::PgConnection,
    tables: &[(String, String)],
) -> crate::backfill::error::Result<Seen> {
    let schema: Option<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pg_stat_statements'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(schema) = schema else {
        return Ok(Seen::NotAvailable {
            reason: "the extension is not installed in this database (CREATE EXTENSION pg_stat_statements, with shared_preload_libraries = 'pg_stat_statements')".into(),
        });
    };
    // The prefilter on `*` keeps the parsing to the few candidates; the text of other roles'
    // statements reads `<insufficient privilege>` without pg_read_all_stats.
    let rows: Result<Vec<(String, i64)>, sqlx::Error> = sqlx::query_as(&format!(
        "SELECT query, calls FROM {}.pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND query IS NOT NULL AND (strpos(query, '*') > 0 OR query = '<insufficient privilege>')
          ORDER BY calls DESC, query",
        quote_ident(&schema)
    ))
    .fetch_all(&mut *conn)
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            return Ok(Seen::NotAvailable {
                reason: format!(
                    "cannot read {}.pg_stat_statements: {}",
                    quote_ident(&schema),
                    describe_pg_error(&e)
                ),
            })
        }
    };
    Ok(classify(&rows, tables))
}

/// The rows (query, calls) of pg_stat_statements matched against `tables`.
fn classify(rows: &[(String, i64)], tables: &[(String, String)]) -> Seen {
    let (mut statements, mut hidden, mut unparsed) = (Vec::new(), 0, 0);
    for (query, calls) in rows {
        if query == "<insufficient privilege>" {
            hidden += 1;
            continue;
        }
        let Some(names) = star_relations(query) else {
            unparsed += 1;
            continue;
        };
        let mut matched: Vec<&(String, String)> = Vec::new();
        for parts in &names {
            for t in tables {
                if names_it(parts, t) && !matched.contains(&t) {
                    matched.push(t);
                }
            }
        }
        for (s, t) in matched {
            statements.push(StarStatement {
                table: format!("{s}.{t}"),
                calls: *calls,
                query: one_line(query),
            });
        }
    }
    Seen::Available {
        statements,
        hidden,
        unparsed,
    }
}

/// Whether a relation written `parts` in a statement may be the table (schema, name): a bare
/// name may be any schema's (the session's search_path is not known here).
fn names_it(parts: &[String], (schema, table): &(String, String)) -> bool {
    match parts {
        [t] => t == table,
        [s, t] => s == schema && t == table,
        [_, s, t] => s == schema && t == table,
        _ => false,
    }
}

fn one_line(q: &str) -> String {
    q.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The relations (name parts, as PostgreSQL folds them) whose `*` the statement's result holds;
/// None when the text does not parse.
pub fn star_relations(sql: &str) -> Option<Vec<Vec<String>>> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut out = Vec::new();
    for st in &statements {
        statement(st, &mut out);
    }
    Some(out)
}

fn statement(st: &Statement, out: &mut Vec<Vec<String>>) {
    match st {
        Statement::Query(q) => query(q, &[], out),
        Statement::Prepare { statement: s, .. } => statement(s, out),
        Statement::Insert(i) => {
            if let (Some(items), TableObject::TableName(name)) = (&i.returning, &i.table) {
                let alias = i.table_alias.as_ref().map(|a| ident(&a.alias));
                let from = [(parts(name), alias)];
                returning(items, &from, out);
            }
        }
        Statement::Update(u) => {
            if let Some(items) = &u.returning {
                let mut from = Vec::new();
                joined(&u.table, &mut from);
                if let Some(UpdateTableFromKind::AfterSet(v) | UpdateTableFromKind::BeforeSet(v)) =
                    &u.from
                {
                    v.iter().for_each(|t| joined(t, &mut from));
                }
                returning(items, &from, out);
            }
        }
        Statement::Delete(d) => {
            if let Some(items) = &d.returning {
                let mut from = Vec::new();
                let (FromTable::WithFromKeyword(v) | FromTable::WithoutKeyword(v)) = &d.from;
                v.iter().for_each(|t| joined(t, &mut from));
                d.using.iter().flatten().for_each(|t| joined(t, &mut from));
                returning(items, &from, out);
            }
        }
        _ => {}
    }
}

/// A DML statement's `RETURNING`: a `*` names every base relation of the statement.
fn returning(
    items: &[SelectItem],
    from: &[(Vec<String>, Option<String>)],
    out: &mut Vec<Vec<String>>,
) {
    for it in items {
        match it {
            SelectItem::Wildcard(_) => out.extend(from.iter().map(|(p, _)| p.clone())),
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _) => {
                let q = parts(n);
                out.extend(
                    from.iter()
                        .filter(|(p, alias)| qualifies(&q, p, alias.as_deref()))
                        .map(|(p, _)| p.clone()),
                );
            }
            _ => {}
        }
    }
}

/// Whether `a.*` (written `q`) refers to the relation `p` with `alias`.
fn qualifies(q: &[String], p: &[String], alias: Option<&str>) -> bool {
    match alias {
        Some(a) => q.len() == 1 && q[0] == a,
        None => q == p || (q.len() == 1 && p.last() == q.last()),
    }
}

fn parts(n: &ObjectName) -> Vec<String> {
    n.0.iter().filter_map(|p| p.as_ident()).map(ident).collect()
}

/// The base relations of a DML statement's target or FROM list (subqueries do not count: a
/// RETURNING `*` of them is not in the grammar).
fn joined(t: &TableWithJoins, from: &mut Vec<(Vec<String>, Option<String>)>) {
    for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
        match f {
            TableFactor::Table { name, alias, .. } => {
                from.push((parts(name), alias.as_ref().map(|a| ident(&a.name))))
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => joined(table_with_joins, from),
            _ => {}
        }
    }
}

fn query<'a>(q: &'a Query, outer: &[&'a Cte], out: &mut Vec<Vec<String>>) {
    let mut ctes: Vec<&Cte> = outer.to_vec();
    if let Some(w) = &q.with {
        ctes.extend(w.cte_tables.iter());
    }
    set_expr(&q.body, &ctes, out);
}

fn set_expr<'a>(body: &'a SetExpr, ctes: &[&'a Cte], out: &mut Vec<Vec<String>>) {
    match body {
        SetExpr::Select(s) => select(s, ctes, out),
        SetExpr::Query(q) => query(q, ctes, out),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr(left, ctes, out);
            set_expr(right, ctes, out);
        }
        // `TABLE t` is `SELECT * FROM t`.
        SetExpr::Table(t) => {
            if let Some(name) = &t.table_name {
                let mut p: Vec<String> = t.schema_name.iter().map(ident).collect();
                p.push(ident(name));
                out.push(p);
            }
        }
        SetExpr::Insert(st) | SetExpr::Update(st) | SetExpr::Delete(st) | SetExpr::Merge(st) => {
            statement(st, out)
        }
        _ => {}
    }
}

/// One FROM item as a `*` sees it: its name or alias, and how to expand it.
struct Item<'a> {
    alias: Option<String>,
    name: Option<Vec<String>>,
    factor: &'a TableFactor,
}

fn items<'a>(t: &'a TableWithJoins, acc: &mut Vec<Item<'a>>) {
    for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
        match f {
            TableFactor::Table { name, alias, .. } => acc.push(Item {
                alias: alias.as_ref().map(|a| ident(&a.name)),
                name: Some(parts(name)),
                factor: f,
            }),
            TableFactor::Derived { alias, .. } => acc.push(Item {
                alias: alias.as_ref().map(|a| ident(&a.name)),
                name: None,
                factor: f,
            }),
            // A join in parentheses without an alias exposes its relations one by one.
            TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => items(table_with_joins, acc),
            TableFactor::NestedJoin { alias, .. } => acc.push(Item {
                alias: alias.as_ref().map(|a| ident(&a.name)),
                name: None,
                factor: f,
            }),
            _ => {}
        }
    }
}

fn select<'a>(s: &'a Select, ctes: &[&'a Cte], out: &mut Vec<Vec<String>>) {
    let mut from = Vec::new();
    for t in &s.from {
        items(t, &mut from);
    }
    for it in &s.projection {
        match it {
            SelectItem::Wildcard(_) => from.iter().for_each(|i| expand(i.factor, ctes, out)),
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _) => {
                let q = parts(n);
                for i in &from {
                    let hit = match (&i.alias, &i.name) {
                        (Some(a), _) => q.len() == 1 && q[0] == *a,
                        (None, Some(p)) => qualifies(&q, p, None),
                        (None, None) => false,
                    };
                    if hit {
                        expand(i.factor, ctes, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The relations a `*` over one FROM item returns columns of.
fn expand<'a>(f: &'a TableFactor, ctes: &[&'a Cte], out: &mut Vec<Vec<String>>) {
    match f {
        TableFactor::Table { name, .. } => {
            let p = parts(name);
            // A bare name that is a CTE of this query is that CTE's result (the innermost
            // one of that name wins, as in PostgreSQL).
            let cte = match p.as_slice() {
                [n] => ctes.iter().rev().find(|c| ident(&c.alias.name) == *n),
                _ => None,
            };
            match cte {
                Some(c) => {
                    let pos = ctes.iter().position(|x| std::ptr::eq(*x, *c)).unwrap_or(0);
                    query(&c.query, &ctes[..pos], out)
                }
                None => out.push(p),
            }
        }
        TableFactor::Derived { subquery, .. } => query(subquery, ctes, out),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            let mut inner = Vec::new();
            items(table_with_joins, &mut inner);
            inner.iter().for_each(|i| expand(i.factor, ctes, out));
        }
        _ => {}
    }
}

/// The one-line refusal `--refuse-prepared-star` gives, if the statements seen call for one.
pub fn refusal(r: &PreparedReport) -> Option<String> {
    match &r.pg_stat_statements {
        Seen::NotAvailable { reason } => Some(format!(
            "--refuse-prepared-star needs pg_stat_statements to see the application's statements, which is not available here ({reason}); run without the option"
        )),
        Seen::Available { statements, .. } if !statements.is_empty() => {
            let shown: Vec<String> = statements
                .iter()
                .take(3)
                .map(|s| format!("{} ({} calls): {}", s.table, s.calls, short(&s.query)))
                .collect();
            Some(format!(
                "--refuse-prepared-star: pg_stat_statements has seen {} statement{} returning * of a table whose columns this run changes ({}{}); a session that prepared one gets SQLSTATE 0A000 (cached plan must not change result type) after the column step: name the columns in those statements or switch automatic preparation off for the run, then run again (or run without the option)",
                statements.len(),
                if statements.len() == 1 { "" } else { "s" },
                shown.join("; "),
                if statements.len() > 3 { "; …" } else { "" },
            ))
        }
        Seen::Available { .. } => None,
    }
}

fn short(q: &str) -> String {
    match q.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &q[..i]),
        None => q.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stars(sql: &str) -> Vec<String> {
        star_relations(sql)
            .unwrap_or_else(|| panic!("does not parse: {sql}"))
            .iter()
            .map(|p| p.join("."))
            .collect()
    }

    #[test]
    fn a_star_names_the_relations_whose_columns_it_returns() {
        assert_eq!(stars("SELECT * FROM codes WHERE id = $1"), ["codes"]);
        assert_eq!(stars("select * from public.\"Codes\" c"), ["public.Codes"]);
        assert_eq!(stars("SELECT * FROM a JOIN b ON a.id = b.a_id"), ["a", "b"]);
        assert_eq!(stars("SELECT b.*, a.id FROM a JOIN b ON true"), ["b"]);
        assert_eq!(stars("SELECT x.* FROM orders x, b"), ["orders"]);
        assert_eq!(stars("SELECT * FROM (SELECT * FROM t) s"), ["t"]);
        assert_eq!(stars("WITH c AS (SELECT * FROM t) SELECT * FROM c"), ["t"]);
        assert_eq!(stars("INSERT INTO t (a) VALUES ($1) RETURNING *"), ["t"]);
        assert_eq!(
            stars("UPDATE t SET a = $1 WHERE id = $2 RETURNING *"),
            ["t"]
        );
        assert_eq!(stars("DELETE FROM t WHERE id = $1 RETURNING t.*"), ["t"]);
    }

    #[test]
    fn a_result_without_a_star_of_a_table_names_nothing() {
        assert!(stars("SELECT id, name FROM codes WHERE id = $1").is_empty());
        assert!(stars("SELECT count(*) FROM codes").is_empty());
        assert!(stars("SELECT id FROM (SELECT * FROM t) s").is_empty());
        assert!(stars("SELECT 2 * 3").is_empty());
        assert!(stars("INSERT INTO t (a) VALUES ($1) RETURNING id").is_empty());
        assert!(stars("SELECT a.* FROM a JOIN b ON true WHERE b.x = 1")
            .iter()
            .all(|t| t == "a"));
        assert!(star_relations("SELECT * FROM WHERE").is_none());
    }

    #[test]
    fn statements_are_matched_to_the_changed_tables_by_name() {
        let tables = [("public".to_string(), "codes".to_string())];
        let rows = [
            ("SELECT * FROM codes WHERE id = $1".to_string(), 12),
            ("SELECT * FROM other.codes".to_string(), 3),
            ("SELECT * FROM public.codes c JOIN x ON true".to_string(), 2),
            ("SELECT count(*) FROM codes".to_string(), 50),
            ("<insufficient privilege>".to_string(), 7),
            ("SELECT * FROM codes WHERE".to_string(), 1),
        ];
        let Seen::Available {
            statements,
            hidden,
            unparsed,
        } = classify(&rows, &tables)
        else {
            panic!()
        };
        let got: Vec<(String, i64)> = statements
            .iter()
            .map(|s| (s.query.clone(), s.calls))
            .collect();
        assert_eq!(
            got,
            [
                ("SELECT * FROM codes WHERE id = $1".to_string(), 12),
                ("SELECT * FROM public.codes c JOIN x ON true".to_string(), 2)
            ]
        );
        assert_eq!((hidden, unparsed), (1, 1));
    }
}
