//! Citus: `verify --profile citus`, `citus plan | distribute` and the project's realm schema on
//! a real local Citus cluster (a coordinator and two workers, see tests/common/citus.rs).
//! Skipped, with the reason printed, only where Citus is not installed.

use crate::common::citus::{citus, CitusDb};
use crate::common::{realmguard_cmd, Run, TempDir};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn rg(url: &str, dir: &Path, args: &[&str]) -> Run {
    let mut c = realmguard_cmd(dir);
    c.env("DATABASE_URL", url).args(args);
    Run::from(c.output().await.expect("run realmguard"))
}

/// A Citus database with the project's migrations applied through the coordinator and two
/// realms of data.
async fn project_schema(tag: &str) -> Option<(CitusDb, TempDir)> {
    let cluster = citus()?;
    let cdb = cluster.db(tag).await;
    let dir = TempDir::new(tag);
    let migrations = repo().join("migrations");
    rg(
        &cdb.db.url,
        dir.path(),
        &["migrate", "--dir", migrations.to_str().unwrap()],
    )
    .await
    .expect_code(0);
    cdb.db
        .exec(
            "INSERT INTO realms (id, name) VALUES ('a', 'A'), ('b', 'B');
             INSERT INTO users (realm_id, email) SELECT r, 'u' || g || '@x' FROM unnest(array['a','b']) r, generate_series(1, 50) g;
             INSERT INTO groups (realm_id, name) SELECT r, 'g' || g FROM unnest(array['a','b']) r, generate_series(1, 5) g;
             INSERT INTO memberships (realm_id, user_id, group_id)
               SELECT u.realm_id, u.id, g.id FROM users u JOIN groups g ON g.realm_id = u.realm_id;",
        )
        .await;
    Some((cdb, dir))
}

const REALM_TABLES: [&str; 5] = [
    "users",
    "groups",
    "memberships",
    "policy_statement_types",
    "membership_statements",
];

#[tokio::test]
async fn the_project_schema_distributes_colocated_and_routes_a_realm_to_one_node() {
    let Some((cdb, dir)) = project_schema("dist").await else {
        return;
    };
    let db = &cdb.db;
    let url = db.url.as_str();
    // Before: the profile is clean, prints the classes; plain verify warns on the coordinator.
    let v = rg(url, dir.path(), &["verify", "--profile", "citus"]).await;
    v.expect_code(0).expect_stdout("citus classes (6)");
    assert!(
        v.stdout.contains("public.realms") && v.stdout.contains("reference"),
        "{}",
        v.stdout
    );
    let v = rg(url, dir.path(), &["verify"]).await;
    v.expect_code(0).expect_stdout("citus-not-distributed");
    let plan = rg(url, dir.path(), &["citus", "plan", "--shard-count", "4"]).await;
    plan.expect_code(0)
        .expect_stdout("create_reference_table('public.realms')")
        .expect_stdout("colocate_with => 'none', shard_count => 4")
        .expect_stdout("EXCLUSIVE (writes wait, reads go on)");

    rg(
        url,
        dir.path(),
        &["citus", "distribute", "--shard-count", "4"],
    )
    .await
    .expect_code(0)
    .expect_stdout("6 done");

    // Every realm table hash-distributed on realm_id, one colocation group; realms a reference.
    for t in REALM_TABLES {
        assert_eq!(
            db.scalar(&format!(
                "SELECT partmethod::text || ':' || column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition WHERE logicalrelid = 'public.{t}'::regclass"
            ))
            .await,
            "h:realm_id",
            "{t}"
        );
    }
    assert_eq!(
        db.count("SELECT DISTINCT colocationid FROM pg_dist_partition WHERE partmethod = 'h'")
            .await,
        1
    );
    assert_eq!(
        db.scalar("SELECT partmethod::text || repmodel::text FROM pg_dist_partition WHERE logicalrelid = 'realms'::regclass").await,
        "nt"
    );
    rg(url, dir.path(), &["verify"])
        .await
        .expect_code(0)
        .expect_stdout("0 errors, 0 warnings");
    rg(url, dir.path(), &["verify", "--profile", "citus"])
        .await
        .expect_code(0)
        .expect_stdout("0 errors, 0 warnings");

    // A realm's rows of every table sit in shards of the same index, on the same node.
    let placement = |t: &str, realm: &str| {
        format!(
            "SELECT s.shardminvalue || '@' || p.groupid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
              WHERE s.shardid = get_shard_id_for_distribution_column('{t}', '{realm}')"
        )
    };
    for realm in ["a", "b"] {
        let want = db.scalar(&placement("users", realm)).await;
        for t in REALM_TABLES {
            assert_eq!(
                db.scalar(&placement(t, realm)).await,
                want,
                "{t} of realm {realm}"
            );
        }
    }
    assert_eq!(
        db.count("SELECT * FROM memberships WHERE realm_id = 'a'")
            .await,
        250
    );

    // The realm-filtered join is one task (a router query); without the filter it fans out.
    let explain = |filter: &str| {
        format!(
            "EXPLAIN SELECT count(*) FROM users u JOIN memberships m ON m.user_id = u.id AND m.realm_id = u.realm_id {filter}"
        )
    };
    let plan_text = |rows: Vec<String>| rows.join("\n");
    let mut c = db.conn().await;
    let routed: Vec<String> = sqlx::query_scalar(&explain("WHERE u.realm_id = 'a'"))
        .fetch_all(&mut c)
        .await
        .unwrap();
    let routed = plan_text(routed);
    assert!(routed.contains("Task Count: 1"), "{routed}");
    let fanned: Vec<String> = sqlx::query_scalar(&explain(""))
        .fetch_all(&mut c)
        .await
        .unwrap();
    let fanned = plan_text(fanned);
    assert!(fanned.contains("Task Count: 4"), "{fanned}");

    // migrate keeps working through the coordinator after distribution, its guard included.
    let more = TempDir::new("dist-more");
    for f in std::fs::read_dir(repo().join("migrations")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, more.path().join(f.file_name().unwrap())).unwrap();
    }
    more.write(&[(
        "0099_users_locale.sql",
        "ALTER TABLE users ADD COLUMN locale text NOT NULL DEFAULT 'en';\n",
    )]);
    rg(
        url,
        dir.path(),
        &["migrate", "--dir", more.path().to_str().unwrap()],
    )
    .await
    .expect_code(0);
    assert_eq!(
        db.scalar("SELECT locale FROM users WHERE realm_id = 'b' LIMIT 1")
            .await,
        "en"
    );
    rg(url, dir.path(), &["verify"]).await.expect_code(0);
}

/// One `--profile citus` rule: a schema that breaks it, the statements that then fail on real
/// Citus with the error the rule predicts, and a near miss that goes through.
struct Case {
    rule: &'static str,
    /// The table the rule must name (in schema `bad_<n>`).
    table: &'static str,
    /// Tables `p` and `c` (and whatever else) in schema `{s}` (placeholder replaced).
    bad: &'static str,
    near: &'static str,
    /// What is run on Citus after the setup, in `{s}`; the last statement is the one that
    /// fails for `bad` and succeeds for `near`.
    run: &'static str,
    /// Run on a worker instead of the coordinator (the last statement only).
    on_worker: bool,
    error: &'static str,
    /// A warning whose near miss is the way through, still reported (row triggers).
    near_flagged: bool,
}

const P: &str =
    "CREATE TABLE {s}.p (id bigint, realm_id text NOT NULL, PRIMARY KEY (id, realm_id));";

const CASES: &[Case] = &[
    Case {
        rule: "citus-fk-ordinal",
        table: "c",
        bad: "CREATE TABLE {s}.c (id bigint, realm_id text NOT NULL, p_id bigint, p_realm text, PRIMARY KEY (id, realm_id), FOREIGN KEY (p_realm, p_id) REFERENCES {s}.p (realm_id, id));",
        near: "CREATE TABLE {s}.c (id bigint, realm_id text NOT NULL, p_id bigint, p_realm text, PRIMARY KEY (id, realm_id), FOREIGN KEY (realm_id, p_id) REFERENCES {s}.p (realm_id, id));",
        run: "SELECT create_distributed_table('{s}.p', 'realm_id', colocate_with => 'none'); SELECT create_distributed_table('{s}.c', 'realm_id', colocate_with => '{s}.p')",
        on_worker: false,
        error: "partition column in the same ordinal",
        near_flagged: false,
    },
    Case {
        rule: "citus-fk-set-null",
        table: "c",
        bad: "CREATE TABLE {s}.c (id bigint, realm_id text, p_id bigint, PRIMARY KEY (id, realm_id), FOREIGN KEY (p_id, realm_id) REFERENCES {s}.p (id, realm_id) ON DELETE SET NULL);",
        near: "CREATE TABLE {s}.c (id bigint, realm_id text, p_id bigint, PRIMARY KEY (id, realm_id), FOREIGN KEY (p_id, realm_id) REFERENCES {s}.p (id, realm_id) ON DELETE CASCADE);",
        run: "SELECT create_distributed_table('{s}.p', 'realm_id', colocate_with => 'none'); SELECT create_distributed_table('{s}.c', 'realm_id', colocate_with => '{s}.p')",
        on_worker: false,
        error: "SET NULL or SET DEFAULT is not supported",
        near_flagged: false,
    },
    Case {
        rule: "citus-realm-type-mismatch",
        table: "c",
        // Two tables agree on text, so the odd one out is c.
        bad: "CREATE TABLE {s}.d (id bigint, realm_id text NOT NULL, PRIMARY KEY (id, realm_id)); CREATE TABLE {s}.c (id bigint, realm_id varchar(20) NOT NULL, PRIMARY KEY (id, realm_id));",
        near: "CREATE TABLE {s}.c (id bigint, realm_id text NOT NULL, PRIMARY KEY (id, realm_id));",
        run: "SELECT create_distributed_table('{s}.p', 'realm_id', colocate_with => 'none'); SELECT create_distributed_table('{s}.c', 'realm_id', colocate_with => '{s}.p')",
        on_worker: false,
        error: "Distribution column types don't match",
        near_flagged: false,
    },
    Case {
        rule: "citus-reference-to-distributed",
        table: "g",
        bad: "CREATE TABLE {s}.g (id bigint PRIMARY KEY, p_id bigint, p_realm text, FOREIGN KEY (p_id, p_realm) REFERENCES {s}.p (id, realm_id));",
        near: "CREATE TABLE {s}.g (id bigint PRIMARY KEY); ALTER TABLE {s}.p ADD COLUMN g_id bigint REFERENCES {s}.g (id);",
        run: "SELECT create_reference_table('{s}.g'); SELECT create_distributed_table('{s}.p', 'realm_id', colocate_with => 'none')",
        on_worker: false,
        error: "foreign keys from reference tables and local tables to distributed tables are not supported",
        near_flagged: false,
    },
    Case {
        rule: "citus-statement-trigger",
        table: "p",
        bad: "CREATE FUNCTION {s}.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'; CREATE TRIGGER p_stmt AFTER INSERT ON {s}.p FOR EACH STATEMENT EXECUTE FUNCTION {s}.noop();",
        near: "CREATE FUNCTION {s}.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'; CREATE TABLE {s}.log (x text); CREATE TRIGGER log_stmt AFTER INSERT ON {s}.log FOR EACH STATEMENT EXECUTE FUNCTION {s}.noop();",
        run: "SELECT create_distributed_table('{s}.p', 'realm_id', colocate_with => 'none')",
        on_worker: false,
        error: "because it has triggers",
        near_flagged: false,
    },
    Case {
        rule: "citus-row-trigger",
        table: "p",
        bad: "CREATE FUNCTION {s}.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'; CREATE TRIGGER p_row BEFORE INSERT ON {s}.p FOR EACH ROW EXECUTE FUNCTION {s}.noop();",
        // The near miss is what distribute does for a row trigger: the unsafe-triggers setting.
        near: "CREATE FUNCTION {s}.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'; CREATE TRIGGER p_row BEFORE INSERT ON {s}.p FOR EACH ROW EXECUTE FUNCTION {s}.noop(); DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET citus.enable_unsafe_triggers = on', current_database()); END $$;",
        run: "SELECT create_distributed_table('{s}.p', 'realm_id', colocate_with => 'none')",
        on_worker: false,
        error: "because it has triggers",
        near_flagged: true,
    },
    Case {
        rule: "citus-rule",
        table: "p",
        bad: "CREATE TABLE {s}.log (x text); CREATE RULE p_log AS ON INSERT TO {s}.p DO ALSO INSERT INTO {s}.log VALUES ('x');",
        near: "CREATE TABLE {s}.log (x text); CREATE RULE log_keep AS ON INSERT TO {s}.log DO ALSO NOTIFY log;",
        run: "SELECT create_distributed_table('{s}.p', 'realm_id', colocate_with => 'none'); INSERT INTO {s}.p VALUES (1, 'a')",
        on_worker: false,
        error: "cannot perform an INSERT without a partition column value",
        near_flagged: false,
    },
    Case {
        rule: "citus-identity-int",
        table: "c",
        bad: "CREATE TABLE {s}.c (id int GENERATED BY DEFAULT AS IDENTITY, realm_id text NOT NULL, PRIMARY KEY (id, realm_id));",
        near: "CREATE TABLE {s}.c (id bigint GENERATED BY DEFAULT AS IDENTITY, realm_id text NOT NULL, PRIMARY KEY (id, realm_id));",
        run: "SELECT create_distributed_table('{s}.c', 'realm_id', colocate_with => 'none'); INSERT INTO {s}.c (realm_id) VALUES ('a')",
        on_worker: true,
        error: "not supported for column defaults of type int or smallint",
        near_flagged: false,
    },
];

async fn try_sql(url: &str, sql: &str) -> Result<(), String> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(sql)
        .execute(&mut c)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            sqlx::Error::Database(d) => {
                let pg = d.downcast_ref::<sqlx::postgres::PgDatabaseError>();
                format!("{} {}", pg.message(), pg.detail().unwrap_or_default())
            }
            other => other.to_string(),
        })
}

#[tokio::test]
async fn each_profile_rule_predicts_what_real_citus_refuses_and_its_near_miss_distributes() {
    let Some(cluster) = citus() else {
        return;
    };
    let dir = TempDir::new("citus-rules");
    for (n, case) in CASES.iter().enumerate() {
        for (bad, body) in [(true, case.bad), (false, case.near)] {
            // A database per variant: the verdict of verify and of Citus on that schema alone.
            let cdb = cluster.db(&format!("rule{n}")).await;
            let s = "app";
            let setup = format!("CREATE SCHEMA {s}; {}{}", P, body).replace("{s}", s);
            cdb.db.exec(&setup).await;
            let v = rg(
                &cdb.db.url,
                dir.path(),
                &["verify", "--profile", "citus", "--format", "json"],
            )
            .await;
            let json: serde_json::Value = serde_json::from_str(&v.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}\n{}", v.stdout, v.stderr));
            let found =
                json["violations"].as_array().unwrap().iter().any(|x| {
                    x["rule"] == case.rule && x["schema"] == s && x["table"] == case.table
                });
            assert_eq!(
                found,
                bad || case.near_flagged,
                "{} ({}): {}",
                case.rule,
                if bad { "bad" } else { "near miss" },
                v.stdout
            );
            let run = case.run.replace("{s}", s);
            let (before, last) = run
                .rsplit_once(';')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .unwrap_or((String::new(), run.clone()));
            if !before.trim().is_empty() {
                try_sql(&cdb.db.url, &before)
                    .await
                    .unwrap_or_else(|e| panic!("{}: setup on Citus failed: {e}", case.rule));
            }
            let url = if case.on_worker {
                &cdb.workers[0].url
            } else {
                &cdb.db.url
            };
            let got = try_sql(url, &last).await;
            match (bad, got) {
                (true, Err(e)) => assert!(
                    e.contains(case.error),
                    "{}: Citus said {e:?}, the rule predicted {:?}",
                    case.rule,
                    case.error
                ),
                (true, Ok(())) => panic!(
                    "{}: Citus accepted what the rule says it refuses",
                    case.rule
                ),
                (false, Err(e)) => panic!("{}: the near miss failed on Citus: {e}", case.rule),
                (false, Ok(())) => {}
            }
        }
    }
}

#[tokio::test]
async fn the_coordinator_over_tcp_is_reached_with_the_default_sslmode() {
    let Some(cluster) = citus() else {
        return;
    };
    let cdb = cluster.db("tls").await;
    let dir = TempDir::new("citus-tls");
    assert_eq!(
        cdb.db.scalar("current_setting('ssl')").await,
        "on",
        "Citus turns TLS on"
    );
    let tcp = cluster.tcp_url(&cdb.db.name);
    // Default (prefer): Citus's X.509 v1 certificate cannot be read by rustls; like libpq in
    // prefer mode, the connection is retried without TLS.
    rg(&tcp, dir.path(), &["verify"])
        .await
        .expect_code(0)
        .expect_stdout("verify: 0 tables");
    rg(&format!("{tcp}?sslmode=prefer"), dir.path(), &["verify"])
        .await
        .expect_code(0);
    // require promises encryption: refused in one line that names the cause.
    let req = rg(&format!("{tcp}?sslmode=require"), dir.path(), &["verify"]).await;
    req.expect_one_line_error().expect_stderr("X.509 v1");
}

#[tokio::test]
async fn distribute_killed_mid_way_resumes_where_it_stopped() {
    let Some((cdb, dir)) = project_schema("resume").await else {
        return;
    };
    let db = &cdb.db;
    // Enough rows that Citus's copy of memberships takes a while.
    db.exec(
        "INSERT INTO users (realm_id, email) SELECT 'b', 'bulk' || g FROM generate_series(1, 4000) g;
         INSERT INTO memberships (realm_id, user_id, group_id)
           SELECT 'b', u.id, g.id FROM users u JOIN groups g ON g.realm_id = u.realm_id
            WHERE u.realm_id = 'b' AND u.email LIKE 'bulk%';",
    )
    .await;
    let mut child = realmguard_cmd(dir.path())
        .env("DATABASE_URL", &db.url)
        .args(["citus", "distribute"])
        .spawn()
        .unwrap();
    // Wait until the memberships step is running (Citus copying its rows), then kill -9.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let running = db
            .count("SELECT 1 FROM pg_tables WHERE schemaname = 'realmguard' AND tablename = 'citus_steps'")
            .await
            == 1
            && db
                .count("SELECT 1 FROM realmguard.citus_steps WHERE table_name = 'public.memberships' AND state = 'running'")
                .await
                == 1;
        if running {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the memberships step never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;
    assert_eq!(
        db.count("SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'memberships'::regclass")
            .await,
        0,
        "the killed step left nothing behind"
    );
    let again = rg(&db.url, dir.path(), &["citus", "distribute"]).await;
    again.expect_code(0).expect_stdout("already distributed");
    assert_eq!(
        db.count("SELECT 1 FROM pg_dist_partition WHERE partmethod = 'h'")
            .await,
        5
    );
    assert_eq!(
        db.scalar("SELECT string_agg(state, ',' ORDER BY id) FROM realmguard.citus_steps WHERE table_name = 'public.memberships'").await,
        "interrupted,done"
    );
    rg(&db.url, dir.path(), &["verify"])
        .await
        .expect_code(0)
        .expect_stdout("0 errors, 0 warnings");
}
