//! `[pages]`: the accent colour, the operator's stylesheet and page frame, the default language.
//! Invariants: the colour is `#rgb` or `#rrggbb` (nothing else can reach the served CSS); the
//! stylesheet and the frame (`templates`/`layout.html`) are readable UTF-8 files of at most
//! `MAX_CUSTOM_CSS` / `MAX_TEMPLATE` bytes, and the frame parses (`pages::template`). They are
//! read here so that `check`, `run` and every reload see the same files the same way.

use super::ctx::{k, Ctx};
use crate::config::model::{CustomCss, Language, PagesConfig};
use crate::config::raw::RawPages;
use crate::pages::template::Layout;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// The most `custom_css` may hold: a stylesheet, not a place for fonts or images.
pub(crate) const MAX_CUSTOM_CSS: u64 = 64 * 1024;

/// The most a template file may hold: markup around the page, not a place for inlined images.
pub(crate) const MAX_TEMPLATE: u64 = 64 * 1024;

/// The file in `templates` that replaces the page frame.
const LAYOUT_FILE: &str = "layout.html";

/// `#rgb` or `#rrggbb`, hex digits only.
fn is_hex_colour(s: &str) -> bool {
    s.strip_prefix('#').is_some_and(|hex| {
        (hex.len() == 3 || hex.len() == 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

pub(super) fn pages(cx: &mut Ctx<'_>, raw: Option<&RawPages>) -> PagesConfig {
    let Some(raw) = raw else {
        return PagesConfig::default();
    };
    let accent_color = raw.accent_color.as_ref().and_then(|c| {
        if is_hex_colour(c) {
            Some(c.to_ascii_lowercase())
        } else {
            cx.err(
                &[k("pages"), k("accent_color")],
                format!("{c:?} is not a colour like \"#0a5\" or \"#1f5fbf\""),
            );
            None
        }
    });
    let custom_css = raw.custom_css.as_ref().and_then(|rel| custom_css(cx, rel));
    let layout = raw.templates.as_ref().and_then(|rel| layout(cx, rel));
    let default_language = match raw.default_language.as_deref() {
        None => Language::default(),
        Some(tag) => Language::from_tag(tag).unwrap_or_else(|| {
            let known: Vec<&str> = Language::ALL.iter().map(|l| l.tag()).collect();
            cx.err(
                &[k("pages"), k("default_language")],
                format!("unknown language {tag:?}: use one of {}", known.join(", ")),
            );
            Language::default()
        }),
    };
    PagesConfig {
        accent_color,
        custom_css,
        layout,
        default_language,
    }
}

fn custom_css(cx: &mut Ctx<'_>, rel: &str) -> Option<CustomCss> {
    let key = [k("pages"), k("custom_css")];
    let path = cx.path(rel);
    match read_text(&path, MAX_CUSTOM_CSS) {
        Ok(text) => Some(CustomCss { path, text }),
        Err(why) => {
            cx.err(&key, format!("stylesheet {}: {why}", path.display()));
            None
        }
    }
}

/// The frame in the `templates` directory, parsed. A directory without `layout.html` keeps ours
/// (with a warning: it is more likely a wrong path than a wish).
fn layout(cx: &mut Ctx<'_>, rel: &str) -> Option<Arc<Layout>> {
    let key = [k("pages"), k("templates")];
    let dir = cx.path(rel);
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            let why = format!(
                "template directory {}: it is not a directory",
                dir.display()
            );
            cx.err(&key, why);
            return None;
        }
        Err(e) => {
            let why = format!("template directory {}: cannot open it: {e}", dir.display());
            cx.err(&key, why);
            return None;
        }
    }
    let path = dir.join(LAYOUT_FILE);
    if matches!(std::fs::symlink_metadata(&path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    {
        let why = format!(
            "template directory {} has no {LAYOUT_FILE}: the built-in page frame is used",
            dir.display()
        );
        cx.warn(&key, why);
        return None;
    }
    let parsed = read_text(&path, MAX_TEMPLATE)
        .and_then(|text| Layout::parse(&text).map_err(|e| e.to_string()));
    match parsed {
        Ok(layout) => Some(Arc::new(layout)),
        Err(why) => {
            cx.err(&key, format!("template {}: {why}", path.display()));
            None
        }
    }
}

/// A regular UTF-8 file of at most `max` bytes, or why not (for an error after the file's name).
fn read_text(path: &Path, max: u64) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("it is not a regular file".to_owned());
    }
    // Read one byte past the limit: a file that grows between the check and the read is
    // still caught.
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("it is larger than {} KiB", max / 1024));
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())
}

#[cfg(test)]
mod tests {
    use super::is_hex_colour;

    #[test]
    fn only_three_or_six_hex_digits_after_a_hash_are_a_colour() {
        for ok in ["#0a5", "#1F5FBF", "#000000"] {
            assert!(is_hex_colour(ok), "{ok}");
        }
        for bad in [
            "0a5",
            "#0a",
            "#0a55",
            "#12345g",
            "#fff;}",
            "red",
            "#fff}body{",
            "",
            "#",
            "#ｆｆｆ",
        ] {
            assert!(!is_hex_colour(bad), "{bad}");
        }
    }
}
