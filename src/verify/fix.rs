//! SQL a DBA can run on a live database to repair a violation, following docs/online-ddl.md: foreign
//! and check constraints are added `NOT VALID` and validated in a second statement (a brief lock,
//! then a scan that lets writes go on), indexes are built `CONCURRENTLY`. PostgreSQL 15 allows
//! neither on a partitioned table, so there the plain form is written with a comment saying so.

use crate::catalog::{FkAction, Table, TableKind};
use crate::db::{qualified, quote_ident};

/// Object names are shared with the backfill (see `crate::names`).
pub use crate::names::object_name;

pub fn table_sql(t: &Table) -> String {
    qualified(&t.schema, &t.name)
}

fn partitioned_note(t: &Table) -> &'static str {
    if t.kind == TableKind::Partitioned {
        "-- PostgreSQL cannot do this online on a partitioned table: it locks the table for the build/scan.\n"
    } else {
        ""
    }
}

/// `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name ON t (keys) [WHERE pred];`
///
/// IF NOT EXISTS because two fixes may ask for the same index (the parent key a composite foreign
/// key needs is also the new primary key); a build that failed leaves an invalid index that
/// `invalid-index` reports on the next run.
pub fn create_index(
    t: &Table,
    name: &str,
    unique: bool,
    keys: &[String],
    predicate: Option<&str>,
) -> String {
    let concurrently = if t.kind == TableKind::Partitioned {
        ""
    } else {
        " CONCURRENTLY"
    };
    let unique = if unique { " UNIQUE" } else { "" };
    let pred = predicate.map(|p| format!(" WHERE {p}")).unwrap_or_default();
    format!(
        "{}CREATE{unique} INDEX{concurrently} IF NOT EXISTS {} ON {} ({}){pred};",
        partitioned_note(t),
        quote_ident(name),
        table_sql(t),
        keys.join(", ")
    )
}

/// ` DEFERRABLE [INITIALLY DEFERRED]`, to keep a constraint's timing when it is rebuilt.
pub fn deferrable_sql(deferrable: bool, deferred: bool) -> &'static str {
    match (deferrable, deferred) {
        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
        (true, false) => " DEFERRABLE",
        _ => "",
    }
}

/// The parts of a foreign key definition.
pub struct FkSpec<'a> {
    pub name: &'a str,
    pub columns: Vec<String>,
    pub ref_table: &'a Table,
    pub ref_columns: Vec<String>,
    pub on_delete: FkAction,
    pub on_update: FkAction,
    pub match_full: bool,
    pub deferrable: bool,
    pub deferred: bool,
}

impl FkSpec<'_> {
    /// `CONSTRAINT name FOREIGN KEY (…) REFERENCES p (…) …` (no NOT VALID).
    fn definition(&self) -> String {
        let quote = |v: &[String]| {
            v.iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
            quote_ident(self.name),
            quote(&self.columns),
            table_sql(self.ref_table),
            quote(&self.ref_columns)
        );
        if self.match_full {
            s.push_str(" MATCH FULL");
        }
        if self.on_update != FkAction::NoAction {
            s.push_str(&format!(" ON UPDATE {}", self.on_update.sql()));
        }
        if self.on_delete != FkAction::NoAction {
            s.push_str(&format!(" ON DELETE {}", self.on_delete.sql()));
        }
        if self.deferrable {
            s.push_str(" DEFERRABLE");
            if self.deferred {
                s.push_str(" INITIALLY DEFERRED");
            }
        }
        s
    }
}

/// Add a foreign key without a long lock: `NOT VALID`, then `VALIDATE`. `drop_first` replaces an
/// existing constraint of that name in the same statement (for a change that old rows already
/// satisfy, such as the ON DELETE action).
pub fn add_foreign_key(t: &Table, fk: &FkSpec, drop_first: Option<&str>) -> String {
    let tq = table_sql(t);
    let drop = drop_first
        .map(|d| format!("DROP CONSTRAINT {}, ", quote_ident(d)))
        .unwrap_or_default();
    if t.kind == TableKind::Partitioned {
        return format!(
            "{}ALTER TABLE {tq} {drop}ADD {};",
            partitioned_note(t),
            fk.definition()
        );
    }
    format!(
        "ALTER TABLE {tq} {drop}ADD {} NOT VALID;\nALTER TABLE {tq} VALIDATE CONSTRAINT {};",
        fk.definition(),
        quote_ident(fk.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_suffix_within_63_bytes() {
        assert_eq!(
            object_name(&["groups", "parent_id"], "idx"),
            "groups_parent_id_idx"
        );
        let long = "é".repeat(40);
        let n = object_name(&[&long, "realm_id"], "fkey");
        assert!(n.len() <= 63, "{n}");
        assert!(n.ends_with("_fkey"));
    }
}
