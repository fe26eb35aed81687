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
    pub fn reject_junit(self, command: &str) -> anyhow::Result<()> {
        if self == Format::Junit {
            anyhow::bail!("`{command}` has no junit output; use --format text or --format json");
        }
        Ok(())
    }
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

/// One JUnit test case; `failure` is `(message, details)` when it failed.
#[derive(Debug, Clone)]
pub struct JunitCase {
    pub classname: String,
    pub name: String,
    pub failure: Option<(String, String)>,
}

/// Render a single `<testsuite>` inside `<testsuites>`.
pub fn write_junit(out: &mut dyn Write, suite: &str, cases: &[JunitCase]) -> io::Result<()> {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="{0}" tests="{1}" failures="{2}">"#,
        xml_escape(suite),
        cases.len(),
        failures
    )?;
    writeln!(
        out,
        r#"  <testsuite name="{0}" tests="{1}" failures="{2}">"#,
        xml_escape(suite),
        cases.len(),
        failures
    )?;
    for c in cases {
        let head = format!(
            r#"    <testcase classname="{}" name="{}""#,
            xml_escape(&c.classname),
            xml_escape(&c.name)
        );
        match &c.failure {
            None => writeln!(out, "{head}/>")?,
            Some((msg, body)) => {
                writeln!(out, "{head}>")?;
                writeln!(
                    out,
                    r#"      <failure message="{}">{}</failure>"#,
                    xml_escape(msg),
                    xml_escape(body)
                )?;
                writeln!(out, "    </testcase>")?;
            }
        }
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_and_counts() {
        let cases = vec![
            JunitCase {
                classname: "public.t".into(),
                name: "ok".into(),
                failure: None,
            },
            JunitCase {
                classname: "public.\"x\"".into(),
                name: "r".into(),
                failure: Some(("a < b".into(), "fix & go".into())),
            },
        ];
        let mut out = Vec::new();
        write_junit(&mut out, "verify", &cases).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#"tests="2" failures="1""#));
        assert!(s.contains("a &lt; b"));
        assert!(s.contains("fix &amp; go"));
        assert!(s.contains("public.&quot;x&quot;"));
    }

    #[test]
    fn table_has_header_and_cells() {
        let t = table(&["version", "state"], &[vec!["1".into(), "applied".into()]]);
        assert!(t.contains("version") && t.contains("applied"));
    }
}
