//! `realm-column-nullable` (shared with verify): a row without a realm belongs to no tenant and
//! escapes every realm-scoped key and cascade.

use super::{display_table, Realm, RealmViolation};
use crate::lint::model::Table;

pub const ID: &str = crate::rules::Rule::RealmColumnNullable.id();

pub fn check(realm: &Realm, t: &Table, out: &mut Vec<RealmViolation>) {
    if !realm.scoped(t) {
        return;
    }
    let Some(c) = t.column(realm.column(t)).filter(|c| c.nullable) else {
        return;
    };
    out.push(RealmViolation {
        rule: ID,
        message: format!(
            "realm column \"{}\" of table \"{}\" allows NULL",
            c.name,
            display_table(&t.key)
        ),
        help: format!("Declare it `{} … NOT NULL`.", c.name),
        origin: c.origin,
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_not_null() {
        assert!(rules_of(
            "CREATE TABLE notes (id bigint, realm_id text NOT NULL, PRIMARY KEY (id, realm_id));"
        )
        .is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file_and_fixed_there() {
        assert!(rules_of("CREATE TABLE notes (id bigint, realm_id text, PRIMARY KEY (id, realm_id));\nALTER TABLE notes ALTER COLUMN realm_id SET NOT NULL;").is_empty());
    }

    #[test]
    fn err_nullable_realm_column_added_later() {
        insta::assert_snapshot!(lint_text(&[
            ("0001_a.sql", "CREATE TABLE notes (id bigint PRIMARY KEY);"),
            ("0002_b.sql", "ALTER TABLE notes ADD COLUMN realm_id text;\n-- realmguard:ignore disallowed-unique-constraint\nALTER TABLE notes DROP CONSTRAINT notes_pkey, ADD PRIMARY KEY (id, realm_id);"),
            ("0003_c.sql", "ALTER TABLE notes ALTER COLUMN realm_id DROP NOT NULL;"),
        ]));
    }
}
