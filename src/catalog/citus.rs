//! The catalog facts only the Citus profile needs (`sql/citus_profile.sql`) and, on a Citus
//! coordinator, Citus's own metadata (`sql/citus_dist.sql`). Kept apart from the main read: a
//! plain `verify` pays one small query for it (the `citus` flag), the profile one more round trip
//! at most; neither grows with the catalog.

use serde::Deserialize;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;

use super::{Error, Result};
use sqlx::postgres::PgRow;

const PROFILE_SQL: &str = include_str!("sql/citus_profile.sql");
const DIST_SQL: &str = include_str!("sql/citus_dist.sql");

/// The realm column's declared type and collation on one table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RealmType {
    #[serde(rename = "type")]
    pub type_name: String,
    pub collation: Option<String>,
}

/// An identity or serial column of a type narrower than bigint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NarrowIdentity {
    pub table: u32,
    pub column: String,
    #[serde(rename = "type")]
    pub type_name: String,
    /// `identity` or `serial`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Trigger {
    pub table: u32,
    pub name: String,
    /// FOR EACH ROW (otherwise FOR EACH STATEMENT).
    pub row: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RewriteRule {
    pub table: u32,
    pub name: String,
}

/// A row level security policy whose expressions contain a subquery (Citus refuses those).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SublinkPolicy {
    pub table: u32,
    pub name: String,
    /// `USING` and `WITH CHECK`, deparsed.
    pub qual: Option<String>,
    pub check: Option<String>,
}

/// How Citus holds a table today (`pg_dist_partition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DistClass {
    Distributed,
    Reference,
    SingleShard,
    /// A local table added to Citus's metadata.
    Local,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DistTable {
    pub class: DistClass,
    /// The distribution column of a hash-distributed table.
    pub column: Option<String>,
    pub colocation_id: i64,
}

/// Rows (planner estimate) and bytes (table, indexes, TOAST) of a table.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Size {
    pub rows: i64,
    pub bytes: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CitusFacts {
    /// Whether the profile facts were read (`--profile citus`).
    pub profile: bool,
    pub realm_types: HashMap<u32, RealmType>,
    pub identities: Vec<NarrowIdentity>,
    pub triggers: Vec<Trigger>,
    pub rules: Vec<RewriteRule>,
    pub sizes: HashMap<u32, Size>,
    pub sublink_policies: Vec<SublinkPolicy>,
    /// Citus's metadata, when the database has it (a coordinator): table oid → how it is held.
    pub dist: Option<HashMap<u32, DistTable>>,
}

#[derive(Deserialize)]
struct Keyed<T> {
    table: u32,
    #[serde(flatten)]
    value: T,
}

#[derive(Deserialize)]
struct SizeRow {
    table: u32,
    rows: i64,
    bytes: i64,
}

impl CitusFacts {
    /// Read the facts: the profile's when `profile`, Citus's metadata whenever it is there.
    /// Returns them with the round trips taken.
    pub async fn load(
        conn: &mut PgConnection,
        realm_column: &str,
        profile: bool,
    ) -> Result<(CitusFacts, usize)> {
        let row = sqlx::query(PROFILE_SQL)
            .bind(realm_column)
            .bind(profile)
            .fetch_one(&mut *conn)
            .await
            .map_err(super::read("the Citus profile facts"))?;
        fn json<T: serde::de::DeserializeOwned>(row: &PgRow, column: &'static str) -> Result<T> {
            let v: Option<serde_json::Value> = row.try_get(column)?;
            serde_json::from_value(v.unwrap_or(serde_json::Value::Array(Vec::new())))
                .map_err(|reason| Error::CitusFacts { column, reason })
        }
        let realm_types: Vec<Keyed<RealmType>> = json(&row, "realm_types")?;
        let sizes: Vec<SizeRow> = json(&row, "sizes")?;
        let mut facts = CitusFacts {
            profile,
            realm_types: realm_types
                .into_iter()
                .map(|k| (k.table, k.value))
                .collect(),
            identities: json(&row, "identities")?,
            triggers: json(&row, "triggers")?,
            rules: json(&row, "rules")?,
            sizes: sizes
                .into_iter()
                .map(|s| {
                    (
                        s.table,
                        Size {
                            rows: s.rows,
                            bytes: s.bytes,
                        },
                    )
                })
                .collect(),
            sublink_policies: json(&row, "policies")?,
            dist: None,
        };
        let mut queries = 1;
        if row.try_get::<bool, _>("citus")? {
            facts.dist = Some(read_dist(conn).await?);
            queries += 1;
        }
        Ok((facts, queries))
    }
}

/// `pg_dist_partition`, by table.
pub async fn read_dist(conn: &mut PgConnection) -> Result<HashMap<u32, DistTable>> {
    let rows = sqlx::query(DIST_SQL)
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::Dist)?;
    let mut out = HashMap::new();
    for r in rows {
        let class = match r.try_get::<String, _>("class")?.as_str() {
            "distributed" => DistClass::Distributed,
            "reference" => DistClass::Reference,
            "single-shard" => DistClass::SingleShard,
            _ => DistClass::Local,
        };
        out.insert(
            r.try_get::<i64, _>("table_oid")? as u32,
            DistTable {
                class,
                column: r.try_get("column_name")?,
                colocation_id: r.try_get("colocation_id")?,
            },
        );
    }
    Ok(out)
}
