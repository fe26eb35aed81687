use super::read::realms_from;
use super::rows::json_oid;
use super::*;
use serde::Deserialize;

#[test]
fn full_form_drops_only_the_scope_filter() {
    for sql in [TABLES_SQL, CONSTRAINTS_SQL, INDEXES_SQL] {
        assert_eq!(sql.matches("-- scope").count(), 1);
        let full = full_form(sql);
        assert!(!full.contains("-- scope") && full.contains("$1::oid[] IS NULL"));
        assert_eq!(full.lines().count(), sql.lines().count());
    }
}

#[test]
fn the_scoped_statement_splices_every_part_and_keeps_no_oid_array_parameter() {
    let sql = scoped_statement();
    for part in [
        "{realms}",
        "{touched}",
        "{tables}",
        "{constraints}",
        "{indexes}",
        "{index_defs}",
    ] {
        assert!(SCOPED_SQL.contains(part), "{part}");
        assert!(!sql.contains(part), "{part}");
    }
    assert!(!sql.contains("$1::oid[]"));
    // Each file's filter now reads an earlier part: four on the scope, one on `wanted`.
    assert_eq!(sql.matches("FROM scope)::oid[])").count(), 4);
    assert_eq!(sql.matches("FROM wanted)::oid[])").count(), 1);
    assert!(sql.contains("FROM pg_lock_status") || sql.contains("FROM pg_locks l"));
}

#[test]
fn realms_resolve_to_found_missing_or_disabled() {
    assert_eq!(
        realms_from("", Some(1), None, None).0,
        RealmsTable::Disabled
    );
    assert_eq!(
        realms_from("app.realms", Some(7), Some("text".into()), None),
        (RealmsTable::Found(7), Some("text".into()))
    );
    assert_eq!(
        realms_from("realms", None, None, Some("app".into())).0,
        RealmsTable::Missing {
            schema: "app".into(),
            name: "realms".into()
        }
    );
}

#[test]
fn json_oids_decode_from_text_or_number() {
    #[derive(Deserialize)]
    struct O {
        #[serde(deserialize_with = "json_oid")]
        oid: u32,
    }
    let a: O = serde_json::from_str(r#"{"oid":"4294967295"}"#).unwrap();
    let b: O = serde_json::from_str(r#"{"oid":16384}"#).unwrap();
    assert_eq!((a.oid, b.oid), (u32::MAX, 16384));
    assert!(serde_json::from_str::<O>(r#"{"oid":"x"}"#).is_err());
}

#[test]
fn int2vector_text_parses() {
    assert_eq!(int2vector("1 0 3"), vec![1, 0, 3]);
    assert_eq!(int2vector(""), Vec::<AttNum>::new());
}

#[test]
fn qualified_names_split_at_the_first_dot() {
    assert_eq!(split_qualified("realms"), (None, "realms"));
    assert_eq!(split_qualified("app.realms"), (Some("app"), "realms"));
    assert_eq!(split_qualified("app.my.realms"), (Some("app"), "my.realms"));
}
