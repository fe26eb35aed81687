//! Connections: where to connect (`--database-url`, `DATABASE_URL` or the embedded cluster), how
//! (with a timeout, an application_name, errors that never contain the password), and the small
//! SQL helpers every module needs (identifier quoting, PostgreSQL error details).

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::ConnectOptions;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection target that cannot be used, a connection that failed, or one of the small
/// catalog operations below that failed. No variant's text holds the URL's password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed database URL ({reason}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    MalformedUrl { reason: url::ParseError },
    #[error("database URL scheme `{scheme}` is not supported; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    UnsupportedScheme { scheme: String },
    /// sqlx refused the URL's options; `reason` is already redacted.
    #[error("malformed database URL: {reason}")]
    BadOptions { reason: String },
    #[error("malformed database URL")]
    Url(#[source] url::ParseError),
    #[error("malformed database URL")]
    Options(#[source] sqlx::Error),
    #[error("cannot connect to {target}")]
    Connect {
        /// The target's display form (no password).
        target: String,
        #[source]
        source: ConnectError,
    },
    #[error(transparent)]
    Embedded(#[from] crate::embedded::Error),
    #[error("cannot check index {index}")]
    IndexCheck {
        index: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create {what}")]
    Create {
        what: String,
        #[source]
        source: PgError,
    },
    #[error("cannot take an advisory lock")]
    AdvisoryLock(#[source] sqlx::Error),
    #[error("cannot look up who holds an advisory lock")]
    LockHolder(#[source] sqlx::Error),
}

/// Why a connection attempt failed, in words that say what to check.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A TLS file the sslmode reads cannot be opened (sqlx would only say "No such file").
    #[error("cannot read {key} {path}: {reason}")]
    TlsFile {
        key: String,
        path: String,
        reason: std::io::Error,
    },
    #[error("{}", describe_connect_error(.0))]
    Refused(sqlx::Error),
    #[error("no answer within {secs}s")]
    Timeout { secs: u64 },
}

/// A database error rendered as [`describe_pg_error`] does: PostgreSQL's message, SQLSTATE,
/// detail and hint on one line. (The sqlx error is kept, not chained: its text would repeat.)
#[derive(Debug, thiserror::Error)]
#[error("{}", describe_pg_error(.0))]
pub struct PgError(pub sqlx::Error);

/// A resolved connection target. `display` is safe to print: it never holds the password.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub display: String,
}

impl Target {
    /// `url`, or with none the embedded local cluster (started on demand); the second value is
    /// the embedded cluster's socket directory when that is what was chosen, for the caller to
    /// announce.
    pub async fn resolve(url: Option<&str>) -> Result<(Target, Option<PathBuf>), Error> {
        match url {
            Some(u) if !u.trim().is_empty() => Ok((Target::from_url(u)?, None)),
            _ => {
                let cluster = crate::embedded::Cluster::default_for_cwd()?;
                cluster.ensure_started()?;
                let url = cluster.url("postgres");
                Ok((
                    Target {
                        display: url.clone(),
                        url,
                    },
                    Some(cluster.socket_dir.clone()),
                ))
            }
        }
    }

    pub fn from_url(url: &str) -> Result<Target, Error> {
        let parsed = url::Url::parse(url).map_err(|reason| Error::MalformedUrl { reason })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(Error::UnsupportedScheme {
                scheme: parsed.scheme().to_string(),
            });
        }
        PgConnectOptions::from_str(url).map_err(|e| Error::BadOptions {
            reason: redact(&e.to_string(), &secrets_of(Some(url))),
        })?;
        Ok(Target {
            url: url.to_string(),
            display: redact_url(url),
        })
    }

    /// The same server, another database.
    pub fn with_database(&self, db: &str) -> Result<Target, Error> {
        let mut u = url::Url::parse(&self.url).map_err(Error::Url)?;
        u.set_path(&format!("/{db}"));
        Ok(Target {
            url: u.to_string(),
            display: redact_url(u.as_str()),
        })
    }

    pub async fn connect(&self) -> Result<PgConnection, Error> {
        let failed = |source| Error::Connect {
            target: self.display.clone(),
            source,
        };
        // sqlx reports a TLS file it cannot open as a bare "No such file or directory" from the
        // connection attempt; name the file instead.
        tls_files_readable(&self.url).map_err(failed)?;
        let opts = PgConnectOptions::from_str(&self.url)
            .map_err(Error::Options)?
            .application_name("realmguard")
            .disable_statement_logging();
        let prefer = matches!(opts.get_ssl_mode(), PgSslMode::Prefer);
        let first = tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await;
        let result = match first {
            // `prefer` promises no verification, and libpq retries without TLS when the
            // handshake fails in that mode; do the same when rustls cannot accept the
            // certificate at all (Citus's self-signed X.509 v1 certificate, for one, which
            // webpki refuses to parse even with verification off). See docs/citus.md.
            Ok(Err(e)) if prefer && is_tls_refusal(&e) => {
                let plain = opts.clone().ssl_mode(PgSslMode::Disable);
                tokio::time::timeout(CONNECT_TIMEOUT, plain.connect()).await
            }
            other => other,
        };
        match result {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(failed(ConnectError::Refused(e))),
            Err(_) => Err(failed(ConnectError::Timeout {
                secs: CONNECT_TIMEOUT.as_secs(),
            })),
        }
    }
}

/// Whether a connection failed in the TLS handshake (the server's certificate refused, or the
/// handshake itself), as opposed to the server, the network or authentication.
fn is_tls_refusal(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

fn describe_connect_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => {
            let code = d
                .code()
                .map(|c| format!(" (SQLSTATE {c})"))
                .unwrap_or_default();
            let hint = if d.code().as_deref() == Some("28P01") {
                "; check the user and password in the URL"
            } else if d.code().as_deref() == Some("3D000") {
                "; create it first or fix the database name in the URL"
            } else {
                ""
            };
            format!("{}{code}{hint}", d.message())
        }
        // rustls's verdict on the server's certificate arrives as invalid data on the stream.
        sqlx::Error::Io(io)
            if io.kind() == std::io::ErrorKind::InvalidData
                && io.to_string().contains("UnsupportedCertVersion") =>
        {
            format!(
                "{io}; the server's TLS certificate is X.509 v1 (Citus makes one), which rustls cannot read: give the server a v3 certificate, or use sslmode=prefer (falls back to no TLS) or sslmode=disable"
            )
        }
        sqlx::Error::Io(io)
            if io.kind() == std::io::ErrorKind::InvalidData
                && io.to_string().contains("certificate") =>
        {
            format!(
                "{io}; the server's TLS certificate was refused: check sslrootcert (the CA that signed it) and the host name in the URL"
            )
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => format!(
            "{io}; the TLS handshake failed: check sslmode in the URL and the server's TLS settings"
        ),
        sqlx::Error::Io(io) => {
            format!("{io}; is the server running and accepting connections there?")
        }
        sqlx::Error::Tls(e) => {
            format!("TLS: {e}; check sslmode, sslrootcert, sslcert and sslkey in the URL")
        }
        other => other.to_string(),
    }
}

/// Every TLS file the URL names that its sslmode will read can be opened: the CA file for
/// verify-ca and verify-full, the client certificate and key whenever TLS is required. (With
/// `prefer`, the default, or `disable`, a named file may never be read, so it is not checked.)
fn tls_files_readable(url: &str) -> Result<(), ConnectError> {
    let Ok(u) = url::Url::parse(url) else {
        return Ok(());
    };
    let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
    let mode = pairs
        .iter()
        .find(|(k, _)| k == "sslmode")
        .map(|(_, v)| v.as_str())
        .unwrap_or("prefer");
    let verifies = matches!(mode, "verify-ca" | "verify-full");
    for (k, v) in &pairs {
        let read = match k.as_str() {
            "sslrootcert" => verifies,
            "sslcert" | "sslkey" => verifies || mode == "require",
            _ => false,
        };
        if read {
            std::fs::File::open(v).map_err(|reason| ConnectError::TlsFile {
                key: k.clone(),
                path: v.clone(),
                reason,
            })?;
        }
    }
    Ok(())
}

/// The strings that must never be printed: the password of the URL, raw and percent-decoded.
pub fn secrets_of(url: Option<&str>) -> Vec<String> {
    let Some(u) = url.and_then(|u| url::Url::parse(u).ok()) else {
        return Vec::new();
    };
    let Some(pw) = u.password() else {
        return Vec::new();
    };
    let mut v = vec![pw.to_string()];
    if let Ok(decoded) = percent_decode(pw) {
        if decoded != pw {
            v.push(decoded);
        }
    }
    v.retain(|s| !s.is_empty());
    v
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// Replace every secret in `text` with `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut s = text.to_string();
    for secret in secrets {
        s = s.replace(secret.as_str(), "***");
    }
    s
}

/// The URL with its password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<malformed URL>".into(),
    }
}

/// Quote an identifier the way PostgreSQL's `quote_ident` does: only when needed.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !is_reserved(name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `schema.table`, each part quoted when needed.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A SQL string literal, as PostgreSQL's `quote_literal` writes it: a value with a backslash
/// becomes an `E'…'` literal with the backslashes doubled, so it reads the same whatever
/// `standard_conforming_strings` says.
pub fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// `body` as a dollar-quoted string constant whose tag does not occur in it: `$rg_0$`, else
/// `$rg_1$`, … A fixed tag would let a name or value written inside the body (a table named
/// `t$rg_0$x`) end the constant early, and what follows would run as SQL.
pub fn dollar_quote(body: &str) -> String {
    let tag = dollar_tag(body);
    format!("{tag}{body}{tag}")
}

/// The first `$rg_<n>$` that cannot close early inside `body`: absent from it, and not formed
/// by the body's end together with the closing tag (a body ending in `$rg_0` would).
pub fn dollar_tag(body: &str) -> String {
    (0u64..)
        .map(|n| format!("$rg_{n}$"))
        .find(|tag| {
            let closed = format!("{body}{tag}");
            closed.find(tag.as_str()) == Some(body.len())
        })
        .expect("some tag is absent from a finite body")
}

/// Text safe to put after `--` in generated SQL: line breaks (which would end the comment) and
/// other control characters become `?`.
pub fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn is_reserved(word: &str) -> bool {
    // The fully reserved key words of PostgreSQL 15 (Appendix C); only these force quoting.
    const RESERVED: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "authorization",
        "binary",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "collation",
        "column",
        "concurrently",
        "constraint",
        "create",
        "cross",
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "freeze",
        "from",
        "full",
        "grant",
        "group",
        "having",
        "ilike",
        "in",
        "initially",
        "inner",
        "intersect",
        "into",
        "is",
        "isnull",
        "join",
        "lateral",
        "leading",
        "left",
        "like",
        "limit",
        "localtime",
        "localtimestamp",
        "natural",
        "not",
        "notnull",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "outer",
        "overlaps",
        "placing",
        "primary",
        "references",
        "returning",
        "right",
        "select",
        "session_user",
        "similar",
        "some",
        "symmetric",
        "system_user",
        "table",
        "tablesample",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "verbose",
        "when",
        "where",
        "window",
        "with",
    ];
    RESERVED.contains(&word)
}

/// SQLSTATE of a database error, if it is one.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
        _ => None,
    }
}

/// `lock_not_available`: lock_timeout expired.
pub const LOCK_TIMEOUT: &str = "55P03";
/// `deadlock_detected`.
pub const DEADLOCK: &str = "40P01";

/// Whether the index `name` (as SQL, qualified when needed) is valid; `None` when it does not
/// exist. A failed or killed `CREATE INDEX CONCURRENTLY` leaves an invalid one that
/// `IF NOT EXISTS` would silently accept: migrate and backfill both check before trusting it.
pub async fn index_valid(conn: &mut PgConnection, name: &str) -> Result<Option<bool>, Error> {
    sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|source| Error::IndexCheck {
            index: name.to_string(),
            source,
        })
}

/// Run `IF NOT EXISTS` DDL for realmguard's own schema. Two sessions creating the same schema or
/// table at once (migrate and backfill keep separate advisory locks) race inside the catalog: the
/// loser gets a unique violation (23505) although the object now exists; one retry settles it.
pub async fn create_if_missing(
    conn: &mut PgConnection,
    ddl: &str,
    what: &str,
) -> Result<(), Error> {
    for attempt in 0..2 {
        match sqlx::raw_sql(ddl).execute(&mut *conn).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt == 0 && sqlstate(&e).as_deref() == Some("23505") => continue,
            Err(e) => {
                return Err(Error::Create {
                    what: what.to_string(),
                    source: PgError(e),
                })
            }
        }
    }
    Ok(())
}

/// PostgreSQL's message, SQLSTATE, detail and hint on one line.
pub fn describe_pg_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => {
            let mut s = d.message().to_string();
            if let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                s = format!("{} (SQLSTATE {})", pg.message(), pg.code());
                if let Some(detail) = pg.detail() {
                    s.push_str(&format!("; detail: {detail}"));
                }
                if let Some(hint) = pg.hint() {
                    s.push_str(&format!("; hint: {hint}"));
                }
            }
            s.replace('\n', " ")
        }
        other => other.to_string(),
    }
}

/// The character position (1-based) PostgreSQL reported inside the statement, if any.
pub fn error_position(e: &sqlx::Error) -> Option<usize> {
    let sqlx::Error::Database(d) = e else {
        return None;
    };
    let pg = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    match pg.position()? {
        sqlx::postgres::PgErrorPosition::Original(p) => Some(p),
        _ => None,
    }
}

/// Retry delay for attempt `n` (0-based): exponential from `base`, capped, with ±50 % jitter so
/// that several runners do not retry in lock-step.
pub fn backoff(n: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << n.min(16));
    let d = exp.min(cap);
    let jitter = 0.5 + fastrand::f64();
    d.mul_f64(jitter)
}

/// Lock contention that a retry may get past: `lock_timeout` expired or a deadlock was broken.
pub fn is_lock_conflict(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some(LOCK_TIMEOUT | DEADLOCK))
}

/// How [`poll_advisory_lock`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockPoll {
    Taken,
    /// Still held by another session when the wait ran out (its pid, when visible).
    Held(Option<i32>),
}

/// Take the session-level advisory lock `key`, polling `pg_try_advisory_lock` with jittered
/// backoff for up to `wait`, instead of blocking forever as `pg_advisory_lock` would. `on_wait`
/// hears the pid of each new holder seen while waiting, so the caller can name it.
pub async fn poll_advisory_lock(
    conn: &mut PgConnection,
    key: i64,
    wait: Duration,
    mut on_wait: impl FnMut(i32),
) -> Result<LockPoll, Error> {
    let started = std::time::Instant::now();
    let mut announced: Option<i32> = None;
    let mut attempt = 0;
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::AdvisoryLock)?;
        if got {
            return Ok(LockPoll::Taken);
        }
        let holder = advisory_lock_holder(conn, key).await?;
        if started.elapsed() >= wait {
            return Ok(LockPoll::Held(holder));
        }
        if let Some(pid) = holder.filter(|p| announced != Some(*p)) {
            on_wait(pid);
            announced = Some(pid);
        }
        let left = wait.saturating_sub(started.elapsed());
        let pause = backoff(
            attempt,
            Duration::from_millis(25),
            Duration::from_millis(500),
        );
        tokio::time::sleep(pause.min(left)).await;
        attempt += 1;
    }
}

/// The pid holding the advisory lock `key` in this database (a bigint key is split into
/// classid/objid in `pg_locks`).
async fn advisory_lock_holder(conn: &mut PgConnection, key: i64) -> Result<Option<i32>, Error> {
    let pid: Option<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND objsubid = 1
            AND classid = ($1 >> 32)::bigint::oid AND objid = ($1 & 4294967295)::bigint::oid
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          LIMIT 1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(Error::LockHolder)?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dollar_tag_is_absent_from_the_body() {
        assert_eq!(dollar_tag("BEGIN RETURN NEW; END"), "$rg_0$");
        assert_eq!(dollar_tag("t$rg_0$x"), "$rg_1$");
        assert_eq!(dollar_tag("$rg_0$ $rg_1$ $rg_2$"), "$rg_3$");
        // The body's end and the closing tag must not form the tag early.
        assert_eq!(dollar_tag("x$rg_0"), "$rg_1$");
        assert_eq!(dollar_tag("x$"), "$rg_0$");
        assert_eq!(dollar_tag(""), "$rg_0$");
        for body in ["a$realmguard$b", "$rg_0$", "x$rg_0", "$$", "q$rg_1$$rg_0$"] {
            let q = dollar_quote(body);
            let tag = dollar_tag(body);
            assert_eq!(q, format!("{tag}{body}{tag}"));
            // The constant ends exactly at the closing tag.
            assert_eq!(q[tag.len()..].find(tag.as_str()), Some(body.len()));
        }
    }

    #[test]
    fn literals_and_comments_cannot_break_out() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b'"), r"E'a\\b'''");
        assert_eq!(comment_text("a\nDROP TABLE x;\r--"), "a?DROP TABLE x;?--");
    }

    #[test]
    fn tls_files_are_checked_only_when_the_sslmode_reads_them() {
        let url = |q: &str| format!("postgres://u@h/db?{q}");
        let err = tls_files_readable(&url("sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot read sslrootcert /nonexistent/ca.crt: No such file or directory (os error 2)"
        );
        assert!(tls_files_readable(&url("sslmode=require&sslkey=/nonexistent/k")).is_err());
        // Not read by these modes: no refusal.
        for q in [
            "sslmode=require&sslrootcert=/nonexistent/ca.crt",
            "sslmode=disable&sslcert=/nonexistent/c",
            "sslrootcert=/nonexistent/ca.crt",
        ] {
            assert!(tls_files_readable(&url(q)).is_ok(), "{q}");
        }
    }

    #[test]
    fn quoting_matches_postgres() {
        assert_eq!(quote_ident("groups"), "groups");
        assert_eq!(quote_ident("Groups"), "\"Groups\"");
        assert_eq!(quote_ident("my table"), "\"my table\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1x"), "\"1x\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn passwords_are_redacted() {
        let url = "postgres://bob:s3cr%40t@db.example:5432/app";
        assert_eq!(redact_url(url), "postgres://bob:***@db.example:5432/app");
        let secrets = secrets_of(Some(url));
        assert!(secrets.contains(&"s3cr@t".to_string()));
        assert_eq!(
            redact("failed for s3cr@t and s3cr%40t", &secrets),
            "failed for *** and ***"
        );
    }

    #[test]
    fn malformed_urls_are_refused_without_the_password() {
        let err = Target::from_url("postgres://bob:hunter2@host:notaport/db").unwrap_err();
        let msg = redact(
            &format!("{err:#}"),
            &secrets_of(Some("postgres://bob:hunter2@host:notaport/db")),
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(Target::from_url("mysql://x@y/z").is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(2);
        for n in 0..20 {
            assert!(backoff(n, Duration::from_millis(50), cap) <= cap.mul_f64(1.5));
        }
        assert!(backoff(0, Duration::from_millis(50), cap) <= Duration::from_millis(75));
    }
}
