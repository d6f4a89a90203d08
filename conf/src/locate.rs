//! Finds the key path (`port[1].mac`) of a byte offset in a TOML text.
//!
//! serde errors from `toml` carry a span but not a usable path (it has no
//! array indices), so when one occurs the text is parsed a second time into a
//! tree of spans, and the deepest key or value that contains the error's
//! offset names it.

use std::fmt;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

enum Node {
    Leaf,
    Table(Vec<(Key, SNode)>),
    Array(Vec<SNode>),
}

/// A value with its span when the deserializer has one. `Spanned<Node>`
/// would fail on an implicit table (`[ipvs.timeouts]` with no `[ipvs]`),
/// which `toml` hands over as a plain map with no span.
struct SNode {
    node: Node,
    span: Option<Range<usize>>,
}

/// A table key with its span when the deserializer has one. A plain
/// `Spanned<String>` would fail on the map `toml` presents a datetime as
/// (its key has no span; see [`DATETIME`]), so this asks for a span the way `Spanned` does
/// (serde_spanned 0.6's struct protocol) and also accepts a bare string.
struct Key {
    name: String,
    span: Option<Range<usize>>,
}

/// The key of the one-entry map `toml` presents a datetime as.
const DATETIME: &str = "$__toml_private_datetime";
const SPANNED: &str = "$__serde_spanned_private_Spanned";
const SPANNED_FIELDS: &[&str] =
    &["$__serde_spanned_private_start", "$__serde_spanned_private_end", "$__serde_spanned_private_value"];

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(Key { name: v.to_owned(), span: None })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
        let (mut start, mut end, mut name) = (None, None, None);
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                f if f == SPANNED_FIELDS[0] => start = Some(map.next_value::<usize>()?),
                f if f == SPANNED_FIELDS[1] => end = Some(map.next_value::<usize>()?),
                _ => name = Some(map.next_value::<String>()?),
            }
        }
        Ok(Key { name: name.unwrap_or_default(), span: start.zip(end).map(|(s, e)| s..e) })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<SNode>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let first = map.next_key::<Key>()?;
        table(first, map)
    }
}

/// The rest of a table whose first key (if any) has been read.
fn table<'de, A: MapAccess<'de>>(mut key: Option<Key>, mut map: A) -> Result<Node, A::Error> {
    let mut entries = Vec::new();
    while let Some(k) = key {
        if k.span.is_none() && k.name == DATETIME {
            map.next_value::<serde::de::IgnoredAny>()?;
            return Ok(Node::Leaf);
        }
        let value = map.next_value::<SNode>()?;
        entries.push((k, value));
        key = map.next_key::<Key>()?;
    }
    Ok(Node::Table(entries))
}

impl<'de> Deserialize<'de> for SNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, SNodeVisitor)
    }
}

struct SNodeVisitor;

impl SNodeVisitor {
    fn bare(node: Node) -> SNode {
        SNode { node, span: None }
    }
}

impl<'de> Visitor<'de> for SNodeVisitor {
    type Value = SNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<SNode, E> {
        Ok(Self::bare(Node::Leaf))
    }
    fn visit_i64<E>(self, _: i64) -> Result<SNode, E> {
        Ok(Self::bare(Node::Leaf))
    }
    fn visit_u64<E>(self, _: u64) -> Result<SNode, E> {
        Ok(Self::bare(Node::Leaf))
    }
    fn visit_f64<E>(self, _: f64) -> Result<SNode, E> {
        Ok(Self::bare(Node::Leaf))
    }
    fn visit_str<E>(self, _: &str) -> Result<SNode, E> {
        Ok(Self::bare(Node::Leaf))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SNode, A::Error> {
        NodeVisitor.visit_seq(seq).map(Self::bare)
    }

    /// Either serde_spanned's protocol (start, end, value) or, for a value
    /// without a span, the table itself.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SNode, A::Error> {
        let first = map.next_key::<Key>()?;
        match first {
            Some(k) if k.span.is_none() && k.name == SPANNED_FIELDS[0] => {
                let start = map.next_value::<usize>()?;
                let (mut end, mut node) = (None, None);
                while let Some(field) = map.next_key::<String>()? {
                    if field == SPANNED_FIELDS[1] {
                        end = Some(map.next_value::<usize>()?);
                    } else {
                        node = Some(map.next_value::<Node>()?);
                    }
                }
                Ok(SNode { node: node.unwrap_or(Node::Leaf), span: end.map(|e| start..e) })
            }
            first => table(first, map).map(Self::bare),
        }
    }
}

fn contains(span: &Range<usize>, at: usize) -> bool {
    span.contains(&at) || span.start == at
}

/// Path segments below `node` that lead to `at`, or `None` when no key or
/// value below `node` contains it.
fn find(node: &Node, at: usize) -> Option<String> {
    match node {
        Node::Leaf => None,
        Node::Table(entries) => entries.iter().find_map(|(key, value)| {
            let name = quote_key(&key.name);
            if key.span.as_ref().is_some_and(|s| contains(s, at)) {
                return Some(name);
            }
            match find(&value.node, at) {
                Some(rest) if rest.starts_with('[') => Some(format!("{name}{rest}")),
                Some(rest) => Some(format!("{name}.{rest}")),
                None if value.span.as_ref().is_some_and(|s| contains(s, at)) => Some(name),
                None => None,
            }
        }),
        Node::Array(items) => items.iter().enumerate().find_map(|(i, item)| match find(&item.node, at) {
            Some(rest) if rest.starts_with('[') => Some(format!("[{i}]{rest}")),
            Some(rest) => Some(format!("[{i}].{rest}")),
            None if item.span.as_ref().is_some_and(|s| contains(s, at)) => Some(format!("[{i}]")),
            None => None,
        }),
    }
}

/// Keys that are not bare TOML keys are quoted, so the path stays readable.
fn quote_key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_owned()
    } else {
        format!("{k:?}")
    }
}

/// The key path in `text` that byte offset `at` belongs to, or `None` when
/// the text cannot be walked or the offset is outside every key and value.
pub(crate) fn key_path(text: &str, at: usize) -> Option<String> {
    let root: Node = toml::from_str(text).ok()?;
    find(&root, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[dataplane]
workers = 2
eal_args = ["a", "b"]

[[port]]
name = "p0"

[[port]]
name = "p1"
"odd key" = { inner = 1 }
"#;

    fn at(needle: &str) -> usize {
        TEXT.find(needle).unwrap()
    }

    #[test]
    fn finds_values_keys_and_indices() {
        assert_eq!(key_path(TEXT, at("2\n")).as_deref(), Some("dataplane.workers"));
        assert_eq!(key_path(TEXT, at("workers")).as_deref(), Some("dataplane.workers"));
        assert_eq!(key_path(TEXT, at("\"b\"")).as_deref(), Some("dataplane.eal_args[1]"));
        assert_eq!(key_path(TEXT, at("\"p1\"")).as_deref(), Some("port[1].name"));
        assert_eq!(key_path(TEXT, at("\"p0\"")).as_deref(), Some("port[0].name"));
        assert_eq!(key_path(TEXT, at("inner")).as_deref(), Some("port[1].\"odd key\".inner"));
    }

    #[test]
    fn datetime_values_are_walked() {
        let t = "[dataplane]\nworkers = 1979-05-27\n";
        assert_eq!(key_path(t, t.find("1979").unwrap()).as_deref(), Some("dataplane.workers"));
    }

    #[test]
    fn implicit_tables_are_walked() {
        let t = "[ipvs.timeouts]\ntcp_fin = 1\n";
        assert_eq!(key_path(t, t.find("tcp_fin").unwrap()).as_deref(), Some("ipvs.timeouts.tcp_fin"));
        let t = "[[service]]\n[[service.server]]\nx = 1\n[a.b.c]\nd = 2\n";
        assert_eq!(key_path(t, t.find("x =").unwrap()).as_deref(), Some("service[0].server[0].x"));
        assert_eq!(key_path(t, t.find("d =").unwrap()).as_deref(), Some("a.b.c.d"));
    }

    #[test]
    fn nothing_outside_keys_and_values() {
        assert_eq!(key_path(TEXT, 0), None);
        assert_eq!(key_path("a = ", 0), None);
    }
}
