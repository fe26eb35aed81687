//! `ban-create-domain-with-constraint`: a domain's CHECK cannot later be changed without
//! re-checking every column of that domain in every table under a lock, and `ALTER DOMAIN … ADD
//! CONSTRAINT` does just that; put the check on the columns instead.

use super::{Ctx, Violation};
use crate::lint::model::last_ident;
use sqlparser::ast::Statement;

pub const ID: &str = crate::rules::Rule::BanCreateDomainWithConstraint.id();

pub fn check(_ctx: &Ctx, stmt: &Statement, out: &mut Vec<Violation>) {
    let Statement::CreateDomain(d) = stmt else {
        return;
    };
    if d.constraints.is_empty() {
        return;
    }
    out.push(Violation {
        rule: ID,
        message: format!(
            "domain \"{}\" carries a constraint: changing it later re-checks every column of the domain in every table under a lock",
            d.name
        ),
        help: "Create the domain without a constraint and put the CHECK on the table columns (added NOT VALID when the table exists).".into(),
        span: last_ident(&d.name).map(|i| i.span),
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(
            rules_of("CREATE DOMAIN email AS text;").is_empty(),
            "{:?}",
            rules_of("CREATE DOMAIN email AS text;")
        );
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_ban_create_domain_with_constraint.sql",
            r#"CREATE DOMAIN email AS text CHECK (VALUE ~ '@');"#
        )]));
    }
}
