//! The gateway's own endpoints under the reserved prefix (DESIGN.md §3): login start, and
//! logout (asked by GET, done by POST with a session-bound token). Request bodies here are capped at `server.max_body_bytes`.

use crate::auth::policy::LocalPath;
use crate::config::LoginTarget;
use crate::http::{form_value, query_param, read_body, respond, Conn, GatewayError};
use crate::pages::{self, esc, Msg};
use crate::proxy::forward::GatewayBody;
use crate::secret::ct_eq;
use crate::server::phases::load_session;
use crate::session::{Session, SessionId, SessionStore};
use crate::state::Gateway;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::{Method, Request, Response};

/// `GET /logout` asks, `POST /logout` signs out: a link, a prefetch or an image on another
/// site can never end a session. The POST carries the session's logout token and is refused
/// when its `Origin` is another site's (DESIGN.md §6), like every other form.
pub async fn logout_entry(
    gw: &Gateway,
    req: Request<Incoming>,
    conn: Conn,
) -> Response<GatewayBody> {
    let session = match load_session(gw, &req).await {
        Ok(s) => s,
        Err(e) => return respond(gw, e, true),
    };
    if *req.method() != Method::POST {
        return match session {
            Some(s) => confirm_logout(gw, &s),
            None => signed_out(gw, None),
        };
    }
    if !crate::http::origin_ok(gw, req.headers()) {
        return super::error::page(gw, super::error::LoginError::CrossSite);
    }
    let Some(s) = session else {
        // Nothing to end (expired, or signed out in another tab): the same page all the same.
        return signed_out(gw, None);
    };
    let body = match read_body(gw, req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = String::from_utf8_lossy(&body);
    let token = form_value(&form, "csrf_token").unwrap_or_default();
    if !ct_eq(token.as_bytes(), logout_token(gw, &s.id).as_bytes()) {
        return super::error::page(gw, super::error::LoginError::FormExpired);
    }
    logout(gw, &s.id, conn).await
}

/// The CSRF token of the sign-out form, bound to the session it ends.
pub(crate) fn logout_token(gw: &Gateway, id: &SessionId) -> String {
    let tag = ring::hmac::sign(&gw.csrf_key, format!("logout:{}", id.as_str()).as_bytes());
    B64.encode(tag.as_ref().get(..24).unwrap_or_default())
}

/// The sign-out form of a session (the confirmation page and the account page show it).
pub(crate) fn logout_form(gw: &Gateway, id: &SessionId, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{p}/logout\">\
<input type=\"hidden\" name=\"csrf_token\" value=\"{t}\">\
<button type=\"submit\" id=\"logout-confirm\">{label}</button></form>",
        p = esc(&gw.config.server.prefix),
        t = esc(&logout_token(gw, id)),
        label = esc(label),
    )
}

/// `GET /logout` with a session: asks before signing out.
fn confirm_logout(gw: &Gateway, s: &Session) -> Response<GatewayBody> {
    let c = &gw.chrome;
    // The template is escaped first, then the (escaped) user name goes in its placeholder.
    let signed_in_as = esc(c.t(Msg::SignedInAs)).replace(
        "{user}",
        &format!("<strong>{}</strong>", esc(&s.identity.user)),
    );
    let body = format!(
        "<h1>{title}</h1><p>{signed_in_as}</p>{form}\
<p><a href=\"{p}/account\">{stay}</a></p>",
        title = esc(c.t(Msg::SignOutQuestion)),
        form = logout_form(gw, &s.id, c.t(Msg::SignOut)),
        p = esc(&gw.config.server.prefix),
        stay = esc(c.t(Msg::StaySignedIn)),
    );
    c.page(super::error::ok_status(), c.t(Msg::SignOut), &body)
}

/// The signed-out page (or the IdP's sign-out, when it continues there); clears the cookie.
fn signed_out(gw: &Gateway, idp_logout: Option<String>) -> Response<GatewayBody> {
    let c = &gw.chrome;
    let body = format!(
        "<h1>{}</h1><p>{}</p><a class=\"button\" href=\"{}/login\">{}</a>",
        esc(c.t(Msg::YouAreSignedOut)),
        esc(c.t(Msg::SessionEnded)),
        esc(&gw.config.server.prefix),
        esc(c.t(Msg::SignInAgain)),
    );
    let mut r = match idp_logout {
        Some(url) => pages::redirect(&url),
        None => gw
            .chrome
            .page(super::error::ok_status(), c.t(Msg::SignedOut), &body),
    };
    if let Ok(v) = HeaderValue::from_str(&gw.cookies.clear(gw.cookies.session)) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
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
            LoginTarget::Native => (
                gw.chrome.t(Msg::SignInWithPassword).to_owned(),
                gw.login_url(t, rd),
            ),
            LoginTarget::Idp(id) => {
                let name = gw
                    .config
                    .idps
                    .iter()
                    .find(|i| &i.id == id)
                    .map_or(id.as_str(), |i| i.display_name.as_str());
                (
                    gw.chrome.fill(Msg::SignInWith, "name", name),
                    gw.login_url(t, rd),
                )
            }
        };
        items.push_str(&format!(
            "<li><a class=\"button\" href=\"{}\">{}</a></li>",
            esc(&url),
            esc(&label)
        ));
    }
    let body = format!(
        "<h1>{}</h1><ul class=\"choices\">{items}</ul>",
        esc(gw.chrome.t(Msg::ChooseSignIn))
    );
    gw.chrome
        .page(super::error::ok_status(), gw.chrome.t(Msg::SignIn), &body)
}

/// Ends the local session and clears the cookie; for an SSO session whose IdP has
/// `logout = true`, continues to the IdP's end-session endpoint (RP-initiated logout).
async fn logout(gw: &Gateway, id: &SessionId, conn: Conn) -> Response<GatewayBody> {
    let mut idp_logout = None;
    match gw.store.remove(id).await {
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
    signed_out(gw, idp_logout)
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
