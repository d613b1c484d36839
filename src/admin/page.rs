//! Paging of the admin lists: `limit` (1-500, default 100) and the `{"items", "next"}` shape.
//! A list asks its store for `limit + 1` items; the extra one only says that a next page
//! exists, and the last item shown names the cursor of that page.

use super::error::AdminError;
use crate::http::query_param;
use serde_json::{json, Value};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

/// The page size the query asks for.
pub fn limit(q: Option<&str>) -> Result<usize, AdminError> {
    match query_param(q, "limit") {
        None => Ok(DEFAULT_PAGE),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(AdminError::BadLimit),
        },
    }
}

/// `limit + 1` as a store's fetch size.
pub fn fetch(limit: usize) -> u32 {
    u32::try_from(limit + 1).unwrap_or(u32::MAX)
}

/// Cuts `items` (fetched with `limit + 1`) to `limit`; the cursor of the next page, if any.
pub fn cut<T>(items: &mut Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Option<String> {
    if items.len() <= limit {
        return None;
    }
    items.truncate(limit);
    items.last().map(cursor)
}

/// The list answer: `{"items": [...], "next": cursor-or-null}`.
pub fn body(items: Vec<Value>, next: Option<String>) -> Value {
    json!({"items": items, "next": next})
}
