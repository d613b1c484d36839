//! SAML single sign-on over HTTP (issue 5, DESIGN.md §3): the login start (HTTP-Redirect),
//! the assertion consumer (HTTP-POST), SP metadata and Single Logout both ways. The checks live
//! in `auth::saml`; this module fetches, stores and decides.
//!
//! | step     | where                       | state                                                        |
//! |----------|-----------------------------|--------------------------------------------------------------|
//! | start    | `GET /login?idp=ID&rd=PATH` | `saml-req:<id>` (idp, rd, browser binding), ttl `pending_ttl`; the SAML cookie |
//! | response | `POST /saml/{idp}/acs`      | request taken once; `saml-assertion:<id>` kept until the assertion expires; a stable subject or no login |
//! | logout   | `/logout` → IdP; `GET /saml/{idp}/slo` | `saml-logout:<id>` for our LogoutRequest; the session links of `sso` |

use super::complete::BrowserCookies;
use super::error::{idp_refused_status, ok_status, page as login_page, LoginError};
use super::error::{
    SAML_BAD_RESPONSE, SAML_EXPIRED, SAML_IDENTITY_VALUE, SAML_MALFORMED, SAML_NO_STABLE_SUBJECT,
};
use super::sso::{self, hashed, Refusal};
use crate::audit::{self, Event};
use crate::auth::oidc::{identity_value, Unusable};
use crate::auth::pending::SsoLink;
use crate::auth::policy::LocalPath;
use crate::auth::saml::{self as sp, Expect, SamlError, SloMessage};
use crate::http::body::{read_body_up_to, BodyError};
use crate::http::{client_ip, form_value, set_cookie, store_error, user_agent, Conn};
use crate::idp::saml::{Provider, MAX_RESPONSE_BYTES};
use crate::pages::{self, esc, Msg};
use crate::proxy::forward::GatewayBody;
use crate::secret::{ct_eq, SessionToken};
use crate::server::endpoint::SamlStep;
use crate::session::{cookie, new_token, random_id, SessionId, SessionStore};
use crate::state::Gateway;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// An SP-initiated request waiting for its response.
#[derive(Serialize, Deserialize)]
struct RequestState {
    idp: String,
    rd: String,
    /// `SessionId::of` the SAML cookie set at the start.
    binding: String,
}

fn request_key(id: &str) -> String {
    format!("saml-req:{}", hashed(id))
}

fn logout_key(id: &str) -> String {
    format!("saml-logout:{}", hashed(id))
}

fn unavailable(gw: &Gateway, p: &Provider) -> Response<GatewayBody> {
    tracing::warn!(idp = %p.idp.id, "saml metadata not loaded; sign-in refused");
    login_page(gw, LoginError::IdpUnavailable)
}

/// `GET /login?idp=ID&rd=PATH` for a SAML IdP: an AuthnRequest over the HTTP-Redirect binding
/// with a fresh 256-bit id, remembered server-side with the return path and bound to this
/// browser. RelayState is not used: nothing the user controls travels through the IdP.
pub async fn start(gw: &Gateway, idp: &str, rd: &LocalPath) -> Response<GatewayBody> {
    let Some(p) = gw.saml.get(idp) else {
        return login_page(gw, LoginError::MethodUnavailable);
    };
    let Some(meta) = p.meta() else {
        return unavailable(gw, p);
    };
    let id = format!("_{}", random_id(32));
    let binding_token = match new_token() {
        Ok(t) => t,
        Err(e) => return store_error(gw, e),
    };
    let st = RequestState {
        idp: idp.to_owned(),
        rd: rd.as_str().to_owned(),
        binding: SessionId::of(&binding_token).as_str().to_owned(),
    };
    if let Err(e) = gw
        .store
        .put_ephemeral(
            &request_key(&id),
            serde_json::to_vec(&st).unwrap_or_default(),
            gw.config.session.pending_ttl,
        )
        .await
    {
        return store_error(gw, e);
    }
    let s = &p.settings;
    let xml = sp::authn_request(&sp::AuthnRequestSpec {
        id: &id,
        now: gw.clock.now(),
        destination: &meta.sso_redirect,
        acs_url: &p.acs_url,
        sp_entity_id: &s.sp_entity_id,
        force_authn: s.force_authn,
        authn_contexts: &s.requested_authn_context,
    });
    let url = match sp::redirect_url(
        &meta.sso_redirect,
        "SAMLRequest",
        &xml,
        None,
        p.keys.as_ref(),
    ) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(idp = %p.idp.id, error = %e, "cannot build the AuthnRequest");
            return unavailable(gw, p);
        }
    };
    let mut r = pages::redirect(&url);
    set_cookie(
        &mut r,
        &gw.cookies.set_cross_site(
            gw.cookies.saml,
            binding_token.expose(),
            gw.config.session.pending_ttl.as_secs(),
        ),
    );
    r
}

/// `/saml/{idp}/acs`, `/saml/{idp}/metadata`, `/saml/{idp}/slo`.
pub async fn entry(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    conn: Conn,
    idp: &str,
    step: SamlStep,
) -> Response<GatewayBody> {
    let Some(p) = gw.saml.get(idp).cloned() else {
        return login_page(gw, LoginError::NotFound);
    };
    match step {
        SamlStep::Acs => acs(gw, &p, req, conn).await,
        SamlStep::Metadata => metadata(&p),
        SamlStep::Slo => slo(gw, &p, req, conn).await,
    }
}

fn metadata(p: &Provider) -> Response<GatewayBody> {
    let xml = sp::sp_metadata(
        &p.settings.sp_entity_id,
        &p.acs_url,
        &p.slo_url,
        p.keys.as_ref().map(|k| k.cert_der.as_slice()),
        p.settings.subject_attribute.is_some(),
    );
    let mut r = Response::new(GatewayBody::from(xml));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/samlmetadata+xml"),
    );
    r
}

/// `POST /saml/{idp}/acs`: the response pipeline, then the request it answers (single use,
/// bound to this browser), the replay cache, the identity and the MFA decision.
async fn acs(
    gw: &Gateway,
    p: &Provider,
    req: Request<Incoming>,
    conn: Conn,
) -> Response<GatewayBody> {
    let ip = client_ip(gw, req.headers(), conn);
    let ua = user_agent(req.headers());
    let device = BrowserCookies::of(gw, req.headers());
    let binding = cookie::get(req.headers(), gw.cookies.saml).map(str::to_owned);
    let method = p.method();
    // The size limit comes before any parsing: a multi-megabyte body is never held whole.
    let body = match read_body_up_to(gw, req.into_body(), MAX_RESPONSE_BYTES).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            tracing::warn!(idp = %p.idp.id, "saml response body over the limit refused");
            return login_page(gw, LoginError::AnswerTooLarge);
        }
        Err(e) => return e.response(),
    };
    let form = String::from_utf8_lossy(&body);
    let Some(encoded) = form_value(&form, "SAMLResponse") else {
        return sso::refuse(
            gw,
            &method,
            SAML_MALFORMED,
            "SAMLResponse missing",
            None,
            ip,
        )
        .await;
    };
    let Some(meta) = p.meta() else {
        return unavailable(gw, p);
    };
    let xml = match sp::decode_post(&encoded) {
        Ok(x) => x,
        Err(e) => return sso::refuse(gw, &method, SAML_MALFORMED, &e.to_string(), None, ip).await,
    };
    let now = gw.clock.now();
    let skew = i64::try_from(p.settings.clock_skew.as_secs()).unwrap_or(60);
    let (sp_entity_id, acs_url, algorithms) = (
        p.settings.sp_entity_id.clone(),
        p.acs_url.clone(),
        p.settings.allowed_algorithms.clone(),
    );
    // libxml2 + xmlsec are CPU-bound and synchronous: off the async workers.
    let verified = tokio::task::spawn_blocking(move || {
        sp::verify_response(
            &xml,
            &Expect {
                idp: &meta,
                sp_entity_id: &sp_entity_id,
                acs_url: &acs_url,
                algorithms: &algorithms,
                skew_secs: skew,
                now,
            },
        )
    })
    .await;
    let v = match verified {
        Ok(Ok(v)) => v,
        Ok(Err(SamlError::Status { code, message })) => {
            return idp_status(gw, p, &code, message.as_deref(), ip).await
        }
        Ok(Err(e)) => {
            let r = if e.is_malformed() {
                SAML_MALFORMED
            } else {
                Refusal {
                    reason: e.reason(),
                    ..SAML_BAD_RESPONSE
                }
            };
            return sso::refuse(gw, &method, r, &e.to_string(), None, ip).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "saml verification task failed");
            return sso::refuse(
                gw,
                &method,
                SAML_BAD_RESPONSE,
                "verification failed",
                None,
                ip,
            )
            .await;
        }
    };
    // The request this answers: single use and bound to this browser; unsolicited responses
    // only when the admin allowed IdP-initiated login.
    let rd = match &v.in_response_to {
        Some(id) => {
            let st = match gw.store.take_ephemeral(&request_key(id)).await {
                Ok(Some(b)) => serde_json::from_slice::<RequestState>(&b).ok(),
                Ok(None) => None,
                Err(e) => return store_error(gw, e),
            };
            let Some(st) = st.filter(|s| s.idp == p.idp.id) else {
                return sso::refuse(
                    gw,
                    &method,
                    SAML_EXPIRED,
                    "InResponseTo unknown or already used",
                    None,
                    ip,
                )
                .await;
            };
            let bound = binding.as_deref().is_some_and(|t| {
                let id = SessionId::of(&SessionToken::new(t.to_owned()));
                ct_eq(id.as_str().as_bytes(), st.binding.as_bytes())
            });
            if !bound {
                return sso::refuse(
                    gw,
                    &method,
                    SAML_EXPIRED,
                    "the request was started in another browser",
                    None,
                    ip,
                )
                .await;
            }
            st.rd
        }
        None if p.settings.allow_idp_initiated => "/".to_owned(),
        None => {
            return sso::refuse(
                gw,
                &method,
                Refusal {
                    reason: "unsolicited",
                    ..SAML_EXPIRED
                },
                "no InResponseTo and allow_idp_initiated = false",
                None,
                ip,
            )
            .await
        }
    };
    // Replay cache: an assertion id is accepted once until the assertion expires.
    let ttl = Duration::from_secs(u64::try_from(v.replay_until - now).unwrap_or(0).max(60));
    match gw
        .store
        .claim_once(
            &format!("saml-assertion:{}:{}", p.idp.id, hashed(&v.assertion_id)),
            ttl,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return sso::refuse(
                gw,
                &method,
                Refusal {
                    reason: "replay",
                    ..SAML_EXPIRED
                },
                "assertion id already used",
                None,
                ip,
            )
            .await
        }
        Err(e) => return store_error(gw, e),
    }
    let s = &p.settings;
    // Who this is: a stable subject or no login (finding 9); then the name shown.
    let identity = v
        .subject(s.subject_attribute.as_deref())
        .and_then(|subject| {
            let username = v.username(s.username_attribute.as_deref(), &subject)?;
            Ok((subject, username))
        });
    let (subject, username) = match identity {
        Ok(i) => i,
        Err(e) => {
            return sso::refuse(
                gw,
                &method,
                Refusal {
                    reason: e.reason(),
                    ..SAML_NO_STABLE_SUBJECT
                },
                &e.to_string(),
                None,
                ip,
            )
            .await
        }
    };
    // Forwarded values: exactly as sent, or no login (DESIGN.md §6), never dropped.
    let email = v
        .attribute(&s.email_attribute)
        .iter()
        .map(|e| identity_value(e))
        .find(|e| !matches!(e, Ok(None)))
        .unwrap_or(Ok(None));
    let groups: Result<Vec<String>, Unusable> = v
        .attribute(&s.groups_attribute)
        .iter()
        .filter_map(|g| identity_value(g).transpose())
        .collect();
    let (email, groups) = match (email, groups) {
        (Ok(e), Ok(g)) => (e, g),
        _ => {
            return sso::refuse(
                gw,
                &method,
                SAML_IDENTITY_VALUE,
                "an email or group value has a control character or is over 8 KiB",
                Some(&username),
                ip,
            )
            .await
        }
    };
    let evidence = v
        .authn_contexts
        .iter()
        .any(|c| s.authn_context_any.iter().any(|a| a == c));
    let mut r = sso::complete(
        gw,
        sso::SsoLogin {
            idp: &p.idp,
            method: method.clone(),
            principal: sso::principal(&p.idp.id, &subject),
            username,
            email,
            groups,
            // Single Logout names the NameID of this login (transient or not), not the
            // subject: it is what the IdP's LogoutRequest carries and what ours must echo.
            link: SsoLink {
                idp: p.idp.id.clone(),
                sub: v.name_id.clone(),
                sid: v.session_index.clone(),
                id_token: String::new(),
                name_id_format: v.name_id_format.clone(),
            },
            rd,
            evidence,
            evidence_detail: serde_json::json!({ "authn_context": v.authn_contexts }),
        },
        device,
        ip,
        ua,
    )
    .await;
    if let Ok(v) = HeaderValue::from_str(&gw.cookies.clear(gw.cookies.saml)) {
        r.headers_mut().append(hyper::header::SET_COOKIE, v);
    }
    r
}

/// A non-success Status: the IdP's status on a clear page, an audit event, no session.
async fn idp_status(
    gw: &Gateway,
    p: &Provider,
    code: &str,
    message: Option<&str>,
    ip: std::net::IpAddr,
) -> Response<GatewayBody> {
    let correlation = random_id(9);
    let method = p.method();
    let short: String = code
        .rsplit(':')
        .next()
        .unwrap_or(code)
        .chars()
        .take(80)
        .collect();
    tracing::warn!(idp = %p.idp.id, correlation = %correlation, status = %code, "saml login not completed at the idp");
    audit::record(
        gw,
        Event {
            method: Some(&method),
            reason: Some("idp_status"),
            ip: Some(ip),
            detail: Some(
                serde_json::json!({ "correlation": correlation, "status": code }).to_string(),
            ),
            ..Event::new(audit::Kind::LoginFailure, audit::Outcome::Refused)
        },
    )
    .await;
    let message: String = message.unwrap_or("").chars().take(200).collect();
    let c = &gw.chrome;
    let title = c.t(Msg::NotCompletedTitle);
    // The IdP's own status and message stay as it sent them: they are what its support quotes.
    let body = format!(
        "<h1>{title}</h1><div class=\"error\" role=\"alert\">{answered} <strong id=\"saml-status\">{}</strong>{}</div><p>{next}</p><p class=\"muted\">{reference} <code id=\"correlation-id\">{}</code></p>",
        esc(&short),
        if message.is_empty() {
            String::new()
        } else {
            format!(" ({})", esc(&message))
        },
        esc(&correlation),
        title = esc(title),
        answered = esc(c.t(Msg::SamlIdpAnswered)),
        next = esc(c.t(Msg::StartAgainOrAsk)),
        reference = esc(c.t(Msg::Reference)),
    );
    c.page(idp_refused_status(), title, &body)
}

/// After a local logout of a session from this IdP: the IdP's SLO URL with a LogoutRequest
/// (SP-initiated Single Logout) when its metadata offers the redirect binding.
pub async fn logout_url(gw: &Gateway, link: &sso::SessionLink) -> Option<String> {
    let p = gw.saml.get(&link.idp)?;
    // A login keyed on a subject attribute may have had no NameID: nothing to name at the IdP.
    if link.sub.is_empty() {
        return None;
    }
    let meta = p.meta()?;
    let location = meta.slo_redirect.as_deref()?;
    let id = format!("_{}", random_id(32));
    gw.store
        .put_ephemeral(
            &logout_key(&id),
            p.idp.id.clone().into_bytes(),
            gw.config.session.pending_ttl,
        )
        .await
        .ok()?;
    let xml = sp::logout_request(
        &id,
        gw.clock.now(),
        location,
        &p.settings.sp_entity_id,
        &link.sub,
        link.name_id_format.as_deref(),
        link.sid.as_deref(),
    );
    match sp::redirect_url(location, "SAMLRequest", &xml, None, p.keys.as_ref()) {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::warn!(idp = %p.idp.id, error = %e, "cannot build the LogoutRequest");
            None
        }
    }
}

fn slo_error(gw: &Gateway, p: &Provider, detail: &str) -> Response<GatewayBody> {
    tracing::warn!(idp = %p.idp.id, error = %detail, "saml logout message refused");
    login_page(gw, LoginError::LogoutRefused)
}

/// `GET /saml/{idp}/slo`: an IdP-initiated LogoutRequest (verified, its sessions ended, a
/// LogoutResponse sent back) or the LogoutResponse to our own request.
async fn slo(
    gw: &Gateway,
    p: &Provider,
    req: Request<Incoming>,
    conn: Conn,
) -> Response<GatewayBody> {
    let ip = client_ip(gw, req.headers(), conn);
    let method = p.method();
    let Some(meta) = p.meta() else {
        return unavailable(gw, p);
    };
    let query = req.uri().query().unwrap_or_default().to_owned();
    let algorithms = p.settings.allowed_algorithms.clone();
    let verify_meta = Arc::clone(&meta);
    let msg =
        tokio::task::spawn_blocking(move || sp::verify_redirect(&query, &verify_meta, &algorithms))
            .await;
    let msg = match msg {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            audit::record(
                gw,
                Event {
                    method: Some(&method),
                    reason: Some(e.reason()),
                    ip: Some(ip),
                    ..Event::new(audit::Kind::LogoutIdp, audit::Outcome::Refused)
                },
            )
            .await;
            return slo_error(gw, p, &e.to_string());
        }
        Err(e) => return slo_error(gw, p, &e.to_string()),
    };
    match msg {
        SloMessage::Request(lr) => {
            if lr.destination.as_deref().is_some_and(|d| d != p.slo_url) {
                return slo_error(gw, p, "LogoutRequest Destination is not this SLO URL");
            }
            let now = gw.clock.now();
            let skew = i64::try_from(p.settings.clock_skew.as_secs()).unwrap_or(60);
            if lr
                .issue_instant
                .is_some_and(|t| (t.timestamp() - now).abs() > 300 + skew)
            {
                return slo_error(gw, p, "LogoutRequest IssueInstant is too far from now");
            }
            // An empty NameID would name every session that had none.
            let Some(name_id) = lr
                .name_id
                .as_ref()
                .map(|n| n.value.trim().to_owned())
                .filter(|n| !n.is_empty())
            else {
                return slo_error(gw, p, "LogoutRequest without NameID");
            };
            // One IdP session when it names it, else every session of the subject.
            let key = match &lr.session_index {
                Some(si) => sso::sid_key(&p.idp.id, si.trim()),
                None => sso::sub_key(&p.idp.id, &name_id),
            };
            let ended = match sso::end_listed(gw, &key, audit::Kind::LogoutIdp, &method, ip).await {
                Ok(n) => n,
                Err(e) => return store_error(gw, e),
            };
            tracing::info!(idp = %p.idp.id, sessions = ended, "saml idp-initiated logout");
            let mut r = match (&meta.slo_response, &lr.id) {
                (Some(loc), Some(req_id)) => {
                    let xml = sp::logout_response(
                        &format!("_{}", random_id(32)),
                        now,
                        loc,
                        &p.settings.sp_entity_id,
                        req_id,
                    );
                    match sp::redirect_url(loc, "SAMLResponse", &xml, None, p.keys.as_ref()) {
                        Ok(u) => pages::redirect(&u),
                        Err(_) => signed_out_page(gw),
                    }
                }
                _ => signed_out_page(gw),
            };
            if let Ok(v) = HeaderValue::from_str(&gw.cookies.clear(gw.cookies.session)) {
                r.headers_mut().append(hyper::header::SET_COOKIE, v);
            }
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        SloMessage::Response(lr) => {
            let known = match lr.in_response_to.as_deref() {
                Some(id) => match gw.store.take_ephemeral(&logout_key(id)).await {
                    Ok(Some(b)) => b == p.idp.id.as_bytes(),
                    Ok(None) => false,
                    Err(e) => return store_error(gw, e),
                },
                None => false,
            };
            if !known {
                return slo_error(gw, p, "LogoutResponse answers no request of ours");
            }
            let ok = lr
                .status
                .as_ref()
                .and_then(|s| s.status_code.value.as_deref())
                == Some(sp::STATUS_SUCCESS);
            audit::record(
                gw,
                Event {
                    method: Some(&method),
                    reason: Some("logout_response"),
                    ip: Some(ip),
                    ..Event::new(
                        audit::Kind::LogoutIdp,
                        if ok {
                            audit::Outcome::Success
                        } else {
                            audit::Outcome::Refused
                        },
                    )
                },
            )
            .await;
            if ok {
                signed_out_page(gw)
            } else {
                login_page(gw, LoginError::SignedOutHereOnly)
            }
        }
    }
}

fn signed_out_page(gw: &Gateway) -> Response<GatewayBody> {
    let c = &gw.chrome;
    let body = format!(
        "<h1>{}</h1><p>{}</p><a class=\"button\" href=\"{}/login\">{}</a>",
        esc(c.t(Msg::YouAreSignedOut)),
        esc(c.t(Msg::SessionEnded)),
        esc(&gw.config.server.prefix),
        esc(c.t(Msg::SignInAgain)),
    );
    c.page(ok_status(), c.t(Msg::SignedOut), &body)
}
