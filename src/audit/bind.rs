//! Binding a level's realm references: the conjuncts that bind, and the values X they may be
//! compared with (see `docs/audit.md`).

use super::analyze::{Analyzer, Env, Role, Strength};
use super::scope::*;
use sqlparser::ast::{BinaryOperator, Expr, InTarget, Query};

impl Analyzer<'_> {
    /// Bind the level's realm references: a least fixpoint, since one reference may be bound
    /// through another's realm column.
    pub(super) fn bind(&mut self, level: &mut Level, outer: Option<&Outer>) {
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
    pub(super) fn conditions_of<'l>(level: &'l Level, i: usize) -> Vec<(&'l Expr, bool)> {
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
    pub(super) fn bound_subquery(&mut self, q: &Query, outer: Option<&Outer>) -> bool {
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
}
