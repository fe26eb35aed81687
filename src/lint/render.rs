//! The lint report as text (one `file:line:column` line per finding, the source line with a caret,
//! the help), JSON, JUnit, and GitHub Actions annotations.

use super::{Finding, LintReport};
use crate::output::{self, Format, JunitCase};
use crate::rules::Severity;
use serde_json::json;
use std::io::{self, Write};

/// GitHub Actions sets `GITHUB_ACTIONS=true` in every step.
pub fn github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

pub fn render(r: &LintReport, format: Format, github: bool, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Text => {
            text(r, out)?;
            if github {
                annotations(r, out)?;
            }
            Ok(())
        }
        Format::Json => output::write_json(out, &json_value(r)),
        Format::Junit => output::write_junit(out, "realmguard lint", &junit_cases(r)),
    }
}

/// Every finding, then a summary line.
pub fn text(r: &LintReport, out: &mut dyn Write) -> io::Result<()> {
    findings_text(&r.findings, out)?;
    writeln!(out, "{}", summary(r))
}

pub fn findings_text(findings: &[Finding], out: &mut dyn Write) -> io::Result<()> {
    for f in findings {
        writeln!(
            out,
            "{}:{}:{}: {}[{}]: {}",
            f.file, f.line, f.column, f.severity, f.rule, f.message
        )?;
        let num = f.line.to_string();
        let pad = " ".repeat(num.len());
        // Tabs would misalign the caret: show them as one space each (columns count characters).
        let src: String = f
            .source_line
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        writeln!(out, "{pad} |")?;
        writeln!(out, "{num} | {}", src.trim_end())?;
        let room = src.chars().count().saturating_sub(f.column - 1).max(1);
        writeln!(
            out,
            "{pad} | {}{}",
            " ".repeat(f.column.saturating_sub(1)),
            "^".repeat(f.width.min(room))
        )?;
        writeln!(out, "{pad} = help: {}", f.help)?;
        writeln!(out)?;
    }
    Ok(())
}

pub fn summary(r: &LintReport) -> String {
    let files = plural(r.files, "file");
    let stmts = plural(r.statements, "statement");
    if r.findings.is_empty() {
        format!("lint: no problems in {files} ({stmts})")
    } else {
        format!(
            "lint: {}, {} in {files} ({stmts})",
            plural(r.errors(), "error"),
            plural(r.warnings(), "warning")
        )
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `::error file=…,line=…,col=…,title=…::message` lines, which GitHub shows on the diff.
pub fn annotations(r: &LintReport, out: &mut dyn Write) -> io::Result<()> {
    for f in &r.findings {
        output::github_annotation(
            out,
            f.severity,
            Some((&f.file, f.line, f.column)),
            &f.rule,
            &format!("{}\n{}", f.message, f.help),
        )?;
    }
    Ok(())
}

pub fn json_value(r: &LintReport) -> serde_json::Value {
    json!({
        "ok": r.errors() == 0,
        "summary": {
            "files": r.files,
            "statements": r.statements,
            "errors": r.errors(),
            "warnings": r.warnings(),
        },
        "violations": r.findings,
    })
}

/// One test case per finding (named `file:line:column rule`), so a CI report lists each.
pub fn junit_cases(r: &LintReport) -> Vec<JunitCase> {
    if r.findings.is_empty() {
        return vec![JunitCase {
            classname: "lint".into(),
            name: format!("{} checked", plural(r.files, "file")),
            ..JunitCase::default()
        }];
    }
    r.findings
        .iter()
        .map(|f| {
            let mut body = Vec::new();
            let _ = findings_text(std::slice::from_ref(f), &mut body);
            let case = JunitCase {
                classname: format!("lint.{}", f.file),
                name: format!("{}:{}:{} {}", f.file, f.line, f.column, f.rule),
                ..JunitCase::default()
            };
            match f.severity {
                // A warning is not a CI failure; its details stay in the text and JSON reports.
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
