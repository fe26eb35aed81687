use super::in_transaction::check_no_transaction_control;
use super::no_transaction::created_index;
use super::*;
use crate::migrate::source;

#[test]
fn finds_the_index_a_statement_builds() {
    assert_eq!(
        created_index("CREATE INDEX CONCURRENTLY ix ON t (a)").as_deref(),
        Some("ix")
    );
    assert_eq!(
        created_index("create unique index concurrently if not exists ix on s.t (a)").as_deref(),
        Some("s.ix")
    );
    assert_eq!(
        created_index("CREATE INDEX \"Ix\" ON \"S\".t (a)").as_deref(),
        Some("\"S\".\"Ix\"")
    );
    assert_eq!(created_index("CREATE TABLE t (a int)"), None);
    assert_eq!(created_index("CREATE INDEX ON t (a)"), None);
}

#[test]
fn transaction_control_is_refused() {
    let m = source::from_bytes(
        1,
        "x".into(),
        "1_x.sql".into(),
        b"begin;\ncreate table t (a int);\ncommit;",
    )
    .unwrap();
    let (p, _) = pieces(&m);
    let err = check_no_transaction_control(&m, &p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1_x.sql:1") && err.contains("BEGIN"), "{err}");
    let ok = source::from_bytes(
        1,
        "x".into(),
        "1_x.sql".into(),
        b"create function f() returns int language sql begin atomic select 1; end;\nselect 1;",
    )
    .unwrap();
    assert!(check_no_transaction_control(&ok, &pieces(&ok).0).is_ok());
}
