//! `citus-realm-type-mismatch`: the realm column's type or collation differs between realm-scoped
//! tables. Colocated tables must share the distribution column's type and collation, so Citus
//! refuses to colocate them ("cannot colocate tables a and b: Distribution column types don't
//! match" / "collations don't match"). The most common (type, collation) is taken as the right
//! one; every table that differs from it is reported.

use crate::db::qualified;
use crate::verify::{Ctx, Violation};
use std::collections::BTreeMap;

pub const ID: &str = crate::rules::Rule::CitusRealmTypeMismatch.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let Some(facts) = ctx.citus else {
        return;
    };
    let typed: Vec<_> = ctx
        .scoped_tables()
        .filter_map(|t| facts.realm_types.get(&t.oid).map(|ty| (t, ty)))
        .collect();
    // (type, collation) -> (tables, first seen), the majority wins, ties to the first seen.
    let mut count: BTreeMap<(&str, Option<&str>), (usize, usize)> = BTreeMap::new();
    for (i, (_, ty)) in typed.iter().enumerate() {
        let e = count
            .entry((ty.type_name.as_str(), ty.collation.as_deref()))
            .or_insert((0, i));
        e.0 += 1;
    }
    let Some((&want, _)) = count
        .iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
    else {
        return;
    };
    let example = typed
        .iter()
        .find(|(_, ty)| (ty.type_name.as_str(), ty.collation.as_deref()) == want)
        .map(|(t, _)| qualified(&t.schema, &t.name))
        .unwrap_or_default();
    let show = |ty: &str, coll: Option<&str>| match coll {
        Some(c) => format!("{ty} COLLATE \"{c}\""),
        None => ty.to_string(),
    };
    for (t, ty) in &typed {
        let have = (ty.type_name.as_str(), ty.collation.as_deref());
        if have == want {
            continue;
        }
        out.push(ctx.violation(
            ID,
            t,
            None,
            format!(
                "{} is {} here but {} in {example} and the other realm tables: Citus colocates only tables whose distribution columns share type and collation",
                ctx.cfg.realm_column,
                show(have.0, have.1),
                show(want.0, want.1),
            ),
            None,
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::citus::RealmType;
    use crate::verify::testkit::Kit;

    fn typed(k: &mut Kit, t: u32, ty: &str, coll: Option<&str>) {
        k.citus.realm_types.insert(
            t,
            RealmType {
                type_name: ty.into(),
                collation: coll.map(str::to_string),
            },
        );
    }

    #[test]
    fn the_odd_type_or_collation_out_is_reported() {
        let mut k = Kit::new();
        k.citus_profile();
        let a = k.good("groups", &[]);
        let b = k.good("memberships", &[]);
        let c = k.good("users", &[]);
        typed(&mut k, a, "text", Some("default"));
        typed(&mut k, b, "text", Some("default"));
        typed(&mut k, c, "character varying(20)", Some("default"));
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].table, "users");
        assert!(
            v[0].message.contains("character varying(20)"),
            "{}",
            v[0].message
        );
        typed(&mut k, c, "text", Some("C"));
        let v = k.of(super::ID);
        assert!(v[0].message.contains("COLLATE \"C\""), "{}", v[0].message);
        typed(&mut k, c, "text", Some("default"));
        assert!(k.of(super::ID).is_empty(), "the near miss: all the same");
    }
}
