//! `ban-alter-domain-with-add-constraint`: `ALTER DOMAIN … ADD CONSTRAINT` checks every column of
//! that domain in every table, holding locks on all of them. sqlparser does not parse ALTER
//! DOMAIN: it is judged by its keywords.

use super::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::BanAlterDomainWithAddConstraint.id();

pub fn check_words(_ctx: &Ctx, words: &[&str], out: &mut Vec<Violation>) {
    let ["ALTER", "DOMAIN", name, "ADD", ..] = words else {
        return;
    };
    out.push(Violation {
        rule: ID,
        message: format!(
            "adding a constraint to domain {} checks every column of the domain in every table while holding their locks",
            name.to_ascii_lowercase()
        ),
        help: "Put the CHECK on the table columns instead (added NOT VALID, validated in a later migration).".into(),
        span: None,
    });
}

#[cfg(test)]
mod tests {
    use crate::lint::rules::test_support::*;

    #[test]
    fn ok_cases() {
        assert!(rules_of("ALTER DOMAIN email DROP CONSTRAINT email_check;").is_empty());
    }

    #[test]
    fn err_case() {
        insta::assert_snapshot!(lint_text(&[(
            "0007_domain.sql",
            "ALTER DOMAIN email ADD CONSTRAINT email_at CHECK (VALUE ~ '@');"
        )]));
    }
}
