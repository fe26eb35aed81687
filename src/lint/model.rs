//! The schema as the migrations build it up, statement by statement, in order. The realm rules
//! judge this model (so an `ALTER TABLE` in file 7 meets the table created in file 2), and the
//! lock rules ask it which index belongs to which table and which checks are already validated.
//!
//! It is deliberately approximate: it follows what a migration set usually does (tables, columns,
//! keys, unique constraints and indexes, foreign keys, checks, renames, drops) and ignores the rest.
//! A statement that sqlparser cannot parse leaves the model untouched and costs a `parse-error`.

use sqlparser::ast::{
    AlterColumnOperation, AlterIndexOperation, AlterTableOperation, ColumnDef, ColumnOption,
    CreateIndex, CreateTable, CreateTableLikeKind, Expr, Ident, IndexColumn, ObjectName,
    ObjectType, ReferentialAction, RenameTableNameKind, Spanned, Statement, TableConstraint,
};
use sqlparser::tokenizer::Span;
use std::collections::HashMap;

mod columns;
use columns::{add_column, add_constraint};

/// Where something was defined: the statement (file and statement index) and its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: usize,
    pub stmt: usize,
    pub line: usize,
    pub column: usize,
    /// Characters to underline (0: just the position).
    pub width: usize,
}

impl Origin {
    /// The position of `span` (relative to the statement's text, as sqlparser reports it) in the
    /// file; the statement's start when the span is empty.
    pub fn at(self, span: Span) -> Origin {
        if span.start.line == 0 {
            return self;
        }
        let (l, c) = (span.start.line as usize, span.start.column as usize);
        Origin {
            line: self.line + l - 1,
            column: if l == 1 { self.column + c - 1 } else { c },
            width: if span.end.line == span.start.line {
                (span.end.column.saturating_sub(span.start.column)) as usize
            } else {
                0
            },
            ..self
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub nullable: bool,
    /// The statement that made the column what it is now (added it, or dropped its NOT NULL).
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    /// Plain columns of the key; `None` for an expression.
    pub columns: Vec<Option<String>>,
    /// A unique index (as opposed to a constraint), dropped with `DROP INDEX`.
    pub is_index: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_table: String,
    /// Empty: the referenced table's primary key.
    pub ref_columns: Vec<String>,
    pub on_delete_cascade: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    /// `Some(col)` when the check is exactly `col IS NOT NULL`.
    pub not_null_of: Option<String>,
    pub validated: bool,
}

#[derive(Debug, Clone)]
pub struct Table {
    /// `schema.table`, unquoted identifiers folded to lower case.
    pub key: String,
    pub columns: Vec<Column>,
    pub primary_key: Option<Key>,
    pub uniques: Vec<Key>,
    pub foreign_keys: Vec<ForeignKey>,
    pub checks: Vec<Check>,
    pub partitioned: bool,
    /// A partition (`PARTITION OF`): checked through its parent, never on its own.
    pub partition: bool,
    pub origin: Origin,
}

impl Table {
    pub fn schema(&self) -> &str {
        self.key.split_once('.').map_or("public", |(s, _)| s)
    }

    pub fn name(&self) -> &str {
        self.key.split_once('.').map_or(&self.key, |(_, t)| t)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    /// A validated `CHECK (col IS NOT NULL)` exists, so `SET NOT NULL` needs no table scan
    /// (PostgreSQL 12+, <https://www.postgresql.org/docs/current/sql-altertable.html>).
    pub fn has_validated_not_null_check(&self, column: &str) -> bool {
        self.checks
            .iter()
            .any(|c| c.validated && c.not_null_of.as_deref() == Some(column))
    }

    /// Columns of the primary key, when it has only plain columns.
    pub fn primary_key_columns(&self) -> Option<Vec<String>> {
        self.primary_key
            .as_ref()
            .map(|k| k.columns.iter().flatten().cloned().collect())
    }
}

#[derive(Debug, Default, Clone)]
pub struct Schema {
    pub tables: HashMap<String, Table>,
    /// Index key (`schema.index`) → table key.
    pub indexes: HashMap<String, String>,
    /// Checks added to tables the migration set did not create (they predate it): the only
    /// thing the model follows about such tables, so that `NOT VALID` + `VALIDATE` + `SET NOT
    /// NULL` on them is known to be the safe sequence.
    pub outside_checks: HashMap<String, Vec<Check>>,
}

/// The identifier as PostgreSQL stores it: unquoted names fold to lower case.
pub fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// `schema.name` for a possibly qualified name; unqualified names are taken to be in `public`
/// (the usual search_path: the model has no way to know better).
pub fn object_key(name: &ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(ident)
        .collect();
    match parts.as_slice() {
        [] => String::new(),
        [t] => format!("public.{t}"),
        [.., s, t] => format!("{s}.{t}"),
    }
}

/// The last part of a name (an index or constraint name given with a schema).
pub fn last_ident(name: &ObjectName) -> Option<&Ident> {
    name.0.last().and_then(|p| p.as_ident())
}

/// The schema part of a key, to qualify an index created on a table of that schema.
fn schema_of(key: &str) -> &str {
    key.split_once('.').map_or("public", |(s, _)| s)
}

fn name_of(key: &str) -> &str {
    key.split_once('.').map_or(key, |(_, t)| t)
}

/// A plain column of an index element, `None` for an expression.
pub fn index_column(c: &IndexColumn) -> Option<String> {
    match &c.column.expr {
        Expr::Identifier(i) => Some(ident(i)),
        _ => None,
    }
}

/// `Some(col)` when `e` is `col IS NOT NULL` (parentheses allowed).
pub fn not_null_check_column(e: &Expr) -> Option<String> {
    match e {
        Expr::Nested(inner) => not_null_check_column(inner),
        Expr::IsNotNull(inner) => match inner.as_ref() {
            Expr::Identifier(i) => Some(ident(i)),
            Expr::Nested(n) => match n.as_ref() {
                Expr::Identifier(i) => Some(ident(i)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// The first column an expression mentions (PostgreSQL names an unnamed check after it).
fn first_column(e: &Expr) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if let Expr::Identifier(i) = x {
            found = Some(ident(i));
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

/// Names PostgreSQL gives unnamed constraints and indexes (`users_email_key`, `users_pkey`, …),
/// so a later `DROP CONSTRAINT users_email_key` finds what it drops.
fn default_name(table: &str, cols: &[String], suffix: &str) -> String {
    let mut n = name_of(table).to_string();
    if !cols.is_empty() {
        n.push('_');
        n.push_str(&cols.join("_"));
    }
    n.push('_');
    n.push_str(suffix);
    n
}

impl Schema {
    pub fn table(&self, key: &str) -> Option<&Table> {
        self.tables.get(key)
    }

    /// A validated `CHECK (col IS NOT NULL)` exists on the table, whether the migration set
    /// created it or only added the check to it.
    pub fn has_validated_not_null_check(&self, key: &str, column: &str) -> bool {
        self.table(key)
            .is_some_and(|t| t.has_validated_not_null_check(column))
            || self.outside_checks.get(key).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.validated && c.not_null_of.as_deref() == Some(column))
            })
    }

    /// Follow the checks of a table the model does not know.
    fn outside_table(&mut self, key: &str, op: &AlterTableOperation) {
        match op {
            AlterTableOperation::AddConstraint {
                constraint: TableConstraint::Check(ch),
                not_valid,
            } => {
                let first = first_column(&ch.expr).into_iter().collect::<Vec<_>>();
                let name = ch
                    .name
                    .as_ref()
                    .map(ident)
                    .unwrap_or_else(|| default_name(key, &first, "check"));
                self.outside_checks
                    .entry(key.to_string())
                    .or_default()
                    .push(Check {
                        name,
                        not_null_of: not_null_check_column(&ch.expr),
                        validated: !not_valid,
                    });
            }
            AlterTableOperation::ValidateConstraint { name } => {
                let n = ident(name);
                for c in self.outside_checks.get_mut(key).into_iter().flatten() {
                    if c.name == n {
                        c.validated = true;
                    }
                }
            }
            AlterTableOperation::DropConstraint { name, .. } => {
                let n = ident(name);
                if let Some(cs) = self.outside_checks.get_mut(key) {
                    cs.retain(|c| c.name != n);
                }
            }
            _ => {}
        }
    }

    /// The table an index belongs to, when the model knows the index.
    pub fn index_table(&self, index: &ObjectName) -> Option<&str> {
        self.indexes.get(&object_key(index)).map(String::as_str)
    }

    /// Apply one parsed statement to the model.
    pub fn apply(&mut self, stmt: &Statement, origin: Origin) {
        match stmt {
            Statement::CreateTable(ct) => self.create_table(ct, origin),
            Statement::AlterTable(at) => {
                let key = object_key(&at.name);
                for op in &at.operations {
                    self.alter_table(&key, op, origin);
                }
            }
            Statement::CreateIndex(ci) => self.create_index(ci, origin),
            Statement::AlterIndex {
                name,
                operation: AlterIndexOperation::RenameIndex { index_name },
            } => {
                let old = object_key(name);
                if let Some(table) = self.indexes.remove(&old) {
                    let new_name = last_ident(index_name).map(ident).unwrap_or_default();
                    let old_name = name_of(&old).to_string();
                    if let Some(t) = self.tables.get_mut(&table) {
                        for u in t.uniques.iter_mut().filter(|u| u.name == old_name) {
                            u.name = new_name.clone();
                        }
                    }
                    self.indexes
                        .insert(format!("{}.{new_name}", schema_of(&old)), table);
                }
            }
            Statement::Drop {
                object_type, names, ..
            } => match object_type {
                ObjectType::Table => {
                    for n in names {
                        self.drop_table(&object_key(n));
                    }
                }
                ObjectType::Index => {
                    for n in names {
                        self.drop_index(&object_key(n));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn drop_table(&mut self, key: &str) {
        self.tables.remove(key);
        self.indexes.retain(|_, t| t != key);
        // DROP TABLE … CASCADE drops the foreign keys that point at it (without CASCADE the
        // statement fails, so either way none survive).
        for t in self.tables.values_mut() {
            t.foreign_keys.retain(|fk| fk.ref_table != key);
        }
    }

    fn drop_index(&mut self, key: &str) {
        if let Some(table) = self.indexes.remove(key) {
            let name = name_of(key);
            if let Some(t) = self.tables.get_mut(&table) {
                t.uniques.retain(|u| u.name != name);
            }
        }
    }

    fn create_table(&mut self, ct: &CreateTable, origin: Origin) {
        let key = object_key(&ct.name);
        if self.tables.contains_key(&key) {
            // IF NOT EXISTS on an existing table does nothing; without it the statement fails.
            return;
        }
        let mut t = Table {
            key: key.clone(),
            columns: Vec::new(),
            primary_key: None,
            uniques: Vec::new(),
            foreign_keys: Vec::new(),
            checks: Vec::new(),
            partitioned: ct.partition_by.is_some(),
            partition: ct.partition_of.is_some(),
            origin: last_ident(&ct.name).map_or(origin, |i| origin.at(i.span)),
        };
        if let Some(like) = &ct.like {
            let src = match like {
                CreateTableLikeKind::Parenthesized(l) | CreateTableLikeKind::Plain(l) => &l.name,
            };
            if let Some(s) = self.tables.get(&object_key(src)) {
                // LIKE copies columns and NOT NULL, not keys (unless INCLUDING, which we ignore).
                t.columns = s
                    .columns
                    .iter()
                    .map(|c| Column {
                        origin,
                        ..c.clone()
                    })
                    .collect();
            }
        }
        for c in &ct.columns {
            add_column(&mut t, c, origin, &mut self.indexes);
        }
        for tc in &ct.constraints {
            add_constraint(&mut t, tc, false, origin, &mut self.indexes);
        }
        self.tables.insert(key, t);
    }

    fn create_index(&mut self, ci: &CreateIndex, origin: Origin) {
        let table = object_key(&ci.table_name);
        let cols: Vec<Option<String>> = ci.columns.iter().map(index_column).collect();
        let name = match &ci.name {
            Some(n) => last_ident(n).map(ident).unwrap_or_default(),
            None => {
                let plain: Vec<String> = cols
                    .iter()
                    .map(|c| c.clone().unwrap_or("expr".into()))
                    .collect();
                default_name(&table, &plain, "idx")
            }
        };
        let index_key = format!("{}.{name}", schema_of(&table));
        if ci.if_not_exists && self.indexes.contains_key(&index_key) {
            return;
        }
        self.indexes.insert(index_key, table.clone());
        let span = ci
            .name
            .as_ref()
            .and_then(last_ident)
            .or_else(|| last_ident(&ci.table_name))
            .map(|i| i.span);
        let origin = span.map_or(origin, |s| origin.at(s));
        if ci.unique {
            if let Some(t) = self.tables.get_mut(&table) {
                t.uniques.push(Key {
                    name,
                    columns: cols,
                    is_index: true,
                    origin,
                });
            }
        }
    }

    /// `ALTER TABLE … RENAME TO`: the table, its indexes and the foreign keys that reference it
    /// follow the new name.
    fn rename_table(&mut self, key: &str, table_name: &RenameTableNameKind) {
        let new = match table_name {
            RenameTableNameKind::As(n) | RenameTableNameKind::To(n) => n,
        };
        // RENAME TO takes a bare name: the table stays in its schema.
        let new_key = format!(
            "{}.{}",
            schema_of(key),
            last_ident(new).map(ident).unwrap_or_default()
        );
        if let Some(mut t) = self.tables.remove(key) {
            t.key = new_key.clone();
            self.tables.insert(new_key.clone(), t);
            for idx_table in self.indexes.values_mut() {
                if idx_table == key {
                    *idx_table = new_key.clone();
                }
            }
            for t in self.tables.values_mut() {
                for fk in &mut t.foreign_keys {
                    if fk.ref_table == key {
                        fk.ref_table = new_key.clone();
                    }
                }
            }
        }
    }

    fn alter_table(&mut self, key: &str, op: &AlterTableOperation, origin: Origin) {
        if let AlterTableOperation::RenameTable { table_name } = op {
            self.rename_table(key, table_name);
            return;
        }
        let Some(mut t) = self.tables.remove(key) else {
            self.outside_table(key, op);
            return;
        };
        match op {
            AlterTableOperation::AddColumn {
                column_def,
                if_not_exists,
                ..
            } if !(*if_not_exists && t.column(&ident(&column_def.name)).is_some()) => {
                add_column(&mut t, column_def, origin, &mut self.indexes);
            }
            AlterTableOperation::AddConstraint {
                constraint,
                not_valid,
            } => add_constraint(&mut t, constraint, *not_valid, origin, &mut self.indexes),
            AlterTableOperation::DropColumn { column_names, .. } => {
                for c in column_names {
                    let c = ident(c);
                    t.columns.retain(|x| x.name != c);
                    // Dropping a column drops the keys, indexes and constraints that use it.
                    let uses = |k: &Key| k.columns.iter().any(|x| x.as_deref() == Some(&c));
                    if t.primary_key.as_ref().is_some_and(uses) {
                        t.primary_key = None;
                    }
                    let dropped: Vec<String> = t
                        .uniques
                        .iter()
                        .filter(|k| k.is_index && uses(k))
                        .map(|k| k.name.clone())
                        .collect();
                    for d in dropped {
                        self.indexes.remove(&format!("{}.{d}", schema_of(key)));
                    }
                    t.uniques.retain(|k| !uses(k));
                    t.foreign_keys.retain(|fk| !fk.columns.contains(&c));
                    t.checks.retain(|ch| ch.not_null_of.as_deref() != Some(&c));
                }
            }
            AlterTableOperation::DropConstraint { name, .. } => {
                let n = ident(name);
                if t.primary_key.as_ref().is_some_and(|k| k.name == n) {
                    t.primary_key = None;
                }
                t.uniques.retain(|k| k.is_index || k.name != n);
                t.foreign_keys.retain(|fk| fk.name != n);
                t.checks.retain(|c| c.name != n);
            }
            AlterTableOperation::DropPrimaryKey { .. } => t.primary_key = None,
            AlterTableOperation::ValidateConstraint { name } => {
                let n = ident(name);
                for c in t.checks.iter_mut().filter(|c| c.name == n) {
                    c.validated = true;
                }
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let (old, new) = (ident(old_column_name), ident(new_column_name));
                if let Some(c) = t.column_mut(&old) {
                    c.name = new.clone();
                }
                let rename = |x: &mut String| {
                    if *x == old {
                        *x = new.clone()
                    }
                };
                for k in t.primary_key.iter_mut().chain(t.uniques.iter_mut()) {
                    k.columns.iter_mut().flatten().for_each(rename);
                }
                for fk in &mut t.foreign_keys {
                    fk.columns.iter_mut().for_each(rename);
                }
                for ch in &mut t.checks {
                    ch.not_null_of.iter_mut().for_each(rename);
                }
                // Foreign keys of other tables that name this column keep pointing at it.
                for other in self.tables.values_mut() {
                    for fk in other.foreign_keys.iter_mut().filter(|f| f.ref_table == key) {
                        fk.ref_columns.iter_mut().for_each(rename);
                    }
                }
                for fk in t.foreign_keys.iter_mut().filter(|f| f.ref_table == key) {
                    fk.ref_columns.iter_mut().for_each(rename);
                }
            }
            AlterTableOperation::RenameConstraint { old_name, new_name } => {
                let (old, new) = (ident(old_name), ident(new_name));
                for k in t.primary_key.iter_mut().chain(t.uniques.iter_mut()) {
                    if k.name == old {
                        k.name = new.clone();
                    }
                }
                for fk in t.foreign_keys.iter_mut().filter(|f| f.name == old) {
                    fk.name = new.clone();
                }
                for c in t.checks.iter_mut().filter(|c| c.name == old) {
                    c.name = new.clone();
                }
            }
            AlterTableOperation::AlterColumn { column_name, op } => {
                let c = ident(column_name);
                match op {
                    AlterColumnOperation::SetNotNull => {
                        if let Some(col) = t.column_mut(&c) {
                            col.nullable = false;
                        }
                    }
                    AlterColumnOperation::DropNotNull => {
                        if let Some(col) = t.column_mut(&c) {
                            col.nullable = true;
                            col.origin = origin.at(column_name.span);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        self.tables.insert(key.to_string(), t);
    }
}

#[cfg(test)]
mod tests;
