//! Names shared by every module: whether a config entry names a table, and the names realmguard
//! gives the objects it creates.

use sha2::{Digest, Sha256};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1): a longer name is silently truncated by the
/// server, so every name realmguard creates fits in it already and is looked up as written.
pub const MAX_IDENT: usize = 63;

/// Does a config entry (`realm_scoped`, `exclude`, `[backfill.parent]` keys, `realms_table` for
/// lint) name the table `schema.table`? `"schema.table"` (split at the first dot, raw names) names
/// that one table; a bare `"table"` names a table of that name in any schema. A table whose name
/// holds a dot is named in its qualified form.
pub fn names_table(entry: &str, schema: &str, table: &str) -> bool {
    match entry.split_once('.') {
        Some((s, t)) => s == schema && t == table,
        None => entry == table,
    }
}

/// A new object's name like PostgreSQL's own (`groups_parent_id_realm_id_idx`): `parts` and
/// `suffix` joined by `_`. One that would pass 63 bytes keeps its suffix and gets a hash of the
/// whole name before it, the stem cut on a character boundary to make room: two long names that
/// share their first 63 bytes stay apart, and the same parts always give the same name.
pub fn object_name(parts: &[&str], suffix: &str) -> String {
    let full = if suffix.is_empty() {
        parts.join("_")
    } else {
        let mut all = parts.to_vec();
        all.push(suffix);
        all.join("_")
    };
    if full.len() <= MAX_IDENT {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let tail = if suffix.is_empty() {
        format!("_{hash}")
    } else {
        format!("_{hash}_{suffix}")
    };
    let mut stem = parts.join("_");
    let mut cut = MAX_IDENT.saturating_sub(tail.len()).min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    stem.truncate(cut);
    stem + &tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_names_a_table_qualified_or_in_any_schema() {
        assert!(names_table("groups", "app", "groups"));
        assert!(names_table("app.groups", "app", "groups"));
        assert!(!names_table("public.groups", "app", "groups"));
        assert!(!names_table("group", "app", "groups"));
        assert!(names_table("app.my.table", "app", "my.table"));
        assert!(!names_table("my.table", "public", "my.table"));
    }

    #[test]
    fn short_names_are_joined_as_postgres_would() {
        assert_eq!(
            object_name(&["groups", "realm_id"], "fkey"),
            "groups_realm_id_fkey"
        );
        assert_eq!(
            object_name(&["groups", "parent_id"], "idx"),
            "groups_parent_id_idx"
        );
    }

    #[test]
    fn long_names_fit_keep_their_suffix_and_stay_apart() {
        let long = "x".repeat(80);
        let a = object_name(&[&long, "realm_id"], "fill");
        assert_eq!(a.len(), 63);
        assert!(a.ends_with("_fill"), "{a}");
        assert_eq!(a, object_name(&[&long, "realm_id"], "fill"));
        let b = object_name(&[&long, "realm_id2"], "fill");
        assert_ne!(a, b);
        let wide = "é".repeat(40);
        let n = object_name(&[&wide, "realm_id"], "fkey");
        assert!(n.len() <= 63 && n.ends_with("_fkey"), "{n}");
    }
}
