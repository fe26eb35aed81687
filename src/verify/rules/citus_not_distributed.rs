//! `citus-not-distributed` (on a Citus coordinator): a realm-scoped table that Citus does not
//! hash-distribute, or a table that should be a reference table (the realms table, a global
//! table realm tables reference) and is not one. A warning: the database works, but such a
//! realm table stays on the coordinator and does not scale out. `realmguard citus distribute`
//! is the fix.

use crate::catalog::citus::DistClass;
use crate::db::qualified;
use crate::verify::citus::{classes, Class};
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::CitusNotDistributed.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let Some(dist) = ctx.citus.and_then(|f| f.dist.as_ref()) else {
        return;
    };
    for c in classes(ctx) {
        let now = dist.get(&c.oid).map(|d| d.class);
        let ok = match c.class {
            Class::Distributed => now == Some(DistClass::Distributed),
            Class::Reference => now == Some(DistClass::Reference),
            Class::Local => true,
        };
        if ok {
            continue;
        }
        let Some(t) = ctx.table(c.oid) else {
            continue;
        };
        let held = match now {
            None => "a plain local table".to_string(),
            Some(DistClass::Distributed) => "a distributed table".into(),
            Some(DistClass::Reference) => "a reference table".into(),
            Some(DistClass::SingleShard) => "a single-shard table".into(),
            Some(DistClass::Local) => "a local table in Citus's metadata".into(),
        };
        let want = match c.class {
            Class::Distributed => format!(
                "realm table {} is {held}, not distributed on {}",
                qualified(&t.schema, &t.name),
                ctx.cfg.realm_column
            ),
            _ => format!(
                "{} is {held}, not a reference table, though realm tables reference it",
                qualified(&t.schema, &t.name)
            ),
        };
        out.push(ctx.violation(
            ID,
            t,
            None,
            format!("{want}; run `realmguard citus distribute`"),
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::citus::DistClass;
    use crate::verify::testkit::Kit;

    #[test]
    fn realm_tables_not_distributed_and_realms_not_reference_are_warnings_on_a_coordinator() {
        let mut k = Kit::new();
        let u = k.good("users", &[]);
        let g = k.good("groups", &[]);
        assert!(k.of(super::ID).is_empty(), "not a coordinator");
        k.dist(u, DistClass::Distributed, Some("realm_id"), 1);
        let v = k.of(super::ID);
        let tables: Vec<_> = v.iter().map(|v| v.table.as_str()).collect();
        assert_eq!(tables, ["groups", "realms"]);
        assert!(
            v[0].message.contains("a plain local table"),
            "{}",
            v[0].message
        );
        let realms = k.realms();
        k.dist(realms, DistClass::Reference, None, 2);
        k.dist(g, DistClass::Distributed, Some("realm_id"), 1);
        assert!(k.of(super::ID).is_empty());
    }
}
