//! Ignore comments: `-- realmguard:ignore a, b` above a statement or a line of it, and squawk's
//! `-- squawk-ignore` and `-- squawk-ignore-file` spellings (docs/lint.md).

use super::*;

/// An ignore comment may also sit right above the offending line inside a statement (a column of
/// a long `CREATE TABLE`), not only above the statement.
pub(super) fn ignored_on_line_above(text: &str, line: usize, rule: &str) -> bool {
    if line < 2 {
        return false;
    }
    let above = source_line(text, line - 1);
    let mut ids = Vec::new();
    ignore_ids(above.trim(), &mut ids, &mut |_| {});
    ids.iter().any(|id| id == rule || id == ALL_RULES)
}

/// What an ignore list holds for "every rule" (squawk's bare `-- squawk-ignore`).
pub(super) const ALL_RULES: &str = "*";

/// The body of a one-line comment (`-- …` or `/* … */`), up to a second `--`.
pub(super) fn comment_body(line: &str) -> Option<&str> {
    let body = match line.strip_prefix("--") {
        Some(b) => b,
        None => line.strip_prefix("/*")?.strip_suffix("*/")?,
    };
    Some(body.find("--").map_or(body, |i| &body[..i]).trim())
}

/// squawk's names for rules realmguard knows under another id (squawk accepts both spellings of
/// prefer-timestamptz; it split require-timeout-settings in two).
pub(super) fn squawk_alias(name: &str) -> &str {
    match name {
        "prefer-timestamp-tz" => "prefer-timestamptz",
        "require-lock-timeout" | "require-statement-timeout" => "require-timeout-settings",
        other => other,
    }
}

/// The rule ids a statement-level ignore comment on `line` names, pushed onto `ids`:
/// `-- realmguard:ignore a, b` (an unknown id goes to `bad`, to be reported) or squawk's
/// `-- squawk-ignore a,b` (no ids: every rule; ids of squawk rules realmguard lacks are skipped
/// silently, they are not typos). Returns whether the line is a comment at all.
pub(super) fn ignore_ids(line: &str, ids: &mut Vec<String>, bad: &mut dyn FnMut(&str)) -> bool {
    let Some(body) = comment_body(line) else {
        return false;
    };
    if let Some(rest) = body.strip_prefix("realmguard:ignore") {
        for id in rest
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            if crate::rules::is_known(id) {
                ids.push(id.to_string());
            } else {
                bad(id);
            }
        }
    } else if let Some(rest) = body.strip_prefix("squawk-ignore") {
        if rest.starts_with("-file") || !(rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            return true;
        }
        squawk_ids(rest, ids);
    }
    true
}

/// squawk's comma-separated list (empty: every rule).
pub(super) fn squawk_ids(rest: &str, ids: &mut Vec<String>) {
    if rest.trim().is_empty() {
        ids.push(ALL_RULES.to_string());
        return;
    }
    for name in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let id = squawk_alias(name);
        if crate::rules::is_known(id) {
            ids.push(id.to_string());
        }
    }
}

/// The rules squawk's `-- squawk-ignore-file [a, b]` comments (anywhere in the file, as squawk)
/// silence for the whole file.
pub(super) fn file_ignores(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    if !text.contains("squawk-ignore-file") {
        return ids;
    }
    for line in text.lines() {
        let Some(body) = comment_body(line.trim()) else {
            continue;
        };
        if let Some(rest) = body.strip_prefix("squawk-ignore-file") {
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                squawk_ids(rest, &mut ids);
            }
        }
    }
    ids
}

/// Rule ids named by ignore comments on the lines just above a statement (a run of comment
/// lines ending on the line before it).
pub(super) fn ignore_comments(
    text: &str,
    offset: usize,
    line: usize,
    bad: &mut Vec<(usize, String)>,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut end = text[..offset].rfind('\n').unwrap_or(0);
    let mut l = line;
    // The statement's own line may carry leading text of a previous statement; start above it.
    while end > 0 {
        let start = text[..end].rfind('\n').map_or(0, |i| i + 1);
        let above = text[start..end].trim();
        l -= 1;
        if !ignore_ids(above, &mut ids, &mut |id| bad.push((l, id.to_string()))) {
            break;
        }
        if start == 0 {
            break;
        }
        end = start - 1;
    }
    ids
}
