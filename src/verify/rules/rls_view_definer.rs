//! `rls-view-definer`: a view over realm-scoped tables (directly or through other views) that the
//! application role can read runs with its owner's rights (not `security_invoker`), so the
//! tables' policies are judged for the owner, who usually bypasses them.

use crate::rules::Rule;
use crate::verify::{Ctx, Violation};
use std::collections::HashSet;

pub const ID: &str = Rule::RlsViewDefiner.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    let Some(rls) = ctx.rls else { return };
    // Views that read realm-scoped tables, at any depth of views over views.
    let mut reaching: HashSet<u32> = HashSet::new();
    loop {
        let before = reaching.len();
        for v in &rls.views {
            if !reaching.contains(&v.oid)
                && v.reads
                    .iter()
                    .any(|o| ctx.is_realm_scoped(*o) || reaching.contains(o))
            {
                reaching.insert(v.oid);
            }
        }
        if reaching.len() == before {
            break;
        }
    }
    let cfg = ctx.cfg;
    for v in &rls.views {
        let in_scope = (cfg.schemas.is_empty() || cfg.schemas.contains(&v.schema))
            && !cfg
                .exclude
                .iter()
                .any(|e| *e == v.name || *e == format!("{}.{}", v.schema, v.name));
        if !in_scope || v.security_invoker || !v.app_can_read || !reaching.contains(&v.oid) {
            continue;
        }
        out.push(Violation {
            rule: ID.to_string(),
            severity: cfg.severity(ID),
            schema: v.schema.clone(),
            table: v.name.clone(),
            constraint: None,
            message: "view over realm-scoped tables runs with its owner's rights (not security_invoker): the realm policies do not apply to its readers".into(),
            fix: Some(format!(
                "-- PostgreSQL 15+; its readers then need SELECT on the tables it reads\nALTER VIEW {} SET (security_invoker = true);",
                crate::db::qualified(&v.schema, &v.name)
            )),
        });
    }
}
