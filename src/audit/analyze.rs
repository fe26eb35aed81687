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
use super::scope::*;
use crate::lint::model::ident;
use sqlparser::ast::{
    AssignmentTarget, ContextModifier, Expr, FromTable, FunctionArg, FunctionArgExpr,
    FunctionArguments, JoinConstraint, JoinOperator, ObjectName, OnConflictAction, OnInsert, Query,
    Select, Set, SetExpr, Spanned, Statement, TableAlias, TableFactor, TableObject, TableWithJoins,
    Value, Visit, Visitor,
};
use sqlparser::tokenizer::Span;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

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
pub(super) enum Role {
    Read,
    InsertSource,
}

/// A CTE in scope.
#[derive(Debug, Clone)]
pub(super) struct Cte {
    columns: Option<Cols>,
    bound: Option<Strength>,
}

/// The CTEs visible at a point (inner WITH shadows outer).
#[derive(Debug, Clone, Default)]
pub(super) struct Env {
    ctes: HashMap<String, Cte>,
}

pub(super) struct Analyzer<'a> {
    pub(super) schema: &'a RealmSchema,
    pub(super) realm_setting: &'a str,
    pub(super) out: Outcome,
    /// Quiet verdicts on subqueries used as values (by address), so a fixpoint does not analyse
    /// the same subquery again and again.
    pub(super) cache: HashMap<usize, bool>,
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
    pub(super) fn query(
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
            self.add_from_item(twj, &mut level, env, outer, role);
        }
        if let Some(w) = selection {
            conjuncts(w, &mut level.filter);
        }
        self.bind(&mut level, outer);
        level
    }

    fn add_from_item<'q>(
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
                self.add_from_item(table_with_joins, level, env, outer, role);
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

#[cfg(test)]
#[path = "analyze_tests.rs"]
mod tests;
