//! From the fleet file to the list of databases: URLs inline or read from the environment, more
//! targets from a query on a database, `--only` applied. Anything wrong here stops the run before
//! any target is touched: a fleet half-described is not a fleet to migrate.

use super::config::{url_source, FleetFile, UrlSource};
use crate::db::{self, Target};
use anyhow::{anyhow, bail, Context};
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
    fn new(name: String, group: Option<String>, url: &str) -> anyhow::Result<FleetTarget> {
        let target = Target::from_url(url).with_context(|| format!("target `{name}`"))?;
        Ok(FleetTarget {
            secrets: db::secrets_of(Some(url)),
            name,
            group,
            target,
        })
    }
}

/// Every target of `file`, in file order, then the rows of `[targets_from]`.
pub async fn resolve(file: &FleetFile) -> anyhow::Result<Vec<FleetTarget>> {
    let mut out = Vec::new();
    for t in &file.targets {
        let source =
            url_source(&t.url, &t.url_env).map_err(|m| anyhow!("target `{}`: {m}", t.name))?;
        let url = url_of(&source).with_context(|| format!("target `{}`", t.name))?;
        out.push(FleetTarget::new(t.name.clone(), t.group.clone(), &url)?);
    }
    if let Some(from) = &file.targets_from {
        let source =
            url_source(&from.url, &from.url_env).map_err(|m| anyhow!("[targets_from]: {m}"))?;
        let url = url_of(&source).context("[targets_from]")?;
        let listed = listed_targets(&url, &from.query, from.group.as_deref())
            .await
            .map_err(|e| {
                anyhow!(
                    "{}",
                    db::redact(&crate::output::error_chain(&e), &db::secrets_of(Some(&url)))
                )
            })?;
        for t in listed {
            if out.iter().any(|o| o.name == t.name) {
                bail!(
                    "target `{}` is listed twice (in the file and by [targets_from])",
                    t.name
                );
            }
            out.push(t);
        }
    }
    Ok(out)
}

pub fn url_of(source: &UrlSource) -> anyhow::Result<String> {
    match source {
        UrlSource::Inline(u) => Ok(u.clone()),
        UrlSource::Env(var) => match std::env::var(var) {
            Ok(u) if !u.trim().is_empty() => Ok(u),
            Ok(_) => bail!("environment variable {var} (url_env) is empty"),
            Err(_) => bail!("environment variable {var} (url_env) is not set"),
        },
    }
}

async fn listed_targets(
    url: &str,
    query: &str,
    group: Option<&str>,
) -> anyhow::Result<Vec<FleetTarget>> {
    let source = Target::from_url(url)?;
    let mut conn = source.connect().await?;
    let rows = sqlx::query(query)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| anyhow!("{}", db::describe_pg_error(&e)))
        .context("[targets_from]: the query failed")?;
    let _ = sqlx::Connection::close(conn).await;
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let text = |col: &str| -> anyhow::Result<Option<String>> {
            match r.try_get::<Option<String>, _>(col) {
                Ok(v) => Ok(v),
                Err(sqlx::Error::ColumnNotFound(_)) if col == "group" => Ok(None),
                Err(e) => bail!("[targets_from]: row {}: column `{col}`: {e}; the query must return text columns `name` and `url` (and optionally `group`)", i + 1),
            }
        };
        let (Some(name), Some(url)) = (text("name")?, text("url")?) else {
            bail!("[targets_from]: row {} has a NULL name or url", i + 1);
        };
        let g = text("group")?.or_else(|| group.map(str::to_string));
        if out.iter().any(|t: &FleetTarget| t.name == name) {
            bail!("[targets_from]: target `{name}` is listed twice");
        }
        out.push(FleetTarget::new(name, g, &url)?);
    }
    Ok(out)
}

/// Keep only the named targets (`--only a,b`); a name that is not in the fleet is an error.
pub fn only(targets: Vec<FleetTarget>, names: &[String]) -> anyhow::Result<Vec<FleetTarget>> {
    if names.is_empty() {
        return Ok(targets);
    }
    for n in names {
        if !targets.iter().any(|t| &t.name == n) {
            let known: Vec<&str> = targets.iter().take(10).map(|t| t.name.as_str()).collect();
            let more = if targets.len() > 10 { ", …" } else { "" };
            bail!(
                "--only names `{n}`, which is not a target of the fleet (targets: {}{more})",
                known.join(", ")
            );
        }
    }
    Ok(targets
        .into_iter()
        .filter(|t| names.contains(&t.name))
        .collect())
}
