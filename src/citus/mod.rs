//! `realmguard citus plan | distribute`: turn a realm schema on a Citus coordinator into
//! reference tables (the realms table and the global tables realm tables reference) and realm
//! tables distributed on the realm column, all colocated. [`plan`] is pure (the verify report's
//! classes and the Citus facts in, ordered steps out); [`exec`] runs them one transaction per
//! step under `lock_timeout`, recorded in `realmguard.citus_steps`, skipping what Citus already
//! holds so that a run that was stopped resumes. See docs/citus.md.

pub mod error;
pub mod exec;
pub mod plan;
mod render;

pub use error::{Error, Result};
pub use exec::{distribute, DistributeReport, Options as DistributeOptions};
pub use plan::{build, Plan, Step, StepKind};
pub use render::{render_plan, render_report};

use crate::catalog::citus::CitusFacts;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::rules::Profile;
use sqlx::PgConnection;

/// Read the catalog, verify it under the Citus profile and build the plan: what `plan` prints
/// and what `distribute` runs.
pub async fn load_plan(
    conn: &mut PgConnection,
    cfg: &Config,
    opts: &plan::Options,
) -> Result<Plan> {
    let mut cfg = cfg.clone();
    cfg.profile = Some(Profile::Citus);
    let cat = Catalog::load(conn, &cfg.realms_table, &cfg.realm_column)
        .await
        .map_err(|source| Error::Catalog { source })?;
    let (facts, _) = CitusFacts::load(conn, &cfg.realm_column, true)
        .await
        .map_err(|source| Error::CitusFacts { source })?;
    let report = crate::verify::evaluate_with(&cat, Some(&facts), &cfg);
    Ok(plan::build(&report, &facts, &cfg, opts))
}
