//! A token segment's JSON object, decoded once into one flat list of
//! nodes whose strings point into the decoded text: no allocation per
//! key, string or object (issue 17: building `serde_json::Value` maps and
//! dropping them was a third of a login's cost). serde_json does the
//! parsing (its grammar, escapes, number rules and nesting limit of 128);
//! this module only records what it reads. Every consumer reads claims
//! through [`Val`]: the same lookups for the checks, the session fields
//! and the Lua tables.
//!
//! A name that appears twice in one object: the last one counts, for
//! [`Val::get`] as for the Lua table built from the members in order
//! (RFC 7519, section 4: "the lexically last duplicate member name").

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    /// Above `i64::MAX` (serde_json keeps these as u64 too).
    UInt(u64),
    Float(f64),
    /// `len` bytes at `start` of the decoded text, or of the unescaped
    /// strings when `unescaped`.
    Str { start: u32, len: u32, unescaped: bool },
    /// `len` values; the nodes up to `end` (exclusive) are its contents.
    Array { len: u32, end: u32 },
    /// `len` members, each a key (`Str`) then a value; contents up to `end`.
    Object { len: u32, end: u32 },
}

/// One JSON object: the decoded text, the strings that needed unescaping,
/// and the nodes in document order (an array or object is followed by its
/// contents).
#[derive(Clone, PartialEq)]
pub struct Object {
    text: String,
    unescaped: String,
    nodes: Vec<Node>,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", Value::Object(self.to_map()))
    }
}

/// Largest text accepted (node positions are 32-bit); tokens are far
/// smaller (`MAX_TOKEN_BYTES`).
const MAX_TEXT: usize = (u32::MAX / 2) as usize;

impl Object {
    /// `bytes` as one JSON object (UTF-8, nothing after it), or `None`.
    pub fn parse(bytes: Vec<u8>) -> Option<Object> {
        let text = String::from_utf8(bytes).ok()?;
        if text.len() > MAX_TEXT {
            return None;
        }
        let mut tape = Tape { base: text.as_ptr() as usize, text_len: text.len(), nodes: Vec::with_capacity(text.len() / 6 + 2), unescaped: String::new() };
        let mut de = serde_json::Deserializer::from_str(&text);
        Seed(&mut tape).deserialize(&mut de).ok()?;
        de.end().ok()?;
        let Tape { nodes, unescaped, .. } = tape;
        matches!(nodes.first(), Some(Node::Object { .. })).then_some(Object { text, unescaped, nodes })
    }

    /// An object from JSON text (tests, tools).
    pub fn parse_str(text: &str) -> Option<Object> {
        Object::parse(text.as_bytes().to_vec())
    }

    /// An object from a `serde_json` map (tests).
    #[cfg(test)]
    pub fn from_map(map: &Map<String, Value>) -> Object {
        Object::parse(serde_json::to_vec(map).expect("a map serializes")).expect("a serialized map parses")
    }

    /// The bytes of a string node.
    fn bytes(&self, start: u32, len: u32, unescaped: bool) -> &[u8] {
        let from = if unescaped { &self.unescaped } else { &self.text };
        &from.as_bytes()[start as usize..start as usize + len as usize]
    }

    /// The object itself, as a value.
    pub fn root(&self) -> Val<'_> {
        Val { doc: self, at: 0 }
    }

    /// The member `key` (the last one of that name), as [`Val::get`].
    pub fn get(&self, key: &str) -> Option<Val<'_>> {
        self.root().get(key)
    }

    /// As a `serde_json` map (a later duplicate name replaces an earlier).
    pub fn to_map(&self) -> Map<String, Value> {
        self.root().to_map().unwrap_or_default()
    }
}

/// What a value is, to match on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    Array,
    Object,
}

/// One value inside an [`Object`]: a position in its nodes.
#[derive(Clone, Copy)]
pub struct Val<'a> {
    doc: &'a Object,
    at: usize,
}

impl std::fmt::Debug for Val<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_value())
    }
}

impl PartialEq for Val<'_> {
    /// The same value of the same object (not equal contents).
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.doc, other.doc) && self.at == other.at
    }
}

impl<'a> Val<'a> {
    fn node(&self) -> Node {
        self.doc.nodes[self.at]
    }

    /// Its position among the object's values: equal for the same value.
    pub fn position(&self) -> usize {
        self.at
    }

    pub fn kind(&self) -> Kind<'a> {
        match self.node() {
            Node::Null => Kind::Null,
            Node::Bool(b) => Kind::Bool(b),
            Node::Int(i) => Kind::Int(i),
            Node::UInt(u) => Kind::UInt(u),
            Node::Float(f) => Kind::Float(f),
            Node::Str { start, len, unescaped } => {
                let from = if unescaped { &self.doc.unescaped } else { &self.doc.text };
                Kind::Str(&from[start as usize..start as usize + len as usize])
            }
            Node::Array { .. } => Kind::Array,
            Node::Object { .. } => Kind::Object,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.node(), Node::Null)
    }

    pub fn is_object(&self) -> bool {
        matches!(self.node(), Node::Object { .. })
    }

    /// A string's bytes, for comparing keys (no check of UTF-8 boundaries).
    fn str_bytes(&self) -> Option<&'a [u8]> {
        match self.node() {
            Node::Str { start, len, unescaped } => Some(self.doc.bytes(start, len, unescaped)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match self.kind() {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A number as f64 (as `serde_json::Value::as_f64`).
    pub fn as_f64(&self) -> Option<f64> {
        match self.node() {
            Node::Int(i) => Some(i as f64),
            Node::UInt(u) => Some(u as f64),
            Node::Float(f) => Some(f),
            _ => None,
        }
    }

    /// Members of an object or values of an array (0 for anything else).
    pub fn len(&self) -> usize {
        match self.node() {
            Node::Array { len, .. } | Node::Object { len, .. } => len as usize,
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position after this value and its contents.
    fn next(&self) -> usize {
        match self.node() {
            Node::Array { end, .. } | Node::Object { end, .. } => end as usize,
            _ => self.at + 1,
        }
    }

    /// An object's member `key`: the last of that name; `None` for a
    /// missing key or a value that is not an object.
    pub fn get(&self, key: &str) -> Option<Val<'a>> {
        let [found] = self.pick([key]);
        found
    }

    /// Several members in one pass: `keys[i]`'s value (the last of that
    /// name) at `i`. Keys are compared as bytes, lengths first: a login
    /// looks up some twenty claims.
    pub fn pick<const N: usize>(&self, keys: [&str; N]) -> [Option<Val<'a>>; N] {
        let mut found = [None; N];
        let mut members = self.members();
        while let Some((key, value)) = members.step() {
            let name = key.str_bytes().unwrap_or_default();
            for (key, slot) in keys.iter().zip(found.iter_mut()) {
                if key.len() == name.len() && same_short(name, key.as_bytes()) {
                    *slot = Some(value);
                }
            }
        }
        found
    }

    /// An object's members in document order (none for anything else).
    pub fn members(&self) -> Members<'a> {
        match self.node() {
            Node::Object { end, .. } => Members { doc: self.doc, at: self.at + 1, end: end as usize },
            _ => Members { doc: self.doc, at: 0, end: 0 },
        }
    }

    /// An array's values in order (none for anything else).
    pub fn items(&self) -> Items<'a> {
        match self.node() {
            Node::Array { end, .. } => Items { doc: self.doc, at: self.at + 1, end: end as usize },
            _ => Items { doc: self.doc, at: 0, end: 0 },
        }
    }

    /// As a `serde_json` value.
    pub fn to_value(&self) -> Value {
        match self.kind() {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(b),
            Kind::Int(i) => Value::from(i),
            Kind::UInt(u) => Value::from(u),
            Kind::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.to_string()),
            Kind::Array => Value::Array(self.items().map(|v| v.to_value()).collect()),
            Kind::Object => Value::Object(self.to_map().unwrap_or_default()),
        }
    }

    /// An object as a `serde_json` map (a later duplicate name replaces an
    /// earlier); `None` for anything else.
    pub fn to_map(&self) -> Option<Map<String, Value>> {
        self.is_object().then(|| self.members().map(|(k, v)| (k.to_string(), v.to_value())).collect())
    }
}

impl serde::Serialize for Val<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.kind() {
            Kind::Null => s.serialize_unit(),
            Kind::Bool(b) => s.serialize_bool(b),
            Kind::Int(i) => s.serialize_i64(i),
            Kind::UInt(u) => s.serialize_u64(u),
            Kind::Float(f) => s.serialize_f64(f),
            Kind::Str(t) => s.serialize_str(t),
            Kind::Array => {
                let mut seq = s.serialize_seq(Some(self.len()))?;
                for v in self.items() {
                    seq.serialize_element(&v)?;
                }
                seq.end()
            }
            Kind::Object => {
                let mut map = s.serialize_map(Some(self.len()))?;
                for (k, v) in self.members() {
                    map.serialize_entry(k, &v)?;
                }
                map.end()
            }
        }
    }
}

impl serde::Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.root().serialize(s)
    }
}

/// `a == b` for slices of one length; claim names are a few bytes, for
/// which a loop beats a call to memcmp.
fn same_short(a: &[u8], b: &[u8]) -> bool {
    if a.len() > 16 {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// An object's members: (name, value).
pub struct Members<'a> {
    doc: &'a Object,
    at: usize,
    end: usize,
}

impl<'a> Members<'a> {
    /// The next member's key node and value.
    fn step(&mut self) -> Option<(Val<'a>, Val<'a>)> {
        if self.at >= self.end {
            return None;
        }
        let key = Val { doc: self.doc, at: self.at };
        let value = Val { doc: self.doc, at: self.at + 1 };
        self.at = value.next();
        Some((key, value))
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, Val<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.step().map(|(key, value)| (key.as_str().unwrap_or_default(), value))
    }
}

/// An array's values.
pub struct Items<'a> {
    doc: &'a Object,
    at: usize,
    end: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = Val<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        let value = Val { doc: self.doc, at: self.at };
        self.at = value.next();
        Some(value)
    }
}

/// The nodes being recorded while serde_json reads the text.
struct Tape {
    /// Address and length of the text being read: a string serde_json
    /// hands over from inside it is recorded as a position.
    base: usize,
    text_len: usize,
    nodes: Vec<Node>,
    unescaped: String,
}

impl Tape {
    fn string(&mut self, s: &str) -> Node {
        let start = (s.as_ptr() as usize).wrapping_sub(self.base);
        if start <= self.text_len && s.len() <= self.text_len - start {
            return Node::Str { start: start as u32, len: s.len() as u32, unescaped: false };
        }
        // A string with escapes, unescaped by serde_json into a buffer of
        // its own: copied (it can be no longer than the text).
        let start = self.unescaped.len();
        self.unescaped.push_str(s);
        Node::Str { start: start as u32, len: s.len() as u32, unescaped: true }
    }

    /// Reserve the node of an array or object; filled by `close`.
    fn open(&mut self) -> usize {
        self.nodes.push(Node::Null);
        self.nodes.len() - 1
    }

    fn close(&mut self, at: usize, node: fn(u32, u32) -> Node, len: u32) {
        self.nodes[at] = node(len, self.nodes.len() as u32);
    }
}

/// Reads one value (or key) into the tape.
struct Seed<'t>(&'t mut Tape);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.nodes.push(Node::Null);
        Ok(())
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.0.nodes.push(Node::Bool(b));
        Ok(())
    }

    fn visit_i64<E>(self, i: i64) -> Result<(), E> {
        self.0.nodes.push(Node::Int(i));
        Ok(())
    }

    fn visit_u64<E>(self, u: u64) -> Result<(), E> {
        self.0.nodes.push(i64::try_from(u).map_or(Node::UInt(u), Node::Int));
        Ok(())
    }

    fn visit_f64<E>(self, f: f64) -> Result<(), E> {
        self.0.nodes.push(Node::Float(f));
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        let node = self.0.string(s);
        self.0.nodes.push(node);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let at = self.0.open();
        let mut len = 0u32;
        while a.next_element_seed(Seed(&mut *self.0))?.is_some() {
            len += 1;
        }
        self.0.close(at, |len, end| Node::Array { len, end }, len);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let at = self.0.open();
        let mut len = 0u32;
        while a.next_key_seed(Seed(&mut *self.0))?.is_some() {
            a.next_value_seed(Seed(&mut *self.0))?;
            len += 1;
        }
        self.0.close(at, |len, end| Node::Object { len, end }, len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(text: &str) -> Object {
        Object::parse_str(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn values_read_back_as_serde_json_reads_them() {
        let cases = [
            r#"{}"#,
            r#"{"a":1,"b":-2,"c":1.5,"d":18446744073709551615,"e":null,"f":true,"g":"x"}"#,
            r#"{"nested":{"list":[1,[2,{"k":"v"}],{}],"empty":[]},"after":"y"}"#,
            r#"{"esc":"line\nbreak \"quoted\" \u00e9 \ud83d\ude00","plain":"é","k\u0041y":0}"#,
            r#" { "spaced" : [ 1 , 2 ] } "#,
        ];
        for text in cases {
            let want: Value = serde_json::from_str(text).unwrap();
            assert_eq!(obj(text).root().to_value(), want, "{text}");
        }
    }

    #[test]
    fn lookups_follow_the_document() {
        let o = obj(r#"{"s":"x","n":3,"o":{"inner":[true,null]},"s2":"a\tb"}"#);
        assert_eq!(o.get("s").and_then(|v| v.as_str()), Some("x"));
        assert_eq!(o.get("s2").and_then(|v| v.as_str()), Some("a\tb"));
        assert_eq!(o.get("n").and_then(|v| v.as_f64()), Some(3.0));
        assert_eq!(o.get("n").map(|v| v.kind()), Some(Kind::Int(3)));
        assert!(o.get("missing").is_none());
        assert!(o.get("s").unwrap().get("s").is_none(), "a string has no members");
        let inner = o.get("o").unwrap().get("inner").unwrap();
        assert_eq!(inner.len(), 2);
        assert_eq!(inner.items().map(|v| v.kind()).collect::<Vec<_>>(), vec![Kind::Bool(true), Kind::Null]);
        assert_eq!(o.root().members().map(|(k, _)| k).collect::<Vec<_>>(), ["s", "n", "o", "s2"]);
        assert_eq!(o.get("o"), o.get("o"), "the same value twice");
        assert_ne!(o.get("o"), o.get("s"));
    }

    #[test]
    fn pick_finds_what_get_finds() {
        let o = obj(r#"{"exp":1,"iss":"a","ctx":{"exp":2},"iss":"b","nested":[{"iss":"c"}]}"#);
        let keys = ["iss", "exp", "missing", "ctx", "iss"];
        let picked = o.root().pick(keys);
        for (key, got) in keys.iter().zip(picked) {
            assert_eq!(got, o.get(key), "{key}");
        }
        assert_eq!(picked[0].and_then(|v| v.as_str()), Some("b"));
        assert_eq!(o.get("ctx").unwrap().pick(["exp"])[0].and_then(|v| v.as_f64()), Some(2.0));
        assert_eq!(o.get("iss").unwrap().pick(["iss"]), [None], "a string has no members");
    }

    #[test]
    fn the_last_duplicate_name_counts() {
        let o = obj(r#"{"room":"a","x":{"y":1},"room":"b"}"#);
        assert_eq!(o.get("room").and_then(|v| v.as_str()), Some("b"));
        assert_eq!(o.to_map(), json!({"room": "b", "x": {"y": 1}}).as_object().unwrap().clone());
    }

    #[test]
    fn anything_but_one_json_object_is_refused() {
        for bad in [
            &b"[1]"[..], b"\"s\"", b"1", b"null", b"", b"{", b"{}{}", b"{} x", b"{\"a\":}", b"{'a':1}",
            b"{\"a\":1,}", b"{\"a\":\"\x01\"}", b"{\"a\":\"\xff\"}", b"\xef\xbb\xbf{}", b"{\"a\":1e999}",
        ] {
            assert!(Object::parse(bad.to_vec()).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "{\"a\":".repeat(200), "1".to_string() + &"}".repeat(200));
        assert!(Object::parse_str(&deep).is_none(), "nesting beyond serde_json's limit");
        let ok = format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100));
        assert!(Object::parse_str(&ok).is_some());
    }

    #[test]
    fn maps_round_trip() {
        let m = json!({"a": [1, "two", {"three": 3.5}], "b": {"c": null}});
        assert_eq!(Value::Object(Object::from_map(m.as_object().unwrap()).to_map()), m);
    }
}
