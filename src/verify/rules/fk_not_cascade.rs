//! `fk-not-cascade`: a foreign key from a realm-scoped table to a realm-scoped table or to the
//! realms table is not `ON DELETE CASCADE`, so deleting a realm (or a parent row) fails or leaves
//! rows behind.

use crate::catalog::FkAction;
use crate::db::qualified;
use crate::verify::fix::{add_foreign_key, FkSpec};
use crate::verify::{msg_cols, Ctx, Violation};

pub const ID: &str = crate::rules::Rule::FkNotCascade.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let realms = ctx.realms_oid();
    for t in ctx.scoped_tables() {
        for c in ctx.foreign_keys(t.oid) {
            let f = c.foreign.as_ref().expect("foreign key");
            if f.on_delete == FkAction::Cascade {
                continue;
            }
            if !(ctx.is_realm_scoped(f.ref_table) || Some(f.ref_table) == realms) {
                continue;
            }
            let Some(p) = ctx.table(f.ref_table) else {
                continue;
            };
            // When fk-missing-realm replaces this key, its fix already cascades: one fix, not two
            // that would each drop the same constraint.
            let (suffix, fix) = if super::fk_missing_realm::replaces(ctx, t, f) {
                (
                    " (the fk-missing-realm fix replaces it with a cascading one)",
                    None,
                )
            } else {
                // Old rows already satisfy the same reference, so the constraint is swapped in one
                // statement and only the validation scan remains.
                let fix = add_foreign_key(
                    t,
                    &FkSpec {
                        name: &c.name,
                        columns: t.column_names(&c.columns),
                        ref_table: p,
                        ref_columns: p.column_names(&f.ref_columns),
                        on_delete: FkAction::Cascade,
                        on_update: f.on_update,
                        match_full: f.match_full,
                        deferrable: f.deferrable,
                        deferred: f.deferred,
                    },
                    Some(&c.name),
                );
                ("", Some(fix))
            };
            out.push(ctx.violation(
                ID,
                t,
                Some(&c.name),
                format!(
                    "foreign key {} {} to {} is ON DELETE {}, not CASCADE{suffix}",
                    c.name,
                    msg_cols(t, &c.columns),
                    qualified(&p.schema, &p.name),
                    f.on_delete.sql()
                ),
                fix,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::FkAction;
    use crate::verify::testkit::Kit;

    #[test]
    fn restrict_reference_is_swapped_keeping_deferrable() {
        let mut k = Kit::new();
        let g = k.good("groups", &[]);
        let m = k.good("memberships", &["group_id"]);
        let fk = k.fk(
            m,
            &["group_id", "realm_id"],
            g,
            &["id", "realm_id"],
            FkAction::Restrict,
        );
        fk.foreign.as_mut().unwrap().deferrable = true;
        fk.foreign.as_mut().unwrap().deferred = true;
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("ON DELETE RESTRICT"));
        assert_eq!(
            v[0].fix.as_deref().unwrap(),
            "ALTER TABLE public.memberships DROP CONSTRAINT memberships_group_id_realm_id_fkey, ADD CONSTRAINT memberships_group_id_realm_id_fkey FOREIGN KEY (group_id, realm_id) REFERENCES public.groups (id, realm_id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED NOT VALID;\n\
             ALTER TABLE public.memberships VALIDATE CONSTRAINT memberships_group_id_realm_id_fkey;"
        );
    }

    #[test]
    fn realm_reference_without_cascade_is_reported_and_lookup_references_are_not() {
        let mut k = Kit::new();
        let t = k.good("groups", &["kind_id"]);
        k.cat
            .constraints
            .iter_mut()
            .find(|c| c.table == t && c.foreign.is_some())
            .unwrap()
            .foreign
            .as_mut()
            .unwrap()
            .on_delete = FkAction::NoAction;
        let kinds = k.table("public", "kinds", &[("id", "bigint", true)]);
        k.pk(kinds, &["id"]);
        k.fk(t, &["kind_id"], kinds, &["id"], FkAction::Restrict);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].constraint.as_deref(), Some("groups_realm_id_fkey"));
    }
}
