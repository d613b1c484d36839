//! The gateway's cookies: names (with `__Host-` on https), reading them from `Cookie` headers,
//! removing them before a request goes upstream, and `Set-Cookie` values. Never logs values.

use hyper::header::{HeaderMap, HeaderValue, COOKIE};

/// Cookie names for one deployment. `__Host-` requires Secure, Path=/ and no Domain, which
/// pins the cookie to this exact origin.
#[derive(Clone, Debug)]
pub struct CookieNames {
    pub session: &'static str,
    pub pending: &'static str,
    pub device: &'static str,
    /// Binds a SAML request to the browser. The IdP answers with a cross-site POST, which a
    /// `SameSite=Lax` cookie would not accompany, so this one alone is `SameSite=None` on https.
    pub saml: &'static str,
    /// The known-device cookie of the new-device notice (DESIGN.md §12): recognises a browser,
    /// proves nothing. Sent like `saml` (`SameSite=None` on https) so that a SAML sign-in,
    /// which ends in the IdP's cross-site POST, still recognises the browser.
    pub known: &'static str,
    /// Binds the confirm form of a "this was not me" link to the browser that opened it.
    pub report: &'static str,
    pub secure: bool,
}

impl CookieNames {
    pub fn new(https: bool) -> Self {
        if https {
            Self {
                session: "__Host-portcullis",
                pending: "__Host-portcullis-login",
                device: "__Host-portcullis-device",
                saml: "__Host-portcullis-saml",
                known: "__Host-portcullis-known",
                report: "__Host-portcullis-report",
                secure: true,
            }
        } else {
            Self {
                session: "portcullis",
                pending: "portcullis-login",
                device: "portcullis-device",
                saml: "portcullis-saml",
                known: "portcullis-known",
                report: "portcullis-report",
                secure: false,
            }
        }
    }

    fn is_ours(&self, name: &[u8]) -> bool {
        [
            self.session,
            self.pending,
            self.device,
            self.saml,
            self.known,
            self.report,
        ]
        .iter()
        .any(|n| n.as_bytes() == name)
    }

    /// A `Set-Cookie` value for a cookie that must come back on the IdP's cross-site POST:
    /// `SameSite=None; Secure` on https (browsers refuse `None` without `Secure`), else `Lax`.
    pub fn set_cross_site(&self, name: &str, value: &str, max_age: u64) -> String {
        if self.secure {
            format!("{name}={value}; Path=/; HttpOnly; SameSite=None; Secure; Max-Age={max_age}")
        } else {
            format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}")
        }
    }

    /// A `Set-Cookie` value. `max_age` None: a browser-session cookie.
    pub fn set(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }

    /// A `Set-Cookie` value that deletes the cookie.
    pub fn clear(&self, name: &str) -> String {
        let mut c = format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }

    /// Removes the gateway's cookies from the `Cookie` header(s); other cookies are kept in order.
    pub fn strip(&self, headers: &mut HeaderMap) {
        if !headers
            .get_all(COOKIE)
            .iter()
            .any(|v| mentions_ours(v.as_bytes()))
        {
            return;
        }
        let mut kept = Vec::new();
        for v in headers.get_all(COOKIE) {
            // A header that is not text is dropped whole: it could hide one of our cookies.
            let Ok(s) = v.to_str() else { continue };
            self.keep_others(s.as_bytes(), &mut kept);
        }
        headers.remove(COOKIE);
        if !kept.is_empty() {
            if let Ok(v) = HeaderValue::from_bytes(&kept) {
                headers.insert(COOKIE, v);
            }
        }
    }

    /// Appends to `kept` (`; `-separated) every cookie of one `Cookie` value that is not the
    /// gateway's. The one rule for both proxy paths (`strip` and the HTTP/1.1 fast lane).
    /// `value` is text (visible ASCII and tab), where `trim_ascii` is `str::trim`.
    pub fn keep_others(&self, value: &[u8], kept: &mut Vec<u8>) {
        for pair in value.split(|&b| b == b';') {
            let (name, _) = split_pair(pair);
            if name.is_empty() || self.is_ours(name) || mentions_ours(name) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair.trim_ascii());
        }
    }
}

/// Whether a `Cookie` value may hold one of the gateway's cookies (then it must be rewritten).
pub fn mentions_ours(value: &[u8]) -> bool {
    value
        .windows(10)
        .any(|w| w.first() == Some(&b'p') && w == b"portcullis")
}

/// What one `Cookie` value says about the cookie called `name`.
enum Found<'a> {
    /// Its first occurrence, a well-formed value.
    Value(&'a str),
    /// Its first occurrence is not a value the gateway could have set: treat as absent.
    Invalid,
    /// Not in this value.
    Absent,
}

/// Looks for the first cookie called `name` in one `Cookie` value, as bytes: this runs on every
/// proxied request, and the values are visible ASCII and tab (`HeaderValue::to_str`,
/// `request_head::is_text`), where `trim_ascii` and `str::trim` take off the same bytes.
fn find<'a>(value: &'a [u8], name: &str) -> Found<'a> {
    for pair in value.split(|&b| b == b';') {
        let (n, Some(val)) = split_pair(pair) else {
            continue;
        };
        if n != name.as_bytes() {
            continue;
        }
        let val = trim_quotes(val.trim_ascii());
        // Our values are base64url; anything else is not ours.
        if !val.is_empty()
            && val.len() <= 128
            && val.iter().fold(true, |ok, &b| {
                ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_'))
            })
        {
            // Base64url bytes are text: this cannot fail, and failing closed costs nothing.
            return std::str::from_utf8(val).map_or(Found::Invalid, Found::Value);
        }
        return Found::Invalid;
    }
    Found::Absent
}

/// One `name=value` pair of a `Cookie` value: the name trimmed, and what follows the first `=`
/// (`None` without one: the whole pair is the name). The one split both rules use.
fn split_pair(pair: &[u8]) -> (&[u8], Option<&[u8]>) {
    match pair.iter().position(|&b| b == b'=') {
        Some(eq) => (
            pair.get(..eq).unwrap_or_default().trim_ascii(),
            pair.get(eq + 1..),
        ),
        None => (pair.trim_ascii(), None),
    }
}

/// Every leading and trailing `"` removed (as `str::trim_matches('"')`).
fn trim_quotes(mut v: &[u8]) -> &[u8] {
    while let [b'"', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b'"'] = v {
        v = rest;
    }
    v
}

/// The value of the first cookie called `name` in the request's `Cookie` header(s).
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    first(
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::as_bytes),
        name,
    )
}

/// The value of the first cookie called `name` in `Cookie` values given in order (values that
/// are not text left out by the caller, as `HeaderValue::to_str` leaves them out). The one rule
/// for both proxy paths: a first occurrence that is not well-formed means no cookie.
pub fn first<'a>(values: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a str> {
    for s in values {
        match find(s, name) {
            Found::Value(v) => return Some(v),
            Found::Invalid => return None,
            Found::Absent => {}
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn gateway_cookies_are_removed_and_others_kept_in_order() {
        let n = CookieNames::new(true);
        let mut h = headers(&[
            "a=1; __Host-portcullis=secret; b=2",
            "__Host-portcullis-login=x; c=3",
        ]);
        n.strip(&mut h);
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2; c=3");
        let mut only = headers(&["__Host-portcullis=secret"]);
        n.strip(&mut only);
        assert!(only.get(COOKIE).is_none());
    }

    #[test]
    fn lookalike_cookie_names_are_removed_too() {
        let n = CookieNames::new(false);
        let mut h = headers(&["portcullis =x; Portcullis=y; xportcullis=z; keep=1"]);
        n.strip(&mut h);
        assert_eq!(h.get(COOKIE).unwrap(), "Portcullis=y; keep=1");
    }

    #[test]
    fn cookie_lookup_takes_only_well_formed_values() {
        let h = headers(&["x=1; portcullis=abc_DEF-1; y=2"]);
        assert_eq!(get(&h, "portcullis"), Some("abc_DEF-1"));
        let bad = headers(&["portcullis=a b<script>"]);
        assert_eq!(get(&bad, "portcullis"), None);
        assert_eq!(get(&h, "missing"), None);
    }

    #[test]
    fn set_cookie_carries_the_security_attributes() {
        let https = CookieNames::new(true);
        assert_eq!(
            https.set(https.session, "v", None),
            "__Host-portcullis=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let http = CookieNames::new(false);
        assert_eq!(
            http.set(http.session, "v", Some(60)),
            "portcullis=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
    }
}

/// Properties (issue 9): a session token survives `Set-Cookie` → browser → `Cookie` → lookup,
/// its public id survives an admin typing it back, and removal takes exactly our cookies.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod props {
    use super::*;
    use crate::session::id::{token_of, SessionId};
    use proptest::prelude::*;

    /// The lookup as it read `str` before it read bytes (`trim`, `trim_matches`): the byte
    /// scan must find exactly what it found, on every value a header can carry as text.
    fn find_by_str<'a>(value: &'a str, name: &str) -> Option<Option<&'a str>> {
        for pair in value.split(';') {
            if let Some((n, val)) = pair.split_once('=') {
                if n.trim() == name {
                    let val = val.trim().trim_matches('"');
                    let ok = !val.is_empty()
                        && val.len() <= 128
                        && val
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    return Some(ok.then_some(val));
                }
            }
        }
        None
    }

    /// `keep_others` as it read `str` before it read bytes.
    fn keep_others_by_str(names: &CookieNames, value: &str) -> String {
        let ours = [
            names.session,
            names.pending,
            names.device,
            names.saml,
            names.known,
            names.report,
        ];
        let mut kept = String::new();
        for pair in value.split(';') {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
            if name.is_empty() || ours.contains(&name) || mentions_ours(name.as_bytes()) {
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(pair.trim());
        }
        kept
    }

    proptest! {
        #[test]
        fn the_byte_scan_finds_what_the_str_scan_found(
            noise in "[ \t!-~]{0,40}",
            pairs in proptest::collection::vec(
                "[ \t]{0,2}(portcullis|x|\"portcullis\"|portcullis2)[ \t]{0,2}=[ \t]{0,2}\"{0,3}[A-Za-z0-9_<-]{0,6}\"{0,3}[ \t]{0,2}",
                0..4,
            ),
            noise_first in any::<bool>(),
        ) {
            let mut parts = pairs;
            if noise_first {
                parts.insert(0, noise);
            } else {
                parts.push(noise);
            }
            let value = parts.join(";");
            let expected = match find_by_str(&value, "portcullis") {
                None => "absent".to_owned(),
                Some(None) => "invalid".to_owned(),
                Some(Some(v)) => v.to_owned(),
            };
            let got = match find(value.as_bytes(), "portcullis") {
                Found::Absent => "absent".to_owned(),
                Found::Invalid => "invalid".to_owned(),
                Found::Value(v) => v.to_owned(),
            };
            prop_assert_eq!(got, expected);
            for https in [false, true] {
                let names = CookieNames::new(https);
                let mut kept = Vec::new();
                names.keep_others(value.as_bytes(), &mut kept);
                prop_assert_eq!(String::from_utf8(kept).unwrap(), keep_others_by_str(&names, &value));
            }
        }

        #[test]
        fn session_cookie_and_id_encodings_round_trip(
            bits in any::<[u8; 32]>(),
            https in any::<bool>(),
            others in proptest::collection::vec(("[a-z][a-z0-9_-]{0,7}", "[A-Za-z0-9%_-]{0,12}"), 0..4),
            at in 0usize..5,
        ) {
            let names = CookieNames::new(https);
            let token = token_of(&bits);
            // What the browser sends back: the `name=value` before the first attribute.
            let set = names.set(names.session, token.expose(), None);
            let sent = set.split(';').next().unwrap().to_owned();
            let mut pairs: Vec<String> = others.iter().map(|(n, v)| format!("{n}={v}")).collect();
            pairs.insert(at.min(pairs.len()), sent);
            let mut h = HeaderMap::new();
            h.insert(COOKIE, HeaderValue::from_str(&pairs.join("; ")).unwrap());
            prop_assert_eq!(get(&h, names.session), Some(token.expose()));

            let id = SessionId::of(&token);
            prop_assert_eq!(id.as_str().len(), 22);
            prop_assert_eq!(SessionId::parse(id.as_str()), Some(id.clone()));
            prop_assert!(HeaderValue::from_str(id.as_str()).is_ok());
            prop_assert_eq!(SessionId::of(&token_of(&bits)), id);

            names.strip(&mut h);
            prop_assert_eq!(get(&h, names.session), None);
            let kept: Vec<String> = others.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let left = h.get(COOKIE).map(|v| v.to_str().unwrap().to_owned());
            prop_assert_eq!(left, (!kept.is_empty()).then(|| kept.join("; ")));
        }
    }
}
