//! The references of a query level and the helpers the binding analysis reads them with:
//! column resolution, conjuncts, subqueries, output columns, how a reference is written.

use super::analyze::{Analyzer, Role, Strength};
use crate::lint::model::ident;
use sqlparser::ast::{
    BinaryOperator, Expr, ObjectName, Query, SelectItem, Spanned, Statement, TableAlias, Visit,
    Visitor,
};
use sqlparser::tokenizer::Span;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

/// A relation's column names, shared.
pub(super) type Cols = Arc<HashSet<String>>;

#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// A realm-scoped table and its realm column.
    Realm {
        table: String,
        column: String,
        columns: Cols,
    },
    /// Any other relation; `None` columns when they are not known (a function, a view).
    Other { columns: Option<Cols> },
    /// A derived table or CTE: bound when its body is (and reads realm data).
    Derived { columns: Option<Cols> },
}

#[derive(Debug, Clone)]
pub(super) struct Ref {
    /// The name that qualifies its columns (alias, else table name).
    pub(super) name: String,
    /// `schema.table` for a table reference without alias (qualifies as `schema.table.col`).
    pub(super) key: Option<String>,
    pub(super) kind: Kind,
    pub(super) span: Span,
    /// Index of the join that brought it in (into `Level::joins`), `None` for a FROM item.
    pub(super) join: Option<usize>,
    pub(super) bound: Option<Strength>,
}

impl Ref {
    pub(super) fn has_column(&self, c: &str) -> Option<bool> {
        let cols = match &self.kind {
            Kind::Realm { columns, .. } => return Some(columns.contains(c)),
            Kind::Other { columns } | Kind::Derived { columns } => columns,
        };
        cols.as_ref().map(|s| s.contains(c))
    }

    pub(super) fn realm_column(&self) -> Option<&str> {
        match &self.kind {
            Kind::Realm { column, .. } => Some(column),
            _ => None,
        }
    }
}

/// One join at a level: its ON conjuncts, its USING columns, and which references it filters.
#[derive(Debug, Default)]
pub(super) struct Join<'q> {
    pub(super) on: Vec<&'q Expr>,
    pub(super) using: Vec<String>,
    pub(super) natural: bool,
    /// References the ON condition filters: the joined one, and for an inner join the ones before.
    pub(super) filters: Vec<usize>,
    /// The references before it in its FROM item (what USING / NATURAL compares with).
    pub(super) left: Vec<usize>,
}

/// One query level.
#[derive(Debug, Default)]
pub(super) struct Level<'q> {
    pub(super) refs: Vec<Ref>,
    pub(super) joins: Vec<Join<'q>>,
    pub(super) filter: Vec<&'q Expr>,
    /// Lateral subqueries, analysed once this level's bindings are known.
    pub(super) lateral: Vec<&'q Query>,
    /// Columns of this level's own schema tables (for `realm_column` lookups of the fix).
    pub(super) role: Option<Role>,
}

/// The enclosing levels of a subquery, innermost last.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outer<'s> {
    pub(super) refs: &'s [Ref],
    pub(super) parent: Option<&'s Outer<'s>>,
}

/// A column reference: qualifier parts and column name.
pub(super) fn column_of(e: &Expr) -> Option<(Vec<String>, String)> {
    match e {
        Expr::Identifier(i) => Some((Vec::new(), ident(i))),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let (last, q) = parts.split_last()?;
            Some((q.iter().map(ident).collect(), ident(last)))
        }
        Expr::Nested(inner) => column_of(inner),
        Expr::Cast { expr, .. } => column_of(expr),
        _ => None,
    }
}

/// The top-level AND conjuncts of `e` (through parentheses).
pub(super) fn conjuncts<'q>(e: &'q Expr, out: &mut Vec<&'q Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// Whether an expression mentions a column or a subquery anywhere.
pub(super) fn mentions_columns(e: &Expr) -> bool {
    struct V(bool);
    impl Visitor for V {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if matches!(
                e,
                Expr::Identifier(_)
                    | Expr::CompoundIdentifier(_)
                    | Expr::Subquery(_)
                    | Expr::Exists { .. }
            ) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(false);
    let _ = e.visit(&mut v);
    v.0
}

/// The outermost subqueries inside a node (not those nested in them), cloned: sqlparser's
/// visitor hands out short-lived references, and subqueries are few.
pub(super) fn subqueries<T: Visit>(node: &T) -> Vec<Query> {
    struct V {
        depth: usize,
        found: Vec<Query>,
    }
    impl Visitor for V {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if self.depth == 0 {
                self.found.push(q.clone());
            }
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut v = V {
        depth: 0,
        found: Vec::new(),
    };
    let _ = node.visit(&mut v);
    v.found
}

pub(super) fn alias_name(a: &Option<TableAlias>) -> Option<String> {
    a.as_ref().map(|a| ident(&a.name))
}

pub(super) fn alias_columns(a: &Option<TableAlias>) -> Option<Cols> {
    let a = a.as_ref()?;
    if a.columns.is_empty() {
        return None;
    }
    Some(Arc::new(a.columns.iter().map(|c| ident(&c.name)).collect()))
}

pub(super) fn name_parts(n: &ObjectName) -> Vec<String> {
    n.0.iter().filter_map(|p| p.as_ident()).map(ident).collect()
}

pub(super) fn last_span(n: &ObjectName) -> Span {
    n.0.last()
        .and_then(|p| p.as_ident())
        .map_or_else(|| n.span(), |i| i.span)
}

pub(super) fn is_catalog(parts: &[String]) -> bool {
    match parts {
        [s, _] => s == "pg_catalog" || s == "information_schema",
        [t] => t.starts_with("pg_"),
        _ => false,
    }
}

/// The realm column of a bound reference (for a derived table or CTE: its column of the same name
/// as the realm column it is compared with) is a realm value.
pub(super) fn realm_value_of(other: &Ref, own: Option<&str>, col: &str) -> Option<Strength> {
    let realm = match &other.kind {
        Kind::Realm { column, .. } => column == col,
        Kind::Derived { .. } => own == Some(col),
        Kind::Other { .. } => false,
    };
    realm.then_some(other.bound).flatten()
}

pub(super) fn sub_role(role: Role) -> Role {
    role
}

pub(super) fn is_sqlc_param(f: &sqlparser::ast::Function) -> bool {
    let p = name_parts(&f.name);
    matches!(p.as_slice(), [s, a] if s == "sqlc" && matches!(a.as_str(), "arg" | "narg" | "slice"))
}

pub(super) fn other_ref(alias: &Option<TableAlias>, span: Span, join: Option<usize>) -> Ref {
    Ref {
        name: alias_name(alias).unwrap_or_default(),
        key: None,
        kind: Kind::Other { columns: None },
        span,
        join,
        bound: None,
    }
}

/// `outer` with this level in front, for subqueries used as values at this level.
pub(super) fn outer_with<'s>(level: &'s Level, outer: Option<&'s Outer<'s>>) -> Option<Outer<'s>> {
    Some(Outer {
        refs: &level.refs,
        parent: outer,
    })
}

pub(super) fn outer_at<'s>(outer: Option<&'s Outer<'s>>, depth: usize) -> Option<&'s Outer<'s>> {
    let mut o = outer?;
    for _ in 1..depth {
        o = o.parent?;
    }
    Some(o)
}

/// Which reference a column belongs to: (levels up, index). Qualified by alias or table name
/// (or `schema.table`); unqualified, the one reference of the level that has the column, else
/// the enclosing levels'.
pub(super) fn resolve(
    level: &Level,
    outer: Option<&Outer>,
    q: &[String],
    col: &str,
) -> Option<(usize, usize)> {
    let find = |refs: &[Ref]| -> Option<usize> {
        match q {
            [] => {
                let mut hits = refs
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.has_column(col) == Some(true));
                let first = hits.next()?;
                hits.next().is_none().then_some(first.0)
            }
            [t] => refs.iter().position(|r| r.name == *t),
            [.., s, t] => {
                let key = format!("{s}.{t}");
                refs.iter()
                    .position(|r| r.key.as_deref() == Some(key.as_str()))
            }
        }
    };
    if let Some(i) = find(&level.refs) {
        return Some((0, i));
    }
    let mut depth = 1;
    let mut o = outer;
    while let Some(sc) = o {
        if let Some(i) = find(sc.refs) {
            return Some((depth, i));
        }
        depth += 1;
        o = sc.parent;
    }
    None
}

/// An unbound reference compared with a bound one on other columns (the classic leak): the
/// bound reference, and whether the comparison is in a join's ON.
pub(super) fn joined_to_bound(
    level: &Level,
    i: usize,
    outer: Option<&Outer>,
) -> Option<(usize, bool)> {
    for (c, in_on) in Analyzer::conditions_of(level, i) {
        let Expr::BinaryOp { left, op, right } = c else {
            continue;
        };
        if matches!(op, BinaryOperator::And | BinaryOperator::Or) {
            continue;
        }
        let side = |e: &Expr| column_of(e).and_then(|(q, col)| resolve(level, outer, &q, &col));
        let (l, r) = (side(left), side(right));
        for (a, b) in [(l, r), (r, l)] {
            if let (Some((0, a)), Some((0, b))) = (a, b) {
                if a == i && b != i && level.refs[b].bound.is_some() {
                    return Some((b, in_on));
                }
            }
        }
    }
    if let Some(j) = level.refs[i].join {
        let join = &level.joins[j];
        if join.natural || !join.using.is_empty() {
            if let Some(&b) = join.left.iter().find(|&&l| level.refs[l].bound.is_some()) {
                return Some((b, true));
            }
        }
    }
    None
}

/// How a reference is written in a message: `memberships m`, or `groups`.
pub(super) fn target_display(r: &Ref) -> String {
    let table = match &r.kind {
        Kind::Realm { table, .. } => table.strip_prefix("public.").unwrap_or(table).to_string(),
        _ => r.name.clone(),
    };
    let last = table.rsplit('.').next().unwrap_or(&table).to_string();
    if r.name.is_empty() || r.name == last {
        table
    } else {
        format!("{table} {}", crate::db::quote_ident(&r.name))
    }
}

/// `alias.column`, quoted where PostgreSQL needs it.
pub(super) fn qualified(r: &Ref, column: &str) -> String {
    let q = match &r.key {
        Some(k) if r.name.is_empty() => k.clone(),
        _ => crate::db::quote_ident(&r.name),
    };
    format!("{q}.{}", crate::db::quote_ident(column))
}

/// Output column names of a projection (`None` when not known).
pub(super) fn output_columns(items: &[SelectItem], refs: &[Ref]) -> Option<HashSet<String>> {
    let mut out = HashSet::new();
    for it in items {
        match it {
            SelectItem::UnnamedExpr(e) => match column_of(e) {
                Some((_, c)) => {
                    out.insert(c);
                }
                None => {
                    if let Expr::Function(f) = e {
                        if let Some(n) = name_parts(&f.name).last() {
                            out.insert(n.clone());
                        }
                    }
                }
            },
            SelectItem::ExprWithAlias { alias, .. } => {
                out.insert(ident(alias));
            }
            SelectItem::ExprWithAliases { aliases, .. } => {
                out.extend(aliases.iter().map(ident));
            }
            SelectItem::Wildcard(_) => {
                for r in refs {
                    out.extend(columns_of(r)?.iter().cloned());
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let name = match kind {
                    sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n) => {
                        name_parts(n).last().cloned()
                    }
                    _ => None,
                }?;
                let r = refs.iter().find(|r| r.name == name)?;
                out.extend(columns_of(r)?.iter().cloned());
            }
        }
    }
    Some(out)
}

pub(super) fn columns_of(r: &Ref) -> Option<Cols> {
    match &r.kind {
        Kind::Realm { columns, .. } => Some(columns.clone()),
        Kind::Other { columns } | Kind::Derived { columns } => columns.clone(),
    }
}

pub(super) fn head_of(st: &Statement) -> String {
    let s = st.to_string();
    s.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}
