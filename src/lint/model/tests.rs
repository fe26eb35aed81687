use super::*;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fn build(sql: &str) -> Schema {
    let mut s = Schema::default();
    for stmt in Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap() {
        s.apply(&stmt, Origin::default());
    }
    s
}

#[test]
fn follows_keys_columns_and_renames() {
    let s = build(
        "create table Users (id bigint primary key, realm_id text, email text unique);
         alter table users add constraint users_realm_chk check (realm_id is not null) not valid;
         alter table users validate constraint users_realm_chk;
         alter table users rename column email to mail;
         alter table users rename to people;
         create unique index people_mail_idx on people (lower(mail));
         alter table people drop constraint users_email_key;",
    );
    let t = s.table("public.people").unwrap();
    assert_eq!(t.primary_key_columns().unwrap(), vec!["id"]);
    assert!(t.column("id").is_some_and(|c| !c.nullable));
    assert!(t.column("mail").is_some_and(|c| c.nullable));
    assert!(t.has_validated_not_null_check("realm_id"));
    assert_eq!(t.uniques.len(), 1, "{:?}", t.uniques);
    assert_eq!(t.uniques[0].columns, vec![None]);
    assert_eq!(
        s.indexes.get("public.people_mail_idx").unwrap(),
        "public.people"
    );
}

#[test]
fn drop_table_drops_foreign_keys_to_it() {
    let s = build(
        "create table a (id int primary key);
         create table b (a_id int references a (id) on delete cascade);
         drop table a cascade;",
    );
    assert!(s.table("public.a").is_none());
    assert!(s.table("public.b").unwrap().foreign_keys.is_empty());
}

#[test]
fn primary_key_using_index_takes_the_index_columns() {
    let s = build(
        "create table t (id int, realm_id text);
         create unique index t_idx on t (id, realm_id);
         alter table t add constraint t_pkey primary key using index t_idx;",
    );
    let t = s.table("public.t").unwrap();
    assert_eq!(t.primary_key_columns().unwrap(), vec!["id", "realm_id"]);
    assert!(t.uniques.is_empty());
    assert!(!t.column("realm_id").unwrap().nullable);
}
