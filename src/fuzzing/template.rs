//! Fuzz target for the page frame an operator writes (`[pages] templates`): whatever the file
//! holds, parsing does not panic, and a frame that parses keeps the README's rules.

use super::input::text;
use crate::pages::template::{Layout, Slot};

/// README *Page templates*: a frame that parses has `{{title}}` and `{{content}}` exactly once,
/// no `{{` left over as text, and no `<script` even when every placeholder writes nothing.
pub fn page_template(data: &[u8]) {
    let input = text(data);
    let Ok(layout) = Layout::parse(&input) else {
        return;
    };
    let marked = layout.render(0, |slot, out| {
        out.push('\u{0}');
        out.push_str(slot.name());
        out.push('\u{0}');
    });
    for slot in [Slot::Title, Slot::Content] {
        let marker = format!("\u{0}{}\u{0}", slot.name());
        let n = marked.matches(&marker).count();
        assert_eq!(n, 1, "{{{{{}}}}} placed {n} times: {input:?}", slot.name());
    }
    let bare = layout.render(0, |_, _| {});
    assert!(!bare.contains("{{"), "a {{{{ left as text: {input:?}");
    assert!(
        !bare.to_ascii_lowercase().contains("<script"),
        "a script tag: {input:?}"
    );
}
