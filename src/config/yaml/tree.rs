//! The parsed YAML tree: every node, child list and scalar text of a document in three
//! flat arrays, built from yaml-rust2's marked event stream.
//!
//! Flat because of what a 100,000-tag config does to the heap. As one small allocation
//! per node (an `Arc` per node, a box per scalar and per child list) its tree was about
//! 700,000 nodes and 110 MB of heap at the peak of a parse, and the long-lived strings
//! that the model makes while the tree is going (tag paths, device addresses) landed in
//! its holes and kept the pages: the gateway sat at 130 MB after loading a config of
//! 9 MB. Three arrays are about 20 bytes a node, they grow by reallocation (mremap once
//! they are large), and they go back to the system in one piece when the tree is dropped.

use super::{index_path, key_path, pos_of, ConfigError, Pos};
use std::collections::{HashMap, HashSet};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// A node's index in its [`Tree`].
pub(super) type Id = u32;

#[derive(Debug, Clone, Copy)]
pub(super) struct YamlNode {
    line: u32,
    col: u32,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// `plain` is false for quoted, block and `!!str` scalars: those are never
    /// resolved to null/bool/number. The text is `Tree::text[start..start + len]`.
    Scalar { start: u32, len: u32, plain: bool },
    /// Items are `Tree::kids[start..start + len]`.
    Seq { start: u32, len: u32 },
    /// `len` entries, key and value alternating in `Tree::kids[start..start + 2 * len]`.
    /// Keys are always scalar nodes (checked while parsing).
    Map { start: u32, len: u32 },
}

/// Where an index that cannot come from the parser points (and a default `RawNode`).
const NULL: YamlNode = YamlNode {
    line: 0,
    col: 0,
    kind: Kind::Scalar {
        start: 0,
        len: 0,
        plain: true,
    },
};

/// YAML 1.2 core-schema resolution of one scalar.
pub(super) enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
}

#[derive(Debug, Default)]
pub(super) struct Tree {
    nodes: Vec<YamlNode>,
    kids: Vec<Id>,
    text: String,
}

impl Tree {
    /// A tree of one null node at `pos`, id 0.
    pub(super) fn null(pos: Pos) -> Tree {
        let mut tree = Tree::default();
        tree.nodes.push(YamlNode {
            line: clamp(pos.line),
            col: clamp(pos.col),
            ..NULL
        });
        tree
    }

    fn node(&self, id: Id) -> YamlNode {
        self.nodes.get(id as usize).copied().unwrap_or(NULL)
    }

    pub(super) fn kind(&self, id: Id) -> Kind {
        self.node(id).kind
    }

    pub(super) fn pos(&self, id: Id) -> Pos {
        let n = self.node(id);
        Pos {
            line: n.line as usize,
            col: n.col as usize,
        }
    }

    fn slice(&self, start: u32, len: usize) -> &[Id] {
        let start = start as usize;
        self.kids.get(start..start + len).unwrap_or(&[])
    }

    /// A scalar's source text; "" for collections.
    pub(super) fn text(&self, id: Id) -> &str {
        match self.kind(id) {
            Kind::Scalar { start, len, .. } => {
                let start = start as usize;
                self.text.get(start..start + len as usize).unwrap_or("")
            }
            _ => "",
        }
    }

    pub(super) fn scalar(&self, id: Id) -> Option<Scalar<'_>> {
        match self.kind(id) {
            Kind::Scalar { plain, .. } => Some(resolve(self.text(id), plain)),
            _ => None,
        }
    }

    /// A sequence's items; empty for anything else.
    pub(super) fn items(&self, id: Id) -> &[Id] {
        match self.kind(id) {
            Kind::Seq { start, len } => self.slice(start, len as usize),
            _ => &[],
        }
    }

    /// A mapping's keys and values, alternating; empty for anything else.
    pub(super) fn entries(&self, id: Id) -> &[Id] {
        match self.kind(id) {
            Kind::Map { start, len } => self.slice(start, 2 * len as usize),
            _ => &[],
        }
    }

    pub(super) fn len(&self, id: Id) -> usize {
        match self.kind(id) {
            Kind::Seq { len, .. } | Kind::Map { len, .. } => len as usize,
            Kind::Scalar { .. } => 0,
        }
    }

    pub(super) fn describe(&self, id: Id) -> String {
        match (self.kind(id), self.scalar(id)) {
            (Kind::Seq { .. }, _) => "a sequence".into(),
            (_, None) => "a mapping".into(),
            (_, Some(Scalar::Null)) => "null".into(),
            (_, Some(Scalar::Bool(b))) => format!("boolean `{b}`"),
            (_, Some(Scalar::Int(i))) => format!("integer {i}"),
            (_, Some(Scalar::Float(_))) => format!("float {}", self.text(id)),
            (_, Some(Scalar::Str(s))) => format!("string {s:?}"),
        }
    }
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn resolve(text: &str, plain: bool) -> Scalar<'_> {
    if !plain {
        return Scalar::Str(text);
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let radix = |prefix: &str, radix: u32| {
        let digits = body.strip_prefix(prefix)?;
        let v = i128::from_str_radix(digits, radix).ok()?;
        // from_str_radix accepts its own sign, which YAML does not allow here.
        (!digits.starts_with(['+', '-'])).then_some(if neg { -v } else { v })
    };
    if let Some(v) = radix("0x", 16)
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("", 10))
    {
        return Scalar::Int(v);
    }
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return Scalar::Float(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // Rust's float parser also takes "inf"/"nan"/"infinity"; YAML only takes
    // digits, dots and exponents here.
    let numeric = body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE+-".contains(c));
    match text.parse::<f64>() {
        Ok(f) if numeric => Scalar::Float(f),
        _ => Scalar::Str(text),
    }
}

/// Deep enough for any sane config, shallow enough that the recursive parser
/// and deserializer cannot overflow the stack on hostile input.
const MAX_DEPTH: usize = 128;

/// Up to this many keys a mapping's duplicates are found by comparing with each earlier
/// key; beyond it through a set, so a hostile mapping of many keys stays linear.
const LINEAR_KEYS: usize = 16;

/// One step of the path from the root to the node being built, rendered only for errors.
enum Step {
    Index(usize),
    Key(Id),
}

struct Builder<'t> {
    parser: Parser<std::str::Chars<'t>>,
    file: &'t str,
    anchors: HashMap<usize, Id>,
    tree: Tree,
    /// Children of the collections being built, innermost last; moved to `tree.kids` when
    /// their collection ends, so each child list lands there in one piece.
    open: Vec<Id>,
    steps: Vec<Step>,
}

/// Parses a single YAML document into a tree and its root. An empty text yields a null
/// root; a stream with more than one document is an error.
pub(super) fn parse(file: &str, text: &str) -> Result<(Tree, Id), ConfigError> {
    if u32::try_from(text.len()).is_err() {
        let msg = "the config file is larger than 4 GiB";
        return Err(ConfigError::at(file, Pos::default(), "", msg));
    }
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        file,
        anchors: HashMap::new(),
        tree: Tree::default(),
        open: Vec::new(),
        steps: Vec::new(),
    };
    let mut root = None;
    loop {
        let (ev, pos) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart if root.is_some() => {
                let msg = "multiple YAML documents in one file are not supported";
                return Err(ConfigError::at(file, pos, "", msg));
            }
            Event::DocumentStart => {
                let (ev, pos) = b.next()?;
                root = Some(if ev == Event::DocumentEnd {
                    b.push(pos, NULL.kind)?
                } else {
                    b.node(ev, pos, 0)?
                });
            }
            other => {
                let msg = format!("unexpected YAML event {other:?}");
                return Err(ConfigError::at(file, pos, "", msg));
            }
        }
    }
    let mut tree = b.tree;
    let root = match root {
        Some(root) => root,
        None => {
            tree = Tree::null(Pos { line: 1, col: 1 });
            0
        }
    };
    Ok((tree, root))
}

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Pos), ConfigError> {
        match self.parser.next_token() {
            Ok((ev, m)) => Ok((ev, pos_of(&m))),
            Err(e) => Err(ConfigError::at(self.file, pos_of(e.marker()), "", e.info())),
        }
    }

    /// The key path of the node being built, e.g. `devices[2].options`.
    fn path(&self) -> String {
        self.steps
            .iter()
            .fold(String::new(), |base, step| match step {
                Step::Index(i) => index_path(&base, *i),
                Step::Key(k) => key_path(&base, self.tree.text(*k)),
            })
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, pos, &self.path(), msg)
    }

    fn too_large(&self, pos: Pos) -> ConfigError {
        self.err(pos, "the config has too many nodes")
    }

    fn push(&mut self, pos: Pos, kind: Kind) -> Result<Id, ConfigError> {
        let id = u32::try_from(self.tree.nodes.len()).map_err(|_| self.too_large(pos))?;
        self.tree.nodes.push(YamlNode {
            line: clamp(pos.line),
            col: clamp(pos.col),
            kind,
        });
        Ok(id)
    }

    /// Moves the children opened since `base` to `tree.kids`; returns where they start.
    fn close(&mut self, base: usize, pos: Pos) -> Result<u32, ConfigError> {
        let start = u32::try_from(self.tree.kids.len()).map_err(|_| self.too_large(pos))?;
        let kids = self.open.drain(base..);
        self.tree.kids.extend(kids);
        Ok(start)
    }

    fn node(&mut self, ev: Event, pos: Pos, depth: usize) -> Result<Id, ConfigError> {
        if depth > MAX_DEPTH {
            return Err(self.err(pos, "document is nested too deeply"));
        }
        let (anchor, kind, pos) = match ev {
            Event::Alias(id) => {
                // The parser already rejects unknown anchors, so a miss here
                // means the alias sits inside its own anchored node.
                return match self.anchors.get(&id) {
                    Some(&node) => Ok(node),
                    None => Err(self.err(pos, "recursive alias")),
                };
            }
            Event::Scalar(text, style, anchor, tag) => {
                let is_str = tag.is_some_and(|t| t.suffix == "str");
                let plain = style == TScalarStyle::Plain && !is_str;
                // Escapes can make a scalar longer than its source, so the text is checked
                // here again, not only in `parse`.
                let (start, len) = (self.tree.text.len(), text.len());
                let (Ok(start), Ok(len), Ok(_)) = (
                    u32::try_from(start),
                    u32::try_from(len),
                    u32::try_from(start + len),
                ) else {
                    return Err(self.too_large(pos));
                };
                self.tree.text.push_str(&text);
                (anchor, Kind::Scalar { start, len, plain }, pos)
            }
            Event::SequenceStart(anchor, _) => {
                let base = self.open.len();
                loop {
                    let (ev, p) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    self.steps.push(Step::Index(self.open.len() - base));
                    let item = self.node(ev, p, depth + 1);
                    self.steps.pop();
                    self.open.push(item?);
                }
                let len = clamp(self.open.len() - base);
                let start = self.close(base, pos)?;
                (anchor, Kind::Seq { start, len }, pos)
            }
            Event::MappingStart(anchor, _) => {
                let base = self.open.len();
                let mut keys: Option<HashSet<String>> = None;
                // A block mapping's start mark is its first `:`; users expect the first key.
                let mut first = pos;
                loop {
                    let (ev, kpos) = self.next()?;
                    if ev == Event::MappingEnd {
                        break;
                    }
                    if self.open.len() == base {
                        first = std::cmp::min_by_key(pos, kpos, |p| (p.line, p.col));
                    }
                    let key = self.node(ev, kpos, depth + 1)?;
                    if !matches!(self.tree.kind(key), Kind::Scalar { .. }) {
                        return Err(self.err(kpos, "mapping keys must be scalars"));
                    }
                    self.steps.push(Step::Key(key));
                    if self.is_duplicate(base, key, &mut keys) {
                        let msg = format!("duplicate key `{}`", self.tree.text(key));
                        return Err(self.err(kpos, msg));
                    }
                    let value = self
                        .next()
                        .and_then(|(ev, vpos)| self.node(ev, vpos, depth + 1));
                    self.steps.pop();
                    self.open.push(key);
                    self.open.push(value?);
                }
                let len = clamp((self.open.len() - base) / 2);
                let start = self.close(base, pos)?;
                (anchor, Kind::Map { start, len }, first)
            }
            other => return Err(self.err(pos, format!("unexpected YAML event {other:?}"))),
        };
        let id = self.push(pos, kind)?;
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
        Ok(id)
    }

    /// Whether `key` repeats one of the keys opened since `base` (values between them).
    fn is_duplicate(&self, base: usize, key: Id, keys: &mut Option<HashSet<String>>) -> bool {
        let text = self.tree.text(key);
        let earlier = self.open.get(base..).unwrap_or(&[]).iter().step_by(2);
        if earlier.len() < LINEAR_KEYS {
            return earlier.into_iter().any(|&k| self.tree.text(k) == text);
        }
        let set = keys.get_or_insert_with(|| {
            let earlier = self.open.get(base..).unwrap_or(&[]).iter().step_by(2);
            earlier.map(|&k| self.tree.text(k).to_string()).collect()
        });
        !set.insert(text.to_string())
    }
}
