//! `unique-without-realm` (shared with verify): a unique key without the realm column makes two
//! realms collide on the same value (two tenants cannot both have `admin@example.com`).

use super::{column_list, display_table, Realm, RealmViolation};
use crate::lint::model::Table;

pub const ID: &str = crate::rules::Rule::UniqueWithoutRealm.id();

pub fn check(realm: &Realm, t: &Table, out: &mut Vec<RealmViolation>) {
    if !realm.scoped(t) {
        return;
    }
    let rc = realm.column(t);
    for u in &t.uniques {
        if u.columns.iter().flatten().any(|c| c == rc) {
            continue;
        }
        let cols: Vec<String> = u
            .columns
            .iter()
            .map(|c| c.clone().unwrap_or_else(|| "<expression>".into()))
            .collect();
        out.push(RealmViolation {
            rule: ID,
            message: format!(
                "unique {} \"{}\" on \"{}\" {} does not include {rc}, so two realms cannot hold the same value",
                if u.is_index { "index" } else { "constraint" },
                u.name,
                display_table(&t.key),
                column_list(&cols),
            ),
            help: format!("Put {rc} first in the key: UNIQUE ({rc}, {}).", cols.join(", ")),
            origin: u.origin,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_realm_in_the_key() {
        assert!(rules(&[
            ("0001_a.sql", "CREATE TABLE users (id bigint, realm_id text NOT NULL, email text, PRIMARY KEY (id, realm_id), UNIQUE (realm_id, email));"),
            ("0002_b.sql", "-- realmguard:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY users_lower_email ON users (realm_id, lower(email));"),
        ])
        .is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file_and_the_index_dropped_later() {
        assert!(rules(&[
            ("0001_a.sql", "CREATE TABLE users (id bigint, realm_id text NOT NULL, email text, PRIMARY KEY (id, realm_id));\nCREATE UNIQUE INDEX users_email ON users (email);"),
            ("0002_b.sql", "-- realmguard:no-transaction\nDROP INDEX CONCURRENTLY users_email;"),
        ])
        .is_empty());
    }

    #[test]
    fn err_unique_index_in_a_later_file() {
        insta::assert_snapshot!(lint_text(&[
            ("0001_a.sql", "CREATE TABLE users (id bigint, realm_id text NOT NULL, email text, PRIMARY KEY (id, realm_id));"),
            ("0002_b.sql", "-- realmguard:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY users_email ON users (lower(email));"),
        ]));
    }
}
