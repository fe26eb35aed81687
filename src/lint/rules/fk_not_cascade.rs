//! `fk-not-cascade` (shared with verify): deleting a realm must delete everything in it, so a
//! foreign key from a realm-scoped table to a realm-scoped table (or to the realms table) is
//! `ON DELETE CASCADE`.

use super::{display_table, Realm, RealmViolation};
use crate::lint::model::{Schema, Table};

pub const ID: &str = crate::rules::Rule::FkNotCascade.id();

pub fn check(realm: &Realm, schema: &Schema, t: &Table, out: &mut Vec<RealmViolation>) {
    if !realm.scoped(t) {
        return;
    }
    for fk in t.foreign_keys.iter().filter(|fk| !fk.on_delete_cascade) {
        let Some(target) = schema.table(&fk.ref_table) else {
            continue;
        };
        if !(realm.scoped(target) || realm.is_realms_table(target)) {
            continue;
        }
        out.push(RealmViolation {
            rule: ID,
            message: format!(
                "foreign key \"{}\" from \"{}\" to \"{}\" is not ON DELETE CASCADE, so deleting a realm fails on its rows",
                fk.name,
                display_table(&t.key),
                display_table(&target.key),
            ),
            help: "Declare it ON DELETE CASCADE.".into(),
            origin: fk.origin,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cascading() {
        assert!(rules_of("CREATE TABLE realms (id text PRIMARY KEY);\nCREATE TABLE notes (id bigint, realm_id text NOT NULL REFERENCES realms ON DELETE CASCADE, PRIMARY KEY (id, realm_id));").is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file_outside_any_realm() {
        assert!(rules_of("CREATE TABLE realms (id text PRIMARY KEY);\nCREATE TABLE audit (id int PRIMARY KEY, realm text REFERENCES realms);").is_empty());
    }

    #[test]
    fn err_restrict_to_the_realms_table() {
        insta::assert_snapshot!(lint_text(&[
            ("0001_realms.sql", "CREATE TABLE realms (id text PRIMARY KEY);"),
            ("0002_notes.sql", "CREATE TABLE notes (\n    id bigint,\n    realm_id text NOT NULL,\n    PRIMARY KEY (id, realm_id),\n    CONSTRAINT notes_realm_fk FOREIGN KEY (realm_id) REFERENCES realms (id)\n);"),
        ]));
    }
}
