//! From text to `RawConfig`, before any section is checked: the TOML is parsed once with its
//! spans, `${NAME}` is expanded in every string value, then serde reads the structs. A key serde
//! refuses (unknown, wrong type, bad duration) is reported and dropped, and the read is tried
//! again, so one run names every such key; only a missing required key stops it.

use super::ctx::Ctx;
use crate::config::env::expand;
use crate::config::locate::{render, Locator, Seg};
use crate::config::raw::RawConfig;
use crate::config::suggest::unknown_key;
use toml_edit::{DocumentMut, Formatted, Item, Table, Value};

/// At most this many keys are dropped before giving up (each one is an error already).
const MAX_REFUSED_KEYS: usize = 64;

/// Reads `text` into a `RawConfig`, reporting every problem into `cx`. `None` when a required
/// key is missing or the text is not TOML: the sections cannot be checked then.
pub(super) fn read(cx: &mut Ctx<'_>, text: &str) -> Option<RawConfig> {
    let mut doc = match text.parse::<DocumentMut>() {
        Ok(d) => d,
        Err(e) => {
            let line = e.span().map(|s| cx.loc.line_of(s.start));
            let key = e
                .span()
                .map(|s| render(&cx.loc.path_at(s.start)))
                .unwrap_or_default();
            // toml leaves the message empty for some syntax errors (found by fuzzing).
            let message = match e.message().trim() {
                "" => "invalid TOML syntax".to_owned(),
                m => m.to_owned(),
            };
            cx.err_at(line, key, message);
            return None;
        }
    };
    let mut path = Vec::new();
    for (key, item) in doc.as_table_mut().iter_mut() {
        path.push(Seg::Key(key.get().to_owned()));
        expand_item(cx, item, &mut path);
        path.pop();
    }
    let changed = cx.has_placeholders() || text != doc.to_string();
    let mut stand_ins: Vec<Vec<Seg>> = Vec::new();
    for _ in 0..MAX_REFUSED_KEYS {
        let current = doc.to_string();
        let e = match toml::from_str::<RawConfig>(&current) {
            Ok(raw) => return Some(raw),
            Err(e) => e,
        };
        let here = Locator::new(&current);
        let at = e.span().map(|s| s.start);
        let mut path = at.map(|o| here.path_at(o)).unwrap_or_default();
        let table = e
            .span()
            .and_then(|s| here.table_starting_at(s.start, s.end));
        let message = e.message().trim().to_owned();
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            // The span is the table that lacks the key (empty at the top level).
            let mut path = table.unwrap_or_default();
            let line = cx.loc.line_of_path(&path);
            path.push(Seg::Key(field.to_owned()));
            if !cx.suppressed(&path) {
                cx.err_at(line, render(&path), message);
                return None;
            }
            // A required key whose value was refused (reported already): a placeholder string
            // lets the rest of the file be read and checked. Once only: a key that is not a
            // string refuses it again, and then reading stops.
            if stand_ins.contains(&path) || !insert(&mut doc, &path) {
                return None;
            }
            stand_ins.push(path);
            continue;
        }
        // Drop the whole key (not one element of its array: indices must keep their meaning).
        path.truncate(last_key(&path));
        if path.is_empty() {
            let line = if changed {
                None
            } else {
                at.map(|o| cx.loc.line_of(o))
            };
            cx.err_at(line, String::new(), message);
            return None;
        }
        let table = render(path.get(..path.len() - 1).unwrap_or_default());
        let message = unknown_key(&message, &table).unwrap_or(message);
        if !cx.suppressed(&path) {
            let line = cx.loc.line_of_path(&path);
            cx.err_at(line, render(&path), message);
        }
        if !remove(&mut doc, &path) {
            return None;
        }
        cx.refused(&path);
    }
    None
}

/// The length of `path` up to and including its last key segment (0: none).
fn last_key(path: &[Seg]) -> usize {
    path.iter()
        .rposition(|s| matches!(s, Seg::Key(_)))
        .map_or(0, |i| i + 1)
}

fn expand_item(cx: &mut Ctx<'_>, item: &mut Item, path: &mut Vec<Seg>) {
    match item {
        Item::Table(t) => {
            for (key, item) in t.iter_mut() {
                path.push(Seg::Key(key.get().to_owned()));
                expand_item(cx, item, path);
                path.pop();
            }
        }
        Item::ArrayOfTables(a) => {
            for (n, t) in a.iter_mut().enumerate() {
                path.push(Seg::Index(n));
                for (key, item) in t.iter_mut() {
                    path.push(Seg::Key(key.get().to_owned()));
                    expand_item(cx, item, path);
                    path.pop();
                }
                path.pop();
            }
        }
        Item::Value(v) => expand_value(cx, v, path),
        Item::None => {}
    }
}

fn expand_value(cx: &mut Ctx<'_>, v: &mut Value, path: &mut Vec<Seg>) {
    match v {
        Value::String(s) if s.value().contains('$') => {
            let expanded = match expand(s.value(), cx.env) {
                Ok(e) => e,
                Err(why) => {
                    cx.err(path, why);
                    cx.refused(path);
                    return;
                }
            };
            if !expanded.unset.is_empty() {
                cx.placeholder(path, &expanded.unset);
            }
            if expanded.text != *s.value() {
                let mut new = Formatted::new(expanded.text);
                *new.decor_mut() = s.decor().clone();
                *s = new;
            }
        }
        Value::Array(a) => {
            for (n, v) in a.iter_mut().enumerate() {
                path.push(Seg::Index(n));
                expand_value(cx, v, path);
                path.pop();
            }
        }
        Value::InlineTable(t) => {
            for (key, v) in t.iter_mut() {
                path.push(Seg::Key(key.get().to_owned()));
                expand_value(cx, v, path);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Sets the key at `path` (its table exists) to a placeholder string.
fn insert(doc: &mut DocumentMut, path: &[Seg]) -> bool {
    let Some((Seg::Key(last), parent)) = path.split_last() else {
        return false;
    };
    let value = || Value::from(crate::config::env::PLACEHOLDER);
    insert_in_table(doc.as_table_mut(), parent, last, value())
}

fn insert_in_table(t: &mut Table, parent: &[Seg], last: &str, v: Value) -> bool {
    match parent {
        [] => t.insert(last, Item::Value(v)).is_none(),
        [Seg::Key(k), rest @ ..] => match t.get_mut(k) {
            Some(Item::Table(sub)) => insert_in_table(sub, rest, last, v),
            Some(Item::ArrayOfTables(a)) => match rest {
                [Seg::Index(i), rest @ ..] => a
                    .get_mut(*i)
                    .is_some_and(|sub| insert_in_table(sub, rest, last, v)),
                _ => false,
            },
            Some(Item::Value(inline)) => insert_in_value(inline, rest, last, v),
            _ => false,
        },
        _ => false,
    }
}

fn insert_in_value(at: &mut Value, parent: &[Seg], last: &str, v: Value) -> bool {
    match (at, parent) {
        (Value::InlineTable(t), []) => t.insert(last, v).is_none(),
        (Value::InlineTable(t), [Seg::Key(k), rest @ ..]) => t
            .get_mut(k)
            .is_some_and(|sub| insert_in_value(sub, rest, last, v)),
        (Value::Array(a), [Seg::Index(i), rest @ ..]) => a
            .get_mut(*i)
            .is_some_and(|sub| insert_in_value(sub, rest, last, v)),
        _ => false,
    }
}

/// Removes the key at `path` (its last segment is a key); false when it is not there.
fn remove(doc: &mut DocumentMut, path: &[Seg]) -> bool {
    remove_in_table(doc.as_table_mut(), path)
}

fn remove_in_table(t: &mut Table, path: &[Seg]) -> bool {
    match path {
        [Seg::Key(k)] => t.remove(k).is_some(),
        [Seg::Key(k), rest @ ..] => t.get_mut(k).is_some_and(|i| remove_in_item(i, rest)),
        _ => false,
    }
}

fn remove_in_item(item: &mut Item, path: &[Seg]) -> bool {
    match (item, path) {
        (Item::Table(t), _) => remove_in_table(t, path),
        (Item::ArrayOfTables(a), [Seg::Index(i), rest @ ..]) => {
            a.get_mut(*i).is_some_and(|t| remove_in_table(t, rest))
        }
        (Item::Value(v), _) => remove_in_value(v, path),
        _ => false,
    }
}

fn remove_in_value(v: &mut Value, path: &[Seg]) -> bool {
    match (v, path) {
        (Value::InlineTable(t), [Seg::Key(k)]) => t.remove(k).is_some(),
        (Value::InlineTable(t), [Seg::Key(k), rest @ ..]) => {
            t.get_mut(k).is_some_and(|v| remove_in_value(v, rest))
        }
        (Value::Array(a), [Seg::Index(i), rest @ ..]) => {
            a.get_mut(*i).is_some_and(|v| remove_in_value(v, rest))
        }
        _ => false,
    }
}
