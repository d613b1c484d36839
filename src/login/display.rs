//! How the account page shows values that would overflow a phone screen: a User-Agent in words
//! ("Firefox on Windows") and a time as "3 minutes ago", each with the exact value in a `title`;
//! and the small form parts its sections share (the CSRF field, the fresh-code field). Words
//! are in the language of the page being written (`lang::scope`; English outside one).

use crate::clock::rfc3339;
use crate::config::Language;
use crate::notify::mail::agent_name;
use crate::pages::{esc, lang, Chrome, Msg};

/// The language of the page being written; the console's callers pass no `Chrome`, so the
/// request's scope is read directly.
fn page_language() -> Language {
    lang::current().unwrap_or(Language::English)
}

/// The hidden CSRF field of an account form.
pub fn hidden(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        esc(token)
    )
}

/// The "current code" field a fresh-factor form carries (element id `id`).
pub fn code_field(chrome: &Chrome, id: &str) -> String {
    format!(
        "<label for=\"{id}\">{label}</label><input id=\"{id}\" name=\"code\" type=\"text\" autocomplete=\"one-time-code\" autocapitalize=\"none\" spellcheck=\"false\" required>",
        id = esc(id),
        label = esc(chrome.t(Msg::AccCurrentCode)),
    )
}

/// Longest text of an unrecognised User-Agent shown in the page itself (the rest is in `title`).
const MAX_SHOWN_UA: usize = 32;

/// A User-Agent as a short phrase, the full value in its `title` (escaped HTML).
pub fn agent_html(ua: Option<&str>) -> String {
    let Some(ua) = ua.filter(|u| !u.trim().is_empty()) else {
        return Msg::Unknown.text(page_language()).into();
    };
    let shown = agent_name(ua).unwrap_or_else(|| {
        let mut s: String = ua.chars().take(MAX_SHOWN_UA).collect();
        if s.len() < ua.len() {
            s.push('…');
        }
        s
    });
    format!("<span title=\"{}\">{}</span>", esc(ua), esc(&shown))
}

/// `then` relative to `now` in words of `lang`: "just now", "3 minutes ago", "in 2 days".
pub fn ago(lang: Language, now: i64, then: i64) -> String {
    let d = now.saturating_sub(then);
    let s = d.saturating_abs();
    if s < 60 {
        return Msg::JustNow.text(lang).into();
    }
    let (n, one, many) = match s {
        s if s < 3_600 => (s / 60, Msg::UnitMinute, Msg::UnitMinutes),
        s if s < 86_400 => (s / 3_600, Msg::UnitHour, Msg::UnitHours),
        s if s < 86_400 * 60 => (s / 86_400, Msg::UnitDay, Msg::UnitDays),
        s if s < 86_400 * 730 => (s / (86_400 * 30), Msg::UnitMonth, Msg::UnitMonths),
        s => (s / (86_400 * 365), Msg::UnitYear, Msg::UnitYears),
    };
    let unit = if n == 1 { one } else { many };
    let amount = format!("{n} {}", unit.text(lang));
    let phrase = if d > 0 { Msg::TimeAgo } else { Msg::TimeIn };
    phrase.fill(lang, "t", &amount)
}

/// A time as `ago` in a `<time>` element, the exact UTC time in its `title` and `datetime`.
pub fn time_html(now: i64, t: i64) -> String {
    let exact = rfc3339(t);
    format!(
        "<time datetime=\"{e}\" title=\"{t}\">{}</time>",
        esc(&ago(page_language(), now, t)),
        e = esc(&exact),
        t = esc(&exact.replace('T', " ").replace('Z', " UTC")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_words_with_the_exact_time_in_the_title() {
        use Language::{English as En, German as De};
        assert_eq!(ago(En, 1_000, 990), "just now");
        assert_eq!(ago(En, 1_000, 1_000 - 180), "3 minutes ago");
        assert_eq!(ago(En, 10_000, 10_000 - 3_600), "1 hour ago");
        assert_eq!(ago(En, 0, 2 * 86_400), "in 2 days");
        assert_eq!(ago(De, 1_000, 990), "gerade eben");
        assert_eq!(ago(De, 1_000, 1_000 - 180), "vor 3 Minuten");
        assert_eq!(ago(De, 10_000, 10_000 - 3_600), "vor 1 Stunde");
        assert_eq!(ago(De, 0, 2 * 86_400), "in 2 Tagen");
        let h = time_html(180, 0);
        assert!(h.contains(">3 minutes ago</time>"), "{h}");
        assert!(h.contains("title=\"1970-01-01 00:00:00 UTC\""), "{h}");
    }

    #[test]
    fn long_agents_are_shortened_to_browser_and_system() {
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let h = agent_html(Some(ua));
        assert!(h.contains(">Firefox on Windows</span>"), "{h}");
        assert!(h.contains(&format!("title=\"{ua}\"")), "{h}");
        let odd = agent_html(Some(&"x<".repeat(40)));
        assert!(odd.contains(">x&lt;x&lt;"), "{odd}");
        assert!(odd.contains("…</span>"), "{odd}");
        assert_eq!(agent_html(None), "unknown");
    }
}
