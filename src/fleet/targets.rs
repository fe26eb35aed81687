//! From the fleet file to the list of databases: URLs inline or read from the environment, more
//! targets from a query on a database, `--only` applied. Anything wrong here stops the run before
//! any target is touched: a fleet half-described is not a fleet to migrate.

use super::config::{url_source, FleetFile, UrlSource};
use super::{Error, Result};
use crate::db::{self, Target};
use sqlx::Row;

/// One database of the fleet.
#[derive(Debug, Clone)]
pub struct FleetTarget {
    pub name: String,
    pub group: Option<String>,
    pub target: Target,
    /// Strings never to print for this target (its password).
    pub secrets: Vec<String>,
}

impl FleetTarget {
    fn new(name: String, group: Option<String>, url: &str) -> Result<FleetTarget> {
        let target = Target::from_url(url).map_err(|source| Error::Target {
            name: name.clone(),
            source: Box::new(Error::Url { source }),
        })?;
        Ok(FleetTarget {
            secrets: db::secrets_of(Some(url)),
            name,
            group,
            target,
        })
    }
}

/// Every target of `file`, in file order, then the rows of `[targets_from]`.
pub async fn resolve(file: &FleetFile) -> Result<Vec<FleetTarget>> {
    let mut out = Vec::new();
    for t in &file.targets {
        let source = url_source(&t.url, &t.url_env).map_err(|message| Error::TargetUrlSource {
            name: t.name.clone(),
            message,
        })?;
        let url = url_of(&source).map_err(|e| Error::Target {
            name: t.name.clone(),
            source: Box::new(e),
        })?;
        out.push(FleetTarget::new(t.name.clone(), t.group.clone(), &url)?);
    }
    if let Some(from) = &file.targets_from {
        let source = url_source(&from.url, &from.url_env)
            .map_err(|message| Error::TargetsFromUrlSource { message })?;
        let url = url_of(&source).map_err(|e| Error::TargetsFrom {
            source: Box::new(e),
        })?;
        let listed = listed_targets(&url, &from.query, from.group.as_deref())
            .await
            .map_err(|e| Error::ListTargets {
                message: db::redact(&crate::output::cause_chain(&e), &db::secrets_of(Some(&url))),
            })?;
        for t in listed {
            if out.iter().any(|o| o.name == t.name) {
                return Err(Error::ListedTwice { name: t.name });
            }
            out.push(t);
        }
    }
    Ok(out)
}

pub fn url_of(source: &UrlSource) -> Result<String> {
    match source {
        UrlSource::Inline(u) => Ok(u.clone()),
        UrlSource::Env(var) => match std::env::var(var) {
            Ok(u) if !u.trim().is_empty() => Ok(u),
            Ok(_) => Err(Error::EnvEmpty { var: var.clone() }),
            Err(_) => Err(Error::EnvUnset { var: var.clone() }),
        },
    }
}

async fn listed_targets(url: &str, query: &str, group: Option<&str>) -> Result<Vec<FleetTarget>> {
    let source = Target::from_url(url).map_err(|source| Error::Url { source })?;
    let mut conn = source
        .connect()
        .await
        .map_err(|source| Error::Connect { source })?;
    let rows = sqlx::query(query)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| Error::TargetsQuery {
            source: Box::new(Error::Statement {
                message: db::describe_pg_error(&e),
            }),
        })?;
    let _ = sqlx::Connection::close(conn).await;
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let text = |col: &str| -> Result<Option<String>> {
            match r.try_get::<Option<String>, _>(col) {
                Ok(v) => Ok(v),
                Err(sqlx::Error::ColumnNotFound(_)) if col == "group" => Ok(None),
                Err(error) => Err(Error::TargetsColumn {
                    row: i + 1,
                    column: col.to_string(),
                    error,
                }),
            }
        };
        let (Some(name), Some(url)) = (text("name")?, text("url")?) else {
            return Err(Error::TargetsNull { row: i + 1 });
        };
        let g = text("group")?.or_else(|| group.map(str::to_string));
        if out.iter().any(|t: &FleetTarget| t.name == name) {
            return Err(Error::ListedTwiceByQuery { name });
        }
        out.push(FleetTarget::new(name, g, &url)?);
    }
    Ok(out)
}

/// Keep only the named targets (`--only a,b`); a name that is not in the fleet is an error.
pub fn only(targets: Vec<FleetTarget>, names: &[String]) -> Result<Vec<FleetTarget>> {
    if names.is_empty() {
        return Ok(targets);
    }
    for n in names {
        if !targets.iter().any(|t| &t.name == n) {
            let known: Vec<&str> = targets.iter().take(10).map(|t| t.name.as_str()).collect();
            let more = if targets.len() > 10 { ", …" } else { "" };
            return Err(Error::NotInFleet {
                name: n.clone(),
                known: format!("{}{more}", known.join(", ")),
            });
        }
    }
    Ok(targets
        .into_iter()
        .filter(|t| names.contains(&t.name))
        .collect())
}
