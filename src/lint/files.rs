//! Which files `lint` reads, in migration order.

use super::*;
use std::collections::HashMap;

/// The files to lint, in migration order, each with whether it is reported. A directory gives its
/// `*.sql` files; a file given on its own brings along the earlier migrations of its directory as
/// context (unreported), so the realm rules know the tables it alters.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, bool)>, Error> {
    let default = [PathBuf::from(DEFAULT_DIR)];
    let paths = if paths.is_empty() {
        if !Path::new(DEFAULT_DIR).is_dir() {
            return Err(Error::NoDefaultDir);
        }
        &default[..]
    } else {
        paths
    };
    // Files grouped by directory (first-seen order), each group sorted by version.
    let mut groups: Vec<(PathBuf, Vec<(PathBuf, bool)>)> = Vec::new();
    // Where each file already is (group, index), so a file named twice is linted once; a map,
    // because comparing paths pairwise costs seconds at thousands of files.
    let mut seen: HashMap<PathBuf, (usize, usize)> = HashMap::new();
    let mut add = |groups: &mut Vec<(PathBuf, Vec<(PathBuf, bool)>)>, p: PathBuf, report: bool| {
        if let Some(&(gi, i)) = seen.get(&p) {
            groups[gi].1[i].1 |= report;
            return;
        }
        let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
        let gi = match groups.iter().position(|(d, _)| *d == dir) {
            Some(i) => i,
            None => {
                groups.push((dir, Vec::new()));
                groups.len() - 1
            }
        };
        let g = &mut groups[gi].1;
        seen.insert(p.clone(), (gi, g.len()));
        g.push((p, report));
    };
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| Error::Lint {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            for f in sql_files(p)? {
                add(&mut groups, f, true);
            }
        } else {
            if let Some(v) = version_of(p) {
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                for f in sql_files(&dir)? {
                    if version_of(&f).is_some_and(|fv| fv < v) {
                        let f = if p.parent().is_some_and(|d| d.as_os_str().is_empty()) {
                            PathBuf::from(f.file_name().unwrap_or_default())
                        } else {
                            f
                        };
                        add(&mut groups, f, false);
                    }
                }
            }
            add(&mut groups, p.clone(), true);
        }
    }
    let mut out = Vec::new();
    for (_, mut files) in groups {
        files.sort_by_cached_key(|(p, _)| (version_of(p).is_none(), version_of(p), p.clone()));
        out.extend(files);
    }
    Ok(out)
}

pub(super) fn sql_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut v = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries {
        let p = e
            .map_err(|reason| Error::DirEntry {
                dir: dir.to_path_buf(),
                reason,
            })?
            .path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // The same files migrate applies: down migrations and hidden files are not part of it.
        if name.ends_with(".sql")
            && !name.ends_with(".down.sql")
            && !name.starts_with('.')
            && p.is_file()
        {
            v.push(p);
        }
    }
    Ok(v)
}

/// The version migrate would give the file (its own name parser, so the two never disagree on
/// what is a migration or on its order).
pub(super) fn version_of(p: &Path) -> Option<i64> {
    crate::migrate::source::parse_name(p.file_name()?.to_str()?).map(|(v, _)| v)
}
