//! Rendering shared by every command: the `--format` switch, text tables (tabled), one JSON
//! document on stdout, and JUnit XML for CI. Results go to stdout; diagnostics go to stderr.

use clap::ValueEnum;
use serde::Serialize;
use std::io::{self, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
}

impl Format {
    /// Commands without a JUnit rendering reject it up front with exit 2.
    pub fn reject_junit(self, command: &str) -> Result<(), Error> {
        if self == Format::Junit {
            return Err(Error::NoJunit {
                command: command.to_string(),
            });
        }
        Ok(())
    }
}

/// A rendering the command does not have.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{command}` has no junit output; use --format text or --format json")]
    NoJunit { command: String },
}

/// Write `value` as one pretty JSON document plus newline.
pub fn write_json<T: Serialize>(out: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// A plain text table with a header row; `rows` must have as many cells as `header`.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut b = tabled::builder::Builder::default();
    b.push_record(header.iter().map(|s| s.to_string()));
    for r in rows {
        b.push_record(r.clone());
    }
    let mut t = b.build();
    t.with(tabled::settings::Style::sharp());
    t.to_string()
}

/// One JUnit test case; `failure` is `(message, details)` when it failed, `failure_type` its
/// `type` attribute, `system_out` text attached to it (a warning that does not fail the build).
#[derive(Debug, Clone, Default)]
pub struct JunitCase {
    pub classname: String,
    pub name: String,
    pub failure: Option<(String, String)>,
    pub failure_type: Option<String>,
    pub system_out: Option<String>,
}

/// A named `<testsuite>` of cases.
pub struct JunitSuite<'a> {
    pub name: &'a str,
    pub cases: &'a [JunitCase],
}

/// A document of one `<testsuite>` named like the document.
pub fn write_junit(out: &mut dyn Write, suite: &str, cases: &[JunitCase]) -> io::Result<()> {
    write_junit_suites(out, suite, &[JunitSuite { name: suite, cases }])
}

/// A `<testsuites>` document named `name` (with the totals) holding each suite.
pub fn write_junit_suites(
    out: &mut dyn Write,
    name: &str,
    suites: &[JunitSuite],
) -> io::Result<()> {
    let failures = |cases: &[JunitCase]| cases.iter().filter(|c| c.failure.is_some()).count();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="{}" tests="{}" failures="{}">"#,
        xml_escape(name),
        suites.iter().map(|s| s.cases.len()).sum::<usize>(),
        suites.iter().map(|s| failures(s.cases)).sum::<usize>()
    )?;
    for suite in suites {
        writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}">"#,
            xml_escape(suite.name),
            suite.cases.len(),
            failures(suite.cases)
        )?;
        for c in suite.cases {
            let head = format!(
                r#"    <testcase classname="{}" name="{}""#,
                xml_escape(&c.classname),
                xml_escape(&c.name)
            );
            if c.failure.is_none() && c.system_out.is_none() {
                writeln!(out, "{head}/>")?;
                continue;
            }
            writeln!(out, "{head}>")?;
            if let Some((msg, body)) = &c.failure {
                let kind = c
                    .failure_type
                    .as_deref()
                    .map(|t| format!(r#" type="{}""#, xml_escape(t)))
                    .unwrap_or_default();
                writeln!(
                    out,
                    r#"      <failure message="{}"{kind}>{}</failure>"#,
                    xml_escape(msg),
                    xml_escape(body)
                )?;
            }
            if let Some(text) = &c.system_out {
                writeln!(out, "      <system-out>{}</system-out>", xml_escape(text))?;
            }
            writeln!(out, "    </testcase>")?;
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}

/// One GitHub workflow annotation (`::error file=…,line=…,col=…,title=…::message`), escaped;
/// `at` is `(file, line, column)` when it has a place in a file.
pub fn github_annotation(
    out: &mut dyn Write,
    severity: crate::rules::Severity,
    at: Option<(&str, usize, usize)>,
    title: &str,
    message: &str,
) -> io::Result<()> {
    let level = match severity {
        crate::rules::Severity::Error => "error",
        _ => "warning",
    };
    let mut props = Vec::new();
    if let Some((file, line, col)) = at {
        props.extend([
            format!("file={}", gh_property(file)),
            format!("line={line}"),
            format!("col={col}"),
        ]);
    }
    props.push(format!("title={}", gh_property(title)));
    writeln!(out, "::{level} {}::{}", props.join(","), gh_data(message))
}

/// Escaping of workflow command data (the message).
fn gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping of workflow command properties (file, title).
fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => o.push(c),
        }
    }
    o
}

/// The error and its causes on one line, `outer: inner: root`. sqlx errors repeat their source in
/// their own message ("error returned from database: X" caused by X), so a cause already said is
/// not said again.
pub fn error_chain(err: &anyhow::Error) -> String {
    cause_chain(err.as_ref())
}

/// [`error_chain`] of any error: its message, then each `source()` in turn, on one line.
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let chain = std::iter::successors(Some(err), |e| e.source());
    for cause in chain {
        let text = cause.to_string().replace('\n', " ");
        let text = text
            .strip_prefix("error returned from database: ")
            .unwrap_or(&text)
            .trim()
            .to_string();
        if text.is_empty() || parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_and_counts() {
        let cases = vec![
            JunitCase {
                classname: "public.t".into(),
                name: "ok".into(),
                ..JunitCase::default()
            },
            JunitCase {
                classname: "public.\"x\"".into(),
                name: "r".into(),
                failure: Some(("a < b".into(), "fix & go".into())),
                failure_type: Some("rule".into()),
                system_out: Some("warning: <w>".into()),
            },
        ];
        let mut out = Vec::new();
        write_junit(&mut out, "verify", &cases).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#"tests="2" failures="1""#));
        assert!(s.contains(r#"<failure message="a &lt; b" type="rule">"#));
        assert!(s.contains("<system-out>warning: &lt;w&gt;</system-out>"));
        assert!(s.contains(r#"name="ok"/>"#));
        assert!(s.contains("a &lt; b"));
        assert!(s.contains("fix &amp; go"));
        assert!(s.contains("public.&quot;x&quot;"));
    }

    #[test]
    fn suites_share_one_document_with_the_totals() {
        let failed = [JunitCase {
            name: "f".into(),
            failure: Some(("m".into(), "d".into())),
            ..JunitCase::default()
        }];
        let passed = [JunitCase::default(), JunitCase::default()];
        let mut out = Vec::new();
        write_junit_suites(
            &mut out,
            "all",
            &[
                JunitSuite {
                    name: "a",
                    cases: &failed,
                },
                JunitSuite {
                    name: "b",
                    cases: &passed,
                },
            ],
        )
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains(r#"<testsuites name="all" tests="3" failures="1">"#),
            "{s}"
        );
        assert!(
            s.contains(r#"<testsuite name="a" tests="1" failures="1">"#),
            "{s}"
        );
        assert!(
            s.contains(r#"<testsuite name="b" tests="2" failures="0">"#),
            "{s}"
        );
        assert_eq!(s.matches("<testsuites").count(), 1);
    }

    #[test]
    fn github_annotations_with_and_without_a_place() {
        use crate::rules::Severity;
        let mut out = Vec::new();
        github_annotation(
            &mut out,
            Severity::Error,
            Some(("m/1_a,b.sql", 3, 7)),
            "rule",
            "50% off\nnext",
        )
        .unwrap();
        github_annotation(&mut out, Severity::Warning, None, "t: x", "m").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "::error file=m/1_a%2Cb.sql,line=3,col=7,title=rule::50%25 off%0Anext\n\
             ::warning title=t%3A x::m\n"
        );
    }

    #[test]
    fn table_has_header_and_cells() {
        let t = table(&["version", "state"], &[vec!["1".into(), "applied".into()]]);
        assert!(t.contains("version") && t.contains("applied"));
    }
}
