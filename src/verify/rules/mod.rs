//! One file per verify rule (the verify rules table in README.md). Each is a plain function over the
//! catalog context that appends what it finds; no I/O, so each is tested on a hand-built catalog.

use super::{Ctx, Violation};
use crate::rules::Rule;

pub mod citus_fk_ordinal;
pub mod citus_fk_set_null;
pub mod citus_identity_int;
pub mod citus_not_distributed;
pub mod citus_realm_type_mismatch;
pub mod citus_reference_to_distributed;
pub mod citus_row_trigger;
pub mod citus_rule;
pub mod citus_statement_trigger;
pub mod citus_wrong_distribution_column;
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
pub mod rls_app_role_bypass;
pub mod rls_disabled;
pub mod rls_not_forced;
pub mod rls_permissive_bypass;
pub mod rls_policy_missing;
pub mod rls_policy_not_realm;
pub mod rls_setting_missing_ok;
pub mod rls_setting_per_row;
pub mod rls_view_definer;
pub mod unique_without_realm;

pub type Check = fn(&Ctx, &mut Vec<Violation>);

/// Every verify rule and its check, in the contract's order.
pub const ALL: &[(Rule, Check)] = &[
    (Rule::RealmColumnMissing, realm_column_missing::check),
    (Rule::RealmColumnNullable, realm_column_nullable::check),
    (Rule::CompositePrimaryKey, composite_primary_key::check),
    (Rule::UniqueWithoutRealm, unique_without_realm::check),
    (Rule::RealmFkMissing, realm_fk_missing::check),
    (Rule::FkMissingRealm, fk_missing_realm::check),
    (Rule::FkNotCascade, fk_not_cascade::check),
    (Rule::FkCrossRealm, fk_cross_realm::check),
    (
        Rule::ConstraintNotValidated,
        constraint_not_validated::check,
    ),
    (Rule::InvalidIndex, invalid_index::check),
    (Rule::FkUnindexed, fk_unindexed::check),
    (Rule::RealmsTableMissing, realms_table_missing::check),
    (Rule::RlsDisabled, rls_disabled::check),
    (Rule::RlsNotForced, rls_not_forced::check),
    (Rule::RlsPolicyMissing, rls_policy_missing::check),
    (Rule::RlsPolicyNotRealm, rls_policy_not_realm::check),
    (Rule::RlsPermissiveBypass, rls_permissive_bypass::check),
    (Rule::RlsSettingPerRow, rls_setting_per_row::check),
    (Rule::RlsSettingMissingOk, rls_setting_missing_ok::check),
    (Rule::RlsAppRoleBypass, rls_app_role_bypass::check),
    (Rule::RlsViewDefiner, rls_view_definer::check),
    (Rule::CitusFkOrdinal, citus_fk_ordinal::check),
    (Rule::CitusFkSetNull, citus_fk_set_null::check),
    (
        Rule::CitusRealmTypeMismatch,
        citus_realm_type_mismatch::check,
    ),
    (
        Rule::CitusReferenceToDistributed,
        citus_reference_to_distributed::check,
    ),
    (Rule::CitusStatementTrigger, citus_statement_trigger::check),
    (Rule::CitusRowTrigger, citus_row_trigger::check),
    (Rule::CitusRule, citus_rule::check),
    (Rule::CitusIdentityInt, citus_identity_int::check),
    (Rule::CitusNotDistributed, citus_not_distributed::check),
    (
        Rule::CitusWrongDistributionColumn,
        citus_wrong_distribution_column::check,
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_verify_rule_id_has_exactly_one_check() {
        use crate::rules::Rule;
        let ids: Vec<Rule> = super::ALL.iter().map(|(rule, _)| *rule).collect();
        let contract: Vec<Rule> = Rule::verify_rules().collect();
        assert_eq!(ids, contract);
    }
}
