//! `invalid-index`: an index on a realm-scoped table is invalid, the leftover of a failed
//! `CREATE INDEX CONCURRENTLY`: it is maintained on every write but never used, and a unique one
//! still rejects rows.

use crate::db::qualified;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::InvalidIndex.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.scoped_tables() {
        for i in ctx.indexes_of(t.oid) {
            if i.valid {
                continue;
            }
            out.push(ctx.violation(
                ID,
                t,
                Some(&i.name),
                format!(
                    "index {} is INVALID (a failed CREATE INDEX CONCURRENTLY?)",
                    i.name
                ),
                Some(format!(
                    "REINDEX INDEX CONCURRENTLY {};",
                    qualified(&t.schema, &i.name)
                )),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::testkit::Kit;

    #[test]
    fn invalid_index_is_rebuilt_concurrently() {
        let mut k = Kit::new();
        let t = k.good("Groups", &["n"]);
        k.index(t, "groups n", &["n"], false).valid = false;
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].fix.as_deref(),
            Some(r#"REINDEX INDEX CONCURRENTLY public."groups n";"#)
        );
    }

    #[test]
    fn valid_indexes_are_fine() {
        let mut k = Kit::new();
        let t = k.good("groups", &["n"]);
        k.index(t, "groups_n", &["n"], false);
        assert!(k.of(super::ID).is_empty());
    }
}
