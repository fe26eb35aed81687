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
        "0006_users_locale.sql",
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
