//! The three renderings of a verify [`Report`]: text (a table per severity, the fixes, a one-line
//! summary), JSON (the shape README.md documents) and JUnit (one test case per table and rule).

use super::{Report, Violation};
use crate::db::qualified;
use crate::output::{self, Format, JunitCase};
use crate::rules::Severity;
use std::collections::BTreeMap;
use std::io::{self, Write};

pub fn render(report: &Report, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Text => text(report, out),
        Format::Json => output::write_json(out, report),
        Format::Junit => junit(report, out),
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The one-line summary, also printed by `migrate` after applying.
pub fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    format!(
        "verify: {} ({} realm-scoped): {}, {}",
        plural(s.tables, "table"),
        s.realm_scoped,
        plural(s.errors, "error"),
        plural(s.warnings, "warning")
    )
}

fn text(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    for (severity, title) in [(Severity::Error, "errors"), (Severity::Warning, "warnings")] {
        let vs: Vec<&Violation> = report
            .violations
            .iter()
            .filter(|v| v.severity == severity)
            .collect();
        if vs.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = vs
            .iter()
            .map(|v| {
                vec![
                    v.rule.clone(),
                    qualified(&v.schema, &v.table),
                    v.constraint.clone().unwrap_or_default(),
                    v.message.clone(),
                ]
            })
            .collect();
        writeln!(out, "{title} ({})", vs.len())?;
        writeln!(
            out,
            "{}",
            output::table(&["rule", "table", "constraint", "message"], &rows)
        )?;
        writeln!(out)?;
    }
    let fixes = super::fixes_in_repair_order(&report.violations);
    if !fixes.is_empty() {
        writeln!(out, "fixes, in the order to apply them (review; run each statement on its own, outside a transaction):")?;
        for v in fixes {
            let on = v
                .constraint
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            writeln!(
                out,
                "-- {} on {}{on}",
                v.rule,
                qualified(&v.schema, &v.table)
            )?;
            writeln!(out, "{}", v.fix.as_deref().unwrap_or_default())?;
        }
        writeln!(out)?;
    }
    if let Some(classes) = &report.citus {
        citus_classes(classes, out)?;
    }
    writeln!(out, "{}", summary_line(report))
}

/// The Citus class table of `--profile citus`.
fn citus_classes(classes: &[super::citus::TableClass], out: &mut dyn Write) -> io::Result<()> {
    let rows: Vec<Vec<String>> = classes
        .iter()
        .map(|c| {
            vec![
                c.table.clone(),
                c.class.as_str().to_string(),
                c.distribution_column.clone().unwrap_or_default(),
                c.colocate_with.clone().unwrap_or_default(),
                match c.current {
                    Some(d) => serde_json::to_value(d)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    writeln!(out, "citus classes ({})", classes.len())?;
    writeln!(
        out,
        "{}",
        output::table(
            &[
                "table",
                "class",
                "distribution column",
                "colocate with",
                "on citus now"
            ],
            &rows
        )
    )?;
    writeln!(out)
}

fn junit(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    output::write_junit(out, "realmguard verify", &junit_cases(report))
}

/// One case per checked table and rule that ran, so a CI system shows what passed as well as
/// what failed; errors fail their case, warnings pass with their text attached.
pub fn junit_cases(report: &Report) -> Vec<JunitCase> {
    // (table, rule) -> violations
    let mut cases: BTreeMap<(String, String), Vec<&Violation>> = BTreeMap::new();
    for (schema, table) in &report.checked {
        // realms-table-missing is about the configured name, not about each table.
        for rule in report.rules.iter().filter(|r| *r != "realms-table-missing") {
            cases
                .entry((qualified(schema, table), rule.clone()))
                .or_default();
        }
    }
    for v in &report.violations {
        cases
            .entry((qualified(&v.schema, &v.table), v.rule.clone()))
            .or_default()
            .push(v);
    }
    let body = |v: &Violation| {
        let mut s = v.message.clone();
        if let Some(f) = &v.fix {
            s.push_str("\nfix:\n");
            s.push_str(f);
        }
        s
    };
    cases
        .into_iter()
        .map(|((table, rule), vs)| {
            let errors: Vec<&&Violation> = vs
                .iter()
                .filter(|v| v.severity == Severity::Error)
                .collect();
            let failure = errors.first().map(|first| {
                let text: Vec<String> = errors.iter().map(|v| body(v)).collect();
                (first.message.clone(), text.join("\n\n"))
            });
            let warnings: Vec<String> = vs
                .iter()
                .filter(|v| v.severity == Severity::Warning)
                .map(|v| format!("warning: {}", body(v)))
                .collect();
            JunitCase {
                failure_type: failure.as_ref().map(|_| rule.clone()),
                failure,
                system_out: (!warnings.is_empty()).then(|| warnings.join("\n\n")),
                classname: table,
                name: rule,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::FkAction;
    use crate::verify::testkit::Kit;

    fn sample() -> Report {
        let mut k = Kit::new();
        let g = k.good("groups", &[]);
        let t = k.good("links", &["group_id"]);
        k.fk(t, &["group_id"], g, &["id"], FkAction::Restrict);
        k.report()
    }

    #[test]
    fn text_has_a_table_per_severity_fixes_and_a_summary() {
        let mut out = Vec::new();
        render(&sample(), Format::Text, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("errors (2)\n"), "{s}");
        assert!(s.contains("warnings (1)\n"), "{s}");
        assert!(s.contains("-- fk-missing-realm on public.links (links_group_id_fkey)"));
        assert_eq!(
            s.lines().last().unwrap(),
            "verify: 3 tables (2 realm-scoped): 2 errors, 1 warning"
        );
    }

    #[test]
    fn junit_has_a_case_per_table_and_rule() {
        let r = sample();
        let mut out = Vec::new();
        render(&r, Format::Junit, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        let n = 3 * (r.rules.len() - 1); // realms, groups, links
        assert!(s.contains(&format!(r#"tests="{n}" failures="2""#)), "{s}");
        assert!(s.contains("<system-out>warning: "));
    }
}
