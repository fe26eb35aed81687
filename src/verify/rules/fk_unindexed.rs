//! `fk-unindexed`: a foreign key between two realm-scoped tables whose referencing columns are not
//! the leading columns (any order) of a valid, non-partial index, so every cascading delete from
//! the parent scans the child. The foreign key to the realms table is exempt: a realm is deleted
//! rarely and costs one scan per table.

use crate::db::quote_ident;
use crate::verify::fix::create_index;
use crate::verify::{msg_cols, Ctx, Violation};

pub const ID: &str = crate::rules::Rule::FkUnindexed.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.scoped_tables() {
        for c in ctx.foreign_keys(t.oid) {
            let f = c.foreign.as_ref().expect("foreign key");
            if !ctx.is_realm_scoped(f.ref_table) {
                continue;
            }
            if ctx.has_index_leading_with(t.oid, &c.columns) {
                continue;
            }
            let mut names = t.column_names(&c.columns);
            // A key that fk-missing-realm will widen to carry the realm column gets an index that
            // already serves the widened key too (it still leads with today's columns).
            if super::fk_missing_realm::replaces(ctx, t, f) {
                names.push(t.realm_column(&ctx.cfg.realm_column).to_string());
            }
            let mut parts: Vec<&str> = vec![&t.name];
            parts.extend(names.iter().map(String::as_str));
            let keys: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
            out.push(ctx.violation(
                ID,
                t,
                Some(&c.name),
                format!(
                    "foreign key {} {} has no index leading with its columns: each delete of a parent row scans {}",
                    c.name,
                    msg_cols(t, &c.columns),
                    t.name
                ),
                Some(create_index(
                    t,
                    &ctx.index_name(&t.schema, &parts, "idx"),
                    false,
                    &keys,
                    None,
                )),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::FkAction;
    use crate::verify::testkit::Kit;

    fn setup() -> (Kit, u32) {
        let mut k = Kit::new();
        let g = k.good("groups", &[]);
        let m = k.good("memberships", &["group_id"]);
        k.fk(
            m,
            &["group_id", "realm_id"],
            g,
            &["id", "realm_id"],
            FkAction::Cascade,
        );
        (k, m)
    }

    #[test]
    fn unindexed_reference_gets_a_concurrent_index() {
        let (mut k, m) = setup();
        // An index that leads with only one of the columns, and a partial one, do not count.
        k.index(m, "m_group", &["group_id", "id", "realm_id"], false);
        k.index(m, "m_partial", &["realm_id", "group_id"], false)
            .partial = true;
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].fix.as_deref(),
            Some("CREATE INDEX CONCURRENTLY IF NOT EXISTS memberships_group_id_realm_id_idx ON public.memberships (group_id, realm_id);")
        );
    }

    #[test]
    fn a_key_about_to_carry_the_realm_gets_an_index_for_both_forms() {
        let mut k = Kit::new();
        let g = k.good("groups", &[]);
        let m = k.good("memberships", &["group_id"]);
        k.fk(m, &["group_id"], g, &["id"], FkAction::Cascade);
        let v = k.of(super::ID);
        assert_eq!(
            v[0].fix.as_deref(),
            Some("CREATE INDEX CONCURRENTLY IF NOT EXISTS memberships_group_id_realm_id_idx ON public.memberships (group_id, realm_id);")
        );
    }

    #[test]
    fn index_leading_with_the_columns_in_any_order_is_fine() {
        let (mut k, m) = setup();
        k.index(m, "m_rg", &["realm_id", "group_id", "id"], false);
        assert!(k.of(super::ID).is_empty());
    }
}
