//! Hand-built catalogs for the rule unit tests: no database, just the model.

use super::{evaluate_with, Report, Violation};
use crate::catalog::citus::CitusFacts;
use crate::catalog::{
    AttNum, Catalog, Column, Constraint, ConstraintKind, FkAction, ForeignKey, Index, RealmsTable,
    Table, TableKind,
};
use crate::config::Config;

pub struct Kit {
    pub cat: Catalog,
    pub cfg: Config,
    next: u32,
    /// The Citus facts the report is evaluated with (only read under `cfg.profile`).
    pub citus: CitusFacts,
}

impl Kit {
    /// A catalog holding `public.realms (id text PRIMARY KEY)`, resolved as the realms table.
    pub fn new() -> Kit {
        let mut k = Kit {
            cat: Catalog::empty(),
            cfg: Config::default(),
            next: 16384,
            citus: CitusFacts {
                profile: true,
                ..CitusFacts::default()
            },
        };
        let r = k.table(
            "public",
            "realms",
            &[("id", "text", true), ("name", "text", true)],
        );
        k.pk(r, &["id"]);
        k.cat.realms = RealmsTable::Found(r);
        k.cat.realms_key_type = Some("text".into());
        k
    }

    fn oid(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    pub fn table(&mut self, schema: &str, name: &str, cols: &[(&str, &str, bool)]) -> u32 {
        let oid = self.oid();
        self.cat.tables.push(Table {
            oid,
            schema: schema.into(),
            name: name.into(),
            kind: TableKind::Ordinary,
            is_partition: false,
            rls_enabled: false,
            partition_key: Vec::new(),
            columns: cols
                .iter()
                .enumerate()
                .map(|(i, (n, _type_for_the_reader, nn))| Column {
                    num: i as AttNum + 1,
                    name: (*n).into(),
                    not_null: *nn,
                })
                .collect(),
        });
        oid
    }

    /// A realm-safe table: `id bigint, realm_id text NOT NULL, extra…`, key (id, realm_id),
    /// realm foreign key with ON DELETE CASCADE (indexed by the key's second column? no: by a
    /// (realm_id) index, which fk-unindexed does not require anyway).
    pub fn good(&mut self, name: &str, extra: &[&str]) -> u32 {
        let mut cols = vec![("id", "bigint", true), ("realm_id", "text", true)];
        for e in extra {
            cols.push((e, "bigint", true));
        }
        let t = self.table("public", name, &cols);
        self.pk(t, &["id", "realm_id"]);
        let realms = self.realms();
        self.fk(t, &["realm_id"], realms, &["id"], FkAction::Cascade);
        t
    }

    /// Good `groups` and `memberships`, linked by a cascading key that names the realm column
    /// first on both sides: `(realm_id, group_id) -> (realm_id, id)`.
    pub fn linked_realm_first(&mut self) {
        let g = self.good("groups", &[]);
        let m = self.good("memberships", &["group_id"]);
        self.fk(
            m,
            &["realm_id", "group_id"],
            g,
            &["realm_id", "id"],
            FkAction::Cascade,
        );
    }

    pub fn realms(&self) -> u32 {
        match self.cat.realms {
            RealmsTable::Found(o) => o,
            _ => panic!("no realms table"),
        }
    }

    pub fn t(&mut self, oid: u32) -> &mut Table {
        self.cat.tables.iter_mut().find(|t| t.oid == oid).unwrap()
    }

    fn nums(&self, table: u32, cols: &[&str]) -> Vec<AttNum> {
        let t = self.cat.tables.iter().find(|t| t.oid == table).unwrap();
        cols.iter()
            .map(|c| t.column(c).unwrap_or_else(|| panic!("no column {c}")).num)
            .collect()
    }

    fn name_of(&self, table: u32) -> String {
        self.cat
            .tables
            .iter()
            .find(|t| t.oid == table)
            .unwrap()
            .name
            .clone()
    }

    pub fn pk(&mut self, table: u32, cols: &[&str]) {
        let name = format!("{}_pkey", self.name_of(table));
        self.key_constraint(table, &name, cols, ConstraintKind::PrimaryKey);
    }

    pub fn unique_constraint(&mut self, table: u32, name: &str, cols: &[&str]) {
        self.key_constraint(table, name, cols, ConstraintKind::Unique);
    }

    /// A primary key or unique constraint with the index behind it.
    fn key_constraint(&mut self, table: u32, name: &str, cols: &[&str], kind: ConstraintKind) {
        let nums = self.nums(table, cols);
        let oid = self.oid();
        let primary = kind == ConstraintKind::PrimaryKey;
        self.cat.constraints.push(Constraint {
            oid,
            table,
            name: name.into(),
            kind,
            columns: nums.clone(),
            foreign: None,
            validated: true,
            deferrable: false,
            deferred: false,
            index: 0,
        });
        let idx = self
            .push_index(table, name, &nums, true, primary, Some(name.into()))
            .oid;
        self.cat.constraints.last_mut().unwrap().index = idx;
    }

    /// A plain index on columns (use "" for an expression position).
    pub fn index(&mut self, table: u32, name: &str, cols: &[&str], unique: bool) -> &mut Index {
        let t = self.cat.tables.iter().find(|t| t.oid == table).unwrap();
        let nums: Vec<AttNum> = cols
            .iter()
            .map(|c| t.column(c).map(|c| c.num).unwrap_or(0))
            .collect();
        self.push_index(table, name, &nums, unique, false, None)
    }

    fn push_index(
        &mut self,
        table: u32,
        name: &str,
        nums: &[AttNum],
        unique: bool,
        primary: bool,
        constraint: Option<String>,
    ) -> &mut Index {
        let t = self.cat.tables.iter().find(|t| t.oid == table).unwrap();
        let key_defs = if unique && !primary {
            nums.iter()
                .map(|n| {
                    t.column_by_num(*n)
                        .map(|c| crate::db::quote_ident(&c.name))
                        .unwrap_or_else(|| "lower(email)".into())
                })
                .collect()
        } else {
            Vec::new()
        };
        let oid = self.oid();
        self.cat.indexes.push(Index {
            oid,
            table,
            name: name.into(),
            unique,
            primary,
            valid: true,
            partial: false,
            key_columns: nums.to_vec(),
            constraint,
            key_defs,
            predicate: None,
        });
        self.cat.indexes.last_mut().unwrap()
    }

    pub fn fk(
        &mut self,
        table: u32,
        cols: &[&str],
        ref_table: u32,
        ref_cols: &[&str],
        on_delete: FkAction,
    ) -> &mut Constraint {
        let name = format!("{}_{}_fkey", self.name_of(table), cols.join("_"));
        let columns = self.nums(table, cols);
        let ref_columns = self.nums(ref_table, ref_cols);
        let index = self
            .cat
            .indexes
            .iter()
            .find(|i| {
                i.table == ref_table
                    && i.unique
                    && i.key_columns.len() == ref_columns.len()
                    && ref_columns.iter().all(|c| i.key_columns.contains(c))
            })
            .map_or(0, |i| i.oid);
        let oid = self.oid();
        self.cat.constraints.push(Constraint {
            oid,
            table,
            name,
            kind: ConstraintKind::ForeignKey,
            columns,
            foreign: Some(ForeignKey {
                ref_table,
                ref_columns,
                on_delete,
                on_update: FkAction::NoAction,
                match_full: false,
                deferrable: false,
                deferred: false,
                index,
            }),
            validated: true,
            deferrable: false,
            deferred: false,
            index,
        });
        self.cat.constraints.last_mut().unwrap()
    }

    pub fn check(&mut self, table: u32, name: &str, validated: bool) {
        let oid = self.oid();
        self.cat.constraints.push(Constraint {
            oid,
            table,
            name: name.into(),
            kind: ConstraintKind::Check,
            columns: Vec::new(),
            foreign: None,
            validated,
            deferrable: false,
            deferred: false,
            index: 0,
        });
    }

    pub fn report(&self) -> Report {
        evaluate_with(&self.cat, Some(&self.citus), &self.cfg)
    }

    /// Turn the Citus profile on.
    pub fn citus_profile(&mut self) -> &mut Self {
        self.cfg.profile = Some(crate::rules::Profile::Citus);
        self
    }

    /// The class table the profile prints.
    pub fn classes(&mut self) -> Vec<super::citus::TableClass> {
        self.citus_profile();
        self.report().citus.expect("classes under the profile")
    }

    pub fn trigger(&mut self, table: u32, name: &str, row: bool) {
        self.citus.triggers.push(crate::catalog::citus::Trigger {
            table,
            name: name.into(),
            row,
        });
    }

    /// How Citus holds `table` on a coordinator (turns the coordinator rules on).
    pub fn dist(
        &mut self,
        table: u32,
        class: crate::catalog::citus::DistClass,
        column: Option<&str>,
        colocation_id: i64,
    ) {
        self.citus.dist.get_or_insert_with(Default::default).insert(
            table,
            crate::catalog::citus::DistTable {
                class,
                column: column.map(str::to_string),
                colocation_id,
            },
        );
    }

    /// The violations of one rule.
    pub fn of(&self, rule: &str) -> Vec<Violation> {
        self.report()
            .violations
            .into_iter()
            .filter(|v| v.rule == rule)
            .collect()
    }
}
