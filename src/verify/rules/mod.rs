//! One file per verify rule (PRODUCT.md, "verify: the rules"). Each is a plain function over the
//! catalog context that appends what it finds; no I/O, so each is tested on a hand-built catalog.

use super::{Ctx, Violation};

pub mod composite_primary_key;
pub mod constraint_not_validated;
pub mod fk_cross_realm;
pub mod fk_missing_realm;
pub mod fk_not_cascade;
pub mod fk_unindexed;
pub mod invalid_index;
pub mod realm_column_missing;
pub mod realm_column_nullable;
pub mod realm_fk_missing;
pub mod realms_table_missing;
pub mod rls_disabled;
pub mod unique_without_realm;

pub type Check = fn(&Ctx, &mut Vec<Violation>);

/// Every rule, in the order of PRODUCT.md.
pub const ALL: &[(&str, Check)] = &[
    (realm_column_missing::ID, realm_column_missing::check),
    (realm_column_nullable::ID, realm_column_nullable::check),
    (composite_primary_key::ID, composite_primary_key::check),
    (unique_without_realm::ID, unique_without_realm::check),
    (realm_fk_missing::ID, realm_fk_missing::check),
    (fk_missing_realm::ID, fk_missing_realm::check),
    (fk_not_cascade::ID, fk_not_cascade::check),
    (fk_cross_realm::ID, fk_cross_realm::check),
    (
        constraint_not_validated::ID,
        constraint_not_validated::check,
    ),
    (invalid_index::ID, invalid_index::check),
    (fk_unindexed::ID, fk_unindexed::check),
    (realms_table_missing::ID, realms_table_missing::check),
    (rls_disabled::ID, rls_disabled::check),
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_verify_rule_id_has_exactly_one_check() {
        let ids: Vec<&str> = super::ALL.iter().map(|(id, _)| *id).collect();
        let contract: Vec<&str> = crate::rules::VERIFY_RULES
            .iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(ids, contract);
    }
}
