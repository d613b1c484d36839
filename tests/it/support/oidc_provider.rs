//! A test OpenID Provider on loopback: discovery, JWKS, authorize (auto-approves a configured
//! test user), token (checks client authentication and PKCE), userinfo, end_session. It signs
//! ES256 with P-256 keys generated here and RS256 with the fixed TEST-ONLY RSA key in
//! `tests/fixtures/`, and misbehaves on demand (`Fault`, key choice, JWKS contents) so each row
//! of `conformance/oidc-rp.md` can be played against the gateway.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use portcullis::clock::Clock;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const CLIENT_ID: &str = "portcullis-test";
pub const CLIENT_SECRET: &str = "test-client-secret";

/// How the OP misbehaves on the next tokens it issues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    WrongNonce,
    WrongIss,
    WrongAud,
    SeveralAudNoAzp,
    SeveralAudWrongAzp,
    NoIat,
    Expired,
    NoSub,
    BadSignature,
    AlgNone,
    Hs256WithPublicKey,
    /// A fresh random `kid` on every token (signed with the usual key).
    RandomKid,
    /// `nbf` ten minutes ahead (access tokens).
    NbfFuture,
    /// The token endpoint answers with the previous ID token, whatever the code.
    ReplayLastIdToken,
    UserinfoOtherSub,
    AccessDenied,
    Token500,
    TokenSlow(Duration),
}

/// Which client authentication the token endpoint insists on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub sub: String,
    pub preferred_username: String,
    pub email: String,
    pub groups: Vec<String>,
    pub amr: Option<Vec<String>>,
    pub acr: Option<String>,
    pub sid: Option<String>,
    /// Username, email and groups are left out of the ID token and served only by userinfo.
    pub claims_only_in_userinfo: bool,
}

impl TestUser {
    pub fn staff() -> TestUser {
        TestUser {
            sub: "00u-staff-1".into(),
            preferred_username: "sam.staff".into(),
            email: "sam@corp.example".into(),
            groups: vec!["agents".into()],
            amr: Some(vec!["pwd".into(), "mfa".into()]),
            acr: None,
            sid: Some("op-session-1".into()),
            claims_only_in_userinfo: false,
        }
    }
}

struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

pub struct OpState {
    pub clock: Clock,
    pub issuer: String,
    pub client_auth: ClientAuth,
    pub user: TestUser,
    pub fault: Fault,
    pub discovery_down: bool,
    /// The `iss` parameter of the authorization response (RFC 9207); None: not sent.
    pub response_iss: Option<String>,
    /// Discovery advertises `authorization_response_iss_parameter_supported`.
    pub advertise_response_iss: bool,
    /// Key ids served by the JWKS endpoint.
    pub jwks_keys: Vec<&'static str>,
    /// Key id that signs, and whether its `kid` goes into the header.
    pub sign_with: &'static str,
    pub include_kid: bool,
    pub jwks_fetches: usize,
    pub token_requests: usize,
    pub userinfo_requests: usize,
    /// How the last token request authenticated ("basic" / "post" / "none").
    pub last_client_auth: Option<&'static str>,
    pub last_authorize_query: Option<String>,
    pub last_end_session_query: Option<String>,
    pub last_id_token: Option<String>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, String>,
    /// Client-credentials access tokens: their `aud`, `sub` and `roles` claim.
    pub access_audience: String,
    pub access_sub: String,
    pub access_roles: Value,
}

/// The audience client-credentials access tokens are issued for by default.
pub const API_AUDIENCE: &str = "https://helpdesk.test/api";

struct Keys {
    rsa: RsaKeyPair,
    ec: BTreeMap<&'static str, EcdsaKeyPair>,
}

pub struct TestOp {
    pub addr: SocketAddr,
    pub issuer: String,
    pub state: Arc<Mutex<OpState>>,
    keys: Arc<Keys>,
    task: JoinHandle<()>,
}

impl Drop for TestOp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ec_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let doc =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        doc.as_ref(),
        &rng,
    )
    .unwrap()
}

fn rsa_key() -> RsaKeyPair {
    // TEST-ONLY key, committed on purpose: ring cannot generate RSA keys.
    let der = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/oidc-test-rsa-key.p8.der"),
    )
    .unwrap();
    RsaKeyPair::from_pkcs8(&der).unwrap()
}

impl TestOp {
    /// A client-credentials access token from the token endpoint (RFC 6749 §4.4), as a
    /// machine client gets one.
    pub async fn client_credentials(&self) -> String {
        let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        let r = crate::support::Http::new()
            .post_form(
                &format!("{}/token", self.issuer),
                &[("authorization", &format!("Basic {basic}"))],
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "tickets.read"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn start(clock: Clock) -> TestOp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let keys = Arc::new(Keys {
            rsa: rsa_key(),
            ec: ["ec-1", "ec-2", "ec-rotated"]
                .into_iter()
                .map(|k| (k, ec_key()))
                .collect(),
        });
        let state = Arc::new(Mutex::new(OpState {
            clock,
            issuer: issuer.clone(),
            client_auth: ClientAuth::Basic,
            user: TestUser::staff(),
            fault: Fault::None,
            discovery_down: false,
            response_iss: None,
            advertise_response_iss: false,
            jwks_keys: vec!["rsa-1", "ec-1"],
            sign_with: "ec-1",
            include_kid: true,
            jwks_fetches: 0,
            token_requests: 0,
            userinfo_requests: 0,
            last_client_auth: None,
            last_authorize_query: None,
            last_end_session_query: None,
            last_id_token: None,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            access_audience: API_AUDIENCE.into(),
            access_sub: "crm-machine".into(),
            access_roles: json!(["integration"]),
        }));
        let (st, ks) = (Arc::clone(&state), Arc::clone(&keys));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (st, ks) = (Arc::clone(&st), Arc::clone(&ks));
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (st, ks) = (Arc::clone(&st), Arc::clone(&ks));
                        async move { Ok::<_, Infallible>(handle(&st, &ks, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TestOp {
            addr,
            issuer,
            state,
            keys,
            task,
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut OpState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn set_fault(&self, fault: Fault) {
        self.with(|s| s.fault = fault);
    }

    /// A back-channel logout token, signed like an ID token; `edit` may change the claims.
    pub fn logout_token(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let st = self.state.lock().unwrap();
        let now = st.clock.now();
        let mut c = json!({
            "iss": st.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 120,
            "jti": portcullis::session::random_id(12),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        })
        .as_object()
        .cloned()
        .unwrap();
        if let Some(sid) = &st.user.sid {
            c.insert("sid".into(), json!(sid));
        } else {
            c.insert("sub".into(), json!(st.user.sub));
        }
        edit(&mut c);
        sign(&self.keys, st.sign_with, true, &Value::Object(c))
    }
}

fn jwk(keys: &Keys, kid: &str) -> Value {
    if kid == "rsa-1" {
        let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(keys.rsa.public());
        let n =
            c.n.iter()
                .skip_while(|b| **b == 0)
                .copied()
                .collect::<Vec<u8>>();
        let e =
            c.e.iter()
                .skip_while(|b| **b == 0)
                .copied()
                .collect::<Vec<u8>>();
        json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": B64.encode(n), "e": B64.encode(e)})
    } else {
        let pk = keys.ec[kid].public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
               "x": B64.encode(&pk[1..33]), "y": B64.encode(&pk[33..65])})
    }
}

/// A compact JWS over `claims` with key `kid` (RS256 for the RSA key, ES256 otherwise).
fn sign(keys: &Keys, kid: &str, include_kid: bool, claims: &Value) -> String {
    let alg = if kid == "rsa-1" { "RS256" } else { "ES256" };
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if include_kid {
        header["kid"] = json!(kid);
    }
    sign_raw(keys, kid, &header, claims)
}

fn sign_raw(keys: &Keys, kid: &str, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let rng = SystemRandom::new();
    let sig = if kid == "rsa-1" {
        let mut out = vec![0u8; keys.rsa.public().modulus_len()];
        keys.rsa
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                input.as_bytes(),
                &mut out,
            )
            .unwrap();
        out
    } else {
        keys.ec[kid]
            .sign(&rng, input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    };
    format!("{input}.{}", B64.encode(sig))
}

fn id_token(st: &OpState, keys: &Keys, nonce: &str) -> String {
    let now = st.clock.now();
    let u = &st.user;
    let mut c = json!({
        "iss": st.issuer,
        "sub": u.sub,
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "auth_time": now,
        "nonce": nonce,
    });
    if !u.claims_only_in_userinfo {
        c["preferred_username"] = json!(u.preferred_username);
        c["email"] = json!(u.email);
        c["groups"] = json!(u.groups);
    }
    if let Some(amr) = &u.amr {
        c["amr"] = json!(amr);
    }
    if let Some(acr) = &u.acr {
        c["acr"] = json!(acr);
    }
    if let Some(sid) = &u.sid {
        c["sid"] = json!(sid);
    }
    let o = c.as_object_mut().unwrap();
    match &st.fault {
        Fault::WrongNonce => {
            o.insert("nonce".into(), json!("not-the-nonce-that-was-sent"));
        }
        Fault::WrongIss => {
            o.insert("iss".into(), json!("http://127.0.0.1:1/other-issuer"));
        }
        Fault::WrongAud => {
            o.insert("aud".into(), json!("another-client"));
        }
        Fault::SeveralAudNoAzp => {
            o.insert("aud".into(), json!([CLIENT_ID, "another-client"]));
        }
        Fault::SeveralAudWrongAzp => {
            o.insert("aud".into(), json!([CLIENT_ID, "another-client"]));
            o.insert("azp".into(), json!("another-client"));
        }
        Fault::NoIat => {
            o.remove("iat");
        }
        Fault::Expired => {
            o.insert("iat".into(), json!(now - 900));
            o.insert("exp".into(), json!(now - 600));
        }
        Fault::NoSub => {
            o.remove("sub");
        }
        _ => {}
    }
    let claims = Value::Object(o.clone());
    seal(st, keys, &claims)
}

/// A client-credentials access token (RFC 9068 shape), with the claim faults that apply.
fn access_token(st: &OpState, keys: &Keys, client_id: &str) -> String {
    let now = st.clock.now();
    let mut c = json!({
        "iss": st.issuer,
        "sub": st.access_sub,
        "aud": st.access_audience,
        "client_id": client_id,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": portcullis::session::random_id(12),
        "roles": st.access_roles,
        "scope": "tickets.read",
    });
    let o = c.as_object_mut().unwrap();
    match &st.fault {
        Fault::WrongIss => {
            o.insert("iss".into(), json!("http://127.0.0.1:1/other-issuer"));
        }
        Fault::WrongAud => {
            o.insert("aud".into(), json!("https://other.test/api"));
        }
        Fault::Expired => {
            o.insert("iat".into(), json!(now - 900));
            o.insert("nbf".into(), json!(now - 900));
            o.insert("exp".into(), json!(now - 600));
        }
        Fault::NbfFuture => {
            o.insert("nbf".into(), json!(now + 600));
        }
        _ => {}
    }
    seal(st, keys, &c)
}

/// Signs claims as the current fault says (none, HS256 with the public key, a flipped
/// signature byte, a random kid) or properly.
fn seal(st: &OpState, keys: &Keys, claims: &Value) -> String {
    let claims = claims.clone();
    match &st.fault {
        Fault::AlgNone => format!(
            "{}.{}.",
            B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
            B64.encode(claims.to_string())
        ),
        Fault::Hs256WithPublicKey => {
            let header = json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"});
            let input = format!(
                "{}.{}",
                B64.encode(header.to_string()),
                B64.encode(claims.to_string())
            );
            // The "secret" an attacker knows: the OP's public key.
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, keys.rsa.public().as_ref());
            let tag = ring::hmac::sign(&key, input.as_bytes());
            format!("{input}.{}", B64.encode(tag.as_ref()))
        }
        Fault::BadSignature => {
            let t = sign(keys, st.sign_with, st.include_kid, &claims);
            let (head, sig) = t.rsplit_once('.').unwrap();
            let mut sig = B64.decode(sig).unwrap();
            sig[10] ^= 0x55;
            format!("{head}.{}", B64.encode(sig))
        }
        Fault::RandomKid => {
            let alg = if st.sign_with == "rsa-1" {
                "RS256"
            } else {
                "ES256"
            };
            let header =
                json!({"alg": alg, "typ": "JWT", "kid": portcullis::session::random_id(12)});
            sign_raw(keys, st.sign_with, &header, &claims)
        }
        _ => sign(keys, st.sign_with, st.include_kid, &claims),
    }
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let d = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), d(v))
        })
        .collect()
}

fn json_resp(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn redirect(to: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", to)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn handle(
    st: &Arc<Mutex<OpState>>,
    keys: &Keys,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    match path.as_str() {
        "/.well-known/openid-configuration" => {
            let s = st.lock().unwrap();
            if s.discovery_down {
                return json_resp(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "down"}));
            }
            let i = &s.issuer;
            json_resp(
                StatusCode::OK,
                &json!({
                    "issuer": i,
                    "authorization_endpoint": format!("{i}/authorize"),
                    "token_endpoint": format!("{i}/token"),
                    "userinfo_endpoint": format!("{i}/userinfo"),
                    "jwks_uri": format!("{i}/jwks"),
                    "end_session_endpoint": format!("{i}/end_session"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256", "HS256", "none"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                    "code_challenge_methods_supported": ["S256"],
                    "backchannel_logout_supported": true,
                    "backchannel_logout_session_supported": true,
                    "authorization_response_iss_parameter_supported": s.advertise_response_iss,
                }),
            )
        }
        "/jwks" => {
            let mut s = st.lock().unwrap();
            s.jwks_fetches += 1;
            let ks: Vec<Value> = s.jwks_keys.iter().map(|k| jwk(keys, k)).collect();
            json_resp(StatusCode::OK, &json!({ "keys": ks }))
        }
        "/authorize" => {
            let q = form(&query);
            let mut s = st.lock().unwrap();
            s.last_authorize_query = Some(query.clone());
            let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
            let state = q.get("state").cloned().unwrap_or_default();
            let enc = |v: &str| crate::support::enc(v);
            let iss = s
                .response_iss
                .as_ref()
                .map(|i| format!("&iss={}", enc(i)))
                .unwrap_or_default();
            if s.fault == Fault::AccessDenied {
                return redirect(&format!(
                    "{redirect_uri}?error=access_denied&error_description=User+cancelled&state={}{iss}",
                    enc(&state)
                ));
            }
            if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
                || q.get("code_challenge_method").map(String::as_str) != Some("S256")
            {
                return json_resp(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "invalid_request"}),
                );
            }
            let code = portcullis::session::random_id(16);
            s.codes.insert(
                code.clone(),
                Grant {
                    nonce: q.get("nonce").cloned().unwrap_or_default(),
                    challenge: q.get("code_challenge").cloned().unwrap_or_default(),
                    redirect_uri: redirect_uri.clone(),
                },
            );
            redirect(&format!(
                "{redirect_uri}?code={}&state={}{iss}",
                enc(&code),
                enc(&state)
            ))
        }
        "/token" => {
            let (fault, auth) = {
                let mut s = st.lock().unwrap();
                s.token_requests += 1;
                (s.fault.clone(), s.client_auth)
            };
            if let Fault::TokenSlow(d) = fault {
                tokio::time::sleep(d).await;
            }
            if fault == Fault::Token500 {
                return json_resp(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": "server_error"}),
                );
            }
            let f = form(&body);
            let basic = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b| STANDARD.decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let used = match (&basic, f.get("client_secret")) {
                (Some(_), None) => "basic",
                (None, Some(_)) => "post",
                (None, None) => "none",
                (Some(_), Some(_)) => "both",
            };
            let ok = match auth {
                ClientAuth::Basic => {
                    basic.as_deref() == Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}"))
                        && used == "basic"
                }
                ClientAuth::Post => {
                    f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                        && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
                        && used == "post"
                }
            };
            let mut s = st.lock().unwrap();
            s.last_client_auth = Some(match used {
                "basic" => "basic",
                "post" => "post",
                "both" => "both",
                _ => "none",
            });
            if !ok {
                return json_resp(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error": "invalid_client"}),
                );
            }
            if f.get("grant_type").map(String::as_str) == Some("client_credentials") {
                let at = access_token(&s, keys, CLIENT_ID);
                return json_resp(
                    StatusCode::OK,
                    &json!({"access_token": at, "token_type": "Bearer", "expires_in": 300}),
                );
            }
            if fault == Fault::ReplayLastIdToken {
                if let Some(t) = s.last_id_token.clone() {
                    return json_resp(
                        StatusCode::OK,
                        &json!({"access_token": "replayed", "token_type": "Bearer", "expires_in": 300, "id_token": t}),
                    );
                }
            }
            let code = f.get("code").cloned().unwrap_or_default();
            let Some(grant) = s.codes.remove(&code) else {
                return json_resp(StatusCode::BAD_REQUEST, &json!({"error": "invalid_grant"}));
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            let challenge = B64.encode(ring::digest::digest(
                &ring::digest::SHA256,
                verifier.as_bytes(),
            ));
            if challenge != grant.challenge
                || f.get("redirect_uri") != Some(&grant.redirect_uri)
                || f.get("grant_type").map(String::as_str) != Some("authorization_code")
            {
                return json_resp(StatusCode::BAD_REQUEST, &json!({"error": "invalid_grant"}));
            }
            let t = id_token(&s, keys, &grant.nonce);
            s.last_id_token = Some(t.clone());
            let at = portcullis::session::random_id(16);
            let sub = s.user.sub.clone();
            s.access_tokens.insert(at.clone(), sub);
            json_resp(
                StatusCode::OK,
                &json!({"access_token": at, "token_type": "Bearer", "expires_in": 300, "id_token": t}),
            )
        }
        "/userinfo" => {
            let mut s = st.lock().unwrap();
            s.userinfo_requests += 1;
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned();
            let Some(sub) = s.access_tokens.get(&token).cloned() else {
                return json_resp(StatusCode::UNAUTHORIZED, &json!({"error": "invalid_token"}));
            };
            let sub = if s.fault == Fault::UserinfoOtherSub {
                "someone-else".to_owned()
            } else {
                sub
            };
            let u = &s.user;
            json_resp(
                StatusCode::OK,
                &json!({"sub": sub, "preferred_username": u.preferred_username, "email": u.email, "groups": u.groups}),
            )
        }
        "/end_session" => {
            st.lock().unwrap().last_end_session_query = Some(query);
            Response::new(Full::new(Bytes::from_static(b"signed out at the OP")))
        }
        _ => json_resp(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}
