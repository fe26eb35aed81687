//! `fk-missing-realm`: a foreign key (on any checked table) references a realm-scoped table and the
//! referenced columns do not include that table's realm column, so once ids repeat across realms
//! the reference is ambiguous and can point into another realm. Reported on the referencing table.

use crate::catalog::{AttNum, FkAction, ForeignKey, Table};
use crate::db::{qualified, quote_ident};
use crate::rules::Severity;
use crate::verify::fix::{add_foreign_key, create_index, object_name, table_sql, FkSpec};
use crate::verify::{col_set, msg_cols, Ctx, Violation};

pub const ID: &str = crate::rules::Rule::FkMissingRealm.id();

/// The referenced table and its realm column, when `f` references a realm-scoped table without
/// that column: the keys this rule reports.
fn missing_realm<'a>(ctx: &Ctx<'a>, f: &ForeignKey) -> Option<(&'a Table, AttNum)> {
    let p = ctx.table(f.ref_table)?;
    let p_realm = ctx.realm_col(p.oid)?;
    (!f.ref_columns.contains(&p_realm)).then_some((p, p_realm))
}

/// Whether this rule's fix replaces the foreign key `f` on `t` (with one that carries the realm
/// column): the rule is not `off`, the key lacks the realm column, and `t` has one to carry it.
/// Other rules defer to that fix rather than write a second one for the same key.
pub(crate) fn replaces(ctx: &Ctx, t: &Table, f: &ForeignKey) -> bool {
    ctx.cfg.severity(ID) != Severity::Off
        && t.column(t.realm_column(&ctx.cfg.realm_column)).is_some()
        && missing_realm(ctx, f).is_some()
}

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.checked.iter().copied() {
        // Each table's own realm column: the list in the config may spell it per table.
        let rname = t.realm_column(&ctx.cfg.realm_column);
        for c in ctx.foreign_keys(t.oid) {
            let f = c.foreign.as_ref().expect("foreign key");
            let Some((p, p_realm)) = missing_realm(ctx, f) else {
                continue;
            };
            let own = t.column(rname);
            let p_name = p
                .column_by_num(p_realm)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            let message = format!(
                "foreign key {} {} references {} {} without {p_name}{}",
                c.name,
                msg_cols(t, &c.columns),
                qualified(&p.schema, &p.name),
                msg_cols(p, &f.ref_columns),
                if own.is_none() {
                    format!("; {} has no {rname} column to carry it yet", t.name)
                } else {
                    String::new()
                }
            );
            let fix = own.map(|own| {
                let mut cols = t.column_names(&c.columns);
                cols.push(own.name.clone());
                let mut ref_cols = p.column_names(&f.ref_columns);
                ref_cols.push(p_name.clone());
                let mut s = String::new();
                // A composite foreign key needs a unique index on exactly its referenced columns.
                let mut want: Vec<i16> = f.ref_columns.clone();
                want.push(p_realm);
                let want_set = col_set(&want);
                let has_key = ctx.indexes_of(p.oid).iter().any(|i| {
                    i.unique
                        && i.valid
                        && !i.partial
                        && i.key_columns.len() == want.len()
                        && col_set(&i.key_columns) == want_set
                });
                if !has_key {
                    let mut parts: Vec<&str> = vec![&p.name];
                    parts.extend(ref_cols.iter().map(String::as_str));
                    let keys: Vec<String> = ref_cols.iter().map(|n| quote_ident(n)).collect();
                    s.push_str(&create_index(
                        p,
                        &ctx.index_name(&p.schema, &parts, "key"),
                        true,
                        &keys,
                        None,
                    ));
                    s.push('\n');
                }
                let mut parts: Vec<&str> = vec![&t.name];
                parts.extend(cols.iter().map(String::as_str));
                let name = object_name(&parts, "fkey");
                // Between realm-scoped tables the new key wants an index leading with its columns
                // (fk-unindexed); build it first, under the name that rule's fix would use.
                let mut want_idx: Vec<i16> = c.columns.clone();
                want_idx.push(own.num);
                let indexed = ctx.has_index_leading_with(t.oid, &want_idx);
                if ctx.is_realm_scoped(t.oid)
                    && !indexed
                    && ctx.cfg.severity(crate::rules::Rule::FkUnindexed.id()) != Severity::Off
                {
                    let keys: Vec<String> = cols.iter().map(|n| quote_ident(n)).collect();
                    s.push_str(&create_index(
                        t,
                        &ctx.index_name(&t.schema, &parts, "idx"),
                        false,
                        &keys,
                        None,
                    ));
                    s.push('\n');
                }
                let on_delete = if ctx.is_realm_scoped(t.oid) {
                    FkAction::Cascade
                } else {
                    f.on_delete
                };
                s.push_str(&add_foreign_key(
                    t,
                    &FkSpec {
                        name: &name,
                        columns: cols,
                        ref_table: p,
                        ref_columns: ref_cols,
                        on_delete,
                        on_update: f.on_update,
                        match_full: f.match_full,
                        deferrable: f.deferrable,
                        deferred: f.deferred,
                    },
                    None,
                ));
                s.push_str(&format!(
                    "\nALTER TABLE {} DROP CONSTRAINT {};",
                    table_sql(t),
                    quote_ident(&c.name)
                ));
                s
            });
            out.push(ctx.violation(ID, t, Some(&c.name), message, fix));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::FkAction;
    use crate::verify::testkit::Kit;

    #[test]
    fn id_only_reference_is_replaced_by_a_composite_one() {
        let mut k = Kit::new();
        let g = k.good("groups", &[]);
        let m = k.good("memberships", &["group_id"]);
        k.fk(m, &["group_id"], g, &["id"], FkAction::Cascade);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].table, "memberships");
        assert_eq!(
            v[0].constraint.as_deref(),
            Some("memberships_group_id_fkey")
        );
        assert_eq!(
            v[0].fix.as_deref().unwrap(),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS memberships_group_id_realm_id_idx ON public.memberships (group_id, realm_id);\n\
             ALTER TABLE public.memberships ADD CONSTRAINT memberships_group_id_realm_id_fkey FOREIGN KEY (group_id, realm_id) REFERENCES public.groups (id, realm_id) ON DELETE CASCADE NOT VALID;\n\
             ALTER TABLE public.memberships VALIDATE CONSTRAINT memberships_group_id_realm_id_fkey;\n\
             ALTER TABLE public.memberships DROP CONSTRAINT memberships_group_id_fkey;"
        );
    }

    #[test]
    fn reference_from_a_table_without_realm_has_no_fix_and_a_unique_target_is_built() {
        let mut k = Kit::new();
        let g = k.table(
            "public",
            "groups",
            &[("id", "bigint", true), ("realm_id", "text", true)],
        );
        k.pk(g, &["id"]);
        let log = k.table(
            "public",
            "audit",
            &[("id", "bigint", true), ("group_id", "bigint", true)],
        );
        k.fk(log, &["group_id"], g, &["id"], FkAction::NoAction);
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert!(v[0].fix.is_none());
        assert!(
            v[0].message.contains("audit has no realm_id column"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn composite_reference_in_any_order_is_fine() {
        let mut k = Kit::new();
        k.linked_realm_first();
        assert!(k.of(super::ID).is_empty());
    }
}
