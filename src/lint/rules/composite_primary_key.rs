//! `composite-primary-key` (shared with verify): every realm-scoped table keys on
//! `(id, realm_id)`, because each realm instance generates its own ids.

use super::{column_list, display_table, Realm, RealmViolation};
use crate::lint::model::Table;

pub const ID: &str = crate::rules::Rule::CompositePrimaryKey.id();

pub fn check(realm: &Realm, t: &Table, out: &mut Vec<RealmViolation>) {
    if !realm.scoped(t) {
        return;
    }
    let rc = realm.column(t);
    let table = display_table(&t.key);
    let has_id = t.column("id").is_some();
    let wanted = if has_id {
        format!("(id, {rc})")
    } else {
        format!("a key that includes {rc}")
    };
    let (message, origin) = match &t.primary_key {
        None => (
            format!("realm-scoped table \"{table}\" has no primary key; it needs {wanted}"),
            t.origin,
        ),
        Some(pk) => {
            let cols: Vec<&str> = pk.columns.iter().flatten().map(String::as_str).collect();
            let has_realm = cols.contains(&rc);
            let exact = cols.len() == 2 && cols.contains(&"id") && has_realm;
            // A partitioned table must add its partition-key columns to the key.
            let partitioned_ok = t.partitioned && cols.contains(&"id") && has_realm;
            if has_realm && (!has_id || exact || partitioned_ok) {
                return;
            }
            (
                format!(
                    "primary key of realm-scoped table \"{table}\" is {}; it needs {wanted}",
                    column_list(&cols)
                ),
                pk.origin,
            )
        }
    };
    let help = if has_id {
        format!("Declare PRIMARY KEY (id, {rc}) (and reference it with (…_id, {rc}) from other tables).")
    } else {
        format!("Declare a primary key that includes {rc}.")
    };
    out.push(RealmViolation {
        rule: ID,
        message,
        help,
        origin,
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_composite_key_added_in_a_later_migration() {
        assert!(rules(&[
            (
                "0001_a.sql",
                "CREATE TABLE notes (id bigint NOT NULL, realm_id text NOT NULL);"
            ),
            (
                "0002_b.sql",
                "ALTER TABLE notes ADD PRIMARY KEY (realm_id, id);"
            ),
        ])
        .iter()
        .all(|r| r != "composite-primary-key"));
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of(
            "CREATE TABLE notes (id bigint, realm_id text NOT NULL, PRIMARY KEY (id, realm_id));"
        )
        .is_empty());
    }

    #[test]
    fn err_single_column_key_and_no_key() {
        insta::assert_snapshot!(lint_text(&[(
            "0001_tables.sql",
            "CREATE TABLE notes (\n    id bigint PRIMARY KEY,\n    realm_id text NOT NULL\n);\nCREATE TABLE events (realm_id text NOT NULL, at timestamptz);"
        )]));
    }
}
