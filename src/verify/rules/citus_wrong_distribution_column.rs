//! `citus-wrong-distribution-column` (on a Citus coordinator): a realm-scoped table distributed
//! on another column than the realm column, or on it but in another colocation group than the
//! other realm tables. Either way a realm's rows are not together on one node: joins between
//! realm tables fan out to every shard and foreign keys between them cannot exist.

use crate::catalog::citus::DistClass;
use crate::db::qualified;
use crate::verify::{Ctx, Violation};
use std::collections::BTreeMap;

pub const ID: &str = crate::rules::Rule::CitusWrongDistributionColumn.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let Some(dist) = ctx.citus.and_then(|f| f.dist.as_ref()) else {
        return;
    };
    let names = &ctx.cfg.realm_column;
    let mut on_realm = Vec::new();
    for t in ctx.scoped_tables() {
        let Some(d) = dist
            .get(&t.oid)
            .filter(|d| d.class == DistClass::Distributed)
        else {
            continue; // citus-not-distributed
        };
        // Each table's own realm column (realm_column may list names: docs/backfill-design.md).
        let rcol = t.realm_column(names);
        if d.column.as_deref() == Some(rcol) {
            on_realm.push((t, d.colocation_id));
            continue;
        }
        out.push(ctx.violation(
            ID,
            t,
            None,
            format!(
                "realm table {} is distributed on {}, not {rcol}: a realm's rows are spread over every node; undistribute it (undistribute_table) and run `realmguard citus distribute`",
                qualified(&t.schema, &t.name),
                d.column.as_deref().unwrap_or("?")
            ),
            None,
        ));
    }
    // The colocation group most realm tables are in (ties: the lower id) is the realm group.
    let mut groups: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, g) in &on_realm {
        *groups.entry(*g).or_default() += 1;
    }
    let Some(main) = groups
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(g, _)| *g)
    else {
        return;
    };
    for (t, g) in on_realm.into_iter().filter(|(_, g)| *g != main) {
        let rcol = t.realm_column(names);
        out.push(ctx.violation(
            ID,
            t,
            None,
            format!(
                "realm table {} is distributed on {rcol} but in colocation group {g}, not {main} with the other realm tables: joins and foreign keys between them cannot stay on one node; update_distributed_table_colocation can move it",
                qualified(&t.schema, &t.name)
            ),
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::citus::DistClass;
    use crate::verify::testkit::Kit;

    #[test]
    fn another_column_or_another_colocation_group_is_an_error() {
        let mut k = Kit::new();
        let u = k.good("users", &[]);
        let g = k.good("groups", &[]);
        let m = k.good("memberships", &[]);
        k.dist(u, DistClass::Distributed, Some("realm_id"), 1);
        k.dist(g, DistClass::Distributed, Some("realm_id"), 1);
        k.dist(m, DistClass::Distributed, Some("id"), 1);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("distributed on id"),
            "{}",
            v[0].message
        );
        k.dist(m, DistClass::Distributed, Some("realm_id"), 7);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("colocation group 7"),
            "{}",
            v[0].message
        );
        k.dist(m, DistClass::Distributed, Some("realm_id"), 1);
        assert!(k.of(super::ID).is_empty());
    }
}
