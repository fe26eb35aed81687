//! `realm-fk-missing`: the realms table exists and no foreign key maps the realm column to it, so a
//! row can name a realm that does not exist, and deleting a realm leaves its rows behind.

use crate::catalog::FkAction;
use crate::verify::fix::{add_foreign_key, object_name, FkSpec};
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RealmFkMissing.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let Some(realms) = ctx.realms_oid() else {
        return;
    };
    let realms_table = ctx.table(realms);
    // The realms key the foreign key should point at: its single-column primary key.
    let key = realms_table.and_then(|rt| match ctx.primary_key(realms)?.columns.as_slice() {
        [n] => rt.column_by_num(*n).map(|c| c.name.clone()),
        _ => None,
    });
    for t in ctx.scoped_tables() {
        let Some(realm) = ctx.realm_col(t.oid) else {
            continue;
        };
        let rname = t.realm_column(&ctx.cfg.realm_column);
        let has = ctx.foreign_keys(t.oid).any(|c| {
            let f = c.foreign.as_ref().expect("foreign key");
            f.ref_table == realms && c.columns.contains(&realm)
        });
        if has {
            continue;
        }
        let fix = match (realms_table, &key) {
            (Some(rt), Some(key)) => {
                let name = object_name(&[&t.name, rname], "fkey");
                Some(add_foreign_key(
                    t,
                    &FkSpec {
                        name: &name,
                        columns: vec![rname.to_string()],
                        ref_table: rt,
                        ref_columns: vec![key.clone()],
                        on_delete: FkAction::Cascade,
                        on_update: FkAction::NoAction,
                        match_full: false,
                        deferrable: false,
                        deferred: false,
                    },
                    None,
                ))
            }
            _ => None,
        };
        let target = realms_table
            .map(|r| format!("{}.{}", r.schema, r.name))
            .unwrap_or_else(|| ctx.cfg.realms_table.clone());
        out.push(ctx.violation(
            ID,
            t,
            None,
            format!("no foreign key maps {rname} to the realms table {target}"),
            fix,
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::RealmsTable;
    use crate::verify::testkit::Kit;

    #[test]
    fn table_without_realm_foreign_key_gets_a_not_valid_one() {
        let mut k = Kit::new();
        let t = k.table(
            "app",
            "Groups",
            &[("id", "bigint", true), ("realm_id", "text", true)],
        );
        k.pk(t, &["id", "realm_id"]);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].fix.as_deref().unwrap(),
            "ALTER TABLE app.\"Groups\" ADD CONSTRAINT \"Groups_realm_id_fkey\" FOREIGN KEY (realm_id) REFERENCES public.realms (id) ON DELETE CASCADE NOT VALID;\n\
             ALTER TABLE app.\"Groups\" VALIDATE CONSTRAINT \"Groups_realm_id_fkey\";"
        );
    }

    #[test]
    fn realm_foreign_key_present_or_realms_rule_disabled_is_fine() {
        let mut k = Kit::new();
        k.good("groups", &[]);
        assert!(k.of(super::ID).is_empty());
        let t = k.table(
            "public",
            "x",
            &[("id", "bigint", true), ("realm_id", "text", true)],
        );
        k.pk(t, &["id", "realm_id"]);
        k.cat.realms = RealmsTable::Disabled;
        assert!(k.of(super::ID).is_empty());
    }
}
