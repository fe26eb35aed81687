//! `realmguard explain [RULE]`: a lint rule's page (docs/rules/<id>.md, embedded), or the list of
//! lint rule ids.

use super::cli::ExplainArgs;
use super::Outcome;
use crate::lint::options::{group, lint_rules};
use crate::lint::pages;
use crate::rules::Rule;
use anyhow::bail;
use std::io::Write;

pub(super) fn explain(a: &ExplainArgs) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    match a.rule.as_deref() {
        None => {
            writeln!(out, "{:<46} {:<8} group", "rule", "default")?;
            let mut rules: Vec<Rule> = lint_rules().collect();
            rules.sort_by_key(|r| r.id());
            for r in rules {
                writeln!(
                    out,
                    "{:<46} {:<8} {}",
                    r.id(),
                    r.default_severity().to_string(),
                    group(r)
                )?;
            }
            writeln!(out, "\n`realmguard explain RULE` shows one rule's page.")?;
        }
        Some(id) => {
            let (Some(rule), Some(page)) = (Rule::from_id(id), pages::page(id)) else {
                bail!("no lint rule `{id}`; `realmguard explain` lists the rule ids");
            };
            writeln!(
                out,
                "{id}: default level {}, group {}\n",
                rule.default_severity(),
                group(rule)
            )?;
            out.write_all(page.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(Outcome::Clean)
}
