//! Maps between byte offsets in the TOML text and dotted key paths, so every config error can
//! name its line and key. Works on a second, span-preserving parse of the same text.

use toml_edit::{ImDocument, Item, Table, Value};

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path as `routes[2].allow_roles`.
pub fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// The parsed document with spans, or nothing when the text is not valid TOML.
pub struct Locator {
    text: String,
    doc: Option<ImDocument<String>>,
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
    Table(&'a Table),
}

impl Locator {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            doc: ImDocument::parse(text.to_owned()).ok(),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text
            .as_bytes()
            .get(..end)
            .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
            + 1
    }

    /// The line where the key at `path` is written (or its closest existing ancestor).
    pub fn line_of_path(&self, path: &[Seg]) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut best: Option<usize> = doc.as_table().span().map(|s| s.start);
        let mut node = Node::Item(doc.as_item());
        for seg in path {
            let (next, span) = match (node, seg) {
                (Node::Item(Item::Table(t)), Seg::Key(k)) | (Node::Table(t), Seg::Key(k)) => {
                    match t.get_key_value(k) {
                        Some((key, item)) => (Node::Item(item), key.span().or_else(|| item.span())),
                        None => break,
                    }
                }
                (Node::Item(Item::Value(Value::InlineTable(t))), Seg::Key(k))
                | (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => match t.get_key_value(k) {
                    Some((key, item)) => (Node::Item(item), key.span().or_else(|| item.span())),
                    None => break,
                },
                (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => match a.get(*i) {
                    Some(t) => (Node::Table(t), t.span()),
                    None => break,
                },
                (Node::Item(Item::Value(Value::Array(a))), Seg::Index(i))
                | (Node::Value(Value::Array(a)), Seg::Index(i)) => match a.get(*i) {
                    Some(v) => (Node::Value(v), v.span()),
                    None => break,
                },
                _ => break,
            };
            if let Some(s) = span {
                best = Some(s.start);
            }
            node = next;
        }
        best.map(|o| self.line_of(o))
    }

    /// The table (header table, array-of-tables element or inline table) whose text starts at
    /// `start`: where serde points when a key is missing from it. `None` for an empty span.
    pub fn table_starting_at(&self, start: usize, end: usize) -> Option<Vec<Seg>> {
        if end <= start {
            return None;
        }
        let mut path = Vec::new();
        tables_from(self.doc.as_ref()?.as_table(), start, &mut path).then_some(path)
    }

    /// The dotted key whose key or value contains `offset` (deepest match).
    pub fn path_at(&self, offset: usize) -> Vec<Seg> {
        let mut path = Vec::new();
        if let Some(doc) = &self.doc {
            walk_table(doc.as_table(), offset, &mut path);
        }
        path
    }
}

fn contains(span: Option<std::ops::Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn walk_table(t: &Table, offset: usize, path: &mut Vec<Seg>) -> bool {
    for (k, item) in t.iter() {
        let key_span = t.key(k).and_then(|key| key.span());
        if contains(key_span, offset) {
            path.push(Seg::Key(k.to_owned()));
            return true;
        }
        path.push(Seg::Key(k.to_owned()));
        if walk_item(item, offset, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn walk_item(item: &Item, offset: usize, path: &mut Vec<Seg>) -> bool {
    match item {
        Item::Table(t) => walk_table(t, offset, path),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                if walk_table(t, offset, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        Item::Value(v) => walk_value(v, offset, path),
        Item::None => false,
    }
}

fn walk_value(v: &Value, offset: usize, path: &mut Vec<Seg>) -> bool {
    match v {
        Value::InlineTable(t) => {
            for (k, item) in t.iter() {
                let key_span = t.key(k).and_then(|key| key.span());
                path.push(Seg::Key(k.to_owned()));
                if contains(key_span, offset) || walk_value(item, offset, path) {
                    return true;
                }
                path.pop();
            }
            contains(v.span(), offset)
        }
        Value::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                if walk_value(item, offset, path) {
                    return true;
                }
                path.pop();
            }
            contains(v.span(), offset)
        }
        _ => contains(v.span(), offset),
    }
}

fn starts_at(span: Option<std::ops::Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start == offset)
}

/// Finds the table starting at `offset` below `t`, leaving its path in `path`.
fn tables_from(t: &Table, offset: usize, path: &mut Vec<Seg>) -> bool {
    for (k, item) in t.iter() {
        path.push(Seg::Key(k.to_owned()));
        let found = match item {
            Item::Table(sub) => starts_at(sub.span(), offset) || tables_from(sub, offset, path),
            Item::ArrayOfTables(a) => a.iter().enumerate().any(|(i, sub)| {
                path.push(Seg::Index(i));
                let hit = starts_at(sub.span(), offset) || tables_from(sub, offset, path);
                if !hit {
                    path.pop();
                }
                hit
            }),
            Item::Value(v) => inline_from(v, offset, path),
            Item::None => false,
        };
        if found {
            return true;
        }
        path.pop();
    }
    false
}

fn inline_from(v: &Value, offset: usize, path: &mut Vec<Seg>) -> bool {
    match v {
        Value::InlineTable(t) => {
            starts_at(v.span(), offset)
                || t.iter().any(|(k, v)| {
                    path.push(Seg::Key(k.to_owned()));
                    let hit = inline_from(v, offset, path);
                    if !hit {
                        path.pop();
                    }
                    hit
                })
        }
        Value::Array(a) => a.iter().enumerate().any(|(i, v)| {
            path.push(Seg::Index(i));
            let hit = inline_from(v, offset, path);
            if !hit {
                path.pop();
            }
            hit
        }),
        _ => false,
    }
}
