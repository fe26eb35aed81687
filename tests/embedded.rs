//! The embedded cluster, from a checkout the `postgres` user cannot enter.

use crate::common::{realmguard_cmd, Run, TempDir};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn works_from_a_checkout_under_a_0700_directory() {
    let outer = TempDir::new("private");
    std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let checkout = outer.path().join("checkout");
    std::fs::create_dir_all(checkout.join("migrations")).unwrap();
    std::fs::write(
        checkout.join("migrations/0001_t.sql"),
        "CREATE TABLE t (id int PRIMARY KEY);\n",
    )
    .unwrap();

    let run = |args: &'static [&'static str]| {
        let mut c = realmguard_cmd(&checkout);
        c.env_remove("REALMGUARD_HOME").args(args);
        async move { Run::from(c.output().await.unwrap()) }
    };
    let first = run(&["migrate"]).await;
    first.expect_code(0);
    first.expect_stderr("embedded local cluster");
    first.expect_stdout("Applied 1 migration(s)");
    let again = run(&["migrate"]).await;
    again.expect_code(0);
    again.expect_stdout("Nothing to apply");
    let st = run(&["embedded", "status", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["running"], true);
    run(&["embedded", "stop"]).await.expect_code(0);
    let st = run(&["embedded", "status", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["running"], false);
    // The fallback data directory lives outside the checkout; remove it.
    if let Some(data) = v["data_dir"].as_str() {
        let root = std::path::Path::new(data).parent().unwrap();
        if !root.starts_with(outer.path()) {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}
