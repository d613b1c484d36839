//! `[pages]`: the accent colour, the operator's stylesheet and the default page language.
//! Invariants: the colour is `#rgb` or `#rrggbb` (nothing else can reach the served CSS), and
//! the stylesheet is a readable UTF-8 file of at most `MAX_CUSTOM_CSS` bytes, read here so that
//! `check`, `run` and every reload see the same file the same way.

use super::ctx::{k, Ctx};
use crate::config::model::{CustomCss, Language, PagesConfig};
use crate::config::raw::RawPages;
use std::io::Read;

/// The most `custom_css` may hold: a stylesheet, not a place for fonts or images.
pub(crate) const MAX_CUSTOM_CSS: u64 = 64 * 1024;

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
        default_language,
    }
}

fn custom_css(cx: &mut Ctx<'_>, rel: &str) -> Option<CustomCss> {
    let key = [k("pages"), k("custom_css")];
    let path = cx.path(rel);
    let read = || -> Result<String, String> {
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot open it: {e}"))?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("it is not a regular file".to_owned());
        }
        // Read one byte past the limit: a file that grows between the check and the read is
        // still caught.
        let mut bytes = Vec::new();
        file.take(MAX_CUSTOM_CSS + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read it: {e}"))?;
        if bytes.len() as u64 > MAX_CUSTOM_CSS {
            return Err(format!("it is larger than {} KiB", MAX_CUSTOM_CSS / 1024));
        }
        String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())
    };
    match read() {
        Ok(text) => Some(CustomCss { path, text }),
        Err(why) => {
            cx.err(&key, format!("stylesheet {}: {why}", path.display()));
            None
        }
    }
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
