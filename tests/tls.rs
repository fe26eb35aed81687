//! TLS over TCP against a real server: a cluster of its own that listens on 127.0.0.1 with a
//! certificate signed by a test CA and refuses unencrypted TCP (`hostnossl … reject`), so a
//! command that succeeds there proves the connection was encrypted.

use crate::common::{realmguard_cmd, Run, TempDir};
use realmguard::embedded::Cluster;
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed for the TLS test");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`{name}-ca.crt`) and, when `server`, a server certificate for localhost/127.0.0.1 it
/// signed (`server.crt`, `server.key`).
fn make_ca(dir: &Path, name: &str, server: bool) {
    let (key, crt) = (format!("{name}-ca.key"), format!("{name}-ca.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=realmguard test CA {name}"),
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
    );
    if server {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                &crt,
                "-CAkey",
                &key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "server.crt",
            ],
        );
    }
}

/// Hand the server's key to the user the server runs as (`postgres` when we are root, else
/// ourselves), readable by it alone: PostgreSQL refuses a key others can read.
fn give_key_to_server(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    crate::common::give_to_server_user(&key);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `realmguard verify` against `base` with the URL query `query`.
async fn verify_at(dir: &Path, base: &str, query: &str) -> Run {
    let mut c = realmguard_cmd(dir);
    c.env("DATABASE_URL", format!("{base}?{query}"))
        .arg("verify");
    Run::from(c.output().await.unwrap())
}

#[tokio::test]
async fn tls_is_used_verified_and_its_failures_are_one_line() {
    if realmguard::embedded::find_bindir().is_err() {
        eprintln!("skipped: the TLS test starts its own server and needs the server binaries");
        return;
    }
    let certs = TempDir::new("tls");
    make_ca(certs.path(), "good", true);
    make_ca(certs.path(), "other", false);
    let port = free_port();
    let crt = certs.path().join("server.crt");
    let key = certs.path().join("server.key");
    give_key_to_server(certs.path());
    let cluster = Cluster::throwaway_with(
        std::process::id(),
        port,
        &[
            ("listen_addresses", "127.0.0.1"),
            ("ssl", "on"),
            ("ssl_cert_file", &crt.to_string_lossy()),
            ("ssl_key_file", &key.to_string_lossy()),
        ],
        &[
            "hostssl all all 127.0.0.1/32 trust",
            "hostnossl all all 127.0.0.1/32 reject",
        ],
    )
    .expect("cannot start the TLS cluster");
    let base = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let verify_full = |ca: &str| {
        format!(
            "sslmode=verify-full&sslrootcert={}",
            certs.path().join(ca).display()
        )
    };
    let dir = TempDir::new("tls-run");

    // Encrypted and the server proven by the test CA: verify runs (an empty database: exit 0).
    let ok = verify_at(dir.path(), &base, &verify_full("good-ca.crt")).await;
    ok.expect_code(0);
    ok.expect_stdout("verify: 0 tables");
    // Encrypted without checking the certificate, as asked.
    verify_at(dir.path(), &base, "sslmode=require")
        .await
        .expect_code(0);

    // A certificate from a CA we do not trust: refused, one line, exit 2.
    let untrusted = verify_at(dir.path(), &base, &verify_full("other-ca.crt")).await;
    untrusted.expect_one_line_error();
    assert!(
        untrusted.stderr.contains("TLS certificate was refused")
            && !untrusted.stderr.contains("is the server running"),
        "{}",
        untrusted.stderr
    );
    // No TLS where the server demands it: the server's refusal, one line, exit 2.
    let plain = verify_at(dir.path(), &base, "sslmode=disable").await;
    plain.expect_one_line_error();
    plain.expect_stderr("no encryption");
    // A CA file that is not there: said plainly.
    let missing = verify_at(dir.path(), &base, &verify_full("/nonexistent/ca.crt")).await;
    missing.expect_one_line_error();
    missing.expect_stderr("cannot read sslrootcert /nonexistent/ca.crt");
    cluster.stop().unwrap();
}
