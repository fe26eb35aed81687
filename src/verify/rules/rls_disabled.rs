//! `rls-disabled` (off by default): row level security is not enabled on a realm-scoped table.

use crate::verify::fix::table_sql;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RlsDisabled.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for t in ctx.scoped_tables() {
        if t.rls_enabled {
            continue;
        }
        out.push(ctx.violation(
            ID,
            t,
            None,
            "row level security is not enabled".into(),
            Some(format!(
                "-- define the realm policies first: with no policy, enabling RLS hides every row from non-owners\nALTER TABLE {} ENABLE ROW LEVEL SECURITY;",
                table_sql(t)
            )),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::Severity;
    use crate::verify::testkit::Kit;

    #[test]
    fn off_by_default_and_reported_when_turned_on() {
        let mut k = Kit::new();
        let t = k.good("groups", &[]);
        assert!(k.of(super::ID).is_empty());
        k.cfg.rules.insert(super::ID.into(), Severity::Warning);
        assert_eq!(k.of(super::ID).len(), 1);
        k.t(t).rls_enabled = true;
        assert!(k.of(super::ID).is_empty());
    }
}
