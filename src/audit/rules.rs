//! The audit's rule ids, and each finding's message and fix in words. The messages name the
//! table as the query writes it (`memberships m`) and the condition that would bind it.

use sqlparser::tokenizer::Span;

pub const QUERY_MISSING_REALM_FILTER: &str = "query-missing-realm-filter";
pub const JOIN_WITHOUT_REALM: &str = "join-without-realm";
pub const INSERT_WITHOUT_REALM: &str = "insert-without-realm";
pub const QUERY_MULTI_REALM: &str = "query-multi-realm";
pub const REALM_COLUMN_UPDATED: &str = "realm-column-updated";
pub const SESSION_REALM_SETTING: &str = "session-realm-setting";
pub const QUERY_OPAQUE: &str = "query-opaque";
pub const BASELINE_STALE: &str = "baseline-stale";

/// A finding of the analysis, positioned inside its statement.
#[derive(Debug, Clone)]
pub struct Raw {
    pub rule: &'static str,
    /// Relative to the statement's text (sqlparser's 1-based line/column); empty: the statement.
    pub span: Span,
    /// The table as a user writes it (`groups`, `app.notes`); empty when none.
    pub table: String,
    /// The alias it has in the query, when it has one.
    pub alias: String,
    pub message: String,
    pub help: String,
    /// The reference is not bound (it makes an enclosing subquery unbound too).
    pub unbound: bool,
}

fn raw(rule: &'static str, span: Span, target: &str, message: String, help: String) -> Raw {
    let (table, alias) = match target.split_once(' ') {
        Some((t, a)) => (t.to_string(), a.to_string()),
        None => (target.to_string(), String::new()),
    };
    Raw {
        rule,
        span,
        table,
        alias,
        message,
        help,
        unbound: matches!(
            rule,
            QUERY_MISSING_REALM_FILTER | JOIN_WITHOUT_REALM | INSERT_WITHOUT_REALM | QUERY_OPAQUE
        ),
    }
}

/// No conjunct binds the reference.
pub fn missing_filter(
    target: &str,
    column: &str,
    setting: &str,
    insert: bool,
    in_join: bool,
    span: Span,
) -> Raw {
    let rule = if insert {
        INSERT_WITHOUT_REALM
    } else {
        QUERY_MISSING_REALM_FILTER
    };
    let what = if insert {
        "the INSERT's source reads"
    } else {
        "reads"
    };
    let place = if in_join {
        "the join's ON"
    } else {
        "the WHERE clause"
    };
    raw(
        rule,
        span,
        target,
        format!("{what} `{target}` without binding `{column}` to a realm: rows of every realm match"),
        format!(
            "add `AND {column} = current_setting('{setting}')` (or `= $n`, the request's realm) to {place}"
        ),
    )
}

/// An unbound reference joined to a bound one on other columns.
pub fn join_without_realm(
    target: &str,
    column: &str,
    bound: &str,
    bound_column: &str,
    in_on: bool,
    span: Span,
) -> Raw {
    let place = if in_on {
        "the join"
    } else {
        "the WHERE clause"
    };
    raw(
        JOIN_WITHOUT_REALM,
        span,
        target,
        format!(
            "`{target}` is joined to `{bound}` on columns that do not include `{column}`: rows of another realm with the same id join in"
        ),
        format!("add `AND {column} = {bound_column}` to {place}"),
    )
}

/// An INSERT into a realm-scoped table that does not name the realm column.
pub fn insert_without_realm_column(target: &str, column: &str, no_list: bool, span: Span) -> Raw {
    let message = if no_list {
        format!("INSERT into `{target}` without a column list: the realm column `{column}` is not named")
    } else {
        format!("INSERT into `{target}` does not name the realm column `{column}`")
    };
    Raw {
        unbound: false,
        ..raw(
            INSERT_WITHOUT_REALM,
            span,
            target,
            message,
            format!("name `{column}` in the column list and give it the request's realm"),
        )
    }
}

pub fn multi_realm(target: &str, column: &str, span: Span) -> Raw {
    raw(
        QUERY_MULTI_REALM,
        span,
        target,
        format!("`{target}` is bound only by IN/ANY on `{column}`: the query may read several realms"),
        format!("bind `{column}` with `=` to one realm, or exempt the query with `-- realmguard:cross-realm <reason>`"),
    )
}

pub fn realm_column_updated(target: &str, column: &str, span: Span) -> Raw {
    raw(
        REALM_COLUMN_UPDATED,
        span,
        target,
        format!("the UPDATE sets the realm column `{column}` of `{target}`: it moves rows between realms"),
        "move a row to another realm with `realmguard realm`, not from the application; drop the assignment".into(),
    )
}

pub fn session_setting(setting: &str, call: bool, span: Span) -> Raw {
    let (message, help) = if call {
        (
            format!("set_config('{setting}', …, false) sets the realm for the whole session: with a pooler it leaks into the next request"),
            format!("pass true as the third argument (transaction-local): set_config('{setting}', $1, true)"),
        )
    } else {
        (
            format!("SET {setting} sets the realm for the whole session: with a pooler it leaks into the next request"),
            format!("use SET LOCAL {setting} inside the request's transaction"),
        )
    };
    raw(SESSION_REALM_SETTING, span, "", message, help)
}

pub fn opaque_table(name: &str, span: Span) -> Raw {
    raw(
        QUERY_OPAQUE,
        span,
        name,
        format!("`{name}` is not a table of the schema (a view, a temporary table, or one the schema source does not know): the query cannot be checked"),
        "audit against the schema the application runs on (--schema-from DIR or the live database), or exempt the query".into(),
    )
}

pub fn opaque_statement(head: String, span: Span) -> Raw {
    raw(
        QUERY_OPAQUE,
        span,
        "",
        format!("{head} runs SQL the audit cannot see: the statement cannot be checked"),
        "audit the statements it runs, or exempt it with `-- realmguard:cross-realm <reason>`"
            .into(),
    )
}

pub fn parse_failure(message: &str) -> Raw {
    // sqlparser's position is relative to the statement; the finding is placed at it already.
    let message = message.split(" at Line: ").next().unwrap_or(message);
    let message = message
        .strip_prefix("sql parser error: ")
        .unwrap_or(message);
    raw(
        QUERY_OPAQUE,
        Span::empty(),
        "",
        format!("the statement could not be parsed: {message}"),
        "check the SQL; if PostgreSQL accepts it, exempt it with `-- realmguard:cross-realm <reason>` after reviewing it by hand".into(),
    )
}
