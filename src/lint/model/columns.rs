//! A column definition or a table constraint added to a table of the model (from `CREATE TABLE`
//! or `ALTER TABLE … ADD`), with the names PostgreSQL would give what the statement leaves unnamed.

use super::*;

pub(super) fn add_column(
    t: &mut Table,
    c: &ColumnDef,
    origin: Origin,
    indexes: &mut HashMap<String, String>,
) {
    let origin = origin.at(c.name.span);
    let name = ident(&c.name);
    let mut nullable = true;
    for o in &c.options {
        let cname = o.name.as_ref().map(ident);
        match &o.option {
            ColumnOption::NotNull => nullable = false,
            ColumnOption::PrimaryKey(_) => {
                nullable = false;
                t.primary_key = Some(Key {
                    name: cname.unwrap_or_else(|| default_name(&t.key, &[], "pkey")),
                    columns: vec![Some(name.clone())],
                    is_index: false,
                    origin,
                });
            }
            ColumnOption::Unique(_) => {
                let n = cname
                    .unwrap_or_else(|| default_name(&t.key, std::slice::from_ref(&name), "key"));
                indexes.insert(format!("{}.{n}", schema_of(&t.key)), t.key.clone());
                t.uniques.push(Key {
                    name: n,
                    columns: vec![Some(name.clone())],
                    is_index: false,
                    origin,
                });
            }
            ColumnOption::ForeignKey(fk) => t.foreign_keys.push(ForeignKey {
                name: cname
                    .unwrap_or_else(|| default_name(&t.key, std::slice::from_ref(&name), "fkey")),
                columns: vec![name.clone()],
                ref_table: object_key(&fk.foreign_table),
                ref_columns: fk.referred_columns.iter().map(ident).collect(),
                on_delete_cascade: fk.on_delete == Some(ReferentialAction::Cascade),
                origin,
            }),
            ColumnOption::Check(ch) => t.checks.push(Check {
                name: cname
                    .unwrap_or_else(|| default_name(&t.key, std::slice::from_ref(&name), "check")),
                not_null_of: not_null_check_column(&ch.expr),
                validated: true,
            }),
            ColumnOption::Identity(_) | ColumnOption::Generated { .. } => {
                // Identity columns are implicitly NOT NULL; generated-expression ones are not.
                if let ColumnOption::Generated {
                    generation_expr: None,
                    ..
                } = &o.option
                {
                    nullable = false;
                }
                if matches!(o.option, ColumnOption::Identity(_)) {
                    nullable = false;
                }
            }
            _ => {}
        }
    }
    t.columns.retain(|x| x.name != name);
    t.columns.push(Column {
        name,
        nullable,
        origin,
    });
}

pub(super) fn add_constraint(
    t: &mut Table,
    tc: &TableConstraint,
    not_valid: bool,
    origin: Origin,
    indexes: &mut HashMap<String, String>,
) {
    // Point at the constraint's name, else at its first column.
    let span = match tc {
        TableConstraint::PrimaryKey(pk) => pk
            .name
            .as_ref()
            .map(|n| n.span)
            .or_else(|| pk.columns.first().map(|c| c.column.expr.span())),
        TableConstraint::Unique(u) => u
            .name
            .as_ref()
            .map(|n| n.span)
            .or_else(|| u.columns.first().map(|c| c.column.expr.span())),
        TableConstraint::ForeignKey(fk) => fk
            .name
            .as_ref()
            .map(|n| n.span)
            .or_else(|| fk.columns.first().map(|c| c.span)),
        TableConstraint::PrimaryKeyUsingIndex(u) | TableConstraint::UniqueUsingIndex(u) => {
            Some(u.name.as_ref().map_or(u.index_name.span, |n| n.span))
        }
        _ => None,
    };
    let origin = span.map_or(origin, |s| origin.at(s));
    match tc {
        TableConstraint::PrimaryKey(pk) => {
            let cols: Vec<Option<String>> = pk.columns.iter().map(index_column).collect();
            for c in cols.iter().flatten() {
                if let Some(col) = t.column_mut(c) {
                    col.nullable = false;
                }
            }
            t.primary_key = Some(Key {
                name: pk
                    .name
                    .as_ref()
                    .map(ident)
                    .unwrap_or_else(|| default_name(&t.key, &[], "pkey")),
                columns: cols,
                is_index: false,
                origin,
            });
        }
        TableConstraint::Unique(u) => {
            let cols: Vec<Option<String>> = u.columns.iter().map(index_column).collect();
            let plain: Vec<String> = cols.iter().flatten().cloned().collect();
            let n = u
                .name
                .as_ref()
                .map(ident)
                .unwrap_or_else(|| default_name(&t.key, &plain, "key"));
            indexes.insert(format!("{}.{n}", schema_of(&t.key)), t.key.clone());
            t.uniques.push(Key {
                name: n,
                columns: cols,
                is_index: false,
                origin,
            });
        }
        TableConstraint::PrimaryKeyUsingIndex(u) | TableConstraint::UniqueUsingIndex(u) => {
            // The index becomes the constraint: take over its columns.
            let index_name = ident(&u.index_name);
            let pos = t
                .uniques
                .iter()
                .position(|k| k.is_index && k.name == index_name);
            let columns = pos
                .map(|p| t.uniques[p].columns.clone())
                .unwrap_or_default();
            // Without a constraint name PostgreSQL keeps the index's name.
            let name = u
                .name
                .as_ref()
                .map(ident)
                .unwrap_or_else(|| index_name.clone());
            if let Some(p) = pos {
                t.uniques.remove(p);
                indexes.remove(&format!("{}.{index_name}", schema_of(&t.key)));
            }
            indexes.insert(format!("{}.{name}", schema_of(&t.key)), t.key.clone());
            let key = Key {
                name,
                columns,
                is_index: false,
                origin,
            };
            if matches!(tc, TableConstraint::PrimaryKeyUsingIndex(_)) {
                for c in key.columns.iter().flatten() {
                    if let Some(col) = t.column_mut(c) {
                        col.nullable = false;
                    }
                }
                t.primary_key = Some(key);
            } else {
                t.uniques.push(key);
            }
        }
        TableConstraint::ForeignKey(fk) => {
            let cols: Vec<String> = fk.columns.iter().map(ident).collect();
            t.foreign_keys.push(ForeignKey {
                name: fk
                    .name
                    .as_ref()
                    .map(ident)
                    .unwrap_or_else(|| default_name(&t.key, &cols, "fkey")),
                columns: cols,
                ref_table: object_key(&fk.foreign_table),
                ref_columns: fk.referred_columns.iter().map(ident).collect(),
                on_delete_cascade: fk.on_delete == Some(ReferentialAction::Cascade),
                origin,
            });
        }
        TableConstraint::Check(ch) => {
            let first = first_column(&ch.expr).into_iter().collect::<Vec<_>>();
            t.checks.push(Check {
                name: ch
                    .name
                    .as_ref()
                    .map(ident)
                    .unwrap_or_else(|| default_name(&t.key, &first, "check")),
                not_null_of: not_null_check_column(&ch.expr),
                validated: !not_valid,
            });
        }
        _ => {}
    }
}
