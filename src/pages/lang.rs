//! Which language a page is written in: `Accept-Language` negotiated once per gateway request
//! (q-values honoured, `de-CH` read as `de`, anything unknown is the configured default) and
//! held for that request's task, so every page it writes uses it without threading it through.
//! Whether the client reads pages at all (a browser, not an API client) is held beside it.

use crate::config::Language;
use std::future::Future;

tokio::task_local! {
    static CURRENT: Language;
    static BROWSER: bool;
}

/// Runs `fut` (one request's handler) with `lang` as the language of its pages; `html`: the
/// client asked for pages (`http::wants_html`).
pub async fn scope<F: Future>(lang: Language, html: bool, fut: F) -> F::Output {
    CURRENT.scope(lang, BROWSER.scope(html, fut)).await
}

/// `scope` for a synchronous writer (a refusal written in place): no future is kept, so the
/// request future that calls it stays as small as before.
pub fn sync_scope<R>(lang: Language, html: bool, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(lang, || BROWSER.sync_scope(html, f))
}

/// Whether the request being answered wants pages; `false` outside `scope`, so a caller
/// that cannot tell gets JSON, as API clients do.
pub fn html() -> bool {
    BROWSER.try_with(|h| *h).unwrap_or(false)
}

/// The language of the request being answered; `None` outside `scope` (the fast lane, tests).
pub fn current() -> Option<Language> {
    CURRENT.try_with(|l| *l).ok()
}

/// A q-value as thousandths: `1`, `1.0`…, `0`, `0.` and up to three digits; else `None`.
fn q_of(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{frac:0<3}");
    let thousandths: u16 = digits.parse().ok()?;
    match int {
        "1" if thousandths == 0 => Some(1000),
        "0" => Some(thousandths),
        _ => None,
    }
}

/// The best language of an `Accept-Language` value: the highest q among languages we have
/// (a tie goes to the earlier entry), `*` standing for `default`; `default` when none fits.
/// Malformed entries are skipped, never guessed at.
pub fn negotiate(accept: Option<&str>, default: Language) -> Language {
    let Some(accept) = accept else {
        return default;
    };
    let mut best: Option<(u16, Language)> = None;
    // A header is bounded by the server's header limits; 32 entries is more than any browser sends.
    for item in accept.split(',').take(32) {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let mut q = Some(1000);
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("q") {
                q = q_of(value.trim());
            }
        }
        let Some(q) = q.filter(|q| *q > 0) else {
            continue;
        };
        let primary = tag.split('-').next().unwrap_or_default();
        let lang = if primary == "*" {
            Some(default)
        } else {
            Language::from_tag(primary)
        };
        if let Some(lang) = lang {
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
    }
    best.map_or(default, |(_, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Language::{English as En, German as De};

    #[test]
    fn the_highest_q_value_among_our_languages_wins_and_a_tie_goes_to_the_earlier_entry() {
        let cases = [
            (None, En),
            (Some(""), En),
            (Some("de"), De),
            (Some("de-CH"), De),
            (Some("DE-at, en;q=0.5"), De),
            (Some("en;q=0.5, de;q=0.9"), De),
            (Some("fr-FR, fr;q=0.9, de;q=0.8, en;q=0.7"), De),
            (Some("fr, it"), En),
            (Some("de;q=0, en;q=0.1"), En),
            (Some("de;q=0.5, en;q=0.5"), De),
            (Some("en;q=0.500, de;q=0.499"), En),
            (Some("de;q=2, en;q=0.1"), En),
            (Some("de;q=abc"), En),
            (Some("de;q=0.1234"), En),
            (Some("*;q=0.9, de;q=0.8"), En),
            (Some("tlh, x-klingon"), En),
        ];
        for (header, want) in cases {
            assert_eq!(negotiate(header, En), want, "{header:?}");
        }
        // Unknown languages fall back to the configured default, not to English.
        assert_eq!(negotiate(Some("fr"), De), De);
        assert_eq!(negotiate(Some("en;q=0.1, fr"), De), En);
    }
}
