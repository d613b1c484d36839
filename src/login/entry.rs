//! The gateway's own endpoints under the reserved prefix (DESIGN.md §3): JWKS, stylesheet,
//! login start, logout. Request bodies here are capped at `server.max_body_bytes`.

use crate::auth::policy::LocalPath;
use crate::config::LoginTarget;
use crate::http::{query_param, respond, Conn, GatewayError};
use crate::pages::{self, esc};
use crate::proxy::forward::GatewayBody;
use crate::secret::SessionToken;
use crate::session::{cookie, SessionId, SessionStore};
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::{Method, Request, Response};

/// `GET|POST /logout`; a POST from another site is refused (DESIGN.md §6).
pub async fn logout_entry(
    gw: &Gateway,
    req: &Request<Incoming>,
    conn: Conn,
) -> Response<GatewayBody> {
    if *req.method() == Method::POST && !crate::http::origin_ok(gw, req.headers()) {
        return super::error::page(gw, super::error::LoginError::CrossSite);
    }
    logout(gw, req, conn).await
}

/// `GET /login?idp=ID&rd=PATH`: start the named login, or show a chooser.
pub async fn login(gw: &Gateway, req: &Request<Incoming>) -> Response<GatewayBody> {
    let q = req.uri().query();
    // With forward-auth on, an absolute URL on an allowed host too (`auth::return_to`).
    let rd = query_param(q, "rd")
        .map(|r| crate::auth::return_to::rd_param(&gw.config, &r))
        .unwrap_or_else(LocalPath::root);
    let idp = query_param(q, "idp");
    let targets = gw.login_targets();
    let target = match idp.as_deref() {
        Some("native") => targets.iter().find(|t| **t == LoginTarget::Native).cloned(),
        Some(id) => targets
            .iter()
            .find(|t| matches!(t, LoginTarget::Idp(i) if i == id))
            .cloned(),
        None if targets.len() == 1 => targets.first().cloned(),
        None => None,
    };
    match target {
        Some(LoginTarget::Native) => pages::redirect(&gw.login_url(&LoginTarget::Native, &rd)),
        Some(LoginTarget::Idp(id)) => start_sso(gw, &id, &rd).await,
        None if idp.is_some() => {
            super::error::page(gw, super::error::LoginError::MethodUnavailable)
        }
        None => chooser(gw, &targets, &rd),
    }
}

fn chooser(gw: &Gateway, targets: &[LoginTarget], rd: &LocalPath) -> Response<GatewayBody> {
    if targets.is_empty() {
        return respond(gw, GatewayError::NoLogin, true);
    }
    let mut items = String::new();
    for t in targets {
        let (label, url) = match t {
            LoginTarget::Native => ("Sign in with a password".to_owned(), gw.login_url(t, rd)),
            LoginTarget::Idp(id) => {
                let name = gw
                    .config
                    .idps
                    .iter()
                    .find(|i| &i.id == id)
                    .map_or(id.as_str(), |i| i.display_name.as_str());
                (format!("Sign in with {name}"), gw.login_url(t, rd))
            }
        };
        items.push_str(&format!(
            "<li><a class=\"button\" href=\"{}\">{}</a></li>",
            esc(&url),
            esc(&label)
        ));
    }
    let body = format!("<h1>Choose how to sign in</h1><ul class=\"choices\">{items}</ul>");
    gw.chrome.page(super::error::ok_status(), "Sign in", &body)
}

/// `GET|POST /logout`: ends the local session and clears the cookie; for an SSO session whose
/// IdP has `logout = true`, continues to the IdP's end-session endpoint (RP-initiated logout).
async fn logout(gw: &Gateway, req: &Request<Incoming>, conn: Conn) -> Response<GatewayBody> {
    let mut idp_logout = None;
    if let Some(token) = cookie::get(req.headers(), gw.cookies.session) {
        let id = SessionId::of(&SessionToken::new(token.to_owned()));
        match gw.store.remove(&id).await {
            Ok(Some(s)) => {
                audit_logout(gw, &s, conn).await;
                if let Some(link) = super::sso::take_link(gw, &s.id).await {
                    idp_logout = match super::oidc::end_session_with(gw, &link) {
                        Some(u) => Some(u),
                        None => super::saml::logout_url(gw, &link).await,
                    };
                }
            }
            Ok(None) => {}
            Err(e) => return respond(gw, GatewayError::Store(e), true),
        }
    }
    let body = format!(
        "<h1>You are signed out</h1><p>Your session has ended.</p><a class=\"button\" href=\"{}/login\">Sign in again</a>",
        esc(&gw.config.server.prefix)
    );
    let mut r = match idp_logout {
        Some(url) => pages::redirect(&url),
        None => gw
            .chrome
            .page(super::error::ok_status(), "Signed out", &body),
    };
    if let Ok(v) = HeaderValue::from_str(&gw.cookies.clear(gw.cookies.session)) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

/// Starts single sign-on with an IdP of either kind (an unknown id gets a "not available" page).
async fn start_sso(
    gw: &Gateway,
    idp: &str,
    rd: &crate::auth::policy::LocalPath,
) -> Response<GatewayBody> {
    if gw.saml.get(idp).is_some() {
        super::saml::start(gw, idp, rd).await
    } else {
        super::oidc::start(gw, idp, rd).await
    }
}

/// Records a logout in the durable audit log (when a user store is configured).
async fn audit_logout(gw: &Gateway, s: &crate::session::Session, conn: Conn) {
    let method = s.identity.method.header_value();
    crate::audit::record(
        gw,
        crate::audit::Event {
            user: Some(&s.identity.user),
            method: Some(&method),
            ip: Some(conn.peer.ip()),
            session: Some(s.id.as_str()),
            ..crate::audit::Event::new(crate::audit::Kind::Logout, crate::audit::Outcome::Success)
        },
    )
    .await;
}
