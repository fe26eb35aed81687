//! The probe report as text (one row per table, then what leaked and why) or JSON.

use super::{ProbeReport, Write as W};
use crate::output::{self, Format};
use std::io::{self, Write};

pub fn render(r: &ProbeReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Json => output::write_json(out, r),
        _ => text(r, out),
    }
}

fn count(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "refused".into())
}

fn write(w: W) -> String {
    match w {
        W::Refused => "refused",
        W::Nothing => "nothing",
        W::Leak => "LEAK",
        W::Untested => "-",
    }
    .into()
}

fn text(r: &ProbeReport, out: &mut dyn Write) -> io::Result<()> {
    let rows: Vec<Vec<String>> = r
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.clone(),
                t.kind.into(),
                t.other_rows.to_string(),
                count(t.visible_unset),
                count(t.visible_other),
                write(t.insert),
                write(t.update),
                write(t.delete),
                if t.leak { "LEAK" } else { "ok" }.into(),
            ]
        })
        .collect();
    let unset = "seen, no realm set".to_string();
    let seen = format!("{} rows seen at {}", r.other, r.realm);
    let rows_of = format!("{} rows", r.other);
    writeln!(
        out,
        "{}",
        output::table(
            &["table", "kind", &rows_of, &unset, &seen, "insert", "update", "delete", "result"],
            &rows
        )
    )?;
    for t in &r.tables {
        for n in &t.notes {
            writeln!(out, "{}: {n}", t.table)?;
        }
    }
    let leaks: Vec<&str> = r
        .tables
        .iter()
        .filter(|t| t.leak)
        .map(|t| t.table.as_str())
        .collect();
    if leaks.is_empty() {
        writeln!(
            out,
            "probe: role {} at realm {} reaches no row of realm {} in {} table(s) and view(s); rolled back",
            r.role,
            r.realm,
            r.other,
            r.tables.len()
        )
    } else {
        writeln!(
            out,
            "probe: role {} at realm {} LEAKS realm {} in {}: {}; rolled back",
            r.role,
            r.realm,
            r.other,
            leaks.len(),
            leaks.join(", ")
        )
    }
}
