//! The audit report as text (`file:line:col`, the sqlc name, the source line with a caret, the
//! fix), JSON, JUnit and GitHub annotations, as lint renders its own.

use super::{AuditReport, Finding};
use crate::output::{self, Format, JunitCase};
use crate::rules::Severity;
use serde_json::json;
use std::io::{self, Write};

pub fn render(
    r: &AuditReport,
    format: Format,
    github: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Text => {
            text(r, out)?;
            if github {
                annotations(r, out)?;
            }
            Ok(())
        }
        Format::Json => output::write_json(out, &json_value(r)),
        Format::Junit => output::write_junit(out, "realmguard audit", &junit_cases(r)),
    }
}

/// `file:line:col` or, for pg_stat_statements, `pg_stat_statements (queryid N)`.
fn place(f: &Finding) -> String {
    if f.line == 0 {
        match &f.query_name {
            Some(n) => format!("{} ({n})", f.file),
            None => f.file.clone(),
        }
    } else {
        format!("{}:{}:{}", f.file, f.line, f.column)
    }
}

pub fn text(r: &AuditReport, out: &mut dyn Write) -> io::Result<()> {
    findings_text(&r.findings, out)?;
    writeln!(out, "{}", summary(r))
}

pub fn findings_text(findings: &[Finding], out: &mut dyn Write) -> io::Result<()> {
    for f in findings {
        writeln!(
            out,
            "{}: {}[{}]: {}",
            place(f),
            f.severity,
            f.rule,
            f.message
        )?;
        if let (Some(n), true) = (&f.query_name, f.line != 0) {
            writeln!(out, "  query: {n}")?;
        }
        if !f.source_line.trim().is_empty() {
            let num = f.line.to_string();
            let pad = " ".repeat(num.len());
            let src: String = f
                .source_line
                .chars()
                .map(|c| if c == '\t' { ' ' } else { c })
                .collect();
            writeln!(out, "{pad} |")?;
            writeln!(out, "{num} | {}", src.trim_end())?;
            writeln!(out, "{pad} | {}^", " ".repeat(f.column.saturating_sub(1)))?;
            writeln!(out, "{pad} = help: {}", f.help)?;
        } else {
            writeln!(out, "  = help: {}", f.help)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn summary(r: &AuditReport) -> String {
    let s = &r.summary;
    let mut extra = Vec::new();
    if s.opaque > 0 {
        extra.push(format!("{} opaque", s.opaque));
    }
    if s.exempted > 0 {
        extra.push(format!("{} exempted", s.exempted));
    }
    if s.baselined > 0 {
        extra.push(format!("{} in the baseline", s.baselined));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("; {}", extra.join(", "))
    };
    format!(
        "audit: {}, {} in {} ({} touching realm tables){extra}",
        plural(s.errors, "error"),
        plural(s.warnings, "warning"),
        plural(s.queries, "query").replace("querys", "queries"),
        s.realm_queries
    )
}

pub fn annotations(r: &AuditReport, out: &mut dyn Write) -> io::Result<()> {
    for f in &r.findings {
        let at = (f.line != 0).then_some((f.file.as_str(), f.line, f.column));
        output::github_annotation(
            out,
            f.severity,
            at,
            &f.rule,
            &format!("{}\n{}", f.message, f.help),
        )?;
    }
    Ok(())
}

pub fn json_value(r: &AuditReport) -> serde_json::Value {
    json!({
        "ok": r.ok(),
        "summary": r.summary,
        "violations": r.findings,
    })
}

pub fn junit_cases(r: &AuditReport) -> Vec<JunitCase> {
    if r.findings.is_empty() {
        return vec![JunitCase {
            classname: "audit".into(),
            name: format!(
                "{} audited",
                plural(r.summary.queries, "query").replace("querys", "queries")
            ),
            ..JunitCase::default()
        }];
    }
    r.findings
        .iter()
        .map(|f| {
            let mut body = Vec::new();
            let _ = findings_text(std::slice::from_ref(f), &mut body);
            let case = JunitCase {
                classname: format!("audit.{}", f.file),
                name: format!("{} {}", place(f), f.rule),
                ..JunitCase::default()
            };
            match f.severity {
                Severity::Warning | Severity::Off => case,
                Severity::Error => JunitCase {
                    failure: Some((
                        f.message.clone(),
                        String::from_utf8_lossy(&body).into_owned(),
                    )),
                    ..case
                },
            }
        })
        .collect()
}
