//! YAML config loading that keeps source positions, so every config error can
//! be reported as `file:line:column: key.path: message`.
//!
//! [`Document::parse`] builds a flat node tree (`tree.rs`) from yaml-rust2's marked
//! event stream; [`RawNode::deserialize`] drives serde over a subtree. Because a
//! field can be typed [`RawNode`], a config can be deserialized piecewise and
//! every piece's error collected, instead of stopping at the first one.
//!
//! Choices and limits:
//! - Anchors and aliases are resolved: an alias shares the anchored subtree,
//!   so errors inside it point at the anchor's text. Merge keys (`<<`) are not
//!   supported and are treated as an ordinary key.
//! - Mapping keys must be scalars; duplicates are compared by their text.
//! - Tags are ignored except `!!str`, which makes a plain scalar a string.
//! - `#[serde(untagged)]`, internally tagged enums and `#[serde(flatten)]`
//!   buffer the input in serde's private `Content`: errors inside them point
//!   at the enclosing node, a plain `123` there no longer fills a `String`,
//!   a `RawNode` there fails and a `Spanned` gets no position.

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use tree::{Id, Kind, Scalar, Tree};
use yaml_rust2::scanner::Marker;

mod tree;

/// A position in the source text, 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One config error: where, which key, what.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub path: String,
    pub message: String,
}

impl ConfigError {
    fn at(file: &str, pos: Pos, path: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line: pos.line,
            col: pos.col,
            path: path.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

fn key_path(base: &str, key: &str) -> String {
    let bare =
        !key.is_empty() && !key.contains(|c: char| c.is_whitespace() || ".[]\"'".contains(c));
    match (bare, base.is_empty()) {
        (true, true) => key.to_string(),
        (true, false) => format!("{base}.{key}"),
        (false, _) => format!("{base}[{key:?}]"),
    }
}

fn index_path(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

fn pos_of(m: &Marker) -> Pos {
    // yaml-rust2 markers have 1-based lines but 0-based columns.
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// A parsed YAML document with positions. Parse once, deserialize parts of it many times.
#[derive(Debug, Clone)]
pub struct Document {
    file: Arc<str>,
    tree: Arc<Tree>,
    root: Id,
}

impl Document {
    /// Parses a single YAML document. An empty text yields a null root;
    /// a stream with more than one document is an error.
    pub fn parse(file: &str, text: &str) -> Result<Document, ConfigError> {
        let (tree, root) = tree::parse(file, text)?;
        Ok(Document {
            file: file.into(),
            tree: Arc::new(tree),
            root,
        })
    }

    pub fn root(&self) -> RawNode {
        RawNode::new(&self.tree, self.root, "", &self.file)
    }

    pub fn file(&self) -> &str {
        &self.file
    }
}

/// A captured subtree plus the key path that leads to it (e.g. `devices[2].options`).
///
/// Usable as a field type in config structs. An absent field needs
/// `#[serde(default)]` (giving a null node without position) or, better,
/// `Option<RawNode>`. It holds the whole document's tree, which goes when the
/// last `RawNode` of it does.
#[derive(Clone, Debug)]
pub struct RawNode {
    tree: Arc<Tree>,
    id: Id,
    path: Arc<str>,
    file: Arc<str>,
}

impl Default for RawNode {
    fn default() -> Self {
        RawNode::new(&Arc::new(Tree::null(Pos::default())), 0, "", &"".into())
    }
}

impl RawNode {
    fn new(tree: &Arc<Tree>, id: Id, path: &str, file: &Arc<str>) -> RawNode {
        RawNode {
            tree: Arc::clone(tree),
            id,
            path: path.into(),
            file: Arc::clone(file),
        }
    }

    pub fn pos(&self) -> Pos {
        self.tree.pos(self.id)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn is_null(&self) -> bool {
        matches!(self.tree.scalar(self.id), Some(Scalar::Null))
    }

    /// [`RawNode::deserialize`], or `T`'s default for a section written empty (`history:`).
    pub fn deserialize_or_default<T: de::DeserializeOwned + Default>(
        &self,
    ) -> Result<T, ConfigError> {
        if self.is_null() {
            Ok(T::default())
        } else {
            self.deserialize()
        }
    }

    /// Deserializes this subtree. Stops at the first error, which carries the
    /// offending node's position and its full path from the document root.
    pub fn deserialize<T: de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let de = De {
            tree: &self.tree,
            id: self.id,
            path: self.path.to_string(),
            file: &self.file,
        };
        de.seed(PhantomData::<T>).map_err(|e| {
            let (pos, path) = e.loc.unwrap_or_default();
            ConfigError::at(&self.file, pos, &path, e.msg)
        })
    }

    /// An error located at this node, for validation done after deserializing.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.file, self.pos(), &self.path, message)
    }

    fn child(&self, id: Id, path: String) -> RawNode {
        RawNode::new(&self.tree, id, &path, &self.file)
    }

    pub fn get(&self, key: &str) -> Option<RawNode> {
        let entries = self.tree.entries(self.id);
        let pair = entries
            .chunks_exact(2)
            .find(|kv| self.tree.text(kv[0]) == key)?;
        Some(self.child(pair[1], key_path(&self.path, key)))
    }

    pub fn index(&self, i: usize) -> Option<RawNode> {
        let item = *self.tree.items(self.id).get(i)?;
        Some(self.child(item, index_path(&self.path, i)))
    }

    /// Map keys with their value nodes, in source order.
    pub fn entries(&self) -> Vec<(String, RawNode)> {
        let child = |kv: &[Id]| {
            let key = self.tree.text(kv[0]).to_string();
            let node = self.child(kv[1], key_path(&self.path, &key));
            (key, node)
        };
        self.tree
            .entries(self.id)
            .chunks_exact(2)
            .map(child)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.tree.len(self.id)
    }

    /// Every scalar under this node (itself included) whose key path ends in a key
    /// `matches` accepts, with its text as parsed (escapes resolved, block scalars
    /// joined). Aliases are followed, so an anchored value is found under each key that
    /// names it.
    pub fn scalars_under_keys(&self, matches: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_scalars(false, matches, &mut out);
        out
    }

    fn collect_scalars(&self, wanted: bool, matches: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
        match self.tree.kind(self.id) {
            Kind::Scalar { .. } if wanted => out.push(self.tree.text(self.id).to_string()),
            Kind::Scalar { .. } => {}
            Kind::Seq { .. } => {
                for &item in self.tree.items(self.id) {
                    self.child(item, String::new())
                        .collect_scalars(wanted, matches, out);
                }
            }
            Kind::Map { .. } => {
                for kv in self.tree.entries(self.id).chunks_exact(2) {
                    let key = matches(self.tree.text(kv[0]));
                    self.child(kv[1], String::new())
                        .collect_scalars(wanted || key, matches, out);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// serde has no way to hand a foreign value through a Visitor, so our
// Deserializer recognises these newtype names and passes the node/span
// through a thread-local slot that the matching visitor empties at once.
const RAW_NODE_MAGIC: &str = "$__uaedge_yaml_raw_node";
const SPANNED_MAGIC: &str = "$__uaedge_yaml_spanned";

thread_local! {
    static CAPTURED: Cell<Option<RawNode>> = const { Cell::new(None) };
    static SPAN: Cell<Option<(Pos, String, Arc<str>)>> = const { Cell::new(None) };
}

impl<'de> de::Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl Visitor<'_> for RawVisitor {
            type Value = RawNode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML node from the config loader")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
                CAPTURED.with(Cell::take).ok_or_else(|| {
                    E::custom("RawNode can only be deserialized by the YAML config loader")
                })
            }
        }
        d.deserialize_newtype_struct(RAW_NODE_MAGIC, RawVisitor)
    }
}

/// A value plus where it came from, for fields whose semantic checks run later.
///
/// From deserializers other than this module's, `pos` is `Pos::default()` and
/// `path`/`file` are empty.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
    pub path: String,
    pub file: Arc<str>,
}

impl<T> Spanned<T> {
    /// An error located at this value.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.file, self.pos, &self.path, message)
    }

    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SpanVisitor<T>(PhantomData<T>);
        impl<'de, T: de::Deserialize<'de>> Visitor<'de> for SpanVisitor<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Spanned<T>, D::Error> {
                // Take the span before T runs: T may contain Spanned fields itself.
                let (pos, path, file) = SPAN.with(Cell::take).unwrap_or_default();
                let value = T::deserialize(d)?;
                Ok(Spanned {
                    value,
                    pos,
                    path,
                    file,
                })
            }
        }
        d.deserialize_newtype_struct(SPANNED_MAGIC, SpanVisitor(PhantomData))
    }
}

/// Serde error with an optional location. Errors made by `custom` (e.g. in a
/// user's Deserialize impl) have none; the innermost node they pass through
/// stamps its own position and path on them.
#[derive(Debug)]
struct DeError {
    msg: String,
    loc: Option<(Pos, String)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            msg: msg.to_string(),
            loc: None,
        }
    }
}

#[derive(Clone)]
struct De<'a> {
    tree: &'a Arc<Tree>,
    id: Id,
    path: String,
    file: &'a Arc<str>,
}

fn locate<T>(r: Result<T, DeError>, pos: Pos, path: &str) -> Result<T, DeError> {
    r.map_err(|mut e| {
        e.loc.get_or_insert_with(|| (pos, path.to_string()));
        e
    })
}

impl<'a> De<'a> {
    fn err(&self, msg: impl Into<String>) -> DeError {
        let loc = Some((self.tree.pos(self.id), self.path.clone()));
        DeError {
            msg: msg.into(),
            loc,
        }
    }

    fn expected(&self, what: &str) -> DeError {
        self.err(format!(
            "expected {what}, found {}",
            self.tree.describe(self.id)
        ))
    }

    fn child(&self, id: Id, path: String) -> De<'a> {
        De {
            tree: self.tree,
            id,
            path,
            file: self.file,
        }
    }

    fn scalar(&self) -> Option<Scalar<'a>> {
        self.tree.scalar(self.id)
    }

    fn text(&self) -> &'a str {
        self.tree.text(self.id)
    }

    fn int(&self, ty: &str) -> Result<i128, DeError> {
        let text = self.text();
        match self.scalar() {
            Some(Scalar::Int(i)) => Ok(i),
            // Integer digits too long for i128 resolve as a float.
            Some(Scalar::Float(_))
                if text
                    .trim_start_matches(['-', '+'])
                    .bytes()
                    .all(|b| b.is_ascii_digit()) =>
            {
                Err(self.err(format!("{text} is out of range for {ty}")))
            }
            _ => Err(self.expected("an integer")),
        }
    }

    /// Every node is deserialized through here (or `RawNode::deserialize`), so
    /// any error without a location, whether from a visitor or from a custom
    /// impl after our methods returned, gets this node's position and path.
    fn seed<'de, S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, DeError> {
        let (pos, path) = (self.tree.pos(self.id), self.path.clone());
        locate(seed.deserialize(self), pos, &path)
    }

    fn visit_seq<'de, V: Visitor<'de>>(&self, v: V, items: &'a [Id]) -> Result<V::Value, DeError> {
        let mut acc = SeqAcc {
            de: self.clone(),
            iter: items.iter().enumerate(),
        };
        let value = v.visit_seq(&mut acc)?;
        match acc.iter.len() {
            0 => Ok(value),
            n => Err(self.err(format!(
                "{n} unexpected extra element(s) in sequence of {}",
                items.len()
            ))),
        }
    }
}

macro_rules! int_methods {
    ($($method:ident $ty:ident $visit:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            let i = self.int(stringify!($ty))?;
            let out_of_range = |_| self.err(format!("{i} is out of range for {}", stringify!($ty)));
            v.$visit($ty::try_from(i).map_err(out_of_range)?)
        }
    )*};
}

macro_rules! forward {
    ($($method:ident($($arg:ty),*) => $to:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, $(_: $arg,)* v: V) -> Result<V::Value, DeError> {
            self.$to(v)
        }
    )*};
}

impl<'de> Deserializer<'de> for De<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match (self.tree.kind(self.id), self.scalar()) {
            (Kind::Seq { .. }, _) => self.visit_seq(v, self.tree.items(self.id)),
            (Kind::Map { .. }, _) => v.visit_map(MapAcc::new(&self)),
            (_, Some(Scalar::Null)) => v.visit_unit(),
            (_, Some(Scalar::Bool(b))) => v.visit_bool(b),
            (_, Some(Scalar::Int(i))) => match (i64::try_from(i), u64::try_from(i)) {
                (Ok(n), _) => v.visit_i64(n),
                (_, Ok(n)) => v.visit_u64(n),
                _ => v.visit_i128(i),
            },
            (_, Some(Scalar::Float(f))) => v.visit_f64(f),
            (_, _) => v.visit_str(self.text()),
        }
    }

    forward!(
        deserialize_f32() => deserialize_f64, deserialize_string() => deserialize_str,
        deserialize_char() => deserialize_str, deserialize_unit_struct(&str) => deserialize_unit,
        deserialize_tuple(usize) => deserialize_seq,
        deserialize_tuple_struct(&str, usize) => deserialize_seq,
        deserialize_struct(&str, &[&str]) => deserialize_map
    );

    int_methods!(
        deserialize_i8 i8 visit_i8, deserialize_i16 i16 visit_i16,
        deserialize_i32 i32 visit_i32, deserialize_i64 i64 visit_i64,
        deserialize_i128 i128 visit_i128, deserialize_u8 u8 visit_u8,
        deserialize_u16 u16 visit_u16, deserialize_u32 u32 visit_u32,
        deserialize_u64 u64 visit_u64, deserialize_u128 u128 visit_u128
    );

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some(Scalar::Float(f)) => v.visit_f64(f),
            Some(Scalar::Int(i)) => v.visit_f64(i as f64),
            _ => Err(self.expected("a number")),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some(Scalar::Bool(b)) => v.visit_bool(b),
            _ => Err(self.expected("a boolean")),
        }
    }

    /// Any non-null scalar's source text, so `name: 123` fills a String field.
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            None | Some(Scalar::Null) => Err(self.expected("a string")),
            Some(_) => v.visit_str(self.text()),
        }
    }

    /// Unlike `deserialize_str`, a null key is still the name `null`.
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.tree.kind(self.id) {
            Kind::Scalar { .. } => v.visit_str(self.text()),
            _ => Err(self.expected("a name")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some(Scalar::Null) => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some(Scalar::Null) => v.visit_unit(),
            _ => Err(self.expected("null")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &str,
        v: V,
    ) -> Result<V::Value, DeError> {
        // Clear the slot afterwards too, so nothing stale outlives this call.
        if name == RAW_NODE_MAGIC {
            let raw = RawNode::new(self.tree, self.id, &self.path, self.file);
            CAPTURED.with(|c| c.set(Some(raw)));
            let r = v.visit_unit();
            CAPTURED.with(Cell::take);
            r
        } else if name == SPANNED_MAGIC {
            let span = (
                self.tree.pos(self.id),
                self.path.clone(),
                Arc::clone(self.file),
            );
            SPAN.with(|s| s.set(Some(span)));
            let r = v.visit_newtype_struct(self);
            SPAN.with(Cell::take);
            r
        } else {
            v.visit_newtype_struct(self)
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.tree.kind(self.id) {
            Kind::Seq { .. } => self.visit_seq(v, self.tree.items(self.id)),
            _ => Err(self.expected("a sequence")),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.tree.kind(self.id) {
            Kind::Map { .. } => v.visit_map(MapAcc::new(&self)),
            _ => Err(self.expected("a mapping")),
        }
    }

    /// Unit variants are plain strings; the others are single-key mappings
    /// `{variant: content}` (serde's externally tagged form).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &str,
        _: &[&str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match (self.tree.kind(self.id), self.tree.entries(self.id)) {
            (Kind::Scalar { .. }, _) => v.visit_enum(EnumAcc {
                variant: self.clone(),
                content: None,
                at: self,
            }),
            (_, &[k, val]) => {
                let path = key_path(&self.path, self.tree.text(k));
                let content = Some(self.child(val, path.clone()));
                v.visit_enum(EnumAcc {
                    variant: self.child(k, path),
                    content,
                    at: self,
                })
            }
            _ => Err(self.expected(&format!(
                "a variant name or a single-key mapping for {name}"
            ))),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! { bytes byte_buf }
}

struct SeqAcc<'a> {
    de: De<'a>,
    iter: std::iter::Enumerate<std::slice::Iter<'a, Id>>,
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'_> {
    type Error = DeError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DeError> {
        let Some((i, &item)) = self.iter.next() else {
            return Ok(None);
        };
        self.de
            .child(item, index_path(&self.de.path, i))
            .seed(seed)
            .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapAcc<'a> {
    de: De<'a>,
    iter: std::slice::ChunksExact<'a, Id>,
    value: Option<De<'a>>,
}

impl<'a> MapAcc<'a> {
    fn new(de: &De<'a>) -> Self {
        MapAcc {
            de: de.clone(),
            iter: de.tree.entries(de.id).chunks_exact(2),
            value: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAcc<'_> {
    type Error = DeError;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DeError> {
        let Some(&[k, v]) = self.iter.next() else {
            return Ok(None);
        };
        // The key carries the child's path so an unknown-field error names it.
        let path = key_path(&self.de.path, self.de.tree.text(k));
        self.value = Some(self.de.child(v, path.clone()));
        self.de.child(k, path).seed(seed).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, DeError> {
        match self.value.take() {
            Some(de) => de.seed(seed),
            None => Err(self.de.err("map value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// Both the enum and its variant access: `at` is the whole enum node, for
/// errors about a missing variant value.
struct EnumAcc<'a> {
    variant: De<'a>,
    content: Option<De<'a>>,
    at: De<'a>,
}

impl<'a> EnumAcc<'a> {
    fn content(self, shape: &str) -> Result<De<'a>, DeError> {
        let msg = format!("this variant needs a value: write it as `variant: {shape}`");
        self.content.ok_or_else(|| self.at.err(msg))
    }
}

impl<'de, 'a> de::EnumAccess<'de> for EnumAcc<'a> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), DeError> {
        Ok((self.variant.clone().seed(seed)?, self))
    }
}

impl<'de> de::VariantAccess<'de> for EnumAcc<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.content {
            Some(de) if !matches!(de.scalar(), Some(Scalar::Null)) => Err(de.expected("no value")),
            _ => Ok(()),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, DeError> {
        self.content("value")?.seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, DeError> {
        self.content("[..]")?.deserialize_seq(v)
    }

    fn struct_variant<V: Visitor<'de>>(self, _: &[&str], v: V) -> Result<V::Value, DeError> {
        self.content("{..}")?.deserialize_map(v)
    }
}

#[cfg(test)]
mod tests;
