//! `citus-fk-set-null`: a foreign key of a realm-scoped table that contains the realm column and
//! sets it (`ON DELETE SET NULL / SET DEFAULT`, `ON UPDATE SET NULL / SET DEFAULT / CASCADE`).
//! A distribution column is never changed in place, so Citus refuses such a key ("SET NULL or
//! SET DEFAULT is not supported in ON DELETE operation when distribution key is included in the
//! foreign key constraint"; for ON UPDATE "SET NULL, SET DEFAULT or CASCADE is not supported").

use crate::catalog::FkAction;
use crate::db::qualified;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::CitusFkSetNull.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.scoped_tables() {
        let Some(own) = ctx.realm_col(t.oid) else {
            continue;
        };
        for c in ctx.foreign_keys(t.oid) {
            if !c.columns.contains(&own) {
                continue;
            }
            let f = c.foreign.as_ref().expect("foreign key");
            let del = matches!(f.on_delete, FkAction::SetNull | FkAction::SetDefault);
            let upd = matches!(
                f.on_update,
                FkAction::SetNull | FkAction::SetDefault | FkAction::Cascade
            );
            let what = match (del, upd) {
                (true, _) => format!("ON DELETE {}", f.on_delete.sql()),
                (false, true) => format!("ON UPDATE {}", f.on_update.sql()),
                _ => continue,
            };
            let parent = ctx
                .table(f.ref_table)
                .map(|p| qualified(&p.schema, &p.name))
                .unwrap_or_default();
            out.push(ctx.violation(
                ID,
                t,
                Some(&c.name),
                format!(
                    "foreign key {} to {parent} has {what} on a key containing {}: Citus never changes a distribution column through a foreign key and refuses it; use CASCADE/RESTRICT on delete and NO ACTION on update",
                    c.name, ctx.cfg.realm_column
                ),
                None,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::FkAction;
    use crate::verify::testkit::Kit;

    #[test]
    fn set_null_or_update_cascade_on_a_realm_key_is_an_error() {
        let mut k = Kit::new();
        k.citus_profile();
        let g = k.good("groups", &[]);
        let m = k.good("memberships", &["group_id"]);
        k.fk(
            m,
            &["group_id", "realm_id"],
            g,
            &["id", "realm_id"],
            FkAction::SetNull,
        );
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("ON DELETE SET NULL"),
            "{}",
            v[0].message
        );
        k.cat
            .constraints
            .last_mut()
            .unwrap()
            .foreign
            .as_mut()
            .unwrap()
            .on_delete = FkAction::Cascade;
        assert!(
            k.of(super::ID).is_empty(),
            "the near miss: ON DELETE CASCADE"
        );
        k.cat
            .constraints
            .last_mut()
            .unwrap()
            .foreign
            .as_mut()
            .unwrap()
            .on_update = FkAction::Cascade;
        let v = k.of(super::ID);
        assert!(
            v[0].message.contains("ON UPDATE CASCADE"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn set_null_on_a_key_without_the_realm_column_passes() {
        let mut k = Kit::new();
        k.citus_profile();
        let m = k.good("memberships", &["country_id"]);
        let c = k.table("public", "countries", &[("id", "bigint", true)]);
        k.pk(c, &["id"]);
        k.fk(m, &["country_id"], c, &["id"], FkAction::SetNull);
        assert!(k.of(super::ID).is_empty());
    }
}
