//! OIDC single sign-on over HTTP (issue 4, DESIGN.md §3): providers discovered in the
//! background, the login start, the code callback, RP-initiated and back-channel logout.
//! Token checks live in `auth::oidc`; this module fetches, stores and decides.
//!
//! | step      | where                              | state                                           |
//! |-----------|------------------------------------|-------------------------------------------------|
//! | start     | `GET /login?idp=ID&rd=PATH`        | `oidc-state:<state>` (nonce, PKCE verifier, rd, browser binding), ttl `pending_ttl`; pending cookie |
//! | callback  | `GET /oidc/{idp}/callback`         | state taken once (this IdP's, this browser's); `iss` (RFC 9207); code → tokens → checks → roles → MFA decision |
//! | session   | `native::finish` / the `/mfa` steps | `oidc-session:<id>` (id token for the hint), `oidc-sid:` / `oidc-sub:` → session ids |
//! | logout    | `/logout`, `POST /oidc/{idp}/backchannel-logout` | logout token `jti` claimed once until `exp`; the mappings are taken and the sessions removed |
//!
//! Invariants: every single-use value (state, nonce, logout `jti`) is consumed by one atomic
//! store operation (`take_ephemeral`, `claim_once`) before anything is done with it, and an
//! authorization response counts only at the IdP its state was issued for. The principal of a
//! login is `<idp-id>:<sub>` (`sso::principal`).

use super::complete::BrowserCookies;
use super::error::{backchannel_refused, page as login_page, LoginError};
use super::error::{
    OIDC_BAD_ANSWER, OIDC_EXPIRED, OIDC_IDP_ERROR, OIDC_MIXED_UP, OIDC_TOKEN_ENDPOINT,
    OIDC_TOKEN_TIMEOUT, OIDC_UNUSABLE_IDENTITY,
};
use super::sso::{self, hashed, sid_key, sub_key, Refusal};
use crate::audit::{self, Event};
use crate::auth::oidc::{self as rp};
use crate::auth::pending::SsoLink;
use crate::auth::policy::LocalPath;
use crate::config::ClientAuth;
use crate::http::{
    client_ip, form_value, query_param, read_body, set_cookie, store_error, user_agent, Conn,
};
use crate::idp::http::IdpHttpError;
use crate::idp::oidc::{describe, Loaded, Provider};
use crate::pages;
use crate::proxy::forward::GatewayBody;
use crate::secret::{ct_eq, SessionToken};
use crate::server::endpoint::OidcStep;
use crate::session::{cookie, new_token, random_id, SessionId, SessionStore};
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Request, Response};
use openidconnect::core::{CoreClient, CoreIdToken, CoreTokenResponse};
use openidconnect::{
    AuthType, AuthenticationContextClass, AuthenticationFlow, AuthorizationCode, ClientId,
    ClientSecret, CsrfToken, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, RedirectUrl, RequestTokenError, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// What the callback needs from the start of the login.
#[derive(Serialize, Deserialize)]
struct LoginState {
    idp: String,
    nonce: String,
    verifier: String,
    rd: String,
    /// `SessionId::of` the pending-login cookie set at the start.
    binding: String,
}

fn state_key(state: &str) -> String {
    format!("oidc-state:{state}")
}

/// `GET /login?idp=ID&rd=PATH` for an OIDC IdP: authorization code request with PKCE (S256),
/// fresh `state` and `nonce` (256 bits each), bound to this browser by the pending cookie.
pub async fn start(gw: &Gateway, idp: &str, rd: &LocalPath) -> Response<GatewayBody> {
    let Some(p) = gw.oidc.get(idp) else {
        return login_page(gw, LoginError::MethodUnavailable);
    };
    let Some(l) = p.loaded() else {
        return login_page(gw, LoginError::IdpUnavailable);
    };
    let Ok(redirect) = RedirectUrl::new(p.redirect_uri(&gw.config)) else {
        return login_page(gw, LoginError::IdpUnavailable);
    };
    let state = random_id(32);
    let nonce = random_id(32);
    let verifier = random_id(48);
    let binding_token = match new_token() {
        Ok(t) => t,
        Err(e) => return store_error(gw, e),
    };
    let st = LoginState {
        idp: idp.to_owned(),
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        rd: rd.as_str().to_owned(),
        binding: SessionId::of(&binding_token).as_str().to_owned(),
    };
    let bytes = serde_json::to_vec(&st).unwrap_or_default();
    if let Err(e) = gw
        .store
        .put_ephemeral(&state_key(&state), bytes, gw.config.session.pending_ttl)
        .await
    {
        return store_error(gw, e);
    }
    let client = CoreClient::from_provider_metadata(
        l.meta.clone(),
        ClientId::new(p.settings.client_id.clone()),
        None,
    )
    .set_redirect_uri(redirect);
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier));
    let mut req = client
        .authorize_url(
            AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        )
        .set_pkce_challenge(challenge);
    // The crate always asks for `openid`.
    for s in p.settings.scopes.iter().filter(|s| *s != "openid") {
        req = req.add_scope(Scope::new(s.clone()));
    }
    for a in &p.settings.acr_values {
        req = req.add_auth_context_value(AuthenticationContextClass::new(a.clone()));
    }
    let (url, _, _) = req.url();
    let mut r = pages::redirect(url.as_str());
    set_cookie(
        &mut r,
        &gw.cookies.set(
            gw.cookies.pending,
            binding_token.expose(),
            Some(gw.config.session.pending_ttl.as_secs()),
        ),
    );
    r
}

/// `/oidc/{idp}/callback` and `/oidc/{idp}/backchannel-logout`.
pub async fn entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    idp: &str,
    step: OidcStep,
) -> Response<GatewayBody> {
    let Some(p) = gw.oidc.get(idp).cloned() else {
        return login_page(gw, LoginError::NotFound);
    };
    match step {
        OidcStep::Callback => callback(gw, &p, req, conn).await,
        OidcStep::BackchannelLogout => backchannel_logout(gw, &p, req, conn).await,
    }
}

async fn refuse(
    gw: &Gateway,
    p: &Provider,
    r: Refusal,
    detail: &str,
    user: Option<&str>,
    conn_ip: std::net::IpAddr,
) -> Response<GatewayBody> {
    sso::refuse(gw, &format!("oidc:{}", p.idp.id), r, detail, user, conn_ip).await
}

/// How often `name` appears in a query (keys compared decoded, as `query_param` reads them).
fn occurrences(q: Option<&str>, name: &str) -> usize {
    q.unwrap_or_default()
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            percent_encoding::percent_decode_str(&key.replace('+', " ")).decode_utf8_lossy() == name
        })
        .count()
}

fn valid_state(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn callback(
    gw: &Gateway,
    p: &Provider,
    req: Request<Incoming>,
    conn: Conn,
) -> Response<GatewayBody> {
    let ip = client_ip(gw, req.headers(), conn);
    let ua = user_agent(req.headers());
    let device = BrowserCookies::of(gw, req.headers());
    let q = req.uri().query();

    // State first: single use, bound to this browser. Nothing reaches the IdP without it.
    let Some(state) = query_param(q, "state").filter(|s| valid_state(s)) else {
        return refuse(gw, p, OIDC_EXPIRED, "state missing or malformed", None, ip).await;
    };
    let st = match gw.store.take_ephemeral(&state_key(&state)).await {
        Ok(Some(b)) => serde_json::from_slice::<LoginState>(&b).ok(),
        Ok(None) => None,
        Err(e) => return store_error(gw, e),
    };
    let Some(st) = st.filter(|s| s.idp == p.idp.id) else {
        return refuse(
            gw,
            p,
            OIDC_EXPIRED,
            "state unknown or already used",
            None,
            ip,
        )
        .await;
    };
    let bound = cookie::get(req.headers(), gw.cookies.pending).is_some_and(|t| {
        let id = SessionId::of(&SessionToken::new(t.to_owned()));
        ct_eq(id.as_str().as_bytes(), st.binding.as_bytes())
    });
    if !bound {
        return refuse(
            gw,
            p,
            OIDC_EXPIRED,
            "state not bound to this browser",
            None,
            ip,
        )
        .await;
    }
    // RFC 6749 §3.1: no parameter twice. Two `code`s or `iss`es would let what is checked
    // differ from what is used.
    if let Some(dup) = ["state", "code", "iss", "error"]
        .into_iter()
        .find(|n| occurrences(q, n) > 1)
    {
        return refuse(
            gw,
            p,
            OIDC_MIXED_UP,
            &format!("{dup} appears twice"),
            None,
            ip,
        )
        .await;
    }
    let Some(l) = p.loaded() else {
        return login_page(gw, LoginError::IdpUnavailable);
    };
    // RFC 9207 §2.4: the authorization response names its issuer. When it does, it must be
    // the issuer of the IdP this state was issued for (the state already had to be this
    // IdP's, and is spent now): an answer relayed from another IdP (a mix-up) stops here.
    // When the IdP promises `iss`, an answer without it is refused too.
    let promised = l
        .meta
        .additional_metadata()
        .additional_metadata
        .authorization_response_iss_parameter_supported;
    match query_param(q, "iss") {
        Some(iss) if iss != p.settings.issuer => {
            let shown: String = iss.chars().filter(|c| !c.is_control()).take(200).collect();
            let detail = format!("authorization response iss {shown:?} is not this idp's issuer");
            return refuse(gw, p, OIDC_MIXED_UP, &detail, None, ip).await;
        }
        None if promised => {
            let detail = "authorization response without iss, which the idp promises (RFC 9207)";
            return refuse(gw, p, OIDC_MIXED_UP, detail, None, ip).await;
        }
        _ => {}
    }
    if let Some(err) = query_param(q, "error") {
        let code: String = err
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return refuse(gw, p, OIDC_IDP_ERROR, &format!("error={code}"), None, ip).await;
    }
    let Some(code) = query_param(q, "code").filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return refuse(gw, p, OIDC_EXPIRED, "callback without code", None, ip).await;
    };
    let Ok(redirect) = RedirectUrl::new(p.redirect_uri(&gw.config)) else {
        return login_page(gw, LoginError::IdpUnavailable);
    };

    // Token request: client authentication as configured, the PKCE verifier, a bounded wait.
    let client = CoreClient::from_provider_metadata(
        l.meta.clone(),
        ClientId::new(p.settings.client_id.clone()),
        Some(ClientSecret::new(
            p.settings.client_secret.expose().to_owned(),
        )),
    )
    .set_redirect_uri(redirect)
    .set_auth_type(match p.settings.client_auth {
        ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
        ClientAuth::ClientSecretPost => AuthType::RequestBody,
    });
    let request = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(r) => r,
        Err(e) => return refuse(gw, p, OIDC_BAD_ANSWER, &e.to_string(), None, ip).await,
    };
    let tokens: CoreTokenResponse = match request
        .set_pkce_verifier(PkceCodeVerifier::new(st.verifier.clone()))
        .request_async(&p.http)
        .await
    {
        Ok(t) => t,
        Err(RequestTokenError::Request(IdpHttpError::Timeout)) => {
            return refuse(
                gw,
                p,
                OIDC_TOKEN_TIMEOUT,
                "token endpoint timed out",
                None,
                ip,
            )
            .await
        }
        Err(e) => return refuse(gw, p, OIDC_TOKEN_ENDPOINT, &describe(&e), None, ip).await,
    };
    let Some(id_token) = tokens.id_token() else {
        return refuse(
            gw,
            p,
            OIDC_BAD_ANSWER,
            "no id_token in the token response",
            None,
            ip,
        )
        .await;
    };
    let raw = id_token.to_string();
    let now = gw.clock.now();
    let verified = match p
        .with_keys(&raw, now, |t| rp::verify_id_token(&raw, &st.nonce, t))
        .await
    {
        Ok(v) => v,
        Err(e) => return refuse(gw, p, OIDC_BAD_ANSWER, &e.to_string(), None, ip).await,
    };
    // Replay cache: one login per nonce, even if state handling were bypassed.
    match gw
        .store
        .claim_once(
            &format!("oidc-nonce:{}:{}", p.idp.id, hashed(&st.nonce)),
            gw.config.session.pending_ttl + Duration::from_secs(120),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return refuse(gw, p, OIDC_BAD_ANSWER, "nonce reused", None, ip).await,
        Err(e) => return store_error(gw, e),
    }
    let mut claims = verified.claims;
    if p.settings.userinfo {
        if let Err(e) = merge_userinfo(
            p,
            &l,
            tokens.access_token().secret(),
            &mut claims,
            &verified.sub,
        )
        .await
        {
            return refuse(gw, p, OIDC_BAD_ANSWER, &e, None, ip).await;
        }
    }
    login(
        gw,
        p,
        verified.proof,
        &claims,
        &verified.sub,
        raw,
        st.rd,
        device,
        ip,
        ua,
    )
    .await
}

async fn merge_userinfo(
    p: &Provider,
    l: &Loaded,
    access_token: &str,
    claims: &mut Map<String, Value>,
    sub: &str,
) -> Result<(), String> {
    let Some(url) = l.meta.userinfo_endpoint() else {
        return Err("userinfo requested but the provider has no userinfo endpoint".into());
    };
    let req = openidconnect::http::Request::builder()
        .method(openidconnect::http::Method::GET)
        .uri(url.as_str())
        .header("authorization", format!("Bearer {access_token}"))
        .header("accept", "application/json")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let resp = p.http.send(req).await.map_err(|e| e.to_string())?;
    if resp.status() != openidconnect::http::StatusCode::OK {
        return Err(format!("userinfo status {}", resp.status()));
    }
    let info: Map<String, Value> =
        serde_json::from_slice(resp.body()).map_err(|_| "userinfo is not a JSON object")?;
    rp::merge_userinfo(claims, info, sub).map_err(|e| e.to_string())
}

/// The verified login: identity, roles, then the MFA decision (DESIGN.md §4).
#[allow(clippy::too_many_arguments)] // one call site; the values are the login's facts
async fn login(
    gw: &Gateway,
    p: &Provider,
    _proof: rp::IdTokenVerified,
    claims: &Map<String, Value>,
    sub: &str,
    id_token: String,
    rd: String,
    device: BrowserCookies,
    ip: std::net::IpAddr,
    ua: Option<String>,
) -> Response<GatewayBody> {
    let s = &p.settings;
    let id = match rp::identity(claims, sub, s.username_claim.as_deref(), &s.groups_claim) {
        Ok(id) => id,
        Err(e @ rp::OidcError::UnusableIdentity(_)) => {
            return refuse(gw, p, OIDC_UNUSABLE_IDENTITY, &e.to_string(), None, ip).await
        }
        Err(e) => return refuse(gw, p, OIDC_BAD_ANSWER, &e.to_string(), None, ip).await,
    };
    let evidence = rp::has_mfa_evidence(&id, &s.amr_any, &s.acr_any);
    sso::complete(
        gw,
        sso::SsoLogin {
            idp: &p.idp,
            method: format!("oidc:{}", p.idp.id),
            // `sub` is unique and never reassigned within the issuer (OIDC Core §5.7), and an
            // IdP id names exactly one issuer: `<idp-id>:<sub>` is stable.
            principal: sso::principal(&p.idp.id, &id.sub),
            username: id.username.clone(),
            email: id.email.clone(),
            groups: id.groups.clone(),
            link: SsoLink {
                idp: p.idp.id.clone(),
                sub: id.sub.clone(),
                sid: id.sid.clone(),
                id_token,
                name_id_format: None,
            },
            rd,
            evidence,
            evidence_detail: serde_json::json!({ "amr": id.amr, "acr": id.acr }),
        },
        device,
        ip,
        ua,
    )
    .await
}

/// The end-session URL for a link already taken.
pub fn end_session_with(gw: &Gateway, link: &sso::SessionLink) -> Option<String> {
    let p = gw.oidc.get(&link.idp)?;
    if !p.settings.logout {
        return None;
    }
    let l = p.loaded()?;
    let end = l.meta.additional_metadata().end_session_endpoint.clone()?;
    let hint: CoreIdToken = link.id_token.parse().ok()?;
    let back = PostLogoutRedirectUrl::new(format!(
        "{}{}/logout",
        gw.config.server.public_origin, gw.config.server.prefix
    ))
    .ok()?;
    let url = LogoutRequest::from(end)
        .set_id_token_hint(&hint)
        .set_client_id(ClientId::new(p.settings.client_id.clone()))
        .set_post_logout_redirect_uri(back)
        .http_get_url();
    Some(url.to_string())
}

/// `POST /oidc/{idp}/backchannel-logout` (form `logout_token`): verifies the token, then ends
/// every session of that `sid` (or, without `sid`, of that `sub`) at once.
async fn backchannel_logout(
    gw: &Gateway,
    p: &Provider,
    req: Request<Incoming>,
    conn: Conn,
) -> Response<GatewayBody> {
    let ip = client_ip(gw, req.headers(), conn);
    let body = match read_body(gw, req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = String::from_utf8_lossy(&body);
    let Some(token) = form_value(&form, "logout_token") else {
        return backchannel_refused("logout_token is missing.");
    };
    let method = format!("oidc:{}", p.idp.id);
    let now = gw.clock.now();
    let verified = match p
        .with_keys(&token, now, |t| rp::verify_logout_token(&token, t))
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(idp = %p.idp.id, error = %e, "back-channel logout token refused");
            audit::record(
                gw,
                Event {
                    method: Some(&method),
                    reason: Some("logout_token"),
                    ip: Some(ip),
                    ..Event::new(audit::Kind::LogoutBackchannel, audit::Outcome::Refused)
                },
            )
            .await;
            return backchannel_refused("The logout token is not valid.");
        }
    };
    // Every token is claimed once, for as long as it is valid (a shorter cache would reopen
    // the replay window before `exp`).
    let ttl = u64::try_from(verified.exp.saturating_sub(now) + rp::LEEWAY_SECS).unwrap_or(0);
    match gw
        .store
        .claim_once(
            &format!("oidc-jti:{}:{}", p.idp.id, hashed(&verified.jti)),
            Duration::from_secs(ttl.max(60)),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(idp = %p.idp.id, "back-channel logout token replayed");
            audit::record(
                gw,
                Event {
                    method: Some(&method),
                    reason: Some("replay"),
                    ip: Some(ip),
                    ..Event::new(audit::Kind::LogoutBackchannel, audit::Outcome::Refused)
                },
            )
            .await;
            return backchannel_refused("The logout token was already used.");
        }
        Err(e) => return store_error(gw, e),
    }
    let key = match (&verified.sid, &verified.sub) {
        (Some(sid), _) => sid_key(&p.idp.id, sid),
        (None, Some(sub)) => sub_key(&p.idp.id, sub),
        (None, None) => return backchannel_refused("No sid or sub."),
    };
    let ended = match sso::end_listed(gw, &key, audit::Kind::LogoutBackchannel, &method, ip).await {
        Ok(n) => n,
        Err(e) => return store_error(gw, e),
    };
    tracing::info!(idp = %p.idp.id, sessions = ended, "back-channel logout");
    let mut r = Response::new(GatewayBody::empty());
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_is_counted_however_its_name_is_encoded() {
        let q = Some("code=a&state=s&c%6Fde=b&iss=x&co+de=c");
        assert_eq!(occurrences(q, "code"), 2);
        assert_eq!(occurrences(q, "state"), 1);
        assert_eq!(occurrences(q, "error"), 0);
        assert_eq!(occurrences(None, "code"), 0);
    }
}
