//! `realms-table-missing`: `realms_table` is set but no such table exists (reported under the name
//! the table would have), so nothing can check that realms are real.

use crate::catalog::RealmsTable;
use crate::verify::{Ctx, Violation};

pub const ID: &str = crate::rules::Rule::RealmsTableMissing.id();

pub fn check(ctx: &Ctx, out: &mut Vec<Violation>) {
    if let RealmsTable::Missing { schema, name } = &ctx.cat.realms {
        out.push(Violation {
            rule: ID.into(),
            severity: ctx.cfg.severity(ID),
            schema: schema.clone(),
            table: name.clone(),
            constraint: None,
            message: format!(
                "realms_table = \"{}\" but no such table exists; create it or set realms_table = \"\"",
                ctx.cfg.realms_table
            ),
            fix: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::RealmsTable;
    use crate::verify::testkit::Kit;

    #[test]
    fn missing_realms_table_is_a_warning_under_its_name() {
        let mut k = Kit::new();
        k.cat.realms = RealmsTable::Missing {
            schema: "app".into(),
            name: "tenants".into(),
        };
        let v = k.of(super::ID);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].schema.as_str(), v[0].table.as_str()),
            ("app", "tenants")
        );
        assert!(k.report().ok, "a warning does not fail verify");
    }

    #[test]
    fn found_or_disabled_is_fine() {
        let mut k = Kit::new();
        assert!(k.of(super::ID).is_empty());
        k.cat.realms = RealmsTable::Disabled;
        assert!(k.of(super::ID).is_empty());
    }
}
