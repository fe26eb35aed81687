//! Row counts and order-independent content hashes of one realm's rows of one table, computed by
//! the server (nothing but two numbers and a digest crosses the wire).
//!
//! Scheme (docs/realm.md): each row is the text of `ROW(c1, c2, …)` over the table's columns in
//! name order (so two tables that order their columns differently hash alike), hashed to 64 bits
//! by `hashtextextended` (in the "C" collation: its bytes, whatever the database's collation),
//! summed over the rows as `numeric` (exact, no overflow). The sum does not depend on row order
//! and, unlike XOR, a duplicated row changes it. The digest is md5 of `count:sum`. An md5 per
//! row, split into two halves, cost six times as much (2.2 s against 0.37 s per million rows). Text output depends on session settings, so every
//! connection that hashes is pinned first ([`pin_session`]).

use super::error::{Error, Result};
use super::plan::RealmTable;
use serde::Serialize;
use sqlx::{PgConnection, Row};

/// Settings that change how values print as text (and so the hash), pinned to one value on both
/// sides; plus `row_security = off`, under which a table whose row level security would hide
/// rows from this role raises an error instead of silently copying (or hashing) fewer rows.
pub const PIN_SESSION: &str = "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
     SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex'; \
     SET row_security = off; SET statement_timeout = 0; \
     SET idle_in_transaction_session_timeout = 0";

pub async fn pin_session(conn: &mut PgConnection) -> Result<()> {
    sqlx::raw_sql(PIN_SESSION)
        .execute(&mut *conn)
        .await
        .map_err(|source| Error::PinSession { source })?;
    Ok(())
}

/// What one side holds of one realm in one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    pub rows: i64,
    pub hash: String,
}

/// The hash query of `t`'s rows of `realm`, over `columns` (names; hashed in name order).
pub fn sql(t: &RealmTable, columns: &[&str], realm: &str, key_type: &str) -> String {
    let mut names: Vec<&str> = columns.to_vec();
    names.sort_unstable();
    let row = names
        .iter()
        .map(|n| crate::db::quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT count(*)::int8 AS rows, md5(count(*) || ':' \
           || coalesce(sum(hashtextextended(ROW({row})::text COLLATE \"C\", 0)::numeric), 0)) AS hash \
         FROM {} WHERE {}",
        t.sql_name(),
        t.realm_filter(realm, key_type)
    )
}

/// Count and hash `t`'s rows of `realm` on this connection (in its current transaction).
pub async fn digest(
    conn: &mut PgConnection,
    t: &RealmTable,
    columns: &[&str],
    realm: &str,
    key_type: &str,
) -> Result<Digest> {
    let row = sqlx::query(&sql(t, columns, realm, key_type))
        .fetch_one(&mut *conn)
        .await
        .map_err(|source| Error::HashTable {
            table: t.label(),
            source,
        })?;
    let decoded = (|| Ok::<_, sqlx::Error>((row.try_get("rows")?, row.try_get("hash")?)))();
    let (rows, hash) = decoded.map_err(|source| Error::HashRow { source })?;
    Ok(Digest { rows, hash })
}

/// The columns both sides hash: the source table's, all of which the target must have.
pub fn hashed_columns(source: &RealmTable) -> Vec<&str> {
    source.columns.iter().map(|c| c.name.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realm::plan::Col;

    fn col(n: &str) -> Col {
        Col {
            name: n.into(),
            type_: "text".into(),
            generated: false,
            sequence: None,
        }
    }

    #[test]
    fn columns_are_hashed_in_name_order() {
        let t = RealmTable {
            schema: "public".into(),
            name: "users".into(),
            realm_column: "realm_id".into(),
            columns: vec![col("realm_id"), col("id"), col("Email")],
            primary_key: vec!["id".into(), "realm_id".into()],
        };
        let q = sql(&t, &hashed_columns(&t), "w'1", "text");
        assert!(q.contains("ROW(\"Email\", id, realm_id)"), "{q}");
        assert!(q.contains("realm_id = 'w''1'::text"), "{q}");
    }
}
