//! Every text of the gateway's pages, once per language: one key per message (`keys`) and one
//! `match` per language (`english`, `german`), so a key without a translation does not compile.
//! `{n}` and `{to}` are filled in by the caller (`Msg::fill`), after which the text is escaped
//! like any other.

mod english;
mod german;
mod keys;

pub use keys::Msg;

use crate::config::Language;

impl Msg {
    /// The text in `lang`.
    pub fn text(self, lang: Language) -> &'static str {
        match lang {
            Language::English => english::text(self),
            Language::German => german::text(self),
        }
    }

    /// The text with its `{name}` placeholder replaced by `value` (raw: escape the result).
    pub fn fill(self, lang: Language, name: &str, value: &str) -> String {
        self.text(lang).replace(&format!("{{{name}}}"), value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_text_in_every_language_with_the_same_placeholders() {
        let placeholders = |s: &str| -> Vec<String> {
            s.split('{')
                .skip(1)
                .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                .collect()
        };
        for m in Msg::ALL {
            let en = m.text(Language::English);
            for lang in Language::ALL {
                let t = m.text(lang);
                assert!(!t.trim().is_empty(), "{m:?} in {lang:?}");
                assert_eq!(placeholders(t), placeholders(en), "{m:?} in {lang:?}");
            }
        }
        // `keys!` writes `ALL` from the enum's own list: none forgotten, none twice.
        assert!(Msg::ALL.len() > 100);
    }

    #[test]
    fn no_text_is_written_twice() {
        for (i, m) in Msg::ALL.iter().enumerate() {
            let en = m.text(Language::English);
            for other in Msg::ALL.get(i + 1..).unwrap_or_default() {
                assert_ne!(en, other.text(Language::English), "{m:?} and {other:?}");
            }
        }
    }
}
