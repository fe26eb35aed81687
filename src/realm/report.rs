//! What realm copy, move, diff, delete and list return, and how it is rendered (text or JSON).

use crate::output::{table, write_json, Format};
use serde::Serialize;
use std::io::{self, Write};

/// One table of a copy, move or diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableReport {
    pub table: String,
    /// Rows of the realm on the source.
    pub rows: i64,
    /// Rows of the realm on the target.
    pub target_rows: i64,
    pub source_hash: String,
    pub target_hash: String,
    #[serde(rename = "match")]
    pub matched: bool,
    pub duration_ms: u64,
    /// Bytes streamed (0 for a diff).
    pub bytes: u64,
}

/// The result of realm copy, move or diff.
#[derive(Debug, Clone, Serialize)]
pub struct RealmReport {
    pub ok: bool,
    pub realm: String,
    /// `done` (copy, move, delete), `diff`, `plan` (dry run), or the phase a move stopped in.
    pub phase: String,
    pub tables: Vec<TableReport>,
    /// Rows deleted from the source (move, delete), per table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<Deleted>,
    /// The longest time writes to the realm were refused (move), in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fence_ms: Option<u64>,
    /// Dry run: the statements that would run, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlanStep>,
}

impl RealmReport {
    pub fn new(realm: &str, phase: &str) -> RealmReport {
        RealmReport {
            ok: true,
            realm: realm.to_string(),
            phase: phase.to_string(),
            tables: Vec::new(),
            deleted: Vec::new(),
            fence_ms: None,
            plan: Vec::new(),
        }
    }

    /// Tables whose counts or hashes differ.
    pub fn differing(&self) -> Vec<&str> {
        self.tables
            .iter()
            .filter(|t| !t.matched)
            .map(|t| t.table.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deleted {
    pub table: String,
    pub rows: i64,
    pub batches: u64,
    pub duration_ms: u64,
}

/// One step of a dry run: the table, its estimated rows of the realm, and the SQL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStep {
    pub step: String,
    pub table: String,
    pub estimated_rows: i64,
    pub sql: String,
}

/// `realm list`.
#[derive(Debug, Clone, Serialize)]
pub struct ListReport {
    pub realms: Vec<RealmCounts>,
    /// The realm-scoped tables counted (with `--counts`), in copy order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RealmCounts {
    pub realm: String,
    /// Rows per table, in the order of [`ListReport::tables`] (with `--counts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<std::collections::BTreeMap<String, i64>>,
}

pub fn render(r: &RealmReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    if format == Format::Json {
        return write_json(out, r);
    }
    if !r.plan.is_empty() {
        writeln!(out, "realm {}: plan (dry run, nothing changed)", r.realm)?;
        for (i, s) in r.plan.iter().enumerate() {
            writeln!(
                out,
                "{:>3}. {} {} (~{} rows)\n     {}",
                i + 1,
                s.step,
                s.table,
                s.estimated_rows,
                s.sql.replace('\n', "\n     ")
            )?;
        }
        return Ok(());
    }
    if !r.tables.is_empty() {
        let rows: Vec<Vec<String>> = r
            .tables
            .iter()
            .map(|t| {
                vec![
                    t.table.clone(),
                    t.rows.to_string(),
                    t.target_rows.to_string(),
                    short(&t.source_hash),
                    short(&t.target_hash),
                    if t.matched { "yes" } else { "NO" }.into(),
                    t.duration_ms.to_string(),
                ]
            })
            .collect();
        let header = [
            "table",
            "rows",
            "target rows",
            "source hash",
            "target hash",
            "match",
            "ms",
        ];
        writeln!(out, "{}", table(&header, &rows))?;
    }
    if !r.deleted.is_empty() {
        let rows: Vec<Vec<String>> = r
            .deleted
            .iter()
            .map(|d| {
                vec![
                    d.table.clone(),
                    d.rows.to_string(),
                    d.batches.to_string(),
                    d.duration_ms.to_string(),
                ]
            })
            .collect();
        writeln!(
            out,
            "{}",
            table(&["deleted from", "rows", "batches", "ms"], &rows)
        )?;
    }
    let rows: i64 = r.tables.iter().map(|t| t.rows).sum();
    let verdict = match (r.phase.as_str(), r.ok) {
        ("diff", true) => format!("realm {}: both sides hold the same {rows} rows", r.realm),
        ("diff", false) => format!("realm {}: differs in {}", r.realm, r.differing().join(", ")),
        (phase, _) => format!("realm {}: {phase}", r.realm),
    };
    match r.fence_ms {
        Some(ms) => writeln!(out, "{verdict} (writes to the realm refused for {ms} ms)"),
        None => writeln!(out, "{verdict}"),
    }
}

fn short(h: &str) -> String {
    h.chars().take(12).collect()
}

pub fn render_list(r: &ListReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    if format == Format::Json {
        return write_json(out, r);
    }
    let mut header: Vec<&str> = vec!["realm"];
    header.extend(r.tables.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = r
        .realms
        .iter()
        .map(|realm| {
            let mut row = vec![realm.realm.clone()];
            if let Some(c) = &realm.counts {
                row.extend(
                    r.tables
                        .iter()
                        .map(|t| c.get(t).copied().unwrap_or(0).to_string()),
                );
            }
            row
        })
        .collect();
    writeln!(out, "{}", table(&header, &rows))
}
