//! The rows of each catalog query and how they become the model: decoded from rows by the full
//! read, from the text of arrays of records by the scoped one; `assemble` builds the [`Catalog`] from them.

use super::*;
use sqlx::postgres::types::Oid;
use sqlx::postgres::PgRow;
use sqlx::Row;

// One row of each catalog query, as the full read decodes it from rows (by column name) and the
// scoped read from the text of an array of the part's rows (catalog::pgtext, by position: the
// fields are declared in the order of the query's columns).

#[derive(serde::Deserialize)]
pub(super) struct TableRow {
    pub(super) oid: u32,
    pub(super) schema: String,
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) relispartition: bool,
    pub(super) relrowsecurity: bool,
    pub(super) partition_key: Option<String>,
    pub(super) nums: Option<Vec<i16>>,
    pub(super) names: Option<Vec<String>>,
    pub(super) not_null: Option<Vec<bool>>,
}

impl TableRow {
    pub(super) fn decode(r: &PgRow) -> Result<TableRow, sqlx::Error> {
        Ok(TableRow {
            oid: r.try_get::<Oid, _>("oid")?.0,
            schema: r.try_get("schema")?,
            name: r.try_get("name")?,
            kind: r.try_get("kind")?,
            relispartition: r.try_get("relispartition")?,
            relrowsecurity: r.try_get("relrowsecurity")?,
            partition_key: r.try_get("partition_key")?,
            nums: r.try_get("nums")?,
            names: r.try_get("names")?,
            not_null: r.try_get("not_null")?,
        })
    }

    fn table(self) -> Table {
        let mut columns: Vec<Column> = self
            .nums
            .unwrap_or_default()
            .into_iter()
            .zip(self.names.unwrap_or_default())
            .zip(self.not_null.unwrap_or_default())
            .map(|((num, name), not_null)| Column {
                num,
                name,
                not_null,
            })
            .collect();
        // The query does not sort (cheaper here than a sort per table on the server).
        columns.sort_by_key(|c| c.num);
        Table {
            oid: self.oid,
            schema: self.schema,
            name: self.name,
            kind: if self.kind == "p" {
                TableKind::Partitioned
            } else {
                TableKind::Ordinary
            },
            is_partition: self.relispartition,
            rls_enabled: self.relrowsecurity,
            partition_key: self
                .partition_key
                .as_deref()
                .map(int2vector)
                .unwrap_or_default(),
            columns,
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ConstraintRow {
    pub(super) oid: u32,
    pub(super) conrelid: u32,
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) conkey: Option<Vec<i16>>,
    pub(super) confrelid: u32,
    pub(super) conindid: u32,
    pub(super) confkey: Option<Vec<i16>>,
    pub(super) on_delete: String,
    pub(super) on_update: String,
    pub(super) match_type: String,
    pub(super) condeferrable: bool,
    pub(super) condeferred: bool,
    pub(super) convalidated: bool,
}

impl ConstraintRow {
    pub(super) fn decode(r: &PgRow) -> Result<ConstraintRow, sqlx::Error> {
        Ok(ConstraintRow {
            oid: r.try_get::<Oid, _>("oid")?.0,
            conrelid: r.try_get::<Oid, _>("conrelid")?.0,
            name: r.try_get("name")?,
            kind: r.try_get("kind")?,
            conkey: r.try_get("conkey")?,
            confrelid: r.try_get::<Oid, _>("confrelid")?.0,
            conindid: r.try_get::<Oid, _>("conindid")?.0,
            confkey: r.try_get("confkey")?,
            on_delete: r.try_get("on_delete")?,
            on_update: r.try_get("on_update")?,
            match_type: r.try_get("match_type")?,
            condeferrable: r.try_get("condeferrable")?,
            condeferred: r.try_get("condeferred")?,
            convalidated: r.try_get("convalidated")?,
        })
    }

    fn constraint(self) -> Constraint {
        let kind = match self.kind.as_str() {
            "p" => ConstraintKind::PrimaryKey,
            "u" => ConstraintKind::Unique,
            "f" => ConstraintKind::ForeignKey,
            "x" => ConstraintKind::Exclusion,
            _ => ConstraintKind::Check,
        };
        let foreign = (kind == ConstraintKind::ForeignKey).then(|| ForeignKey {
            ref_table: self.confrelid,
            ref_columns: self.confkey.unwrap_or_default(),
            on_delete: FkAction::from_code(&self.on_delete),
            on_update: FkAction::from_code(&self.on_update),
            match_full: self.match_type == "f",
            deferrable: self.condeferrable,
            deferred: self.condeferred,
            index: self.conindid,
        });
        Constraint {
            oid: self.oid,
            table: self.conrelid,
            name: self.name,
            kind,
            columns: self.conkey.unwrap_or_default(),
            foreign,
            validated: self.convalidated,
            deferrable: self.condeferrable,
            deferred: self.condeferred,
            index: self.conindid,
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct IndexRow {
    pub(super) indexrelid: u32,
    pub(super) indrelid: u32,
    pub(super) name: String,
    pub(super) indisunique: bool,
    pub(super) indisprimary: bool,
    pub(super) indisvalid: bool,
    pub(super) partial: bool,
    pub(super) indnkeyatts: i16,
    pub(super) keys: String,
}

impl IndexRow {
    pub(super) fn decode(r: &PgRow) -> Result<IndexRow, sqlx::Error> {
        Ok(IndexRow {
            indexrelid: r.try_get::<Oid, _>("indexrelid")?.0,
            indrelid: r.try_get::<Oid, _>("indrelid")?.0,
            name: r.try_get("name")?,
            indisunique: r.try_get("indisunique")?,
            indisprimary: r.try_get("indisprimary")?,
            indisvalid: r.try_get("indisvalid")?,
            partial: r.try_get("partial")?,
            indnkeyatts: r.try_get("indnkeyatts")?,
            keys: r.try_get("keys")?,
        })
    }

    fn index(self) -> Index {
        let mut keys = int2vector(&self.keys);
        keys.truncate(self.indnkeyatts.max(0) as usize);
        Index {
            oid: self.indexrelid,
            table: self.indrelid,
            name: self.name,
            unique: self.indisunique,
            primary: self.indisprimary,
            valid: self.indisvalid,
            partial: self.partial,
            key_columns: keys,
            constraint: None,
            key_defs: Vec::new(),
            predicate: None,
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct IndexDefRow {
    pub(super) indexrelid: u32,
    pub(super) key_defs: Option<Vec<String>>,
    pub(super) predicate: Option<String>,
}

impl IndexDefRow {
    pub(super) fn decode(r: &PgRow) -> Result<IndexDefRow, sqlx::Error> {
        Ok(IndexDefRow {
            indexrelid: r.try_get::<Oid, _>("indexrelid")?.0,
            key_defs: r.try_get("key_defs")?,
            predicate: r.try_get("predicate")?,
        })
    }
}

/// The unique indexes whose definition texts the unique-without-realm fix needs: partial or
/// expression ones whose key lacks the realm column (plain-column keys are written from the
/// column names).
pub(super) fn wanted_defs(
    tables: &[Table],
    indexes: &[Index],
    realm_column: &crate::config::RealmColumns,
) -> HashSet<u32> {
    let realm_num: HashMap<u32, AttNum> = tables
        .iter()
        .filter_map(|t| {
            t.column(t.realm_column(realm_column))
                .map(|c| (t.oid, c.num))
        })
        .collect();
    indexes
        .iter()
        .filter(|i| i.unique && !i.primary && (i.partial || i.key_columns.contains(&0)))
        .filter(|i| {
            realm_num
                .get(&i.table)
                .is_some_and(|n| !i.key_columns.contains(n))
        })
        .map(|i| i.oid)
        .collect()
}

/// The catalog from the rows of each query (definition texts come after, `attach_defs`).
/// Constraints of tables not read are dropped: system tables', which the query does not join to
/// filter out (cheaper).
pub(super) fn assemble(
    tables: Vec<TableRow>,
    constraints: Vec<ConstraintRow>,
    indexes: Vec<IndexRow>,
) -> Catalog {
    let mut tables: Vec<Table> = tables.into_iter().map(TableRow::table).collect();
    let loaded: HashSet<u32> = tables.iter().map(|t| t.oid).collect();
    let (not_valid_not_null, constraints): (Vec<ConstraintRow>, Vec<ConstraintRow>) = constraints
        .into_iter()
        .filter(|c| loaded.contains(&c.conrelid))
        .partition(|c| c.kind == "n");
    // A NOT VALID not-null constraint (PostgreSQL 18+) sets attnotnull, but old rows may be NULL:
    // the column counts as nullable, and the constraint's name is kept for the backfill, which
    // validates it.
    let mut details = Details::default();
    for nn in &not_valid_not_null {
        if let Some(t) = tables.iter_mut().find(|t| t.oid == nn.conrelid) {
            for c in &mut t.columns {
                if nn.conkey.as_deref().unwrap_or_default().contains(&c.num) {
                    c.not_null = false;
                    details
                        .not_valid_not_null
                        .insert((t.oid, c.num), nn.name.clone());
                }
            }
        }
    }
    let constraints: Vec<Constraint> = constraints
        .into_iter()
        .map(ConstraintRow::constraint)
        .collect();
    // Indexes of tables not read are dropped too: the scoped read does not join to filter them.
    let mut indexes: Vec<Index> = indexes
        .into_iter()
        .filter(|i| loaded.contains(&i.indrelid))
        .map(IndexRow::index)
        .collect();
    // The constraint each index implements (primary key, unique, exclusion).
    let owner: HashMap<u32, &str> = constraints
        .iter()
        .filter(|c| c.kind != ConstraintKind::ForeignKey && c.index != 0)
        .map(|c| (c.index, c.name.as_str()))
        .collect();
    for i in &mut indexes {
        i.constraint = owner.get(&i.oid).map(|s| s.to_string());
    }
    Catalog {
        tables,
        constraints,
        indexes,
        realms: RealmsTable::Disabled,
        realms_key_type: None,
        scope: None,
        queries: 0,
        details,
    }
}

/// Give the `wanted` indexes (see `wanted_defs`) their definition texts; others are ignored.
pub(super) fn attach_defs(cat: &mut Catalog, defs: Vec<IndexDefRow>, wanted: &HashSet<u32>) {
    let mut defs: HashMap<u32, IndexDefRow> = defs
        .into_iter()
        .filter(|d| wanted.contains(&d.indexrelid))
        .map(|d| (d.indexrelid, d))
        .collect();
    for i in &mut cat.indexes {
        if let Some(d) = defs.remove(&i.oid) {
            i.key_defs = d.key_defs.unwrap_or_default();
            i.predicate = d.predicate;
        }
    }
}
