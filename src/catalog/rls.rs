//! What the `rls-*` rules read besides the tables: each table's row level security flags, owner
//! and policies (their expressions deparsed by `pg_get_expr`), the application role's standing
//! (superuser, BYPASSRLS, owner or member of the owner) and the views with their options. Two
//! queries whatever the size of the catalog (`sql/rls.sql`, `sql/rls_views.sql`), read only when
//! an RLS rule runs. Rows are decoded by column name.

use super::Result;
use sqlx::postgres::types::Oid;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::collections::HashMap;

const RLS_SQL: &str = include_str!("sql/rls.sql");
const VIEWS_SQL: &str = include_str!("sql/rls_views.sql");

/// Which commands a policy applies to (`pg_policy.polcmd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyCmd {
    All,
    Select,
    Insert,
    Update,
    Delete,
}

impl PolicyCmd {
    fn from_code(c: &str) -> PolicyCmd {
        match c {
            "r" => PolicyCmd::Select,
            "a" => PolicyCmd::Insert,
            "w" => PolicyCmd::Update,
            "d" => PolicyCmd::Delete,
            _ => PolicyCmd::All,
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            PolicyCmd::All => "ALL",
            PolicyCmd::Select => "SELECT",
            PolicyCmd::Insert => "INSERT",
            PolicyCmd::Update => "UPDATE",
            PolicyCmd::Delete => "DELETE",
        }
    }

    /// Whether the policy has a `USING` clause (all but INSERT).
    pub fn reads(self) -> bool {
        self != PolicyCmd::Insert
    }

    /// Whether the policy checks new rows (`WITH CHECK`, or `USING` in its place).
    pub fn writes(self) -> bool {
        matches!(self, PolicyCmd::All | PolicyCmd::Insert | PolicyCmd::Update)
    }

    /// Whether this policy is applied to command `c` (one of SELECT, INSERT, UPDATE, DELETE).
    pub fn covers(self, c: PolicyCmd) -> bool {
        self == PolicyCmd::All || self == c
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub permissive: bool,
    pub cmd: PolicyCmd,
    /// Role names (`public` for PUBLIC).
    pub roles: Vec<String>,
    /// Whether the application role is subject to it (always, when no role is stated).
    pub applies_to_app: bool,
    /// `USING` and `WITH CHECK` as `pg_get_expr` writes them.
    pub using: Option<String>,
    pub check: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RlsTable {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub enabled: bool,
    pub forced: bool,
    pub owner: String,
    /// The realm column's type (`format_type`), when the table has the column.
    pub realm_type: Option<String>,
    /// The application role owns the table / is a member (at any depth) of its owner.
    pub app_owns: bool,
    pub app_member_of_owner: bool,
    /// Another session holds or awaits ACCESS EXCLUSIVE on it: its policy expressions were not
    /// read (deparsing would queue behind that lock), so they cannot be judged this time.
    pub busy: bool,
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RlsView {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub security_invoker: bool,
    /// The application role has SELECT on it (true when no role is stated).
    pub app_can_read: bool,
    /// Relations its query reads directly.
    pub reads: Vec<u32>,
}

/// The application role as the catalog knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRole {
    pub name: String,
    pub superuser: bool,
    pub bypassrls: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RlsCatalog {
    pub tables: HashMap<u32, RlsTable>,
    pub views: Vec<RlsView>,
    /// `None` when no role is stated or it does not exist in this cluster.
    pub app_role: Option<AppRole>,
    /// The role stated in the config ("" when none), found or not.
    pub app_role_name: String,
    pub queries: usize,
}

impl RlsCatalog {
    pub async fn load(
        conn: &mut PgConnection,
        realm_column: &crate::config::RealmColumns,
        app_role: &str,
    ) -> Result<RlsCatalog> {
        let rows = sqlx::query(RLS_SQL)
            .bind(realm_column.all())
            .bind(app_role)
            .fetch_all(&mut *conn)
            .await
            .map_err(super::read("row level security"))?;
        let mut cat = RlsCatalog {
            app_role_name: app_role.to_string(),
            ..RlsCatalog::default()
        };
        for r in &rows {
            cat.add_row(r, app_role)?;
        }
        let views = sqlx::query(VIEWS_SQL)
            .bind(app_role)
            .fetch_all(&mut *conn)
            .await
            .map_err(super::read("the views"))?;
        cat.views = views.iter().map(view).collect::<Result<_, _>>()?;
        cat.queries = 2;
        Ok(cat)
    }

    fn add_row(&mut self, r: &PgRow, app_role: &str) -> Result<(), sqlx::Error> {
        let oid = r.try_get::<Oid, _>("oid")?.0;
        if self.app_role.is_none() && r.try_get::<bool, _>("app_exists")? {
            self.app_role = Some(AppRole {
                name: app_role.to_string(),
                superuser: r.try_get("app_superuser")?,
                bypassrls: r.try_get("app_bypassrls")?,
            });
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.tables.entry(oid) {
            slot.insert(RlsTable {
                oid,
                schema: r.try_get("schema")?,
                name: r.try_get("name")?,
                enabled: r.try_get("enabled")?,
                forced: r.try_get("forced")?,
                owner: r.try_get("owner")?,
                realm_type: r.try_get("realm_type")?,
                app_owns: r.try_get::<Option<bool>, _>("app_owns")?.unwrap_or(false),
                app_member_of_owner: r
                    .try_get::<Option<bool>, _>("app_member_of_owner")?
                    .unwrap_or(false),
                busy: r.try_get("busy")?,
                policies: Vec::new(),
            });
        }
        let Some(name) = r.try_get::<Option<String>, _>("policy")? else {
            return Ok(());
        };
        let cmd: String = r.try_get("cmd")?;
        let p = Policy {
            name,
            permissive: r.try_get("permissive")?,
            cmd: PolicyCmd::from_code(&cmd),
            roles: r
                .try_get::<Option<Vec<String>>, _>("roles")?
                .unwrap_or_default(),
            applies_to_app: r
                .try_get::<Option<bool>, _>("applies_to_app")?
                .unwrap_or(true),
            using: r.try_get("using_expr")?,
            check: r.try_get("check_expr")?,
        };
        if let Some(t) = self.tables.get_mut(&oid) {
            t.policies.push(p);
        }
        Ok(())
    }
}

fn view(r: &PgRow) -> Result<RlsView, sqlx::Error> {
    Ok(RlsView {
        oid: r.try_get::<Oid, _>("oid")?.0,
        schema: r.try_get("schema")?,
        name: r.try_get("name")?,
        security_invoker: r.try_get("security_invoker")?,
        app_can_read: r
            .try_get::<Option<bool>, _>("app_can_read")?
            .unwrap_or(false),
        reads: r
            .try_get::<Vec<i64>, _>("reads")?
            .into_iter()
            .map(|o| o as u32)
            .collect(),
    })
}
