//! A browser stand-in: follows no redirects by itself, keeps cookies like a browser would
//! (Set-Cookie in, Cookie out, Max-Age=0 deletes), and reads forms out of HTML.

use super::{Http, Resp};
use hyper::Method;
use std::collections::BTreeMap;

pub struct Browser {
    pub http: Http,
    pub base: String,
    pub jar: BTreeMap<String, String>,
    pub user_agent: String,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            http: Http::new(),
            base: base.trim_end_matches('/').to_owned(),
            jar: BTreeMap::new(),
            user_agent: "TestBrowser/1.0".into(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, r: &Resp) {
        for v in r.headers.get_all("set-cookie") {
            let s = v.to_str().unwrap();
            let (pair, attrs) = s.split_once(';').unwrap_or((s, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.jar.remove(name.trim());
            } else {
                self.jar
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{}", self.base, path_or_url)
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        let cookie = self.cookie_header();
        let ua = self.user_agent.clone();
        let mut h = vec![("accept", "text/html"), ("user-agent", ua.as_str())];
        if !cookie.is_empty() {
            h.push(("cookie", cookie.as_str()));
        }
        let r = self.http.get(&self.url(path), &h).await;
        self.absorb(&r);
        r
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let cookie = self.cookie_header();
        let ua = self.user_agent.clone();
        let mut h = vec![("accept", "text/html"), ("user-agent", ua.as_str())];
        if !cookie.is_empty() {
            h.push(("cookie", cookie.as_str()));
        }
        let r = self.http.post_form(&self.url(path), &h, form).await;
        self.absorb(&r);
        r
    }

    /// Signs out as a person does: the confirmation page (GET), then its form (POST). Without a
    /// session there is no form: the signed-out page is the answer.
    pub async fn logout(&mut self) -> Resp {
        let ask = self.get("/_portcullis/logout").await;
        match input_value(&ask.text(), "csrf_token") {
            Some(t) => {
                self.post("/_portcullis/logout", &[("csrf_token", &t)])
                    .await
            }
            None => ask,
        }
    }

    /// Follows a redirect chain from `r` (GETs), returning the final response.
    pub async fn follow(&mut self, mut r: Resp) -> Resp {
        for _ in 0..10 {
            if !r.status.is_redirection() {
                return r;
            }
            let loc = r.header("location").unwrap().to_owned();
            r = self.get(&loc).await;
        }
        panic!("too many redirects");
    }

    pub async fn send(&mut self, method: Method, path: &str) -> Resp {
        let cookie = self.cookie_header();
        let r = self
            .http
            .send(
                method,
                &self.url(path),
                &[("accept", "text/html"), ("cookie", &cookie)],
                Vec::new(),
            )
            .await;
        self.absorb(&r);
        r
    }
}

/// The `value` of the input called `name` (attributes written `name="X" value="..."`).
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

/// The text content of the element with `id` (no nested tags expected).
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\">");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('<')? + start;
    Some(unescape(&html[start..end]))
}

pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Decodes RFC 4648 base32 (no padding), as in an otpauth `secret=`.
pub fn base32_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("bad base32"),
        };
        buf = (buf << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

/// The seed in an otpauth URI.
pub fn seed_of(uri: &str) -> portcullis::secret::TotpSeed {
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    portcullis::secret::TotpSeed::new(base32_decode(secret))
}
