//! `fk-missing-realm` (shared with verify): a foreign key into a realm-scoped table must include
//! its realm column, or a row can point at a row of another realm.

use super::{column_list, display_table, Realm, RealmViolation};
use crate::lint::model::{Schema, Table};

pub const ID: &str = crate::rules::Rule::FkMissingRealm.id();

pub fn check(realm: &Realm, schema: &Schema, t: &Table, out: &mut Vec<RealmViolation>) {
    // The referencing table's realm column and the referenced one's may be spelled
    // differently (a list in the config).
    let own = realm.column(t);
    for fk in &t.foreign_keys {
        let Some(target) = schema.table(&fk.ref_table) else {
            continue;
        };
        if !realm.scoped(target) {
            continue;
        }
        let rc = realm.column(target);
        let ref_cols = if fk.ref_columns.is_empty() {
            match target.primary_key_columns() {
                Some(c) => c,
                None => continue,
            }
        } else {
            fk.ref_columns.clone()
        };
        if ref_cols.iter().any(|c| c == rc) {
            continue;
        }
        let mut want_cols = fk.columns.clone();
        want_cols.push(own.to_string());
        let mut want_ref = ref_cols.clone();
        want_ref.push(rc.to_string());
        out.push(RealmViolation {
            rule: ID,
            message: format!(
                "foreign key \"{}\" of \"{}\" {} references realm-scoped \"{}\" {} without {rc}, so a row can point into another realm",
                fk.name,
                display_table(&t.key),
                column_list(&fk.columns),
                display_table(&target.key),
                column_list(&ref_cols),
            ),
            help: format!(
                "Reference the composite key: FOREIGN KEY {} REFERENCES {} {} ON DELETE CASCADE.",
                column_list(&want_cols),
                display_table(&target.key),
                column_list(&want_ref)
            ),
            origin: fk.origin,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    const GROUPS: &str =
        "CREATE TABLE groups (id bigint, realm_id text NOT NULL, PRIMARY KEY (id, realm_id));";

    #[test]
    fn ok_composite_reference() {
        assert!(rules(&[
            ("0001_a.sql", GROUPS),
            ("0002_b.sql", "CREATE TABLE posts (id bigint, realm_id text NOT NULL, group_id bigint, PRIMARY KEY (id, realm_id), FOREIGN KEY (group_id, realm_id) REFERENCES groups (id, realm_id) ON DELETE CASCADE);"),
        ])
        .is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file_without_realm_is_not_referenced() {
        assert!(rules_of("CREATE TABLE countries (code text PRIMARY KEY);\nCREATE TABLE cities (id int PRIMARY KEY, country text REFERENCES countries);").is_empty());
    }

    #[test]
    fn err_alter_in_a_later_file_meets_the_table_from_the_first() {
        insta::assert_snapshot!(lint_text(&[
            ("0001_a.sql", GROUPS),
            ("0002_b.sql", "CREATE TABLE posts (id bigint, realm_id text NOT NULL, group_id bigint, PRIMARY KEY (id, realm_id));"),
            ("0007_c.sql", "ALTER TABLE posts ADD CONSTRAINT posts_group_fk FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE CASCADE NOT VALID;"),
        ]));
    }
}
