//! The three renderings of a verify [`Report`]: text (a table per severity, the fixes, a one-line
//! summary), JSON (PRODUCT.md's shape) and JUnit (one test case per table and rule).

use super::{Report, Violation};
use crate::db::qualified;
use crate::output::{self, xml_escape, Format};
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
    writeln!(out, "{}", summary_line(report))
}

fn junit(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    // (table, rule) -> violations; every checked table gets a case for every rule that ran, so
    // a CI system shows what passed as well as what failed.
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
    let failures = cases
        .values()
        .filter(|vs| vs.iter().any(|v| v.severity == Severity::Error))
        .count();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="realmguard verify" tests="{}" failures="{failures}">"#,
        cases.len()
    )?;
    writeln!(
        out,
        r#"  <testsuite name="realmguard verify" tests="{}" failures="{failures}">"#,
        cases.len()
    )?;
    for ((table, rule), vs) in &cases {
        let head = format!(
            r#"    <testcase classname="{}" name="{}""#,
            xml_escape(table),
            xml_escape(rule)
        );
        if vs.is_empty() {
            writeln!(out, "{head}/>")?;
            continue;
        }
        writeln!(out, "{head}>")?;
        let body = |v: &Violation| {
            let mut s = v.message.clone();
            if let Some(f) = &v.fix {
                s.push_str("\nfix:\n");
                s.push_str(f);
            }
            s
        };
        let errors: Vec<&&Violation> = vs
            .iter()
            .filter(|v| v.severity == Severity::Error)
            .collect();
        if let Some(first) = errors.first() {
            let text: Vec<String> = errors.iter().map(|v| body(v)).collect();
            writeln!(
                out,
                r#"      <failure message="{}" type="{}">{}</failure>"#,
                xml_escape(&first.message),
                xml_escape(rule),
                xml_escape(&text.join("\n\n"))
            )?;
        }
        // Warnings do not fail the build (exit 0), so they pass with their text attached.
        let warnings: Vec<String> = vs
            .iter()
            .filter(|v| v.severity == Severity::Warning)
            .map(|v| format!("warning: {}", body(v)))
            .collect();
        if !warnings.is_empty() {
            writeln!(
                out,
                "      <system-out>{}</system-out>",
                xml_escape(&warnings.join("\n\n"))
            )?;
        }
        writeln!(out, "    </testcase>")?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
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
