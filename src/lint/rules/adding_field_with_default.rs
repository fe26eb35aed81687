//! `adding-field-with-default`: since PostgreSQL 11 a column with a constant (non-volatile)
//! default is added without touching the rows; a volatile default (`gen_random_uuid()`,
//! `clock_timestamp()`, a sequence), an identity or a stored generated column rewrites the whole
//! table under an ACCESS EXCLUSIVE lock
//! (<https://www.postgresql.org/docs/current/sql-altertable.html#SQL-ALTERTABLE-NOTES>).
//! Before 11 (`--pg-version 10`) every non-null default rewrites the table.

use super::{display_table, Ctx, Violation};
use crate::lint::model::object_key;
use sqlparser::ast::{AlterTableOperation, ColumnDef, ColumnOption, Expr, Statement, Value};
use std::ops::ControlFlow;

pub const ID: &str = crate::rules::Rule::AddingFieldWithDefault.id();

/// Functions that are not volatile, so a default calling them is evaluated once, not per row.
const NON_VOLATILE: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "transaction_timestamp",
    "statement_timestamp",
    "current_user",
    "session_user",
    "current_role",
    "user",
    "current_schema",
    "current_catalog",
    "current_setting",
    "lower",
    "upper",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "concat",
    "concat_ws",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "json_build_array",
    "to_jsonb",
    "to_json",
    "make_interval",
    "make_date",
    "abs",
    "round",
    "length",
    "btrim",
    "trim",
    "replace",
    "md5",
    "array",
    "to_char",
    "to_timestamp",
    "to_date",
    "date_trunc",
];

/// The first call in `e` not known to be non-volatile, as written.
pub fn volatile_part(e: &Expr) -> Option<String> {
    let r = sqlparser::ast::visit_expressions(e, |x| match x {
        Expr::Function(f) => {
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_lowercase())
                .unwrap_or_default();
            if NON_VOLATILE.contains(&name.as_str()) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(x.to_string())
            }
        }
        Expr::Subquery(_) | Expr::Exists { .. } => ControlFlow::Break(x.to_string()),
        _ => ControlFlow::Continue(()),
    });
    match r {
        ControlFlow::Break(s) => Some(s),
        ControlFlow::Continue(()) => None,
    }
}

/// A column whose value PostgreSQL computes for every existing row: identity, serial, stored
/// generated. Such a column needs no DEFAULT to be NOT NULL, and it rewrites the table.
pub fn fills_itself(c: &ColumnDef) -> bool {
    let ty = c.data_type.to_string().to_ascii_lowercase();
    matches!(
        ty.as_str(),
        "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
    ) || c.options.iter().any(|o| {
        matches!(
            o.option,
            ColumnOption::Identity(_) | ColumnOption::Generated { .. }
        )
    })
}

pub fn check(ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Some(at) = ctx.alter_of_existing(stmt) else {
        return;
    };
    let table = display_table(&object_key(&at.name));
    for op in &at.operations {
        let AlterTableOperation::AddColumn { column_def: c, .. } = op else {
            continue;
        };
        let volatile = c.options.iter().find_map(|o| match &o.option {
            ColumnOption::Default(e) => volatile_part(e),
            _ => None,
        });
        let old_default = c.options.iter().find_map(|o| match &o.option {
            ColumnOption::Default(e) if !matches!(e, Expr::Value(v) if v.value == Value::Null) => {
                Some(e)
            }
            _ => None,
        });
        let why = match (volatile, old_default) {
            (Some(v), _) => {
                format!("with default {v}, which is volatile or not known to be stable,")
            }
            (None, _) if fills_itself(c) => {
                format!("of type {} (computed for every row)", c.data_type)
            }
            (None, Some(d)) if ctx.opts.pg_before(11) => {
                format!("with default {d} (PostgreSQL before 11 writes it into every row)")
            }
            (None, _) => continue,
        };
        out.push(Violation {
            rule: ID,
            message: format!(
                "adding column \"{}\" {why} rewrites existing table \"{table}\" under an ACCESS EXCLUSIVE lock",
                c.name.value
            ),
            help: "Add the column without a default (or with a constant one), then SET DEFAULT in a second statement and backfill existing rows in batches.".into(),
            span: Some(c.name.span),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_constant_and_stable_defaults() {
        assert!(rules_of("ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;\nALTER TABLE users ADD COLUMN seen_at timestamptz DEFAULT now();\nALTER TABLE users ADD COLUMN tags jsonb DEFAULT '{}'::jsonb;").is_empty());
    }

    #[test]
    fn only_volatile_defaults_count() {
        for ok in [
            "CURRENT_TIMESTAMP",
            "'x'::text",
            "ARRAY[]::text[]",
            "(now() AT TIME ZONE 'utc')",
            "-1",
            "'a' || 'b'",
            "current_setting('app.realm')",
        ] {
            let sql = format!("ALTER TABLE users ADD COLUMN c text DEFAULT {ok};");
            assert!(rules_of(&sql).is_empty(), "{ok}: {:?}", rules_of(&sql));
        }
        for bad in ["nextval('s')", "clock_timestamp()", "random()", "my_func()"] {
            let sql = format!("ALTER TABLE users ADD COLUMN c text DEFAULT {bad};");
            assert_eq!(rules_of(&sql), vec!["adding-field-with-default"], "{bad}");
        }
    }

    #[test]
    fn before_11_any_default_rewrites() {
        let sql = "ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;\nALTER TABLE users ADD COLUMN note text DEFAULT NULL;";
        let old = crate::lint::LintOptions {
            pg_version: Some(10),
            ..Default::default()
        };
        assert_eq!(rules_of_opts(sql, &old), vec!["adding-field-with-default"]);
        let new = crate::lint::LintOptions {
            pg_version: Some(11),
            ..Default::default()
        };
        assert!(rules_of_opts(sql, &new).is_empty());
    }

    #[test]
    fn ok_table_created_in_the_same_file() {
        assert!(rules_of("CREATE TABLE notes (id int);\nALTER TABLE notes ADD COLUMN uid uuid DEFAULT gen_random_uuid();").is_empty());
    }

    #[test]
    fn err_volatile_default_and_serial() {
        insta::assert_snapshot!(lint_text(&[(
            "0006_users.sql",
            "ALTER TABLE users ADD COLUMN uid uuid NOT NULL DEFAULT gen_random_uuid();\nALTER TABLE users ADD COLUMN n bigserial;"
        )]));
    }
}
