//! `rls-disabled`: row level security is not enabled on a realm-scoped table. Its fix creates the
//! realm policy first when the table has none (enabling RLS with no policy hides every row from
//! the application), then enables and forces RLS.

use crate::verify::fix::table_sql;
use crate::verify::{rls, Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RlsDisabled.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let guarded = rls::tables(ctx);
    for t in ctx.scoped_tables() {
        if t.rls_enabled {
            continue;
        }
        let g = guarded.iter().find(|g| g.t.oid == t.oid);
        let fix = match g {
            Some(g) => {
                let policy = if g.policies.is_empty() {
                    format!("{}\n", g.create_policy(ctx, false))
                } else {
                    String::new()
                };
                format!(
                    "{policy}ALTER TABLE {0} ENABLE ROW LEVEL SECURITY;\nALTER TABLE {0} FORCE ROW LEVEL SECURITY;",
                    table_sql(t)
                )
            }
            None => format!(
                "-- define the realm policies first: with no policy, enabling RLS hides every row from non-owners\nALTER TABLE {} ENABLE ROW LEVEL SECURITY;",
                table_sql(t)
            ),
        };
        out.push(ctx.violation(
            ID,
            t,
            None,
            "row level security is not enabled".into(),
            Some(fix),
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
