//! What the `rls-*` rules share: each realm-scoped table with its row level security facts, the
//! judgment of its policy set command by command (as PostgreSQL combines policies: permissive
//! ones OR-ed, restrictive ones AND-ed), and the SQL of the fixes. See docs/rls.md.

use super::policy::{self, Analysis};
use super::Ctx;
use crate::catalog::rls::{Policy, PolicyCmd, RlsTable};
use crate::catalog::Table;
use crate::db::{qualified, quote_ident};
use std::collections::HashMap;

/// A policy with what its clauses do with the realm.
pub struct Judged<'a> {
    pub p: &'a Policy,
    /// `USING` (absent for INSERT).
    pub using: Option<Analysis>,
    /// The check new rows get: `WITH CHECK`, else `USING` (as PostgreSQL applies it).
    pub check: Option<Analysis>,
}

impl Judged<'_> {
    /// Whether the clause that governs `clause` binds the realm.
    pub fn binds(&self, clause: Clause) -> bool {
        let a = match clause {
            Clause::Read => self.using.as_ref(),
            Clause::Write => self.check.as_ref(),
        };
        a.is_some_and(|a| a.binds)
    }

    pub fn analyses(&self) -> impl Iterator<Item = &Analysis> {
        self.using.iter().chain(self.check.iter())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clause {
    /// Which existing rows a command sees (`USING`).
    Read,
    /// Which new rows it may write (`WITH CHECK`).
    Write,
}

/// The commands and the clauses each is filtered by.
pub const COMMANDS: &[(PolicyCmd, Clause)] = &[
    (PolicyCmd::Select, Clause::Read),
    (PolicyCmd::Insert, Clause::Write),
    (PolicyCmd::Update, Clause::Read),
    (PolicyCmd::Update, Clause::Write),
    (PolicyCmd::Delete, Clause::Read),
];

/// A realm-scoped table as the RLS rules see it.
pub struct Guarded<'a> {
    pub t: &'a Table,
    pub r: &'a RlsTable,
    pub realm_column: Option<&'a str>,
    pub policies: Vec<Judged<'a>>,
}

/// How one command's clause stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Standing<'a> {
    /// Bound to the realm (or nothing is reachable: no permissive policy).
    Bound,
    /// No policy binds the realm.
    Unbound,
    /// A binding permissive policy is OR-ed with these that do not bind.
    Bypassed(Vec<&'a str>),
}

impl<'a> Guarded<'a> {
    /// The policies the application role is subject to that apply to `cmd`.
    fn applicable(&self, cmd: PolicyCmd) -> impl Iterator<Item = &Judged<'a>> {
        self.policies
            .iter()
            .filter(move |j| j.p.applies_to_app && j.p.cmd.covers(cmd))
    }

    pub fn standing(&self, cmd: PolicyCmd, clause: Clause) -> Standing<'a> {
        let (perm, restr): (Vec<&Judged>, Vec<&Judged>) =
            self.applicable(cmd).partition(|j| j.p.permissive);
        if perm.is_empty() || restr.iter().any(|j| j.binds(clause)) {
            return Standing::Bound;
        }
        let open: Vec<&'a str> = perm
            .iter()
            .filter(|j| !j.binds(clause))
            .map(|j| j.p.name.as_str())
            .collect();
        if open.is_empty() {
            Standing::Bound
        } else if open.len() == perm.len() {
            Standing::Unbound
        } else {
            Standing::Bypassed(open)
        }
    }

    pub fn has_permissive_for_app(&self) -> bool {
        self.policies
            .iter()
            .any(|j| j.p.permissive && j.p.applies_to_app)
    }

    pub fn table_sql(&self) -> String {
        qualified(&self.t.schema, &self.t.name)
    }

    /// The realm condition written the right way for this table.
    pub fn condition(&self, ctx: &Ctx) -> String {
        policy::realm_condition(
            self.realm_column.unwrap_or(&ctx.cfg.realm_column),
            &ctx.cfg.realm_setting,
            self.r.realm_type.as_deref(),
        )
    }

    /// `CREATE POLICY <table>_realm …`: permissive when it is to be the only grant, restrictive
    /// when other permissive policies exist (it then limits them to the realm).
    pub fn create_policy(&self, ctx: &Ctx, restrictive: bool) -> String {
        let name = super::fix::object_name(&[&self.t.name], "realm");
        let cond = self.condition(ctx);
        format!(
            "CREATE POLICY {} ON {}{} FOR ALL\n    USING ({cond})\n    WITH CHECK ({cond});",
            quote_ident(&name),
            self.table_sql(),
            if restrictive { " AS RESTRICTIVE" } else { "" },
        )
    }

    /// `ALTER POLICY p ON t USING (…) WITH CHECK (…)`, each clause the policy has rewritten
    /// by `f` (clauses `f` cannot rewrite are left as they are).
    pub fn alter_policy(&self, p: &Policy, f: impl Fn(&str) -> Option<String>) -> Option<String> {
        let mut parts = Vec::new();
        if p.cmd.reads() {
            if let Some(u) = p.using.as_deref() {
                parts.push(format!("USING ({})", f(u)?));
            }
        }
        if let Some(c) = p.check.as_deref() {
            parts.push(format!("WITH CHECK ({})", f(c)?));
        }
        if parts.is_empty() {
            return None;
        }
        Some(format!(
            "ALTER POLICY {} ON {}\n    {};",
            quote_ident(&p.name),
            self.table_sql(),
            parts.join("\n    ")
        ))
    }

    /// [`Self::alter_policy`] reading the setting once, unset allowed, fail-open branches gone.
    pub fn rewrite_policy(&self, ctx: &Ctx, p: &Policy) -> Option<String> {
        let col = self.realm_column.unwrap_or(&ctx.cfg.realm_column);
        self.alter_policy(p, |e| policy::rewrite(e, col, &ctx.cfg.realm_setting))
    }

    /// The realm-bound form of a policy that does not bind: the realm condition AND-ed in, and
    /// `WITH CHECK` added to an INSERT policy without one.
    pub fn bind_policy(&self, ctx: &Ctx, p: &Policy) -> Option<String> {
        let cond = self.condition(ctx);
        if p.cmd == PolicyCmd::Insert && p.check.is_none() {
            return Some(format!(
                "ALTER POLICY {} ON {} WITH CHECK ({cond});",
                quote_ident(&p.name),
                self.table_sql()
            ));
        }
        self.alter_policy(p, |e| Some(format!("({cond}) AND ({e})")))
    }
}

/// `USING` and check analyses of every policy of the realm-scoped tables, by (table, index).
pub type Analyses = HashMap<(u32, usize), (Option<Analysis>, Option<Analysis>)>;

fn realm_column_name<'a>(ctx: &'a Ctx, t: &'a Table) -> Option<&'a str> {
    ctx.realm_col(t.oid)
        .and_then(|n| t.column_by_num(n))
        .map(|c| c.name.as_str())
}

fn analyze_all(ctx: &Ctx) -> Analyses {
    let mut out = HashMap::new();
    let Some(rls) = ctx.rls else { return out };
    let setting = ctx.cfg.realm_setting.as_str();
    for t in ctx.scoped_tables() {
        let Some(r) = rls.tables.get(&t.oid) else {
            continue;
        };
        let col = realm_column_name(ctx, t).unwrap_or(&ctx.cfg.realm_column);
        for (i, p) in r.policies.iter().enumerate() {
            let judge = |e: &str| policy::analyze(e, col, setting);
            let using = p.using.as_deref().map(judge);
            let check = if p.cmd.writes() {
                match (&p.check, &using) {
                    (Some(c), _) => Some(judge(c)),
                    (None, u) => u.clone(),
                }
            } else {
                None
            };
            out.insert((t.oid, i), (using, check));
        }
    }
    out
}

/// Every checked realm-scoped table with its RLS facts; empty without the RLS read.
pub fn tables<'a>(ctx: &'a Ctx) -> Vec<Guarded<'a>> {
    let Some(rls) = ctx.rls else {
        return Vec::new();
    };
    ctx.scoped_tables()
        .filter_map(|t| {
            let r = rls.tables.get(&t.oid)?;
            let realm_column = realm_column_name(ctx, t);
            let analyses = ctx.rls_analyses.get_or_init(|| analyze_all(ctx));
            let policies = r
                .policies
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (using, check) = analyses.get(&(t.oid, i)).cloned().unwrap_or_default();
                    Judged { p, using, check }
                })
                .collect();
            Some(Guarded {
                t,
                r,
                realm_column,
                policies,
            })
        })
        .collect()
}

/// [`tables`] whose policy expressions were read (not locked by another session): the ones the
/// policy rules can judge.
pub fn judged_tables<'a>(ctx: &'a Ctx) -> Vec<Guarded<'a>> {
    tables(ctx).into_iter().filter(|g| !g.r.busy).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableKind;

    const GOOD: &str =
        "(realm_id = ( SELECT current_setting('app.realm_id'::text, true) AS current_setting))";

    fn policy(
        name: &str,
        permissive: bool,
        cmd: PolicyCmd,
        using: Option<&str>,
        check: Option<&str>,
    ) -> Policy {
        Policy {
            name: name.into(),
            permissive,
            cmd,
            roles: vec!["public".into()],
            applies_to_app: true,
            using: using.map(str::to_string),
            check: check.map(str::to_string),
        }
    }

    /// The standing of every (command, clause) for a table with these policies.
    fn standings(policies: Vec<Policy>) -> Vec<String> {
        let t = Table {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            kind: TableKind::Ordinary,
            is_partition: false,
            rls_enabled: true,
            partition_key: Vec::new(),
            columns: Vec::new(),
        };
        let r = RlsTable {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            enabled: true,
            forced: true,
            owner: "o".into(),
            realm_type: Some("text".into()),
            app_owns: false,
            app_member_of_owner: false,
            busy: false,
            policies,
        };
        let judge = |e: &str| policy::analyze(e, "realm_id", "app.realm_id");
        let g = Guarded {
            t: &t,
            r: &r,
            realm_column: Some("realm_id"),
            policies: r
                .policies
                .iter()
                .map(|p| Judged {
                    p,
                    using: p.using.as_deref().map(judge),
                    check: p
                        .cmd
                        .writes()
                        .then(|| p.check.as_deref().or(p.using.as_deref()).map(judge))
                        .flatten(),
                })
                .collect(),
        };
        COMMANDS
            .iter()
            .map(|(c, k)| format!("{} {:?} {:?}", c.sql(), k, g.standing(*c, *k)))
            .collect()
    }

    #[test]
    fn permissive_policies_or_restrictive_ones_and() {
        // One realm policy for ALL: every command bound (its USING checks new rows too).
        let s = standings(vec![policy(
            "realm",
            true,
            PolicyCmd::All,
            Some(GOOD),
            None,
        )]);
        assert!(s.iter().all(|x| x.ends_with("Bound")), "{s:?}");
        // A permissive SELECT policy without the realm opens SELECT only.
        let s = standings(vec![
            policy("realm", true, PolicyCmd::All, Some(GOOD), None),
            policy("open", true, PolicyCmd::Select, Some("true"), None),
        ]);
        assert_eq!(s[0], "SELECT Read Bypassed([\"open\"])");
        assert!(s[1..].iter().all(|x| x.ends_with("Bound")), "{s:?}");
        // The same policy made restrictive under a realm restrictive one: bound.
        let s = standings(vec![
            policy("open", true, PolicyCmd::All, Some("true"), Some("true")),
            policy("realm", false, PolicyCmd::All, Some(GOOD), None),
        ]);
        assert!(s.iter().all(|x| x.ends_with("Bound")), "{s:?}");
        // WITH CHECK (true): writes unbound, reads bound; an INSERT policy without the realm.
        let s = standings(vec![
            policy("realm", true, PolicyCmd::All, Some(GOOD), Some("true")),
            policy("ins", true, PolicyCmd::Insert, None, Some(GOOD)),
        ]);
        assert_eq!(s[1], "INSERT Write Bypassed([\"realm\"])");
        assert_eq!(s[3], "UPDATE Write Unbound");
        assert_eq!(s[0], "SELECT Read Bound");
    }
}
