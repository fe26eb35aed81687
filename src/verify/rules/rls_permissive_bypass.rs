//! `rls-permissive-bypass`: a permissive policy that does not bind the realm is OR-ed with the
//! realm policy (so it opens every realm), or a top-level `OR <setting> IS NULL` (or `= ''`)
//! makes a policy fail open when the application has not set its realm.

use crate::verify::rls::{self, Standing, COMMANDS};
use crate::verify::{Ctx, Violation};
use std::collections::BTreeSet;

pub const ID: &str = crate::rules::Rule::RlsPermissiveBypass.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    for g in rls::judged_tables(ctx) {
        if !g.r.enabled {
            continue;
        }
        let mut bypassing = BTreeSet::new();
        for (cmd, clause) in COMMANDS {
            if let Standing::Bypassed(names) = g.standing(*cmd, *clause) {
                bypassing.extend(names);
            }
        }
        for j in &g.policies {
            let p = j.p;
            if j.analyses().any(|a| a.fails_open) {
                out.push(ctx.violation(
                    ID,
                    g.t,
                    Some(&p.name),
                    format!(
                        "policy {} fails open: an OR on the setting {} being unset lets a session without a realm see every realm",
                        p.name, ctx.cfg.realm_setting
                    ),
                    g.rewrite_policy(ctx, p),
                ));
            } else if bypassing.contains(p.name.as_str()) {
                out.push(ctx.violation(
                    ID,
                    g.t,
                    Some(&p.name),
                    format!(
                        "permissive policy {} does not bind the realm and is OR-ed with the realm policy: it opens every realm",
                        p.name
                    ),
                    g.bind_policy(ctx, p),
                ));
            }
        }
    }
}
