//! Migration files on disk: `<VERSION>_<description>.sql` (sqlx-cli's naming; `.up.sql` accepted,
//! `.down.sql` ignored), their normalised text, checksum and transaction mode.

use sha2::{Digest, Sha256, Sha384};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    pub description: String,
    pub path: PathBuf,
    /// The file's text with a UTF-8 BOM removed and CRLF folded to LF: what runs and is hashed.
    pub sql: String,
    /// `sha256:<hex>` over `sql`, so an editor that only changes line endings is not an edit.
    pub checksum: String,
    /// `-- realmguard:no-transaction` (or sqlx's `-- no-transaction`) as the first non-blank line.
    pub no_transaction: bool,
    /// SHA-384 of the raw bytes, as sqlx-cli records it (for adopting its history).
    pub sqlx_checksum: Vec<u8>,
}

impl Migration {
    /// Statements in the file as the runner counts them: a file the splitter cannot cut runs
    /// whole, as one.
    pub fn statement_count(&self) -> i32 {
        crate::split::split(&self.sql).map_or(1, |p| p.len() as i32)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("migrations directory {0} does not exist; create it or pass --dir")]
    MissingDir(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: file name does not fit the expected form <VERSION>_<description>.sql (VERSION a non-negative integer, e.g. 0003_add_groups.sql)")]
    BadName(PathBuf),
    #[error("{0} and {1} both have version {2}; versions must be unique")]
    Duplicate(PathBuf, PathBuf, i64),
    #[error("{0} is not valid UTF-8")]
    NotUtf8(PathBuf),
}

/// Read every migration in `dir`, sorted by version.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::MissingDir(dir.to_path_buf()));
    }
    let io = |source| SourceError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out: Vec<Migration> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".sql") || !path.is_file() {
            continue;
        }
        if name.ends_with(".down.sql") {
            continue;
        }
        let (version, description) =
            parse_name(&name).ok_or_else(|| SourceError::BadName(path.clone()))?;
        let bytes = std::fs::read(&path).map_err(|source| SourceError::Io {
            path: path.clone(),
            source,
        })?;
        out.push(from_bytes(version, description, path, &bytes)?);
    }
    out.sort_by_key(|m| m.version);
    for w in out.windows(2) {
        if w[0].version == w[1].version {
            return Err(SourceError::Duplicate(
                w[0].path.clone(),
                w[1].path.clone(),
                w[0].version,
            ));
        }
    }
    Ok(out)
}

/// `0003_add_groups.sql` → (3, "add groups").
pub fn parse_name(name: &str) -> Option<(i64, String)> {
    let stem = name
        .strip_suffix(".up.sql")
        .or_else(|| name.strip_suffix(".sql"))?;
    let (v, d) = stem.split_once('_')?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || d.is_empty() {
        return None;
    }
    Some((v.parse().ok()?, d.replace('_', " ")))
}

pub fn from_bytes(
    version: i64,
    description: String,
    path: PathBuf,
    bytes: &[u8],
) -> Result<Migration, SourceError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SourceError::NotUtf8(path.clone()))?;
    let sql = normalise(text);
    Ok(Migration {
        version,
        description,
        checksum: checksum(&sql),
        no_transaction: is_no_transaction(&sql),
        sqlx_checksum: Sha384::digest(bytes).to_vec(),
        sql,
        path,
    })
}

pub fn normalise(text: &str) -> String {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n")
}

pub fn checksum(sql: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(sql.as_bytes())))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `-- realmguard:no-transaction` (or sqlx's `-- no-transaction`) as the first non-blank line;
/// shared with lint so both agree on which files run outside a transaction.
pub fn is_no_transaction(sql: &str) -> bool {
    let first = sql
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let Some(rest) = first.strip_prefix("--") else {
        return false;
    };
    matches!(rest.trim(), "realmguard:no-transaction" | "no-transaction")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_name("0003_add_groups.sql"),
            Some((3, "add groups".into()))
        );
        assert_eq!(
            parse_name("20240101120000_init.up.sql"),
            Some((20240101120000, "init".into()))
        );
        assert_eq!(parse_name("abc_x.sql"), None);
        assert_eq!(parse_name("3-x.sql"), None);
        assert_eq!(parse_name("3_.sql"), None);
        assert_eq!(parse_name("-3_x.sql"), None);
    }

    #[test]
    fn crlf_and_bom_do_not_change_the_checksum() {
        let a = from_bytes(
            1,
            "a".into(),
            "a".into(),
            b"create table t (x int);\nselect 1;\n",
        )
        .unwrap();
        let b = from_bytes(
            1,
            "a".into(),
            "a".into(),
            "\u{feff}create table t (x int);\r\nselect 1;\r\n".as_bytes(),
        )
        .unwrap();
        assert_eq!(a.checksum, b.checksum);
        assert!(a.checksum.starts_with("sha256:") && a.checksum.len() == 7 + 64);
        let c = from_bytes(
            1,
            "a".into(),
            "a".into(),
            b"create table t (x bigint);\nselect 1;\n",
        )
        .unwrap();
        assert_ne!(a.checksum, c.checksum);
    }

    #[test]
    fn no_transaction_marker_must_lead() {
        let m = |s: &str| {
            from_bytes(1, "a".into(), "a".into(), s.as_bytes())
                .unwrap()
                .no_transaction
        };
        assert!(m(
            "\n\n-- realmguard:no-transaction\ncreate index concurrently i on t (x);"
        ));
        assert!(m("-- no-transaction\nselect 1;"));
        assert!(!m("select 1;\n-- realmguard:no-transaction\n"));
        assert!(!m("-- realmguard:no-transactions\n"));
    }
}
