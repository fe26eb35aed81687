//! The Citus class of every checked table under `--profile citus`: realm-scoped tables are
//! distributed on the realm column (all colocated with the first), the realms table and every
//! global table a distributed or reference table references (transitively) are reference tables,
//! the rest stay local. The same classes order the steps of `realmguard citus distribute`:
//! reference tables, then distributed ones, each after the tables it references.

use super::Ctx;
use crate::catalog::citus::DistClass;
use crate::catalog::Table;
use crate::db::qualified;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Distributed,
    Reference,
    Local,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Distributed => "distributed",
            Class::Reference => "reference",
            Class::Local => "local",
        }
    }
}

/// One table's class, and how Citus holds it today when the database is a coordinator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableClass {
    /// `schema.table`, quoted where needed.
    pub table: String,
    #[serde(skip)]
    pub oid: u32,
    #[serde(skip)]
    pub schema: String,
    #[serde(skip)]
    pub name: String,
    pub class: Class,
    pub distribution_column: Option<String>,
    /// The table a distributed table is colocated with (the first distributed one).
    pub colocate_with: Option<String>,
    /// `pg_dist_partition`'s view on a coordinator; `None` elsewhere or when Citus does not
    /// know the table.
    pub current: Option<DistClass>,
}

/// Every checked table with its class: reference tables first, then distributed, then local,
/// each group parents first (a table after the tables it references).
pub fn classes(ctx: &Ctx) -> Vec<TableClass> {
    let checked: HashSet<u32> = ctx.checked.iter().map(|t| t.oid).collect();
    let mut class: HashMap<u32, Class> = HashMap::new();
    for t in &ctx.checked {
        if ctx.is_realm_scoped(t.oid) {
            class.insert(t.oid, Class::Distributed);
        }
    }
    // Reference: the realms table and, to a fixed point, the global tables that a distributed
    // or reference table references.
    let mut todo: Vec<u32> = class.keys().copied().collect();
    if let Some(r) = ctx.realms_oid().filter(|r| checked.contains(r)) {
        class.insert(r, Class::Reference);
        todo.push(r);
    }
    while let Some(oid) = todo.pop() {
        for fk in ctx.foreign_keys(oid) {
            let p = fk.foreign.as_ref().expect("foreign key").ref_table;
            if checked.contains(&p) && !class.contains_key(&p) {
                class.insert(p, Class::Reference);
                todo.push(p);
            }
        }
    }
    let dist = ctx.citus.and_then(|f| f.dist.as_ref());
    let rcol = &ctx.cfg.realm_column;
    let mut out = Vec::new();
    let mut root: Option<String> = None;
    for want in [Class::Reference, Class::Distributed, Class::Local] {
        let group: Vec<&Table> = ctx
            .checked
            .iter()
            .copied()
            .filter(|t| class.get(&t.oid).copied().unwrap_or(Class::Local) == want)
            .collect();
        for t in parents_first(ctx, &group) {
            let q = qualified(&t.schema, &t.name);
            let colocate_with =
                (want == Class::Distributed).then(|| root.get_or_insert(q.clone()).clone());
            out.push(TableClass {
                table: q,
                oid: t.oid,
                schema: t.schema.clone(),
                name: t.name.clone(),
                class: want,
                distribution_column: (want == Class::Distributed)
                    .then(|| t.realm_column(rcol).to_string()),
                colocate_with,
                current: dist.and_then(|d| d.get(&t.oid)).map(|d| d.class),
            });
        }
    }
    out
}
/// Each checked table's class, by oid (what the Citus rules consult).
pub fn class_map(ctx: &Ctx) -> HashMap<u32, Class> {
    classes(ctx).into_iter().map(|c| (c.oid, c.class)).collect()
}

/// `tables` ordered so that each comes after the tables of the group it references (self
/// references ignored; a cycle is broken in name order).
fn parents_first<'a>(ctx: &Ctx, tables: &[&'a Table]) -> Vec<&'a Table> {
    let inside: HashSet<u32> = tables.iter().map(|t| t.oid).collect();
    let mut parents: HashMap<u32, BTreeSet<u32>> = HashMap::new();
    for t in tables {
        let ps = parents.entry(t.oid).or_default();
        for fk in ctx.foreign_keys(t.oid) {
            let p = fk.foreign.as_ref().expect("foreign key").ref_table;
            if p != t.oid && inside.contains(&p) {
                ps.insert(p);
            }
        }
    }
    let mut done: HashSet<u32> = HashSet::new();
    let mut out = Vec::new();
    while out.len() < tables.len() {
        // `tables` is in (schema, name) order, so the pick is stable.
        let next = tables
            .iter()
            .find(|t| !done.contains(&t.oid) && parents[&t.oid].iter().all(|p| done.contains(p)))
            .or_else(|| tables.iter().find(|t| !done.contains(&t.oid)))
            .copied()
            .expect("a table left");
        done.insert(next.oid);
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Class;
    use crate::catalog::FkAction;
    use crate::verify::testkit::Kit;

    #[test]
    fn realm_tables_are_distributed_parents_first_and_their_globals_are_reference() {
        let mut k = Kit::new();
        let m = k.good("memberships", &["group_id", "country_id"]);
        let g = k.good("groups", &[]);
        k.fk(
            m,
            &["group_id", "realm_id"],
            g,
            &["id", "realm_id"],
            FkAction::Cascade,
        );
        let c = k.table("public", "countries", &[("id", "bigint", true)]);
        k.pk(c, &["id"]);
        k.fk(m, &["country_id"], c, &["id"], FkAction::NoAction);
        let l = k.table("public", "logs", &[("id", "bigint", true)]);
        k.pk(l, &["id"]);
        let got: Vec<(String, Class, Option<String>)> = k
            .classes()
            .into_iter()
            .map(|c| (c.table, c.class, c.colocate_with))
            .collect();
        let g = |s: &str| Some(s.to_string());
        assert_eq!(
            got,
            [
                ("public.countries".into(), Class::Reference, None),
                ("public.realms".into(), Class::Reference, None),
                (
                    "public.groups".into(),
                    Class::Distributed,
                    g("public.groups")
                ),
                (
                    "public.memberships".into(),
                    Class::Distributed,
                    g("public.groups")
                ),
                ("public.logs".into(), Class::Local, None),
            ]
        );
    }
}
