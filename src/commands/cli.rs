//! Command-line surface (clap derive) and dispatch to the command modules.
//!
//! Options shared by every command live in [`GlobalOpts`] and are flattened in, like sqlx-cli's
//! `ConnectOpts`, so `--database-url`, `--config` and `--format` work before or after the verb.

use crate::{config::Config, db, output::Format};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "realmguard",
    version,
    about = "Keep a multi-tenant (realm) PostgreSQL schema safe: migrate, verify, lint, backfill"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// PostgreSQL URL; without it (and without DATABASE_URL) the embedded local cluster is used.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Config file (default: schema/realmguard.toml when it exists).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format. `junit` is accepted by verify, lint, audit and check.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
}

impl GlobalOpts {
    /// The validated config: `--config`, else `schema/realmguard.toml`, else defaults.
    pub fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref())?)
    }

    /// The URL to connect to: `--database-url`/`DATABASE_URL`, else the embedded cluster (started
    /// on demand, announced on stderr).
    pub async fn database(&self) -> anyhow::Result<db::Target> {
        let (target, embedded) = db::Target::resolve(self.database_url.as_deref()).await?;
        if let Some(socket_dir) = embedded {
            eprintln!(
                "realmguard: using the embedded local cluster ({})",
                socket_dir.display()
            );
        }
        Ok(target)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, each exactly once, in order, atomically.
    Migrate(MigrateArgs),
    /// Show every migration version and its state.
    Status(StatusArgs),
    /// Mark every migration up to VERSION as applied without running it (existing databases).
    Baseline(BaselineArgs),
    /// Prove from the live catalog that every realm-scoped table is realm-safe.
    Verify(VerifyArgs),
    /// Static analysis of migration SQL: wrong or lock-heavy statements.
    Lint(LintArgs),
    /// Find the application's queries that can read or write across realms.
    Audit(AuditArgs),
    /// CI schema check: apply every migration to a scratch database, verify it, lint the files.
    Check(CheckArgs),
    /// Convert legacy single-key tables to the (id, realm_id) shape online.
    #[command(subcommand)]
    Backfill(BackfillCommand),
    /// The embedded local cluster: its URL and status, start and stop.
    #[command(subcommand)]
    Embedded(EmbeddedCommand),
    /// Work on one realm: list, copy, move, diff, delete it between databases; prove it is
    /// isolated (probe).
    #[command(subcommand)]
    Realm(RealmCommand),
    /// Every database of the deployment at once (schema/fleet.toml): status, migrate, verify.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Distribute the realm schema on a Citus coordinator (realm column as distribution column).
    #[command(subcommand)]
    Citus(CitusCommand),
    /// What a lint rule catches, why it hurts, the safe way (docs/rules/<id>.md); without RULE,
    /// every lint rule id with its default level and group.
    Explain(ExplainArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// A lint rule id, e.g. require-concurrent-index-creation.
    pub rule: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The role to probe as: the one the application connects as.
    #[arg(long)]
    pub role: String,
    /// The realm the application's setting is put at.
    #[arg(long, value_name = "ID")]
    pub realm: String,
    /// The realm that must stay out of reach (default: another realm of the realms table); rows
    /// of it are made from --realm's rows when it has none, and rolled back.
    #[arg(long, value_name = "ID")]
    pub other: Option<String>,
    /// lock_timeout for the probe's transaction (0: wait).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
}

/// Parse durations such as `2s`, `500ms`, `1m`, `0` (off).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "ms"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; use e.g. 500ms, 2s, 1m"))?;
    let factor = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{s}` has an unknown unit; use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(value * factor))
}

/// Parse amounts of bytes as PostgreSQL writes them: `16MB`, `512kB`, `1GB`, `4096` (bytes).
/// Units are powers of 1024, as in postgresql.conf; case does not matter.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let i = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = (&t[..i], t[i..].trim());
    let value: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an amount of bytes; use e.g. 64MB, 512kB, 1GB"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kb" => 10,
        "mb" => 20,
        "gb" => 30,
        "tb" => 40,
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit; use B, kB, MB, GB or TB"
            ))
        }
    };
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[derive(Debug, Clone, Args)]
pub struct MigrationsDir {
    /// Directory holding `<VERSION>_<description>.sql` files.
    #[arg(long = "dir", default_value = "migrations", value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub source: MigrationsDir,
    /// Print the plan and the SQL without touching the database.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop after this version.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<i64>,
    /// How long to wait for another runner's migration lock.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub lock_wait: Duration,
    /// lock_timeout for every migration session; a migration that hits it is retried.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// How many times to retry a migration that hit lock_timeout before giving up.
    #[arg(long, default_value_t = 8)]
    pub lock_retries: u32,
    /// statement_timeout for migration sessions (0 = off, whatever the role's default).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub statement_timeout: Duration,
    /// Apply even though an applied migration's file changed.
    #[arg(long)]
    pub allow_modified: bool,
    /// Apply even though an applied version has no file any more.
    #[arg(long)]
    pub allow_missing: bool,
    /// Apply unapplied files older than the newest applied version.
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// Commit a migration even when it introduces error-severity verify violations.
    #[arg(long)]
    pub allow_violations: bool,
    /// Skip the verify guard entirely.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub source: MigrationsDir,
    /// Exit 1 when anything is pending, modified, missing, out of order or partial.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub source: MigrationsDir,
    /// Mark every file with a version up to and including this one as applied.
    #[arg(long, value_name = "N")]
    pub version: i64,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Also check row level security (the rls-* rules), as `[rls] enabled = true` does.
    #[arg(long)]
    pub rls: bool,
    /// Also check what a target platform enforces: `citus` (realm column as distribution
    /// column; prints each table's class). Overrides `profile` in the config.
    #[arg(long, value_enum, value_name = "PROFILE")]
    pub profile: Option<ProfileArg>,
}

/// `--profile` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileArg {
    Citus,
}

impl From<ProfileArg> for crate::rules::Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Citus => crate::rules::Profile::Citus,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Files or directories (default: migrations/).
    pub paths: Vec<PathBuf>,
    /// Also run these rules or groups (locking, compatibility, style, realm, correctness),
    /// e.g. the opt-in require-table-schema; comma-separated, repeatable.
    #[arg(long, value_name = "RULE|GROUP,…")]
    pub include: Vec<String>,
    /// Do not run these rules or groups (wins over --include and the config).
    #[arg(long, value_name = "RULE|GROUP,…")]
    pub exclude: Vec<String>,
    /// The tool that will apply these files. `other`: a transaction is not assumed around a
    /// file, nor timeouts or resumption (require-timeout-settings and prefer-robust-stmts on).
    #[arg(long, value_enum, default_value_t = RunnerArg::Realmguard)]
    pub assume_runner: RunnerArg,
    /// The PostgreSQL major version the migrations will run on (default: any supported one);
    /// older servers rewrite on a constant default (before 11) and scan on SET NOT NULL despite
    /// a validated check (before 12).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(9..=99))]
    pub pg_version: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerArg {
    Realmguard,
    Other,
}

impl LintArgs {
    /// The command line's lint options; an unknown rule or group is an error.
    pub fn options(&self) -> anyhow::Result<crate::lint::LintOptions> {
        use crate::lint::options::parse_rule_list;
        Ok(crate::lint::LintOptions {
            include: parse_rule_list(&self.include)?,
            exclude: parse_rule_list(&self.exclude)?,
            runner: match self.assume_runner {
                RunnerArg::Realmguard => crate::lint::Runner::Realmguard,
                RunnerArg::Other => crate::lint::Runner::Other,
            },
            pg_version: self.pg_version,
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Query files or directories: .sql (sqlc too), .sqlx/query-*.json, JSON-lines logs
    /// (default: [audit] paths of the config).
    pub paths: Vec<PathBuf>,
    /// Read the schema from these migration files instead of the live database.
    #[arg(long, value_name = "DIR")]
    pub schema_from: Option<PathBuf>,
    /// Also audit every statement of the database's pg_stat_statements view.
    #[arg(long)]
    pub from_pg_stat_statements: bool,
    /// Baseline file (default: [audit] baseline, else schema/audit-baseline.json when it exists).
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
    /// Write every current finding to the baseline file and exit 0.
    #[arg(long)]
    pub write_baseline: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub source: MigrationsDir,
    /// Server on which to create the scratch database (default: --database-url, else embedded).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub scratch_url: Option<String>,
    /// Also check row level security (the rls-* rules), as `[rls] enabled = true` does.
    #[arg(long)]
    pub rls: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackfillCommand {
    /// Print the ordered online steps, each with its SQL and the lock it takes.
    Plan(BackfillArgs),
    /// Execute the plan; resumable after a crash, kill or Ctrl-C.
    Run(BackfillRunArgs),
    /// Each table's phase and progress.
    Status(BackfillArgs),
    /// Drop the fill triggers once the application writes the realm column itself: each in
    /// its own short transaction under lock_timeout, retried like a run's steps.
    Finish(BackfillFinishArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {}

#[derive(Debug, Clone, Args)]
pub struct BackfillRunArgs {
    /// Target duration of one fill batch; the batch size adapts to it.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub batch_ms: Duration,
    /// lock_timeout for every DDL step (SET LOCAL), retried with backoff and jitter; a step whose
    /// lock blocks reads or writes asks with an eighth of it first, doubling per retry.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// Give up on a step after this many lock timeouts.
    #[arg(long, default_value_t = 30)]
    pub lock_retries: u32,
    /// Preflight: refuse when a session has been in a transaction longer than this.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub max_transaction_age: Duration,
    /// Parallel workers an index build or a validation scan may use besides its own backend.
    /// 0 (default) keeps each step on one core, so the application keeps the others.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub workers: u32,
    /// Before each step and each fill batch, wait while a standby (any session in
    /// pg_stat_replication) has more than this much WAL not yet replayed, e.g. 64MB. Needs
    /// pg_monitor (or pg_read_all_stats) to see the standbys' positions. Off by default.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_replication_lag: Option<u64>,
    /// Refuse to start when pg_stat_statements has seen a `SELECT *` or `RETURNING *` on a table
    /// the run adds the realm column to (a session that prepared one gets SQLSTATE 0A000), or
    /// when pg_stat_statements cannot be read.
    #[arg(long)]
    pub refuse_prepared_star: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BackfillFinishArgs {
    /// lock_timeout for each DROP TRIGGER (ACCESS EXCLUSIVE), asked with an eighth of it first
    /// and retried with backoff and jitter.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// Give up on a trigger after this many lock timeouts.
    #[arg(long, default_value_t = 30)]
    pub lock_retries: u32,
    /// Print the steps without running them.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum RealmCommand {
    /// Prove row level security keeps realm --other out of reach of --role at --realm, in a
    /// transaction that is always rolled back. Exit 1 naming each table that leaks.
    Probe(ProbeArgs),
    /// The realms and, with --counts, their rows per realm-scoped table.
    List(RealmListArgs),
    /// Copy a realm to another database: preflight, copy in one snapshot, verify, commit once.
    /// The source is not changed.
    Copy(RealmCopyArgs),
    /// Fence the realm on the source, copy and verify it, then delete it from the source in
    /// batches; resumable by phase after a crash, kill or Ctrl-C.
    Move(RealmMoveArgs),
    /// Row counts and content hashes of a realm per table on both sides; exit 1 on a difference.
    Diff(RealmDiffArgs),
    /// Delete a realm online: child tables first in short time-sized batches, then its row in
    /// the realms table.
    Delete(RealmDeleteArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RealmMoveArgs {
    #[command(flatten)]
    pub realm: RealmTo,
    /// Print the plan (tables, estimated rows, the fence, copy and delete SQL) without running it.
    #[arg(long)]
    pub dry_run: bool,
    /// Move through row-filtered logical replication (PostgreSQL 15+, wal_level = logical): the
    /// realm is fenced only for the last changes to drain, not for the whole copy.
    #[arg(long)]
    pub online: bool,
    /// lock_timeout for each fence trigger's DDL and each delete batch, retried with backoff.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// Target duration of one delete batch; the batch size adapts to it.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub batch_ms: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct RealmDeleteArgs {
    /// The realm's id (the key of the realms table).
    #[arg(long, value_name = "ID")]
    pub realm: String,
    /// Print the tables, estimated rows and batch statements without deleting.
    #[arg(long)]
    pub dry_run: bool,
    /// lock_timeout for each delete batch, retried with backoff.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// Target duration of one delete batch; the batch size adapts to it.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub batch_ms: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct RealmListArgs {
    /// Count the rows of every realm in every realm-scoped table.
    #[arg(long)]
    pub counts: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RealmTo {
    /// The realm's id (the key of the realms table).
    #[arg(long, value_name = "ID")]
    pub realm: String,
    /// The target database (the worker instance): a URL, or the name of a target of
    /// schema/fleet.toml (`fleet init --local` writes one for the embedded cluster).
    #[arg(long, value_name = "URL|NAME", hide_env_values = true)]
    pub to: String,
}

#[derive(Debug, Clone, Args)]
pub struct RealmCopyArgs {
    #[command(flatten)]
    pub realm: RealmTo,
    /// Print the tables, estimated rows and statements without copying.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RealmDiffArgs {
    #[command(flatten)]
    pub realm: RealmTo,
}

#[derive(Debug, Subcommand)]
pub enum EmbeddedCommand {
    /// Print the embedded cluster's URL and whether it is running.
    Status,
    /// Start it (initialising it the first time).
    Start,
    /// Stop it.
    Stop,
    /// Print only its URL (starting it when needed), for `DATABASE_URL=$(realmguard embedded url)`.
    Url,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Each target's version, pending migrations and drift, read-only.
    Status(FleetStatusArgs),
    /// Migrate every target as `realmguard migrate` would, several at a time.
    Migrate(FleetMigrateArgs),
    /// Verify every target's live catalog.
    Verify(FleetVerifyArgs),
    /// Write a fleet file; `--local N` for a hub and N workers on the embedded cluster.
    Init(FleetInitArgs),
}

#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Fleet file (default: schema/fleet.toml).
    #[arg(long = "fleet", value_name = "PATH")]
    pub fleet: Option<PathBuf>,
    /// Targets worked on at once (default: the file's `jobs`, else min(8, targets)).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// After a failure: `stop` starts no new target (running ones finish the migration in
    /// hand), `continue` goes on. Default: the file's `on_error`, else stop.
    #[arg(long, value_name = "stop|continue", value_parser = ["stop", "continue"])]
    pub on_error: Option<String>,
    /// With `continue`: start no new target after K failures (0 = no cap).
    #[arg(long, value_name = "K")]
    pub max_failures: Option<usize>,
    /// The group migrated first; all of it must succeed before any other target starts.
    #[arg(long, value_name = "GROUP")]
    pub canary: Option<String>,
    /// Only these targets.
    #[arg(long, value_name = "NAME[,NAME…]", value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct FleetStatusArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub source: MigrationsDir,
    /// Exit 1 when any target has pending migrations.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FleetMigrateArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub migrate: MigrateArgs,
}

#[derive(Debug, Clone, Args)]
pub struct FleetVerifyArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub source: MigrationsDir,
}

#[derive(Debug, Clone, Args)]
pub struct FleetInitArgs {
    /// Create databases hub, worker_1 … worker_N on the embedded local cluster and name them.
    #[arg(long, value_name = "N", required = true, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub local: u32,
    /// Overwrite an existing fleet file.
    #[arg(long)]
    pub force: bool,
    /// Where to write it (default: schema/fleet.toml).
    #[arg(long = "fleet", value_name = "PATH")]
    pub fleet: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CitusCommand {
    /// Print the steps (reference tables, then realm tables parents first), the lock each
    /// holds and for about how long; exit 1 while `verify --profile citus` has errors.
    Plan(CitusArgs),
    /// Run the plan on a coordinator: one transaction per step under lock_timeout, recorded
    /// in realmguard.citus_steps; tables already distributed are skipped, so a rerun resumes.
    Distribute(CitusDistributeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CitusArgs {
    /// Shard count of the colocation group the first realm table creates (default: Citus's
    /// citus.shard_count).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64000))]
    pub shard_count: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct CitusDistributeArgs {
    #[command(flatten)]
    pub common: CitusArgs,
    /// lock_timeout for each step (SET LOCAL); a step that hits it is retried with backoff.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// Give up on a step after this many lock timeouts.
    #[arg(long, default_value_t = 10)]
    pub lock_retries: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("2 parsecs").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes_parse_in_postgresql_units() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("512kB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("16MB").unwrap(), 16 << 20);
        assert_eq!(parse_size("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_size(" 2 TB ").unwrap(), 2 << 40);
        assert!(parse_size("16 parsecs").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("-1MB").is_err());
        assert!(parse_size("99999999999TB").is_err());
    }
}
