//! What a row level security policy expression does with the realm, read from its parse tree
//! (`pg_get_expr` text parsed by sqlparser), never by pattern matching on the text: whether a
//! top-level AND conjunct binds the realm column to the realm setting, whether an `OR <setting>
//! IS NULL` makes it fail open, and how it reads the setting. Pure; see docs/rls.md.
//!
//! A conjunct binds when it is `realm_col = S` or `S = realm_col` (`IS NOT DISTINCT FROM` too),
//! casts and parentheses allowed on either side, where S is `current_setting('<setting>' [,
//! missing_ok])` or a scalar subquery `(SELECT <that>)`. An OR conjunct binds when every branch
//! binds, or is a test that the setting is unset (`S IS NULL`, `S = ''`): such a branch makes the
//! policy fail open.

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SelectItem,
    SetExpr, Value, Visit, VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// What one policy expression (`USING` or `WITH CHECK`) does with the realm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// The expression parsed; when not, nothing else is known and it binds nothing.
    pub parsed: bool,
    /// A top-level conjunct binds the realm column to the setting.
    pub binds: bool,
    /// A top-level conjunct ORs in a test that the setting is unset (fails open).
    pub fails_open: bool,
    /// The setting is read outside a scalar subquery: evaluated once per row.
    pub per_row: bool,
    /// The setting is read without `missing_ok` true: an unset setting is an error.
    pub without_missing_ok: bool,
}

/// The whole text as one expression (trailing text makes it unparsed).
pub fn parse(expr: &str) -> Option<Expr> {
    let mut p = Parser::new(&PostgreSqlDialect {}).try_with_sql(expr).ok()?;
    let e = p.parse_expr().ok()?;
    (p.peek_token().token == sqlparser::tokenizer::Token::EOF).then_some(e)
}

pub fn analyze(expr: &str, realm_column: &str, setting: &str) -> Analysis {
    let Some(e) = parse(expr) else {
        return Analysis::default();
    };
    let mut a = Analysis {
        parsed: true,
        ..Analysis::default()
    };
    for c in conjuncts(&e) {
        match conjunct(c, realm_column, setting) {
            Conjunct::Binds => a.binds = true,
            Conjunct::BindsFailOpen => {
                a.binds = true;
                a.fails_open = true;
            }
            Conjunct::FailsOpen => a.fails_open = true,
            Conjunct::Other => {}
        }
    }
    let mut reads = Reads {
        setting,
        depth: 0,
        per_row: false,
        without_missing_ok: false,
    };
    let _ = e.visit(&mut reads);
    a.per_row = reads.per_row;
    a.without_missing_ok = reads.without_missing_ok;
    a
}

/// The realm condition written the right way: the setting read once per statement (a scalar
/// subquery is an InitPlan), unset = no rows rather than an error, cast to the column's type
/// when it is not text.
pub fn realm_condition(realm_column: &str, setting: &str, realm_type: Option<&str>) -> String {
    let read = format!(
        "(SELECT current_setting({}, true))",
        crate::db::quote_literal(setting)
    );
    let value = match realm_type {
        None | Some("text") => read,
        Some(t) => format!("{read}::{t}"),
    };
    format!("{} = {value}", crate::db::quote_ident(realm_column))
}

/// `expr` with every read of the setting made `(SELECT current_setting('<setting>', true))`
/// and the fail-open branches dropped; `None` when it does not parse.
pub fn rewrite(expr: &str, realm_column: &str, setting: &str) -> Option<String> {
    let mut e = parse(expr)?;
    let kept: Vec<Expr> = conjuncts(&e)
        .into_iter()
        .map(|c| match conjunct(c, realm_column, setting) {
            Conjunct::BindsFailOpen => {
                let binding: Vec<Expr> = disjuncts(c)
                    .into_iter()
                    .filter(|d| !is_unset_test(d, setting))
                    .cloned()
                    .collect();
                join(binding, BinaryOperator::Or)
            }
            _ => c.clone(),
        })
        .collect();
    e = join(kept, BinaryOperator::And);
    let mut fix = Fix {
        setting,
        depth: 0,
        read: parse(&format!(
            "current_setting({}, true)",
            crate::db::quote_literal(setting)
        ))?,
        wrapped: parse(&format!(
            "(SELECT current_setting({}, true))",
            crate::db::quote_literal(setting)
        ))?,
    };
    let _ = VisitMut::visit(&mut e, &mut fix);
    Some(e.to_string())
}

enum Conjunct {
    Binds,
    BindsFailOpen,
    FailsOpen,
    Other,
}

fn conjunct(c: &Expr, col: &str, setting: &str) -> Conjunct {
    if binds(c, col, setting) {
        return Conjunct::Binds;
    }
    let ds = disjuncts(c);
    if ds.len() < 2 {
        return Conjunct::Other;
    }
    let open = ds.iter().any(|d| is_unset_test(d, setting));
    let rest_bind = ds
        .iter()
        .all(|d| is_unset_test(d, setting) || binds(d, col, setting));
    match (open, rest_bind) {
        (true, true) => Conjunct::BindsFailOpen,
        (true, false) => Conjunct::FailsOpen,
        (false, true) => Conjunct::Binds,
        (false, false) => Conjunct::Other,
    }
}

fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(x) => strip(x),
        _ => e,
    }
}

/// Parentheses and casts around a value.
fn strip_casts(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(x) => strip_casts(x),
        Expr::Cast { expr, .. } => strip_casts(expr),
        _ => e,
    }
}

fn flatten<'a>(e: &'a Expr, op: &BinaryOperator, out: &mut Vec<&'a Expr>) {
    match strip(e) {
        Expr::BinaryOp { left, op: o, right } if o == op => {
            flatten(left, op, out);
            flatten(right, op, out);
        }
        x => out.push(x),
    }
}

fn conjuncts(e: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    flatten(e, &BinaryOperator::And, &mut out);
    out
}

fn disjuncts(e: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    flatten(e, &BinaryOperator::Or, &mut out);
    out
}

fn join(mut es: Vec<Expr>, op: BinaryOperator) -> Expr {
    let wrap = |e: Expr| match e {
        Expr::BinaryOp { .. } => Expr::Nested(Box::new(e)),
        e => e,
    };
    let first = wrap(es.remove(0));
    es.into_iter().fold(first, |acc, e| Expr::BinaryOp {
        left: Box::new(acc),
        op: op.clone(),
        right: Box::new(wrap(e)),
    })
}

fn is_column(e: &Expr, col: &str) -> bool {
    match strip_casts(e) {
        Expr::Identifier(i) => i.value == col,
        Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|i| i.value == col),
        _ => false,
    }
}

fn binds(e: &Expr, col: &str, setting: &str) -> bool {
    let (l, r) = match strip(e) {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => (left, right),
        Expr::IsNotDistinctFrom(l, r) => (l, r),
        _ => return false,
    };
    (is_column(l, col) && is_setting_value(r, setting))
        || (is_column(r, col) && is_setting_value(l, setting))
}

/// `S IS NULL` or `S = ''` for a read S of the setting.
fn is_unset_test(e: &Expr, setting: &str) -> bool {
    match strip(e) {
        Expr::IsNull(x) => is_setting_value(x, setting),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let empty = |x: &Expr| matches!(strip_casts(x), Expr::Value(v) if matches!(&v.value, Value::SingleQuotedString(s) if s.is_empty()));
            (is_setting_value(left, setting) && empty(right))
                || (is_setting_value(right, setting) && empty(left))
        }
        _ => false,
    }
}

/// A read of the setting, bare or as a scalar subquery, casts allowed.
fn is_setting_value(e: &Expr, setting: &str) -> bool {
    match strip_casts(e) {
        Expr::Subquery(q) => scalar_subquery_expr(q).is_some_and(|x| is_setting_value(x, setting)),
        x => setting_read(x, setting).is_some(),
    }
}

/// The single expression of `SELECT <expr>` with no FROM, WHERE or anything else.
fn scalar_subquery_expr(q: &Query) -> Option<&Expr> {
    if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() {
        return None;
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    if !s.from.is_empty() || s.selection.is_some() || s.projection.len() != 1 {
        return None;
    }
    match &s.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    }
}

/// For `current_setting('<setting>' [, missing_ok])`: whether missing_ok is literally true.
fn setting_read(e: &Expr, setting: &str) -> Option<bool> {
    let Expr::Function(f) = e else { return None };
    let name = f.name.0.last()?.as_ident()?;
    if !name.value.eq_ignore_ascii_case("current_setting") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let arg = |i: usize| match list.args.get(i) {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(x))) => Some(strip_casts(x)),
        _ => None,
    };
    let named = matches!(arg(0), Some(Expr::Value(v)) if matches!(&v.value, Value::SingleQuotedString(s) if s == setting));
    if !named {
        return None;
    }
    Some(matches!(arg(1), Some(Expr::Value(v)) if v.value == Value::Boolean(true)))
}

struct Reads<'a> {
    setting: &'a str,
    depth: usize,
    per_row: bool,
    without_missing_ok: bool,
}

impl Visitor for Reads<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Some(missing_ok) = setting_read(e, self.setting) {
            self.per_row |= self.depth == 0;
            self.without_missing_ok |= !missing_ok;
        }
        ControlFlow::Continue(())
    }
}

struct Fix<'a> {
    setting: &'a str,
    depth: usize,
    read: Expr,
    wrapped: Expr,
}

impl VisitorMut for Fix<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if setting_read(e, self.setting).is_some() {
            *e = if self.depth == 0 {
                self.wrapped.clone()
            } else {
                self.read.clone()
            };
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "app.realm_id";

    fn a(expr: &str) -> Analysis {
        analyze(expr, "realm_id", S)
    }

    #[test]
    fn the_right_form_as_postgresql_deparses_it() {
        let x = a(
            "(realm_id = ( SELECT current_setting('app.realm_id'::text, true) AS current_setting))",
        );
        assert!(x.parsed && x.binds && !x.fails_open && !x.per_row && !x.without_missing_ok);
        // Cast to the column's type, on either side, qualified column, IS NOT DISTINCT FROM.
        let x = a("(realm_id = (( SELECT current_setting('app.realm_id'::text, true) AS current_setting))::uuid)");
        assert!(x.binds && !x.per_row);
        assert!(a("((SELECT current_setting('app.realm_id', true)) = t.realm_id)").binds);
        assert!(
            a("realm_id IS NOT DISTINCT FROM (SELECT current_setting('app.realm_id', true))").binds
        );
        assert!(a("((realm_id = (SELECT current_setting('app.realm_id', true))) AND (owner = CURRENT_USER))").binds);
    }

    #[test]
    fn near_misses_bind_nothing() {
        assert!(!a("true").binds);
        assert!(!a("(owner = CURRENT_USER)").binds);
        // Under OR, another setting, another column, a comparison that is not equality.
        assert!(
            !a("((realm_id = current_setting('app.realm_id', true)) OR (owner = CURRENT_USER))")
                .binds
        );
        assert!(!a("(realm_id = current_setting('app.tenant', true))").binds);
        assert!(!a("(other_id = current_setting('app.realm_id', true))").binds);
        assert!(!a("(realm_id <> current_setting('app.realm_id', true))").binds);
        // Not a scalar subquery: it reads a table.
        assert!(!a("(realm_id = (SELECT current_setting('app.realm_id', true) FROM t))").binds);
        // The text appears, but only as a string: a grep would have been fooled.
        assert!(!a("(note = 'realm_id = current_setting(''app.realm_id'')')").binds);
        assert!(!a("not sql at all (").parsed);
    }

    #[test]
    fn fail_open_is_found_at_the_top_level() {
        let x = a("((realm_id = current_setting('app.realm_id', true)) OR (current_setting('app.realm_id', true) IS NULL))");
        assert!(x.binds && x.fails_open && x.per_row);
        let x = a("((realm_id = (SELECT current_setting('app.realm_id', true))) OR ((SELECT current_setting('app.realm_id', true)) = ''::text))");
        assert!(x.binds && x.fails_open && !x.per_row);
        let x = a("(current_setting('app.realm_id', true) IS NULL OR owner = CURRENT_USER)");
        assert!(!x.binds && x.fails_open);
    }

    #[test]
    fn how_the_setting_is_read() {
        let x = a("(realm_id = current_setting('app.realm_id'::text))");
        assert!(x.binds && x.per_row && x.without_missing_ok);
        let x = a("(realm_id = (SELECT current_setting('app.realm_id', false)))");
        assert!(!x.per_row && x.without_missing_ok);
        // Other settings are not the realm's business.
        let x = a("(realm_id = (SELECT current_setting('app.realm_id', true)) AND current_setting('x.y') = 'a')");
        assert!(!x.per_row && !x.without_missing_ok);
    }

    #[test]
    fn rewrite_reads_once_allows_unset_and_drops_the_open_branch() {
        let r = rewrite(
            "((realm_id = current_setting('app.realm_id'::text)) OR (current_setting('app.realm_id'::text) IS NULL))",
            "realm_id",
            S,
        )
        .unwrap();
        let x = a(&r);
        assert!(
            x.binds && !x.fails_open && !x.per_row && !x.without_missing_ok,
            "{r}"
        );
        let r = rewrite(
            "((realm_id = (current_setting('app.realm_id'))::uuid) AND (owner = CURRENT_USER))",
            "realm_id",
            S,
        )
        .unwrap();
        let x = a(&r);
        assert!(x.binds && !x.per_row && !x.without_missing_ok, "{r}");
        assert!(r.contains("owner = CURRENT_USER"), "{r}");
    }

    #[test]
    fn the_canonical_condition_binds() {
        let c = realm_condition("realm_id", S, Some("uuid"));
        assert_eq!(
            c,
            "realm_id = (SELECT current_setting('app.realm_id', true))::uuid"
        );
        let x = a(&c);
        assert!(x.binds && !x.per_row && !x.without_missing_ok && !x.fails_open);
        assert!(a(&realm_condition("realm_id", S, Some("text"))).binds);
    }
}
