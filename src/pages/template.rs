//! The page frame as parts (literal HTML and named placeholders): ours (`templates/layout.html`)
//! or the operator's (`[pages] templates`, its `layout.html`), parsed once when the config is
//! loaded, so writing a page only concatenates. Not here: reading the operator's file (config
//! validation) or the values and their escaping (`Chrome::layout`).

use std::fmt;

/// Our own frame, in the same syntax an operator's is written in (and the place to copy from).
const BUILTIN: &str = include_str!("../../templates/layout.html");

/// A value the frame places. `Chrome::layout` fills each; text values are HTML-escaped there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The page's language tag (`en`, `de`), for `<html lang>`.
    Lang,
    /// The page's own title (text), without the product name.
    Title,
    /// `branding.product_name` (text).
    Brand,
    /// The stylesheet's URL, for `<link rel="stylesheet" href>`; it changes with the CSS.
    Stylesheet,
    /// The `<img>` of `branding.logo`, or nothing when there is none.
    Logo,
    /// The page body as Chrome made it: the whole `<main>` element.
    Content,
    /// The footer text in the page's language (text).
    Footer,
}

impl Slot {
    /// Every placeholder, in the order the README and the error messages list them.
    pub const ALL: [Slot; 7] = [
        Slot::Lang,
        Slot::Title,
        Slot::Brand,
        Slot::Stylesheet,
        Slot::Logo,
        Slot::Content,
        Slot::Footer,
    ];

    /// The name written between `{{` and `}}`.
    pub fn name(self) -> &'static str {
        match self {
            Slot::Lang => "lang",
            Slot::Title => "title",
            Slot::Brand => "brand",
            Slot::Stylesheet => "stylesheet",
            Slot::Logo => "logo",
            Slot::Content => "content",
            Slot::Footer => "footer",
        }
    }

    /// A frame without the content or without a title is not a page, and one with either twice
    /// would show a page two times or mislead about what it is.
    fn exactly_once(self) -> bool {
        matches!(self, Slot::Title | Slot::Content)
    }

    fn from_name(name: &str) -> Option<Slot> {
        Slot::ALL.into_iter().find(|s| s.name() == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Slot(Slot),
}

/// A parsed frame: literal HTML between placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    parts: Vec<Part>,
    /// The bytes of literal text, so a page is written into one allocation.
    text_len: usize,
}

/// Why a frame was refused; `line` counts from 1 in the template file.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` with no `}}` after it.
    #[error("line {line}: {{{{ is not closed by }}}}")]
    Unclosed { line: usize },
    /// A name between `{{` and `}}` that is not a placeholder.
    #[error(
        "line {line}: unknown placeholder {{{{{name}}}}}; the placeholders are {}",
        Known
    )]
    Unknown { line: usize, name: String },
    /// `{{title}}` or `{{content}}` is not there.
    #[error("{{{{{0}}}}} is missing: it must appear exactly once")]
    Missing(&'static str),
    /// `{{title}}` or `{{content}}` a second time.
    #[error("line {line}: {{{{{name}}}}} appears again: it must appear exactly once")]
    Repeated { line: usize, name: &'static str },
    /// A `<script` tag: the gateway's pages carry no scripts (and the CSP would block them).
    #[error("line {line}: <script is not allowed: the gateway's pages carry no scripts")]
    Script { line: usize },
}

/// The list of placeholders, for `TemplateError::Unknown`.
struct Known;

impl fmt::Display for Known {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, s) in Slot::ALL.into_iter().enumerate() {
            let sep = if n == 0 { "" } else { ", " };
            write!(f, "{sep}{{{{{}}}}}", s.name())?;
        }
        Ok(())
    }
}

/// The longest unknown name an error repeats: past that it is more likely a stray `{{`.
const MAX_NAME_SHOWN: usize = 32;

fn line_at(text: &str, byte: usize) -> usize {
    1 + text.bytes().take(byte).filter(|b| *b == b'\n').count()
}

/// The byte offset of the first `<script`, in any case (`<SCRIPT`, `<sCrIpT`).
fn script_at(text: &str) -> Option<usize> {
    const TAG: &[u8] = b"<script";
    text.as_bytes()
        .windows(TAG.len())
        .position(|w| w.eq_ignore_ascii_case(TAG))
}

impl Layout {
    /// Parses a frame: `{{name}}` (spaces inside the braces allowed) for each placeholder in
    /// `Slot::ALL`, `{{title}}` and `{{content}}` exactly once, and no `<script` anywhere, also
    /// once the placeholders are taken out.
    pub fn parse(text: &str) -> Result<Layout, TemplateError> {
        let mut parts = Vec::new();
        // Each literal with its byte offset in `text`, for the script check.
        let mut literals: Vec<(usize, &str)> = Vec::new();
        let mut text_len = 0;
        let mut seen: Vec<Slot> = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        // Counted as we go (a placeholder holds no newline), so parsing stays linear.
        let mut line = 1;
        while let Some((literal, after)) = rest.split_once("{{") {
            line += literal.bytes().filter(|b| *b == b'\n').count();
            // A placeholder is on one line and holds no `{{`: past either, the `{{` was not
            // closed (rather than a name running on to a later placeholder's `}}`).
            let closed = after
                .split_once("}}")
                .filter(|(name, _)| !name.contains("{{") && !name.contains('\n'));
            let Some((name, tail)) = closed else {
                return Err(TemplateError::Unclosed { line });
            };
            let name = name.trim();
            let Some(slot) = Slot::from_name(name) else {
                return Err(TemplateError::Unknown {
                    line,
                    name: name.chars().take(MAX_NAME_SHOWN).collect(),
                });
            };
            if slot.exactly_once() && seen.contains(&slot) {
                return Err(TemplateError::Repeated {
                    line,
                    name: slot.name(),
                });
            }
            seen.push(slot);
            literals.push((offset, literal));
            if !literal.is_empty() {
                text_len += literal.len();
                parts.push(Part::Text(literal.to_owned()));
            }
            parts.push(Part::Slot(slot));
            offset += rest.len() - tail.len();
            rest = tail;
        }
        if let Some(missing) = Slot::ALL
            .into_iter()
            .find(|s| s.exactly_once() && !seen.contains(s))
        {
            return Err(TemplateError::Missing(missing.name()));
        }
        literals.push((offset, rest));
        // Over the literals joined, not only each: `<scr{{logo}}ipt>` is a script tag on a
        // gateway without a logo. (The CSP is what stops a script; this stops the mistake.)
        let joined: String = literals.iter().map(|(_, l)| *l).collect();
        if let Some(at) = script_at(&joined) {
            let mut start = 0;
            let mut line = 1;
            for (off, l) in &literals {
                if at < start + l.len() {
                    line = line_at(text, off + (at - start));
                    break;
                }
                start += l.len();
            }
            return Err(TemplateError::Script { line });
        }
        if !rest.is_empty() {
            text_len += rest.len();
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Layout { parts, text_len })
    }

    /// Our own frame (`templates/layout.html`).
    pub fn builtin() -> Layout {
        // `the_builtin_frame_parses` proves this never falls back; if it did, a page would
        // still carry its content (and the security headers, which are not part of the frame).
        Layout::parse(BUILTIN).unwrap_or_else(|_| Layout {
            parts: vec![Part::Slot(Slot::Content)],
            text_len: 0,
        })
    }

    /// The page: literal parts as written, each placeholder written by `fill` into the page.
    /// `extra` is a guess of how much the values add, so the page is one allocation.
    pub fn render(&self, extra: usize, mut fill: impl FnMut(Slot, &mut String)) -> String {
        let mut out = String::with_capacity(self.text_len + extra);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Slot(s) => fill(*s, &mut out),
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Renders with each placeholder as `[name]`.
    fn shown(l: &Layout) -> String {
        l.render(0, |s, out| {
            out.push('[');
            out.push_str(s.name());
            out.push(']');
        })
    }

    const MIN: &str = "<title>{{title}}</title>{{content}}";

    #[test]
    fn the_builtin_frame_parses() {
        assert_eq!(Layout::parse(BUILTIN).map(|_| ()), Ok(()));
        assert_ne!(Layout::builtin().parts, vec![Part::Slot(Slot::Content)]);
    }

    #[test]
    fn every_placeholder_is_filled_where_it_stands_and_text_is_kept_as_written() {
        let l = Layout::parse(
            "<html lang=\"{{lang}}\">{{ title }}|{{brand}}{{brand}}|{{stylesheet}}|{{logo}}|\n{{content}}{{footer}} }} { {x} }\n",
        )
        .unwrap();
        assert_eq!(
            shown(&l),
            "<html lang=\"[lang]\">[title]|[brand][brand]|[stylesheet]|[logo]|\n[content][footer] }} { {x} }\n"
        );
        assert_eq!(
            shown(&Layout::parse(MIN).unwrap()),
            "<title>[title]</title>[content]"
        );
    }

    #[test]
    fn an_unknown_or_unclosed_placeholder_is_refused_with_its_line() {
        assert_eq!(
            Layout::parse("a\n{{title}}\n{{content}}{{ titel }}"),
            Err(TemplateError::Unknown {
                line: 3,
                name: "titel".into()
            })
        );
        assert_eq!(
            Layout::parse("{{title}}{{content}}\n\n{{content"),
            Err(TemplateError::Unclosed { line: 3 })
        );
        assert_eq!(
            Layout::parse("{{title}}\n{{footer · {{content}}"),
            Err(TemplateError::Unclosed { line: 2 })
        );
        assert_eq!(
            Layout::parse("{{title}}{{content}}{{footer\n}}"),
            Err(TemplateError::Unclosed { line: 1 })
        );
        assert_eq!(
            Layout::parse("{{title}}{{content}}{{}}"),
            Err(TemplateError::Unknown {
                line: 1,
                name: String::new()
            })
        );
        // A long name is shown by its start only.
        let long = format!("{{{{title}}}}{{{{content}}}}{{{{ {} }}}}", "x".repeat(100));
        assert_eq!(
            Layout::parse(&long),
            Err(TemplateError::Unknown {
                line: 1,
                name: "x".repeat(MAX_NAME_SHOWN)
            })
        );
        // Placeholders are lower case, as the README writes them.
        assert!(matches!(
            Layout::parse("{{TITLE}}{{content}}"),
            Err(TemplateError::Unknown { .. })
        ));
    }

    #[test]
    fn title_and_content_are_required_exactly_once() {
        assert_eq!(
            Layout::parse("<title>{{title}}</title>"),
            Err(TemplateError::Missing("content"))
        );
        assert_eq!(
            Layout::parse("{{content}}"),
            Err(TemplateError::Missing("title"))
        );
        assert_eq!(
            Layout::parse("{{title}}{{content}}\n{{content}}"),
            Err(TemplateError::Repeated {
                line: 2,
                name: "content"
            })
        );
        assert_eq!(
            Layout::parse("{{title}}\n\n{{title}}{{content}}"),
            Err(TemplateError::Repeated {
                line: 3,
                name: "title"
            })
        );
    }

    #[test]
    fn a_script_tag_in_any_case_is_refused() {
        for (text, line) in [
            ("{{title}}{{content}}<script>alert(1)</script>", 1),
            ("{{title}}\n{{content}}\n<SCRIPT src=x>", 3),
            ("{{title}}{{content}}<sCrIpT\n>", 1),
            // Split by placeholders that may write nothing.
            ("{{title}}{{content}}\n\n<scr{{logo}}ipt>", 3),
            ("{{title}}\n<{{logo}}{{logo}}script>{{content}}", 2),
        ] {
            assert_eq!(
                Layout::parse(text),
                Err(TemplateError::Script { line }),
                "{text}"
            );
        }
        // A word, not a tag, is fine.
        assert!(Layout::parse("{{title}}{{content}}<p>scripts are off</p>").is_ok());
    }

    #[test]
    fn errors_name_the_placeholders_as_written() {
        let e = TemplateError::Unknown {
            line: 4,
            name: "titel".into(),
        };
        assert_eq!(
            e.to_string(),
            "line 4: unknown placeholder {{titel}}; the placeholders are {{lang}}, {{title}}, {{brand}}, {{stylesheet}}, {{logo}}, {{content}}, {{footer}}"
        );
        assert_eq!(
            TemplateError::Missing("content").to_string(),
            "{{content}} is missing: it must appear exactly once"
        );
        assert_eq!(
            TemplateError::Unclosed { line: 2 }.to_string(),
            "line 2: {{ is not closed by }}"
        );
    }
}
