//! PostgreSQL's text form of arrays and records (`array_out`, `record_out`), read with serde: the
//! scoped read answers each part as `ARRAY(SELECT part FROM part)::text`, an array of the part's
//! rows, and the row types of `rows.rs` decode from it by position.
//!
//! Why not JSON: `json_agg` of a row looks up the type of every column of every row again (some
//! four catalog-cache lookups each); the text form resolves each column's output function once.
//! Measured with callgrind on the guard's read after a `CREATE TABLE` on a 300-table database:
//! 0.70 M instructions of JSON per migration against 0.24 M for the text form (docs/architecture.md,
//! "The guard").
//!
//! The grammar (PostgreSQL's documentation, "Array Value Input" and "Composite Value Input"):
//! an array is `{e1,e2,...}`, an element double-quoted when it holds a special character, with
//! `\` escaping `"` and `\` inside quotes, and an unquoted `NULL` for null; a record is
//! `(f1,f2,...)`, an empty unquoted field for null, a quoted field doubling `"` (and `\`).
//! Values are strings; a type comes from the field it lands in (`t`/`f` for a bool).

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use std::borrow::Cow;

/// A value that is not in the form its field expects.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// `T` from the text form `text` of an array (or record) value.
pub fn from_str<'de, T: de::Deserialize<'de>>(text: &'de str) -> Result<T, Error> {
    T::deserialize(Value(Some(Cow::Borrowed(text))))
}

/// Splits the text of an array or a record into its items.
type Split = fn(&str) -> Result<Vec<Option<Cow<'_, str>>>, Error>;

/// One value: its text, or `None` for SQL NULL.
struct Value<'de>(Option<Cow<'de, str>>);

impl<'de> Value<'de> {
    fn text(&self) -> Result<&str, Error> {
        self.0
            .as_deref()
            .ok_or_else(|| Error("unexpected NULL".into()))
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, Error> {
        let t = self.text()?;
        t.parse()
            .map_err(|_| Error(format!("expected {what}, found {t:?}")))
    }

    /// Hands the items of an array or a record (split by `items`) to a sequence visitor.
    fn visit_items<V: Visitor<'de>>(self, items: Split, v: V) -> Result<V::Value, Error> {
        let items = match self.0 {
            None => return Err(Error("unexpected NULL".into())),
            Some(Cow::Borrowed(s)) => items(s)?,
            // An array or record inside a quoted field was unescaped into a new string: its
            // items are copied out of it.
            Some(Cow::Owned(s)) => owned(items(&s)?),
        };
        v.visit_seq(Items {
            items: items.into_iter(),
        })
    }
}

/// The items of an array or record, split at its top-level commas.
struct Items<'de> {
    items: std::vec::IntoIter<Option<Cow<'de, str>>>,
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        match self.items.next() {
            Some(v) => seed.deserialize(Value(v)).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The elements of a one-dimensional array literal (`{a,"b c",NULL}`).
fn array_items(text: &str) -> Result<Vec<Option<Cow<'_, str>>>, Error> {
    // A lower bound other than 1 is written as a prefix (`[0:1]={...}`); none of the reads'
    // arrays have one, but it is skipped rather than misread.
    let body = match text.strip_prefix('[') {
        Some(_) => text.split_once('=').map_or(text, |(_, b)| b),
        None => text,
    };
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| Error(format!("expected an array, found {text:?}")))?;
    split(inner, Quoting::Array)
}

/// The fields of a record literal (`(1,"a b",)`).
fn record_items(text: &str) -> Result<Vec<Option<Cow<'_, str>>>, Error> {
    let inner = text
        .strip_prefix('(')
        .and_then(|b| b.strip_suffix(')'))
        .ok_or_else(|| Error(format!("expected a record, found {text:?}")))?;
    split(inner, Quoting::Record)
}

#[derive(Clone, Copy, PartialEq)]
enum Quoting {
    Array,
    Record,
}

/// `inner` split at the commas outside quotes (and, in an array, outside nested braces), each
/// item unquoted; `None` for a null (an unquoted `NULL` in an array, an empty field in a record).
fn split(inner: &str, quoting: Quoting) -> Result<Vec<Option<Cow<'_, str>>>, Error> {
    let mut out = Vec::new();
    if inner.is_empty() {
        // `{}` has no elements; `()` is a record of one null field.
        if quoting == Quoting::Record {
            out.push(None);
        }
        return Ok(out);
    }
    let bytes = inner.as_bytes();
    let mut start = 0;
    loop {
        let (item, next) = if bytes.get(start) == Some(&b'"') {
            let (text, end) = quoted(inner, start, quoting)?;
            (Some(text), end)
        } else {
            let mut depth = 0usize;
            let mut end = start;
            while end < bytes.len() {
                match bytes[end] {
                    b'{' if quoting == Quoting::Array => depth += 1,
                    b'}' if quoting == Quoting::Array => depth = depth.saturating_sub(1),
                    b',' if depth == 0 => break,
                    b'"' => return Err(Error(format!("unexpected quote in {inner:?}"))),
                    _ => {}
                }
                end += 1;
            }
            let raw = &inner[start..end];
            let item = match (quoting, raw) {
                (Quoting::Array, r) if r.eq_ignore_ascii_case("NULL") => None,
                (Quoting::Record, "") => None,
                (_, r) => Some(Cow::Borrowed(r)),
            };
            (item, end)
        };
        out.push(item);
        match bytes.get(next) {
            None => return Ok(out),
            Some(b',') => start = next + 1,
            Some(_) => return Err(Error(format!("expected a comma in {inner:?}"))),
        }
    }
}

/// The quoted item starting at `start` (a `"`), unescaped, and the index just past its closing
/// quote.
fn quoted(inner: &str, start: usize, quoting: Quoting) -> Result<(Cow<'_, str>, usize), Error> {
    let bytes = inner.as_bytes();
    let mut out: Option<String> = None;
    let mut run = start + 1; // start of the current stretch of plain characters
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 < bytes.len() => {
                out.get_or_insert_with(String::new).push_str(&inner[run..i]);
                i += 1;
                run = i; // the escaped character starts the next stretch
                i += inner[i..].chars().next().map_or(1, char::len_utf8);
            }
            b'"' if quoting == Quoting::Record && bytes.get(i + 1) == Some(&b'"') => {
                out.get_or_insert_with(String::new)
                    .push_str(&inner[run..=i]);
                i += 2;
                run = i;
            }
            b'"' => {
                let text = match out {
                    Some(mut s) => {
                        s.push_str(&inner[run..i]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&inner[run..i]),
                };
                return Ok((text, i + 1));
            }
            _ => i += 1,
        }
    }
    Err(Error(format!("unterminated quote in {inner:?}")))
}

impl<'de> Deserializer<'de> for Value<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            None => v.visit_none(),
            Some(Cow::Borrowed(s)) => v.visit_borrowed_str(s),
            Some(Cow::Owned(s)) => v.visit_string(s),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            None => v.visit_none(),
            Some(_) => v.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.text()? {
            "t" | "true" => v.visit_bool(true),
            "f" | "false" => v.visit_bool(false),
            t => Err(Error(format!("expected a boolean, found {t:?}"))),
        }
    }

    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i16(self.parse("an int2")?)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i32(self.parse("an int4")?)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(self.parse("an int8")?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u32(self.parse("an oid")?)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.visit_items(array_items, v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        self.visit_items(record_items, v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, v)
    }

    /// A struct is a record whose fields come in the struct's declaration order.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(fields.len(), v)
    }

    serde::forward_to_deserialize_any! {
        i8 i128 u8 u16 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        newtype_struct map enum identifier ignored_any
    }
}

fn owned(items: Vec<Option<Cow<'_, str>>>) -> Vec<Option<Cow<'static, str>>> {
    items
        .into_iter()
        .map(|i| i.map(|c| Cow::Owned(c.into_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::from_str;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Row {
        oid: u32,
        name: String,
        flag: bool,
        key: Option<Vec<i16>>,
        names: Option<Vec<Option<String>>>,
        note: Option<String>,
    }

    #[test]
    fn rows_decode_by_position_with_quoting_and_nulls() {
        // As PostgreSQL 15 writes `ARRAY(SELECT r FROM r)::text` for these rows (copied from
        // psql): a record inside an array, an array inside a record, quotes in both.
        let text = r#"{"(16397,realms,t,{1},{id},)","(22703,\"odd \"\"name\"\" \\\\ ,(x)\",f,\"{1,2}\",\"{id,\"\"a b\"\",NULL,\"\"NULL\"\",\"\"q\\\\\"\"\\\\\\\\\"\"}\",\" \")","(1,plain,f,,,\"\")"}"#;
        let rows: Vec<Row> = from_str(text).unwrap();
        assert_eq!(
            rows,
            vec![
                Row {
                    oid: 16397,
                    name: "realms".into(),
                    flag: true,
                    key: Some(vec![1]),
                    names: Some(vec![Some("id".into())]),
                    note: None,
                },
                Row {
                    oid: 22703,
                    name: r#"odd "name" \ ,(x)"#.into(),
                    flag: false,
                    key: Some(vec![1, 2]),
                    names: Some(vec![
                        Some("id".into()),
                        Some("a b".into()),
                        None,
                        Some("NULL".into()),
                        Some(r#"q"\"#.into()),
                    ]),
                    note: Some(" ".into()),
                },
                Row {
                    oid: 1,
                    name: "plain".into(),
                    flag: false,
                    key: None,
                    names: None,
                    note: Some(String::new()),
                },
            ]
        );
    }

    #[test]
    fn arrays_of_scalars_and_pairs() {
        assert_eq!(from_str::<Vec<String>>("{}").unwrap(), Vec::<String>::new());
        let v: Vec<Option<String>> = from_str(r#"{a,NULL,"NULL","{x}","é,ü"}"#).unwrap();
        assert_eq!(
            v,
            vec![
                Some("a".into()),
                None,
                Some("NULL".into()),
                Some("{x}".into()),
                Some("é,ü".into())
            ]
        );
        let pairs: Vec<(String, String)> =
            from_str(r#"{"(public,t)","(\"my schema\",\"a,b\")","(é,\"x)\")"}"#).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("public".into(), "t".into()),
                ("my schema".into(), "a,b".into()),
                ("é".into(), "x)".into())
            ]
        );
        let scope: Vec<(u32, bool)> = from_str(r#"{"(16397,t)","(22703,f)"}"#).unwrap();
        assert_eq!(scope, vec![(16397, true), (22703, false)]);
    }

    #[test]
    fn malformed_text_is_an_error_not_a_panic() {
        for bad in [
            "",
            "{",
            r#"{"(1,x"}"#,
            r#"{"(1,x,t,{1},{a},)"#,
            "{(1,x,maybe,,,)}",
            "{(x,y,t,,,)}",
            r#"{"(1,\"x)"}"#,
            "{(1,x,t)}",
        ] {
            assert!(from_str::<Vec<Row>>(bad).is_err(), "{bad:?} decoded");
        }
    }
}
