//! Fuzz targets (issue 9): one `fn(&[u8])` per parser of untrusted input, feeding arbitrary
//! bytes through the real code and asserting its invariants. Invariant: no input makes a target
//! panic; a panic here is a bug, either in the parser or in the rule the target asserts.
//!
//! Driven by `tests/fuzz_corpus.rs`: every file of `fuzz/corpus/<target>/` is replayed on each
//! test run, and `scripts/fuzz` runs a bounded-time mutation fuzzer over the same corpus on
//! stable Rust. Adding a target is one line in `TARGETS` plus its corpus directory.
//!
//! The checks here (`check_local_path` and friends) restate the rules from DESIGN.md rather than
//! call the code under test, so a parser that drifts from the contract fails them. They panic
//! with `assert!` on purpose: that is how a fuzzer learns about a broken invariant.

use crate::auth::oidc::{self as rp, Trust, BACKCHANNEL_EVENT, LEEWAY_SECS};
use crate::auth::policy::{LocalPath, RouteDecision, Routes};
use crate::config::{Access, Config, RouteConfig};
use crate::http::{form_value, query_param};
use crate::proxy::headers::{strip_inbound, IdentityHeaders, Upgrade};
use crate::proxy::path::normalize;
use crate::secret::SessionToken;
use crate::server::gateway::upstream_target;
use crate::session::cookie::{self, CookieNames};
use crate::session::SessionId;
use crate::state::enc;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, COOKIE, UPGRADE};
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreTokenResponse};
use openidconnect::{ProviderMetadataWithLogout, TokenResponse as _};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::OnceLock;

/// A fuzz target: any bytes in; panics only when an invariant is broken.
pub type Target = fn(&[u8]);

/// Every fuzz target, by the name of its corpus directory under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("rd", rd),
    ("cookie", cookie_header),
    ("form", form),
    ("identity_headers", identity_headers),
    ("upgrade", upgrade),
    ("path", path),
    ("id_token", id_token),
    ("logout_token", logout_token),
    ("jwks", jwks),
    ("userinfo", userinfo),
    ("config", config),
    ("saml_response", saml_response),
    ("saml_metadata", saml_metadata),
    ("saml_redirect", saml_redirect),
];

/// Inputs beyond this are cut: every parser here has its own, smaller, limit in front of it.
const MAX_INPUT: usize = 64 * 1024;

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data.get(..MAX_INPUT).unwrap_or(data))
}

/// The origin accepted return paths are emitted on (`LocalPath::absolute`).
const ORIGIN: &str = "https://gw.example";

/// DESIGN.md §3: a return path is local: one leading `/`, no `//`, no `\`, no scheme, no
/// control characters, also after one more percent-decoding; and as the absolute URL the
/// gateway emits, a WHATWG URL parser (what browsers use) still finds the gateway's origin.
pub fn check_local_path(p: &str) -> Result<(), String> {
    fn local(p: &str, allow_space: bool) -> Result<(), String> {
        if !p.starts_with('/') {
            return Err(format!("{p:?} does not start with /"));
        }
        if p.contains("//") || p.contains('\\') {
            return Err(format!("{p:?} has // or \\"));
        }
        if p.chars()
            .any(|c| c.is_control() || (c.is_whitespace() && !(allow_space && c == ' ')))
        {
            return Err(format!("{p:?} has a control or space character"));
        }
        if p.starts_with("/ ") {
            return Err(format!("{p:?} starts with a space"));
        }
        let before_query = p.split(['?', '#']).next().unwrap_or_default();
        if before_query.contains(':') {
            return Err(format!("{p:?} could carry a scheme"));
        }
        Ok(())
    }
    local(p, false)?;
    let again = percent_encoding::percent_decode_str(p)
        .decode_utf8()
        .map_err(|_| format!("{p:?} decodes to invalid UTF-8"))?;
    local(&again, true)?;
    let url = openidconnect::url::Url::parse(&format!("{ORIGIN}{p}"))
        .map_err(|e| format!("{p:?} is not a URL path: {e}"))?;
    if url.origin().ascii_serialization() != ORIGIN {
        return Err(format!("{p:?} leaves the origin: {url}"));
    }
    Ok(())
}

/// `rd` as it arrives: raw, and as a query parameter (decoded once by the gateway).
pub fn rd(data: &[u8]) {
    let s = text(data);
    let raw = LocalPath::parse(&s);
    let from_query = query_param(Some(&format!("rd={s}")), "rd").and_then(|v| LocalPath::parse(&v));
    for p in raw.iter().chain(from_query.iter()) {
        let local = check_local_path(p.as_str());
        assert!(local.is_ok(), "accepted rd is not local: {local:?}");
        // The login link carries rd encoded and gets it back decoded, unchanged.
        let back = query_param(Some(&format!("rd={}", enc(p.as_str()))), "rd");
        assert_eq!(back.as_deref(), Some(p.as_str()), "rd round trip");
        assert!(p.absolute(ORIGIN).starts_with(ORIGIN));
    }
}

/// `Cookie` headers (one per line): session cookie lookup, session id, removal before upstream.
pub fn cookie_header(data: &[u8]) {
    let mut h = HeaderMap::new();
    for line in data.get(..MAX_INPUT).unwrap_or(data).split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append(COOKIE, v);
        }
    }
    for names in [CookieNames::new(true), CookieNames::new(false)] {
        for name in [names.session, names.pending, names.device] {
            if let Some(v) = cookie::get(&h, name) {
                assert!(!v.is_empty() && v.len() <= 128, "cookie value length");
                assert!(
                    v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "cookie value {v:?} is not base64url"
                );
                let id = SessionId::of(&SessionToken::new(v.to_owned()));
                assert_eq!(SessionId::parse(id.as_str()).as_ref(), Some(&id));
            }
        }
        let untouched = !h
            .get_all(COOKIE)
            .iter()
            .any(|v| v.as_bytes().windows(10).any(|w| w == b"portcullis"));
        let mut stripped = h.clone();
        names.strip(&mut stripped);
        if untouched {
            assert_eq!(stripped, h, "headers without our cookies are left alone");
        } else {
            assert!(stripped.get_all(COOKIE).iter().count() <= 1);
        }
        for name in [names.session, names.pending, names.device] {
            assert_eq!(
                cookie::get(&stripped, name),
                None,
                "{name} reached upstream"
            );
        }
        for v in stripped.get_all(COOKIE) {
            let s = v.to_str().unwrap_or_default();
            for pair in s.split(';') {
                let n = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
                assert!(!n.contains("portcullis"), "cookie {n:?} reached upstream");
            }
        }
    }
}

/// Fields the gateway reads from forms and queries.
const FIELDS: [&str; 9] = [
    "username",
    "password",
    "csrf_token",
    "rd",
    "code",
    "remember",
    "logout_token",
    "state",
    "id",
];

/// `application/x-www-form-urlencoded` bodies and query strings (`form_value`, `query_param`).
pub fn form(data: &[u8]) {
    // As the handlers read a body: lossy UTF-8 (`String::from_utf8_lossy`).
    let body = text(data);
    for name in FIELDS {
        let v = form_value(&body, name);
        assert_eq!(query_param(Some(&body), name), v);
        if let Some(v) = v {
            // What a browser encodes, the gateway decodes unchanged.
            let again = form_value(&format!("x=1&{name}={}&{name}=2", enc(&v)), name);
            assert_eq!(again.as_deref(), Some(v.as_str()), "form round trip");
            if name == "rd" {
                if let Some(p) = LocalPath::parse(&v) {
                    let local = check_local_path(p.as_str());
                    assert!(local.is_ok(), "accepted rd is not local: {local:?}");
                }
            }
        }
    }
}

/// The canonical form of a header name as an app framework may read it.
fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// DESIGN.md §2: whether a (canonical) name is one the gateway alone may send upstream.
pub fn is_identity_or_forwarding(canonical_name: &str) -> bool {
    const OURS: [&str; 13] = [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-auth-roles",
        "x-auth-method",
        "x-auth-mfa",
        "x-auth-session",
        "x-portcullis-assertion",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "forwarded",
    ];
    OURS.contains(&canonical_name) || canonical_name.starts_with("x-portcullis-")
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Request headers (`name: value` per line; first byte odd = a WebSocket upgrade) through
/// the proxy's stripping: nothing the client sent may be read as an identity header upstream.
pub fn identity_headers(data: &[u8]) {
    let keep_upgrade = data.first().is_some_and(|b| b & 1 == 1);
    let mut h = HeaderMap::new();
    let lines = data.get(1..).unwrap_or_default();
    for line in lines
        .get(..MAX_INPUT)
        .unwrap_or(lines)
        .split(|b| *b == b'\n')
    {
        let mut parts = line.splitn(2, |b| *b == b':');
        let (Some(n), Some(v)) = (parts.next(), parts.next()) else {
            continue;
        };
        let v = v.strip_prefix(b" ").unwrap_or(v);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            h.append(n, v);
        }
    }
    let before = h.clone();
    let xff = strip_inbound(&mut h, &IdentityHeaders::default(), keep_upgrade);
    assert_eq!(xff.as_ref(), before.get("x-forwarded-for"));
    let listed: Vec<String> = before
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in &h {
        let n = name.as_str();
        assert!(
            !is_identity_or_forwarding(&canonical(n)),
            "client header {n} reached upstream"
        );
        if keep_upgrade && (name == CONNECTION || name == UPGRADE) {
            if name == CONNECTION {
                assert_eq!(value, "upgrade");
            }
            continue;
        }
        assert!(
            !HOP_BY_HOP.contains(&n) && name != UPGRADE,
            "hop-by-hop {n} kept"
        );
        assert!(
            !listed.iter().any(|l| l == n),
            "{n} named in Connection kept"
        );
    }
    // Nothing else is lost: every other header keeps all its values, in order.
    for name in before.keys() {
        let n = name.as_str();
        if is_identity_or_forwarding(&canonical(n))
            || HOP_BY_HOP.contains(&n)
            || name == UPGRADE
            || listed.iter().any(|l| l == n)
        {
            continue;
        }
        let a: Vec<_> = before.get_all(name).iter().collect();
        let b: Vec<_> = h.get_all(name).iter().collect();
        assert_eq!(a, b, "{n} was altered");
    }
}

/// `headers::Upgrade::of` and the rewrite after it (DESIGN.md §6): a request is a WebSocket
/// handshake only when it is a complete one (GET, HTTP/1.1, `Upgrade: websocket` alone,
/// `Connection: upgrade`, a 16-byte key, version 13), CONNECT never passes, and afterwards the
/// upstream sees `Upgrade: websocket` for a handshake and no `Upgrade` at all otherwise.
/// Input: a first line `METHOD VERSION` (`1.0`, `1.1`, `2`), then `name: value` lines.
pub fn upgrade(data: &[u8]) {
    use base64::engine::general_purpose::STANDARD;
    use hyper::{Method, Version};
    let text = text(data);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    let (m, v) = first.split_once(' ').unwrap_or((first, ""));
    let method = Method::from_bytes(m.trim().as_bytes()).unwrap_or(Method::GET);
    let version = match v.trim() {
        "1.0" => Version::HTTP_10,
        "2" => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    let mut h = HeaderMap::new();
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) {
            h.append(n, v);
        }
    }
    let decided = Upgrade::of(&method, version, &h);
    if method == Method::CONNECT {
        assert!(decided.is_err(), "CONNECT accepted");
    }
    let websocket = decided == Ok(Upgrade::WebSocket);
    if websocket {
        assert!(method == Method::GET && version == Version::HTTP_11);
        // One field whose list (empty elements do not count, RFC 9110 §5.6.1) is `websocket`.
        let ups: Vec<_> = h.get_all(UPGRADE).iter().collect();
        let offers: Vec<String> = ups
            .iter()
            .filter_map(|u| u.to_str().ok())
            .flat_map(|u| u.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        assert!(
            ups.len() == 1 && offers == ["websocket"],
            "a WebSocket with other upgrade offers: {ups:?}"
        );
        assert!(
            h.get_all(CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))),
            "a WebSocket without Connection: upgrade"
        );
        let keys: Vec<_> = h.get_all("sec-websocket-key").iter().collect();
        assert!(
            keys.len() == 1
                && keys
                    .first()
                    .and_then(|k| STANDARD.decode(k.as_bytes()).ok())
                    .is_some_and(|k| k.len() == 16),
            "a WebSocket without a valid key"
        );
        let versions: Vec<_> = h.get_all("sec-websocket-version").iter().collect();
        assert!(
            versions.len() == 1 && versions.first().is_some_and(|v| v.as_bytes() == b"13"),
            "a WebSocket of another version"
        );
    }
    strip_inbound(&mut h, &IdentityHeaders::default(), websocket);
    let left: Vec<_> = h.get_all(UPGRADE).iter().collect();
    if websocket {
        assert_eq!(left, [HeaderValue::from_static("websocket")]);
    } else {
        assert!(
            left.is_empty(),
            "an upgrade offer reached the upstream: {left:?}"
        );
    }
}

/// The route table the path target routes with.
fn fuzz_routes() -> Routes {
    let route = |prefix: &str, access: Access| RouteConfig {
        prefix: prefix.to_owned(),
        access,
        login: None,
    };
    let roles = || Access::Roles(vec!["agent".to_owned()]);
    Routes::new(vec![
        route("/", roles()),
        route("/hc", Access::Public),
        route("/agent", roles()),
        route("/agent/admin", roles()),
    ])
}

/// DESIGN.md §2 / README "Path normalisation": what a normalised path looks like.
pub fn check_normalized(n: &str) -> Result<(), String> {
    if !n.starts_with('/') || n.contains("//") {
        return Err(format!("{n:?}: not one leading / or has //"));
    }
    if n.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("{n:?}: dot segment left"));
    }
    if !n.bytes().all(|b| b.is_ascii_graphic()) || n.contains(['\\', '?', '#']) {
        return Err(format!("{n:?}: invalid character"));
    }
    let b = n.as_bytes();
    for (i, _) in n.match_indices('%') {
        let hex = b.get(i + 1..i + 3).unwrap_or_default();
        let ok = hex.len() == 2
            && hex
                .iter()
                .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h));
        let v = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match v {
            Some(v) if ok => {
                if v.is_ascii_alphanumeric() || b"-._~/\\\0".contains(&v) {
                    return Err(format!(
                        "{n:?}: escape %{v:02X} should be decoded or refused"
                    ));
                }
            }
            _ => return Err(format!("{n:?}: bad escape")),
        }
    }
    Ok(())
}

/// Request targets: normalisation on any text, then what the gateway does with a target hyper
/// accepted: normalise its path once, route on it, forward exactly it.
pub fn path(data: &[u8]) {
    let s = text(data);
    if let Ok(n) = normalize(&s) {
        let shape = check_normalized(&n);
        assert!(shape.is_ok(), "normalised path malformed: {shape:?}");
        assert_eq!(normalize(&n).as_deref(), Ok(n.as_str()), "not idempotent");
        assert!(n.len() <= s.len(), "normalising grew the path");
    }
    let Ok(target) = s.parse::<hyper::Uri>() else {
        return;
    };
    let Ok(n) = normalize(target.path()) else {
        return;
    };
    let routes = fuzz_routes();
    let decision = routes.decide(&n);
    if let RouteDecision::Route(r) = &decision {
        // Other readings of the same path (lower case, without `;` parameters) route the same.
        let same = |other: &str| routes.find(other).map(|o| &o.prefix) == Some(&r.prefix);
        assert!(
            same(&n.to_ascii_lowercase()),
            "case changes the route of {n:?}"
        );
        if let Some(stripped) = crate::proxy::path::without_params(&n) {
            assert!(same(&stripped), "parameters change the route of {n:?}");
        }
    }
    for base in ["", "/app"] {
        // The path the route was decided on is the path the upstream receives.
        let uri = upstream_target(base, &n, target.query());
        assert!(uri.is_ok(), "forwarding {n:?} failed");
        let Ok(uri) = uri else { continue };
        assert_eq!(uri.path(), format!("{base}{n}"), "forwarded path differs");
        assert_eq!(uri.query(), target.query(), "forwarded query differs");
        let upstream_view = uri.path().strip_prefix(base).unwrap_or_default();
        let same = match (&decision, &routes.decide(upstream_view)) {
            (RouteDecision::Route(a), RouteDecision::Route(b)) => a.prefix == b.prefix,
            (RouteDecision::NoRoute, RouteDecision::NoRoute)
            | (RouteDecision::Ambiguous, RouteDecision::Ambiguous) => true,
            _ => false,
        };
        assert!(same, "the forwarded path routes differently: {n:?}");
    }
}

const ISSUER: &str = "https://op.example";
const CLIENT: &str = "portcullis-client";
const NONCE: &str = "fuzz-nonce-0123456789";
const KID: &str = "fuzz-k1";
/// The fuzz clock (Unix seconds); seeds use `iat` = NOW and `exp` = NOW + 600.
const NOW: i64 = 1_800_000_000;
static ES256: [CoreJwsSigningAlgorithm; 1] = [CoreJwsSigningAlgorithm::EcdsaP256Sha256];

/// A signing key made once per process (so no test key ships in the binary), its JWKS, and
/// tokens it signed with claims that pass every check.
struct Op {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    jwks: CoreJsonWebKeySet,
    /// The public key as a JWK JSON text, the favourite HMAC secret of alg-confusion attacks.
    jwk_json: String,
    x: String,
    y: String,
    good_id_token: String,
    good_logout_token: String,
}

fn op() -> Option<&'static Op> {
    static OP: OnceLock<Option<Op>> = OnceLock::new();
    OP.get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .ok()?;
        let public = key.public_key().as_ref();
        let x = B64.encode(public.get(1..33)?);
        let y = B64.encode(public.get(33..65)?);
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": KID, "use": "sig", "alg": "ES256"});
        let jwk_json = jwk.to_string();
        let jwks = serde_json::from_value(json!({ "keys": [jwk] })).ok()?;
        let mut op = Op {
            key,
            rng,
            jwks,
            jwk_json,
            x,
            y,
            good_id_token: String::new(),
            good_logout_token: String::new(),
        };
        let claims = json!({"iss": ISSUER, "aud": CLIENT, "sub": "s-1", "iat": NOW, "exp": NOW + 600, "nonce": NONCE});
        op.good_id_token = op.es256(true, claims.to_string().as_bytes())?;
        let logout = json!({"iss": ISSUER, "aud": CLIENT, "sid": "sid-1", "iat": NOW, "exp": NOW + 120, "jti": "j1", "events": {BACKCHANNEL_EVENT: {}}});
        op.good_logout_token = op.es256(true, logout.to_string().as_bytes())?;
        Some(op)
    })
    .as_ref()
}

impl Op {
    fn trust<'a>(&'a self, jwks: &'a CoreJsonWebKeySet) -> Trust<'a> {
        Trust {
            issuer: ISSUER,
            client_id: CLIENT,
            jwks,
            algs: &ES256,
            now: NOW,
        }
    }

    fn es256(&self, with_kid: bool, payload: &[u8]) -> Option<String> {
        let header = if with_kid {
            json!({"alg": "ES256", "typ": "JWT", "kid": KID})
        } else {
            json!({"alg": "ES256", "typ": "JWT"})
        };
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload));
        let sig = self.key.sign(&self.rng, input.as_bytes()).ok()?;
        Some(format!("{input}.{}", B64.encode(sig.as_ref())))
    }

    /// Turns fuzz bytes into a token. The first byte picks how: `S`/`N` the rest is a payload
    /// signed with the real key (with/without `kid`), `K` signed but naming an unknown `kid`,
    /// `0` `alg: none`, `H` HS256 keyed with the public key (alg confusion), `T` a token
    /// endpoint response carrying the token; anything else: the bytes are the token.
    /// Returns the token and whether a genuine signature by a known key is on it.
    fn token(&self, data: &[u8]) -> Option<(String, bool)> {
        let rest = data.get(1..).unwrap_or_default();
        let payload = B64.encode(rest);
        match data.first() {
            Some(b'S') => Some((self.es256(true, rest)?, true)),
            Some(b'N') => Some((self.es256(false, rest)?, true)),
            Some(b'K') => {
                let t = self.es256(false, rest)?;
                let (_, tail) = t.split_once('.')?;
                let h = json!({"alg": "ES256", "kid": "unknown-kid"}).to_string();
                Some((format!("{}.{tail}", B64.encode(h)), false))
            }
            Some(b'0') => {
                let h = B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string());
                Some((format!("{h}.{payload}."), false))
            }
            Some(b'H') => {
                let h = B64.encode(json!({"alg": "HS256", "kid": KID}).to_string());
                let input = format!("{h}.{payload}");
                let secret = if rest.len() % 2 == 0 {
                    self.jwk_json.clone().into_bytes()
                } else {
                    B64.decode(&self.x).unwrap_or_default()
                };
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
                let tag = ring::hmac::sign(&k, input.as_bytes());
                Some((format!("{input}.{}", B64.encode(tag.as_ref())), false))
            }
            Some(b'T') => {
                let resp: CoreTokenResponse = serde_json::from_slice(rest).ok()?;
                Some((resp.id_token()?.to_string(), false))
            }
            _ => Some((text(data).into_owned(), false)),
        }
    }
}

fn audience_ok(c: &Map<String, Value>) -> bool {
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == CLIENT,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(CLIENT)),
        _ => false,
    };
    let several = c
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    let azp_ok = match c.get("azp") {
        Some(v) => v.as_str() == Some(CLIENT),
        None => !several,
    };
    aud_ok && azp_ok
}

fn short_text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
}

/// DESIGN.md §6, conformance/oidc-rp.md: what an accepted ID token's claims must satisfy.
fn check_accepted_id_token(c: &Map<String, Value>, sub: &str) {
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(ISSUER), "iss");
    assert!(audience_ok(c), "aud/azp");
    let exp = c.get("exp").and_then(Value::as_f64);
    assert!(exp.is_some_and(|e| e > (NOW - LEEWAY_SECS) as f64), "exp");
    let iat = c.get("iat").and_then(Value::as_f64);
    assert!(iat.is_some_and(|i| i <= (NOW + LEEWAY_SECS) as f64), "iat");
    assert_eq!(c.get("nonce").and_then(Value::as_str), Some(NONCE), "nonce");
    assert_eq!(short_text(c.get("sub")), Some(sub), "sub");
    if let Ok(id) = rp::identity(c, sub, None, "groups") {
        for s in std::iter::once(&id.username).chain(id.groups.iter()) {
            assert!(!s.is_empty() && s.len() <= 256, "identity text length");
            assert!(!s.chars().any(char::is_control), "control char in identity");
        }
    }
}

/// ID tokens (`verify_id_token`), genuine or forged; see `Op::token` for the first byte.
pub fn id_token(data: &[u8]) {
    let Some(op) = op() else { return };
    let Some((token, genuine)) = op.token(data) else {
        return;
    };
    let _ = rp::header_kid(&token);
    if let Ok(v) = rp::verify_id_token(&token, NONCE, &op.trust(&op.jwks)) {
        assert!(genuine, "a token without a genuine signature was accepted");
        check_accepted_id_token(&v.claims, &v.sub);
    }
}

/// Back-channel logout tokens (`verify_logout_token`); see `Op::token` for the first byte.
pub fn logout_token(data: &[u8]) {
    let Some(op) = op() else { return };
    let Some((token, genuine)) = op.token(data) else {
        return;
    };
    let Ok(v) = rp::verify_logout_token(&token, &op.trust(&op.jwks)) else {
        return;
    };
    assert!(
        genuine,
        "a logout token without a genuine signature was accepted"
    );
    let (_, payload) = token.split_once('.').unwrap_or_default();
    let payload = payload.split('.').next().unwrap_or_default();
    let c: Map<String, Value> = B64
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(ISSUER), "iss");
    assert!(audience_ok(&c), "aud/azp");
    assert!(
        c.get("iat")
            .and_then(Value::as_i64)
            .is_some_and(|i| i <= NOW + LEEWAY_SECS),
        "iat"
    );
    assert!(
        c.get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|e| e > NOW - LEEWAY_SECS && e <= NOW + rp::LOGOUT_TOKEN_MAX_SECS),
        "exp"
    );
    assert_eq!(Some(v.jti.as_str()), short_text(c.get("jti")), "jti");
    assert!(!c.contains_key("nonce"), "a logout token with a nonce");
    assert!(
        c.get("events")
            .and_then(|e| e.get(BACKCHANNEL_EVENT))
            .is_some_and(Value::is_object),
        "events"
    );
    assert_eq!(v.sid.as_deref(), short_text(c.get("sid")));
    assert_eq!(v.sub.as_deref(), short_text(c.get("sub")));
    assert!(v.sid.is_some() || v.sub.is_some(), "sid or sub");
}

/// JSON from the IdP about keys: a JWKS (as fetched) and discovery metadata.
pub fn jwks(data: &[u8]) {
    let Some(op) = op() else { return };
    let data = data.get(..MAX_INPUT).unwrap_or(data);
    if let Ok(set) = serde_json::from_slice::<CoreJsonWebKeySet>(data) {
        let ours = set.keys().iter().any(|k| {
            let k = serde_json::to_value(k).unwrap_or_default();
            k.get("x").and_then(Value::as_str) == Some(op.x.as_str())
                && k.get("y").and_then(Value::as_str) == Some(op.y.as_str())
        });
        let _ = rp::has_kid(&set, KID);
        // Tokens signed with our key verify only against a key set that holds our key.
        if rp::verify_id_token(&op.good_id_token, NONCE, &op.trust(&set)).is_ok() {
            assert!(ours, "an ID token verified with a foreign key");
        }
        if rp::verify_logout_token(&op.good_logout_token, &op.trust(&set)).is_ok() {
            assert!(ours, "a logout token verified with a foreign key");
        }
    }
    if let Ok(meta) = serde_json::from_slice::<ProviderMetadataWithLogout>(data) {
        let algs = rp::allowed_algs(meta.id_token_signing_alg_values_supported());
        assert!(
            !algs.iter().any(|a| matches!(
                a,
                CoreJwsSigningAlgorithm::None
                    | CoreJwsSigningAlgorithm::HmacSha256
                    | CoreJwsSigningAlgorithm::HmacSha384
                    | CoreJwsSigningAlgorithm::HmacSha512
            )),
            "a symmetric or no algorithm allowed"
        );
    }
}

/// Userinfo responses merged into verified claims (`merge_userinfo`).
pub fn userinfo(data: &[u8]) {
    let data = data.get(..MAX_INPUT).unwrap_or(data);
    let Ok(info) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let verified =
        json!({"iss": ISSUER, "sub": "s-1", "email": "ann@example.com", "groups": ["agents"]});
    let Value::Object(verified) = verified else {
        return;
    };
    let mut claims = verified.clone();
    let matches = info.get("sub").and_then(Value::as_str) == Some("s-1");
    let merged = rp::merge_userinfo(&mut claims, info, "s-1");
    assert_eq!(merged.is_ok(), matches, "userinfo of another subject");
    // Userinfo adds claims, never replaces what the signed ID token said.
    for (k, v) in &verified {
        assert_eq!(claims.get(k), Some(v), "userinfo replaced {k}");
    }
    if let Ok(id) = rp::identity(&claims, "s-1", None, "groups") {
        assert_eq!(id.email.as_deref(), Some("ann@example.com"));
    }
}

/// The config loader: TOML text as `portcullis check` reads it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data.get(..MAX_INPUT).unwrap_or(data)) else {
        return;
    };
    let file = Path::new("/nonexistent-portcullis-fuzz/portcullis.toml");
    let env = |k: &str| match k {
        "PORTCULLIS_KEY" => Some("00".repeat(32)),
        "OKTA_SECRET" | "OIDC_SECRET" => Some("s3cret".to_owned()),
        _ => None,
    };
    match Config::from_str_with_env(file, text, &env) {
        Ok(c) => {
            for r in &c.routes {
                assert!(r.prefix.starts_with('/'), "route prefix {:?}", r.prefix);
            }
            let _ = Routes::new(c.routes.clone()).decide("/");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without a message");
            let lines = text.lines().count() + 1;
            for e in &errors.0 {
                assert_eq!(e.file, file, "error names another file");
                assert!(!e.message.is_empty(), "empty error message");
                if let Some(l) = e.line {
                    assert!(l >= 1 && l <= lines, "line {l} outside the file");
                }
            }
            let _ = errors.to_string();
        }
    }
}

/// A SAML IdP whose certificate's private key was generated here and thrown away: nothing can
/// be signed by it, so no input may ever verify.
fn saml_idp() -> Option<&'static crate::auth::saml::IdpMetadata> {
    static IDP: OnceLock<Option<crate::auth::saml::IdpMetadata>> = OnceLock::new();
    IDP.get_or_init(|| {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
        let key = PKey::from_rsa(Rsa::generate(2048).ok()?).ok()?;
        let mut name = x509::X509NameBuilder::new().ok()?;
        name.append_entry_by_text("CN", "fuzz-idp").ok()?;
        let name = name.build();
        let mut b = x509::X509::builder().ok()?;
        b.set_version(2).ok()?;
        b.set_subject_name(&name).ok()?;
        b.set_issuer_name(&name).ok()?;
        b.set_pubkey(&key).ok()?;
        b.set_not_before(&*Asn1Time::days_from_now(0).ok()?).ok()?;
        b.set_not_after(&*Asn1Time::days_from_now(2).ok()?).ok()?;
        b.sign(&key, MessageDigest::sha256()).ok()?;
        let der = b.build().to_der().ok()?;
        Some(crate::auth::saml::IdpMetadata {
            entity_id: "https://idp.test/saml".into(),
            certs: vec![samael::crypto::CertificateDer::from(der)],
            sso_redirect: "https://idp.test/sso".into(),
            slo_redirect: Some("https://idp.test/slo".into()),
            slo_response: Some("https://idp.test/slo".into()),
        })
    })
    .as_ref()
}

fn saml_algorithms() -> Vec<String> {
    crate::config::SAML_KNOWN_ALGORITHMS
        .iter()
        .map(|a| (*a).to_owned())
        .collect()
}

/// The ACS pipeline (scan, signature, conditions) on XML text, or on a base64 form value.
pub fn saml_response(data: &[u8]) {
    let Some(idp) = saml_idp() else { return };
    let raw = text(data);
    let xml = crate::auth::saml::decode_post(&raw).unwrap_or_else(|_| raw.into_owned());
    let algorithms = saml_algorithms();
    let r = crate::auth::saml::verify_response(
        &xml,
        &crate::auth::saml::Expect {
            idp,
            sp_entity_id: "https://sp.test/saml",
            acs_url: "https://sp.test/_portcullis/saml/corp/acs",
            algorithms: &algorithms,
            skew_secs: 60,
            now: NOW,
        },
    );
    assert!(r.is_err(), "a response verified without the IdP's key");
}

/// IdP metadata (`metadata` files and `metadata_url` documents).
pub fn saml_metadata(data: &[u8]) {
    if let Ok(m) = crate::auth::saml::IdpMetadata::parse(&text(data)) {
        assert!(
            !m.certs.is_empty(),
            "metadata accepted without a signing certificate"
        );
        assert!(
            !m.entity_id.trim().is_empty(),
            "metadata accepted without an entity id"
        );
        assert!(
            !m.sso_redirect.is_empty(),
            "metadata accepted without an SSO endpoint"
        );
    }
}

/// The SLO endpoint's redirect-binding query.
pub fn saml_redirect(data: &[u8]) {
    let Some(idp) = saml_idp() else { return };
    let r = crate::auth::saml::verify_redirect(&text(data), idp, &saml_algorithms());
    assert!(
        r.is_err(),
        "a redirect-binding message verified without the IdP's key"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signed_token_seeds_reach_the_accepting_branch() {
        let op = op().unwrap();
        let claims = json!({"iss": ISSUER, "aud": CLIENT, "sub": "s-1", "iat": NOW, "exp": NOW + 600, "nonce": NONCE}).to_string();
        for (first, accepted) in [
            (b'S', true),
            (b'N', true),
            (b'0', false),
            (b'H', false),
            (b'K', false),
        ] {
            let mut data = vec![first];
            data.extend_from_slice(claims.as_bytes());
            let (token, genuine) = op.token(&data).unwrap();
            assert_eq!(genuine, first == b'S' || first == b'N');
            let r = rp::verify_id_token(&token, NONCE, &op.trust(&op.jwks));
            assert_eq!(r.is_ok(), accepted, "{} {r:?}", first as char);
        }
        assert!(rp::verify_logout_token(&op.good_logout_token, &op.trust(&op.jwks)).is_ok());
    }

    #[test]
    fn the_checks_refuse_what_the_contract_refuses() {
        for bad in [
            "",
            "x",
            "//evil.com",
            "/\\evil",
            "/%2f%2fevil.com",
            "/a\tb",
            "/javascript:x",
            "/%5cevil",
        ] {
            assert!(check_local_path(bad).is_err(), "{bad:?}");
        }
        for ok in ["/", "/a/b%20c?x=1#top", "/search?q=a:b"] {
            assert!(check_local_path(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "/a/../b", "//a", "/a/./b", "/%61", "/%2f", "/a?b", "/%2", "/%e2",
        ] {
            assert!(check_normalized(bad).is_err(), "{bad:?}");
        }
        assert!(check_normalized("/a/%E2%80%A8/~").is_ok());
        assert!(is_identity_or_forwarding("x-portcullis-"));
        assert!(!is_identity_or_forwarding("x-forwarded-port"));
    }
}
