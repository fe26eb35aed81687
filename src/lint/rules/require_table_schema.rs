//! `require-table-schema` (opt-in, off by default): a table named without its schema lands in
//! whatever schema comes first in the migration session's search_path.

use super::{Ctx, Violation};
use sqlparser::ast::{ObjectName, Statement};

pub const ID: &str = crate::rules::Rule::RequireTableSchema.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let name: &ObjectName = match stmt {
        Statement::CreateTable(ct) => &ct.name,
        Statement::AlterTable(at) => &at.name,
        _ => return,
    };
    if name.0.len() > 1 {
        return;
    }
    out.push(Violation {
        rule: ID,
        message: format!(
            "table \"{name}\" is named without its schema, so it depends on search_path"
        ),
        help: format!("Qualify it: `public.{name}` (or its schema)."),
        span: crate::lint::model::last_ident(name).map(|i| i.span),
    });
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::lint::rules::test_support::*;

    fn on() -> Config {
        let mut cfg = fixture_config();
        cfg.rules
            .insert(super::ID.into(), crate::rules::Severity::Warning);
        cfg
    }

    #[test]
    fn ok_cases() {
        let text = lint_text_cfg(&[("0001_a.sql", "CREATE TABLE public.t (id int);")], &on());
        assert!(text.contains("no problems"), "{text}");
        // Opt-in: off by default.
        assert!(rules_of("CREATE TABLE t (id int);").is_empty());
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text_cfg(
            &[("0007_require_table_schema.sql", "CREATE TABLE t (id int);")],
            &on()
        ));
    }
}
