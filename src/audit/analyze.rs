//! The binding analysis: for every reference to a realm-scoped table, is it bound to one realm at
//! its own query level? See `docs/audit.md` for the definition this implements.
//!
//! A level is each SELECT (each branch of a UNION), each CTE body, each subquery, and the target
//! with its FROM/USING items of an UPDATE or DELETE. At a level, a reference is bound by a
//! top-level AND conjunct `ref.realm_column = X` of the WHERE clause, or of the ON condition of a
//! join the reference takes part in (the join that brings it in; for an inner join also the
//! references before it, which the ON filters as well). X is a parameter, a literal, a call
//! without column references, a bound scalar subquery, the realm column of another bound
//! reference at that level, or, inside a subquery, the realm column of a bound reference of an
//! enclosing level (PostgreSQL passes such outer references into the subquery as parameters).
//! `IN (…)` and `= ANY(…)` bind too, as multi-realm.

use super::rules::{self, Raw};
use super::schema::RealmSchema;
use crate::lint::model::ident;
use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, ContextModifier, Expr, FromTable, FunctionArg,
    FunctionArgExpr, FunctionArguments, InTarget, JoinConstraint, JoinOperator, ObjectName,
    OnConflictAction, OnInsert, Query, Select, SelectItem, Set, SetExpr, Spanned, Statement,
    TableAlias, TableFactor, TableObject, TableWithJoins, Value, Visit, Visitor,
};
use sqlparser::tokenizer::Span;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A relation's column names, shared.
type Cols = Arc<HashSet<String>>;
use std::ops::ControlFlow;

/// How firmly a reference is held to a realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strength {
    /// Bound only through `IN (…)` / `= ANY(…)`: it may read several realms.
    Multi,
    /// Bound to one realm.
    Single,
}

/// What the analysis of one statement found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub findings: Vec<Raw>,
    /// The statement touches at least one realm-scoped table.
    pub realm: bool,
    /// The statement could not be fully read (unknown table, dynamic SQL).
    pub opaque: bool,
}

/// Analyse one parsed statement.
pub fn statement(schema: &RealmSchema, realm_setting: &str, st: &Statement) -> Outcome {
    let mut a = Analyzer {
        schema,
        realm_setting,
        out: Outcome::default(),
        cache: HashMap::new(),
    };
    a.statement(st, &Env::default(), None);
    a.session_settings(st);
    a.out
}

/// The role of a level: findings in an INSERT's source are `insert-without-realm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Read,
    InsertSource,
}

/// A CTE in scope.
#[derive(Debug, Clone)]
struct Cte {
    columns: Option<Cols>,
    bound: Option<Strength>,
}

/// The CTEs visible at a point (inner WITH shadows outer).
#[derive(Debug, Clone, Default)]
struct Env {
    ctes: HashMap<String, Cte>,
}

#[derive(Debug, Clone)]
enum Kind {
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
struct Ref {
    /// The name that qualifies its columns (alias, else table name).
    name: String,
    /// `schema.table` for a table reference without alias (qualifies as `schema.table.col`).
    key: Option<String>,
    kind: Kind,
    span: Span,
    /// Index of the join that brought it in (into `Level::joins`), `None` for a FROM item.
    join: Option<usize>,
    bound: Option<Strength>,
}

impl Ref {
    fn has_column(&self, c: &str) -> Option<bool> {
        let cols = match &self.kind {
            Kind::Realm { columns, .. } => return Some(columns.contains(c)),
            Kind::Other { columns } | Kind::Derived { columns } => columns,
        };
        cols.as_ref().map(|s| s.contains(c))
    }

    fn realm_column(&self) -> Option<&str> {
        match &self.kind {
            Kind::Realm { column, .. } => Some(column),
            _ => None,
        }
    }
}

/// One join at a level: its ON conjuncts, its USING columns, and which references it filters.
#[derive(Debug, Default)]
struct Join<'q> {
    on: Vec<&'q Expr>,
    using: Vec<String>,
    natural: bool,
    /// References the ON condition filters: the joined one, and for an inner join the ones before.
    filters: Vec<usize>,
    /// The references before it in its FROM item (what USING / NATURAL compares with).
    left: Vec<usize>,
}

/// One query level.
#[derive(Debug, Default)]
struct Level<'q> {
    refs: Vec<Ref>,
    joins: Vec<Join<'q>>,
    filter: Vec<&'q Expr>,
    /// Lateral subqueries, analysed once this level's bindings are known.
    lateral: Vec<&'q Query>,
    /// Columns of this level's own schema tables (for `realm_column` lookups of the fix).
    role: Option<Role>,
}

/// The enclosing levels of a subquery, innermost last.
#[derive(Debug, Clone, Copy)]
struct Outer<'s> {
    refs: &'s [Ref],
    parent: Option<&'s Outer<'s>>,
}

struct Analyzer<'a> {
    schema: &'a RealmSchema,
    realm_setting: &'a str,
    out: Outcome,
    /// Quiet verdicts on subqueries used as values (by address), so a fixpoint does not analyse
    /// the same subquery again and again.
    cache: HashMap<usize, bool>,
}

/// A column reference: qualifier parts and column name.
fn column_of(e: &Expr) -> Option<(Vec<String>, String)> {
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
fn conjuncts<'q>(e: &'q Expr, out: &mut Vec<&'q Expr>) {
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
fn mentions_columns(e: &Expr) -> bool {
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
fn subqueries<T: Visit>(node: &T) -> Vec<Query> {
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

fn alias_name(a: &Option<TableAlias>) -> Option<String> {
    a.as_ref().map(|a| ident(&a.name))
}

fn alias_columns(a: &Option<TableAlias>) -> Option<Cols> {
    let a = a.as_ref()?;
    if a.columns.is_empty() {
        return None;
    }
    Some(Arc::new(a.columns.iter().map(|c| ident(&c.name)).collect()))
}

fn name_parts(n: &ObjectName) -> Vec<String> {
    n.0.iter().filter_map(|p| p.as_ident()).map(ident).collect()
}

fn last_span(n: &ObjectName) -> Span {
    n.0.last()
        .and_then(|p| p.as_ident())
        .map_or_else(|| n.span(), |i| i.span)
}

fn is_catalog(parts: &[String]) -> bool {
    match parts {
        [s, _] => s == "pg_catalog" || s == "information_schema",
        [t] => t.starts_with("pg_"),
        _ => false,
    }
}

impl<'a> Analyzer<'a> {
    fn statement(&mut self, st: &Statement, env: &Env, outer: Option<&Outer>) {
        match st {
            Statement::Query(q) => {
                self.query(q, env, outer, Role::Read);
            }
            Statement::Insert(ins) => self.insert(ins, env, outer),
            Statement::Update(u) => {
                let mut from: Vec<&TableWithJoins> = vec![&u.table];
                if let Some(
                    sqlparser::ast::UpdateTableFromKind::AfterSet(f)
                    | sqlparser::ast::UpdateTableFromKind::BeforeSet(f),
                ) = &u.from
                {
                    from.extend(f.iter());
                }
                let level = self.level_of(&from, u.selection.as_ref(), env, outer, Role::Read);
                if let Some(target) = level.refs.first() {
                    if let Some(col) = target.realm_column() {
                        for a in &u.assignments {
                            if let AssignmentTarget::ColumnName(n) = &a.target {
                                if name_parts(n).last().map(String::as_str) == Some(col) {
                                    self.out.findings.push(rules::realm_column_updated(
                                        &target_display(target),
                                        col,
                                        n.span(),
                                    ));
                                }
                            }
                        }
                    }
                }
                let mut subs = Vec::new();
                for a in &u.assignments {
                    subs.extend(subqueries(&a.value));
                }
                self.finish_level(level, env, outer, subs);
            }
            Statement::Delete(d) => {
                let mut from: Vec<&TableWithJoins> = match &d.from {
                    FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => {
                        f.iter().collect()
                    }
                };
                if let Some(u) = &d.using {
                    from.extend(u.iter());
                }
                let level = self.level_of(&from, d.selection.as_ref(), env, outer, Role::Read);
                self.finish_level(level, env, outer, Vec::new());
            }
            Statement::Prepare { statement, .. } => self.statement(statement, env, outer),
            Statement::Execute { .. } | Statement::Call(_) | Statement::Merge(_) => {
                self.out.opaque = true;
                self.out
                    .findings
                    .push(rules::opaque_statement(head_of(st), st.span()));
            }
            _ => {}
        }
    }

    fn insert(&mut self, ins: &sqlparser::ast::Insert, env: &Env, outer: Option<&Outer>) {
        let TableObject::TableName(name) = &ins.table else {
            self.out.opaque = true;
            return;
        };
        let target = self.table_ref(name, None, None, env);
        let mut target_bound = target.clone();
        target_bound.bound = Some(Strength::Single);
        if let Kind::Realm { column, .. } = &target.kind {
            self.out.realm = true;
            let named = ins
                .columns
                .iter()
                .any(|c| name_parts(c).last() == Some(column));
            if !named {
                self.out.findings.push(rules::insert_without_realm_column(
                    &target_display(&target),
                    column,
                    ins.columns.is_empty(),
                    last_span(name),
                ));
            }
        }
        if let Some(src) = &ins.source {
            self.query(src, env, outer, Role::InsertSource);
        }
        if let Some(OnInsert::OnConflict(oc)) = &ins.on {
            if let OnConflictAction::DoUpdate(du) = &oc.action {
                let refs = [target_bound];
                let scope = Outer {
                    refs: &refs,
                    parent: outer,
                };
                for a in &du.assignments {
                    if let (AssignmentTarget::ColumnName(n), Some(col)) =
                        (&a.target, refs[0].realm_column())
                    {
                        let from_excluded = matches!(column_of(&a.value),
                            Some((q, c)) if q.len() == 1 && q[0] == "excluded" && c == col);
                        if name_parts(n).last().map(String::as_str) == Some(col) && !from_excluded {
                            self.out.findings.push(rules::realm_column_updated(
                                &target_display(&refs[0]),
                                col,
                                n.span(),
                            ));
                        }
                    }
                    for q in subqueries(&a.value) {
                        self.query(&q, env, Some(&scope), Role::Read);
                    }
                }
                if let Some(sel) = &du.selection {
                    for q in subqueries(sel) {
                        self.query(&q, env, Some(&scope), Role::Read);
                    }
                }
            }
        }
    }

    /// Analyse a query; returns whether all of its realm references are bound (`None`: some
    /// are not) and its output columns.
    fn query(
        &mut self,
        q: &Query,
        env: &Env,
        outer: Option<&Outer>,
        role: Role,
    ) -> (Option<Strength>, Option<Cols>, bool) {
        let before = self.out.findings.len();
        let was_realm = std::mem::replace(&mut self.out.realm, false);
        let mut env = env.clone();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let name = ident(&cte.alias.name);
                if with.recursive {
                    // A recursive CTE reads itself: known, columns unknown, judged by its body.
                    env.ctes.insert(
                        name.clone(),
                        Cte {
                            columns: alias_columns(&Some(cte.alias.clone())),
                            bound: Some(Strength::Single),
                        },
                    );
                }
                let (bound, cols, realm) = self.query(&cte.query, &env, outer, role);
                let columns = alias_columns(&Some(cte.alias.clone())).or(cols);
                env.ctes.insert(
                    name,
                    Cte {
                        columns,
                        bound: if realm { bound } else { None },
                    },
                );
            }
        }
        let cols = self.set_expr(&q.body, &env, outer, role);
        for sub in subqueries(&q.order_by)
            .into_iter()
            .chain(subqueries(&q.limit_clause))
        {
            self.query(&sub, &env, outer, Role::Read);
        }
        let realm = self.out.realm;
        self.out.realm |= was_realm;
        let added = &self.out.findings[before..];
        let bound = if added.iter().any(|f| f.unbound) {
            None
        } else if added.iter().any(|f| f.rule == rules::QUERY_MULTI_REALM) {
            Some(Strength::Multi)
        } else {
            Some(Strength::Single)
        };
        (bound, cols, realm)
    }

    fn set_expr(
        &mut self,
        body: &SetExpr,
        env: &Env,
        outer: Option<&Outer>,
        role: Role,
    ) -> Option<Cols> {
        match body {
            SetExpr::Select(s) => self.select(s, env, outer, role),
            SetExpr::Query(q) => self.query(q, env, outer, role).1,
            SetExpr::SetOperation { left, right, .. } => {
                let cols = self.set_expr(left, env, outer, role);
                self.set_expr(right, env, outer, role);
                cols
            }
            SetExpr::Values(v) => {
                for q in subqueries(v) {
                    self.query(&q, env, outer, role);
                }
                None
            }
            SetExpr::Insert(st) | SetExpr::Update(st) | SetExpr::Delete(st) => {
                self.statement(st, env, outer);
                None
            }
            SetExpr::Merge(st) => {
                self.statement(st, env, outer);
                None
            }
            SetExpr::Table(_) => {
                self.out.opaque = true;
                None
            }
        }
    }

    fn select(&mut self, s: &Select, env: &Env, outer: Option<&Outer>, role: Role) -> Option<Cols> {
        let from: Vec<&TableWithJoins> = s.from.iter().collect();
        let level = self.level_of(&from, s.selection.as_ref(), env, outer, role);
        let cols = output_columns(&s.projection, &level.refs).map(Arc::new);
        let mut subs = Vec::new();
        for item in &s.projection {
            subs.extend(subqueries(item));
        }
        subs.extend(subqueries(&s.group_by));
        if let Some(h) = &s.having {
            subs.extend(subqueries(h));
        }
        self.finish_level(level, env, outer, subs);
        cols
    }

    /// Build a level from its FROM items and WHERE, and bind its references.
    fn level_of<'q>(
        &mut self,
        from: &[&'q TableWithJoins],
        selection: Option<&'q Expr>,
        env: &Env,
        outer: Option<&Outer>,
        role: Role,
    ) -> Level<'q> {
        let mut level = Level {
            role: Some(role),
            ..Level::default()
        };
        for twj in from {
            self.from_item(twj, &mut level, env, outer, role);
        }
        if let Some(w) = selection {
            conjuncts(w, &mut level.filter);
        }
        self.bind(&mut level, outer);
        level
    }

    fn from_item<'q>(
        &mut self,
        twj: &'q TableWithJoins,
        level: &mut Level<'q>,
        env: &Env,
        outer: Option<&Outer>,
        role: Role,
    ) {
        let first = level.refs.len();
        self.factor(&twj.relation, None, level, env, outer, role);
        for j in &twj.joins {
            let ji = level.joins.len();
            let left: Vec<usize> = (first..level.refs.len()).collect();
            level.joins.push(Join::default());
            let start = level.refs.len();
            self.factor(&j.relation, Some(ji), level, env, outer, role);
            let right: Vec<usize> = (start..level.refs.len()).collect();
            let (constraint, inner, right_only) = match &j.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::CrossJoin(c) => {
                    (Some(c), true, true)
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (Some(c), false, true),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (Some(c), false, false),
                JoinOperator::FullOuter(c) => (Some(c), false, false),
                _ => (None, false, true),
            };
            let join = &mut level.joins[ji];
            join.left = left.clone();
            match &j.join_operator {
                JoinOperator::FullOuter(_) => {}
                _ if inner => {
                    join.filters = left.iter().chain(&right).copied().collect();
                }
                _ if right_only => join.filters = right.clone(),
                _ => join.filters = left.clone(),
            }
            match constraint {
                Some(JoinConstraint::On(e)) => conjuncts(e, &mut join.on),
                Some(JoinConstraint::Using(cols)) => {
                    join.using = cols
                        .iter()
                        .filter_map(|c| name_parts(c).last().cloned())
                        .collect()
                }
                Some(JoinConstraint::Natural) => join.natural = true,
                _ => {}
            }
        }
    }

    fn factor<'q>(
        &mut self,
        f: &'q TableFactor,
        join: Option<usize>,
        level: &mut Level<'q>,
        env: &Env,
        outer: Option<&Outer>,
        role: Role,
    ) {
        match f {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    // A set-returning function: nothing of a table to bind.
                    level.refs.push(other_ref(alias, f.span(), join));
                    return;
                }
                let r = self.table_ref(name, alias.as_ref(), join, env);
                level.refs.push(r);
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                let name = alias_name(alias).unwrap_or_default();
                let (bound, cols) = if *lateral {
                    level.lateral.push(subquery);
                    (None, None)
                } else {
                    let (b, c, realm) = self.query(subquery, env, outer, role);
                    (if realm { b } else { None }, c)
                };
                level.refs.push(Ref {
                    name,
                    key: None,
                    kind: Kind::Derived {
                        columns: alias_columns(alias).or(cols),
                    },
                    span: f.span(),
                    join,
                    bound,
                });
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                let before = level.refs.len();
                self.from_item(table_with_joins, level, env, outer, role);
                for r in &mut level.refs[before..] {
                    if r.join.is_none() {
                        r.join = join;
                    }
                }
            }
            other => {
                for q in subqueries(other) {
                    self.query(&q, env, outer, Role::Read);
                }
                let alias = match other {
                    TableFactor::Function { alias, .. }
                    | TableFactor::UNNEST { alias, .. }
                    | TableFactor::TableFunction { alias, .. } => alias.clone(),
                    _ => None,
                };
                level.refs.push(other_ref(&alias, other.span(), join));
            }
        }
    }

    /// A named relation: a CTE, a schema table, a catalog relation, or an unknown one (opaque).
    fn table_ref(
        &mut self,
        name: &ObjectName,
        alias: Option<&TableAlias>,
        join: Option<usize>,
        env: &Env,
    ) -> Ref {
        let parts = name_parts(name);
        let exposed = alias
            .map(|a| ident(&a.name))
            .or_else(|| parts.last().cloned())
            .unwrap_or_default();
        let span = last_span(name);
        if let [single] = parts.as_slice() {
            if let Some(cte) = env.ctes.get(single) {
                return Ref {
                    name: exposed,
                    key: None,
                    kind: Kind::Derived {
                        columns: cte.columns.clone(),
                    },
                    span,
                    join,
                    bound: cte.bound,
                };
            }
        }
        let (schema, table) = match parts.as_slice() {
            [t] => (None, t.as_str()),
            [.., s, t] => (Some(s.as_str()), t.as_str()),
            [] => (None, ""),
        };
        let resolved = self.schema.resolve(schema, table);
        let Some((key, info)) = resolved else {
            if !is_catalog(&parts) {
                self.out.opaque = true;
                self.out
                    .findings
                    .push(rules::opaque_table(&parts.join("."), span));
            }
            return Ref {
                name: exposed,
                key: None,
                kind: Kind::Other { columns: None },
                span,
                join,
                bound: None,
            };
        };
        let kind = match &info.realm_column {
            Some(c) => {
                self.out.realm = true;
                Kind::Realm {
                    table: key.clone(),
                    column: c.clone(),
                    columns: info.columns.clone(),
                }
            }
            None => Kind::Other {
                columns: Some(info.columns.clone()),
            },
        };
        Ref {
            name: exposed,
            key: alias.is_none().then_some(key),
            kind,
            span,
            join,
            bound: None,
        }
    }

    /// Bind the level's realm references: a least fixpoint, since one reference may be bound
    /// through another's realm column.
    fn bind(&mut self, level: &mut Level, outer: Option<&Outer>) {
        loop {
            let mut changed = false;
            for i in 0..level.refs.len() {
                if !matches!(level.refs[i].kind, Kind::Realm { .. }) {
                    continue;
                }
                let found = self.binding_of(level, i, outer);
                if found > level.refs[i].bound {
                    level.refs[i].bound = found;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// The conjuncts that filter reference `i`: the WHERE clause and the ON of each join it
    /// takes part in.
    fn conditions_of<'l>(level: &'l Level, i: usize) -> Vec<(&'l Expr, bool)> {
        let mut v: Vec<(&Expr, bool)> = level.filter.iter().map(|e| (*e, false)).collect();
        for j in &level.joins {
            if j.filters.contains(&i) {
                v.extend(j.on.iter().map(|e| (*e, true)));
            }
        }
        v
    }

    fn binding_of(&mut self, level: &Level, i: usize, outer: Option<&Outer>) -> Option<Strength> {
        let mut best = None;
        for (c, _) in Self::conditions_of(level, i) {
            best = best.max(self.binds(level, i, c, outer));
        }
        // USING (…, realm_id) / NATURAL: equal to the realm column of a bound reference before it.
        if let (Some(j), Some(col)) = (level.refs[i].join, level.refs[i].realm_column()) {
            let join = &level.joins[j];
            if join.natural || join.using.iter().any(|u| u == col) {
                for &l in &join.left {
                    if level.refs[l].realm_column() == Some(col) {
                        best = best.max(level.refs[l].bound);
                    }
                }
            }
        }
        best
    }

    /// Does conjunct `c` bind reference `i`?
    fn binds(
        &mut self,
        level: &Level,
        i: usize,
        c: &Expr,
        outer: Option<&Outer>,
    ) -> Option<Strength> {
        let is_own = |e: &Expr| -> bool {
            column_of(e).is_some_and(|(q, col)| {
                matches!(resolve(level, outer, &q, &col), Some((0, r)) if r == i)
                    && level.refs[i].realm_column() == Some(col.as_str())
            })
        };
        match c {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            }
            | Expr::IsNotDistinctFrom(left, right) => {
                if is_own(left) {
                    self.value(level, i, right, outer)
                } else if is_own(right) {
                    self.value(level, i, left, outer)
                } else {
                    None
                }
            }
            Expr::In {
                expr,
                target,
                negated: false,
                ..
            } if is_own(expr) => match target {
                InTarget::List(items) => {
                    let all = !items.is_empty()
                        && items
                            .iter()
                            .all(|x| self.value(level, i, x, outer).is_some());
                    all.then_some(Strength::Multi)
                }
                InTarget::Subquery(q) => self
                    .bound_subquery(q, outer_with(level, outer).as_ref())
                    .then_some(Strength::Multi),
                _ => None,
            },
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } if is_own(left) => {
                let ok = match right.as_ref() {
                    Expr::Subquery(q) => self.bound_subquery(q, outer_with(level, outer).as_ref()),
                    Expr::Nested(n) if matches!(n.as_ref(), Expr::Subquery(_)) => {
                        let Expr::Subquery(q) = n.as_ref() else {
                            unreachable!()
                        };
                        self.bound_subquery(q, outer_with(level, outer).as_ref())
                    }
                    other => self.value(level, i, other, outer).is_some(),
                };
                ok.then_some(Strength::Multi)
            }
            Expr::Nested(inner) => self.binds(level, i, inner, outer),
            _ => None,
        }
    }

    /// Is `e` a realm value X for reference `i`?
    fn value(
        &mut self,
        level: &Level,
        i: usize,
        e: &Expr,
        outer: Option<&Outer>,
    ) -> Option<Strength> {
        match e {
            Expr::Nested(x) | Expr::Cast { expr: x, .. } | Expr::UnaryOp { expr: x, .. } => {
                self.value(level, i, x, outer)
            }
            Expr::Collate { expr, .. } => self.value(level, i, expr, outer),
            Expr::Value(_) | Expr::TypedString(_) => Some(Strength::Single),
            Expr::Function(f) => {
                (!mentions_columns(e) || is_sqlc_param(f)).then_some(Strength::Single)
            }
            Expr::Subquery(q) => self
                .bound_subquery(q, outer_with(level, outer).as_ref())
                .then_some(Strength::Single),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                let (q, col) = column_of(e)?;
                let own = level.refs[i].realm_column();
                match resolve(level, outer, &q, &col)? {
                    (0, r) if r != i => realm_value_of(&level.refs[r], own, &col),
                    (0, _) => None,
                    (depth, r) => realm_value_of(&outer_at(outer, depth)?.refs[r], own, &col),
                }
            }
            _ => None,
        }
    }

    /// A subquery used as a value is bound when it has no unbound realm reference (judged
    /// quietly: its findings are reported when the level's subqueries are analysed).
    fn bound_subquery(&mut self, q: &Query, outer: Option<&Outer>) -> bool {
        let key = q as *const Query as usize;
        if let Some(&b) = self.cache.get(&key) {
            return b;
        }
        let before = self.out.findings.len();
        let (realm, opaque) = (self.out.realm, self.out.opaque);
        let (bound, _, _) = self.query(q, &Env::default(), outer, Role::Read);
        self.out.findings.truncate(before);
        self.out.realm = realm;
        self.out.opaque = opaque;
        let b = bound.is_some();
        self.cache.insert(key, b);
        b
    }

    /// Report the level's unbound and multi-realm references, then analyse its subqueries.
    fn finish_level(
        &mut self,
        level: Level,
        env: &Env,
        outer: Option<&Outer>,
        mut subs: Vec<Query>,
    ) {
        let role = level.role.unwrap_or(Role::Read);
        for (i, r) in level.refs.iter().enumerate() {
            let Kind::Realm { column, .. } = &r.kind else {
                continue;
            };
            match r.bound {
                Some(Strength::Single) => {}
                Some(Strength::Multi) => {
                    self.out
                        .findings
                        .push(rules::multi_realm(&target_display(r), column, r.span))
                }
                None => {
                    let joined = joined_to_bound(&level, i, outer);
                    let finding = match joined {
                        Some((b, in_on)) => rules::join_without_realm(
                            &target_display(r),
                            &qualified(r, column),
                            &target_display(&level.refs[b]),
                            &qualified(
                                &level.refs[b],
                                level.refs[b].realm_column().unwrap_or(column),
                            ),
                            in_on,
                            r.span,
                        ),
                        None => {
                            let in_on = r.join.is_some_and(|j| !level.joins[j].on.is_empty());
                            rules::missing_filter(
                                &target_display(r),
                                &qualified(r, column),
                                self.realm_setting,
                                role == Role::InsertSource,
                                in_on,
                                r.span,
                            )
                        }
                    };
                    self.out.findings.push(finding);
                }
            }
        }
        for j in &level.joins {
            for e in &j.on {
                subs.extend(subqueries(*e));
            }
        }
        for e in &level.filter {
            subs.extend(subqueries(*e));
        }
        let scope = Outer {
            refs: &level.refs,
            parent: outer,
        };
        for q in &subs {
            self.query(q, env, Some(&scope), sub_role(role));
        }
        for q in &level.lateral {
            self.query(q, env, Some(&scope), sub_role(role));
        }
    }

    /// `SET app.realm_id …` and `set_config('app.realm_id', …, false)`: session-wide.
    fn session_settings(&mut self, st: &Statement) {
        let setting = self.realm_setting;
        if let Statement::Set(Set::SingleAssignment {
            scope, variable, ..
        }) = st
        {
            let name = name_parts(variable).join(".");
            if name.eq_ignore_ascii_case(setting) && scope != &Some(ContextModifier::Local) {
                self.out
                    .findings
                    .push(rules::session_setting(setting, false, variable.span()));
            }
        }
        struct V<'s>(&'s str, Vec<Span>);
        impl Visitor for V<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
                if let Expr::Function(f) = e {
                    if name_parts(&f.name).last().map(String::as_str) == Some("set_config") {
                        if let FunctionArguments::List(l) = &f.args {
                            let arg = |k: usize| match l.args.get(k) {
                                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(
                                    v,
                                )))) => Some(v.value.clone()),
                                _ => None,
                            };
                            let named = matches!(arg(0), Some(Value::SingleQuotedString(s)) if s.eq_ignore_ascii_case(self.0));
                            let session = match arg(2) {
                                Some(Value::Boolean(b)) => !b,
                                Some(Value::SingleQuotedString(s)) => {
                                    matches!(
                                        s.to_ascii_lowercase().as_str(),
                                        "false" | "f" | "off" | "0" | "no"
                                    )
                                }
                                _ => false,
                            };
                            if named && session {
                                self.1.push(e.span());
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut v = V(setting, Vec::new());
        let _ = st.visit(&mut v);
        for span in v.1 {
            self.out
                .findings
                .push(rules::session_setting(setting, true, span));
        }
    }
}

/// The realm column of a bound reference (for a derived table or CTE: its column of the same name
/// as the realm column it is compared with) is a realm value.
fn realm_value_of(other: &Ref, own: Option<&str>, col: &str) -> Option<Strength> {
    let realm = match &other.kind {
        Kind::Realm { column, .. } => column == col,
        Kind::Derived { .. } => own == Some(col),
        Kind::Other { .. } => false,
    };
    realm.then_some(other.bound).flatten()
}

fn sub_role(role: Role) -> Role {
    role
}

fn is_sqlc_param(f: &sqlparser::ast::Function) -> bool {
    let p = name_parts(&f.name);
    matches!(p.as_slice(), [s, a] if s == "sqlc" && matches!(a.as_str(), "arg" | "narg" | "slice"))
}

fn other_ref(alias: &Option<TableAlias>, span: Span, join: Option<usize>) -> Ref {
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
fn outer_with<'s>(level: &'s Level, outer: Option<&'s Outer<'s>>) -> Option<Outer<'s>> {
    Some(Outer {
        refs: &level.refs,
        parent: outer,
    })
}

fn outer_at<'s>(outer: Option<&'s Outer<'s>>, depth: usize) -> Option<&'s Outer<'s>> {
    let mut o = outer?;
    for _ in 1..depth {
        o = o.parent?;
    }
    Some(o)
}

/// Which reference a column belongs to: (levels up, index). Qualified by alias or table name
/// (or `schema.table`); unqualified, the one reference of the level that has the column, else
/// the enclosing levels'.
fn resolve(
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
fn joined_to_bound(level: &Level, i: usize, outer: Option<&Outer>) -> Option<(usize, bool)> {
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
fn target_display(r: &Ref) -> String {
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
fn qualified(r: &Ref, column: &str) -> String {
    let q = match &r.key {
        Some(k) if r.name.is_empty() => k.clone(),
        _ => crate::db::quote_ident(&r.name),
    };
    format!("{q}.{}", crate::db::quote_ident(column))
}

/// Output column names of a projection (`None` when not known).
fn output_columns(items: &[SelectItem], refs: &[Ref]) -> Option<HashSet<String>> {
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

fn columns_of(r: &Ref) -> Option<Cols> {
    match &r.kind {
        Kind::Realm { columns, .. } => Some(columns.clone()),
        Kind::Other { columns } | Kind::Derived { columns } => columns.clone(),
    }
}

fn head_of(st: &Statement) -> String {
    let s = st.to_string();
    s.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

#[cfg(test)]
#[path = "analyze_tests.rs"]
mod tests;
