//! The console's HTML: the page (sessions, users, audit) and the step-up form. Every value
//! from a store or a request goes through `esc`; no inline script or style (the CSP stays).

use super::paging::{self, AuditAt, Paging};
use crate::clock::rfc3339;
use crate::http::store_error;
use crate::login::display::{agent_html, time_html};
use crate::pages::{self, esc, Msg};
use crate::proxy::forward::GatewayBody;
use crate::session::Session;
use crate::state::Gateway;
use crate::storage::UserStore;
use hyper::{Response, StatusCode};
use std::net::IpAddr;

/// What the console's answers need: the state, the admin's session and address, its CSRF token.
pub struct Cx<'a> {
    pub gw: &'a Gateway,
    pub s: &'a Session,
    pub ip: IpAddr,
    pub token: &'a str,
}

/// A message on top of the page: a notice, or an error.
pub enum Note<'a> {
    Done(&'a str),
    Failed(&'a str),
}

/// A text of the catalogue in the request's language, escaped.
fn t(gw: &Gateway, m: Msg) -> String {
    esc(gw.chrome.t(m))
}

fn hidden(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        esc(token)
    )
}

/// A one-button form to `/admin/{action}` with `field=value`.
fn button(cx: &Cx<'_>, action: &str, field: &str, value: &str, label: &str) -> String {
    // `label` is HTML already (escaped by the caller).
    format!(
        "<form method=\"post\" action=\"{p}/admin/{action}\">{t}<input type=\"hidden\" name=\"{field}\" value=\"{v}\"><button type=\"submit\" class=\"secondary\">{label}</button></form>",
        p = esc(&cx.gw.config.server.prefix),
        t = hidden(cx.token),
        v = esc(value),
    )
}

/// Hidden inputs carrying the fields that have a value through a filter form, so filtering
/// one list keeps the other's filter and the page size.
fn keep(fields: &[(&str, Option<String>)]) -> String {
    fields
        .iter()
        .filter_map(|(name, v)| {
            v.as_ref().map(|v| {
                format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                    esc(v)
                )
            })
        })
        .collect()
}

/// A malformed page position or size in the address (`paging::BadPage`): a 400 with the way
/// back to the console's first page.
fn bad_page(gw: &Gateway) -> Response<GatewayBody> {
    let body = format!(
        "<h1>{title}</h1><div class=\"error\" role=\"alert\">{what}</div>\
<p><a id=\"console-first\" href=\"{}/admin\">{back}</a></p>",
        esc(&gw.config.server.prefix),
        title = t(gw, Msg::ConNoSuchPage),
        what = t(gw, Msg::ConNoSuchPageWhat),
        back = t(gw, Msg::ConBack),
    );
    pages::html_response(
        StatusCode::BAD_REQUEST,
        gw.chrome
            .layout(gw.chrome.t(Msg::ConNoSuchPage), &body, false),
    )
}

/// The console page; `q` carries the filters (`user`, `event`), the page size and where each
/// list stands (`paging`).
pub async fn console(
    cx: &Cx<'_>,
    q: Option<&str>,
    note: Option<Note<'_>>,
) -> Response<GatewayBody> {
    let gw = cx.gw;
    let Ok(paging) = Paging::parse(q) else {
        return bad_page(gw);
    };
    let p = esc(&gw.config.server.prefix);
    let now = gw.clock.now();
    let (user, event) = (paging.user.clone(), paging.event.clone());
    let per_page = paging.per_page_asked.then(|| paging.per_page.to_string());
    let mut body = format!("<h1>{}</h1>", t(gw, Msg::ConTitle));
    let failed = matches!(note, Some(Note::Failed(_)));
    match note {
        Some(Note::Done(n)) => body.push_str(&format!(
            "<div class=\"notice\" role=\"status\" id=\"notice\">{}</div>",
            esc(n)
        )),
        Some(Note::Failed(e)) => body.push_str(&format!(
            "<div class=\"error\" role=\"alert\" id=\"form-error\">{}</div>",
            esc(e)
        )),
        None => {}
    }
    body.push_str(&format!(
        "<p>{} <strong>{}</strong>.</p>",
        t(gw, Msg::ConSignedInAs),
        esc(&cx.s.identity.user)
    ));

    // Sessions, of one user when filtered.
    let owner = user.as_deref().map(crate::admin::sessions::owner_of);
    let page = match paging::sessions(gw, owner.as_deref(), &paging).await {
        Ok(v) => v,
        Err(e) => return store_error(gw, e),
    };
    body.push_str(&format!(
        "<h2>{sessions}</h2><form method=\"get\" action=\"{p}/admin\"><label for=\"filter-user\">{user_l}</label>\
<input id=\"filter-user\" name=\"user\" type=\"text\" value=\"{u}\" autocapitalize=\"none\" spellcheck=\"false\">{k}\
<button type=\"submit\" class=\"secondary\">{filter}</button></form>\
<table id=\"sessions\"><thead><tr><th scope=\"col\">{user_l}</th><th scope=\"col\">{device}</th><th scope=\"col\">{signed_in}</th><th scope=\"col\"><span class=\"muted\">{action}</span></th></tr></thead><tbody>",
        sessions = t(gw, Msg::ConSessions),
        user_l = t(gw, Msg::ConUser),
        filter = t(gw, Msg::ConFilter),
        device = t(gw, Msg::AccDevice),
        signed_in = t(gw, Msg::AccSignedInCol),
        action = t(gw, Msg::AccAction),
        u = esc(user.as_deref().unwrap_or_default()),
        k = keep(&[("event", event.clone()), ("per_page", per_page.clone())]),
    ));
    for o in &page.rows {
        let action = if o.id == cx.s.id {
            format!("<em>{}</em>", t(gw, Msg::ConThisSession))
        } else {
            button(cx, "sessions/end", "id", o.id.as_str(), &t(gw, Msg::AccEnd))
        };
        body.push_str(&format!(
            // Four columns, as on the account page, so the table fits a phone (390 px).
            "<tr><td>{} <span class=\"muted\">{}</span></td><td>{} <span class=\"muted\">{}</span></td><td>{}</td><td>{action}</td></tr>",
            esc(&o.identity.user),
            esc(&o.identity.method.header_value()),
            agent_html(o.user_agent.as_deref()),
            esc(o.ip.as_deref().unwrap_or("-")),
            time_html(now, o.created_at),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&sessions_pager(
        cx,
        &paging,
        page.rows.is_empty(),
        page.more,
    ));
    if let Some(u) = &user {
        body.push_str(&button(
            cx,
            "sessions/end-all",
            "user",
            u,
            &esc(&gw.chrome.fill(Msg::ConEndAllOf, "user", u)),
        ));
    }

    // Native users.
    if let Some(acc) = &gw.accounts {
        let users = match acc.users.list_users(None, 200).await {
            Ok(v) => v,
            Err(e) => return store_error(gw, e),
        };
        body.push_str(&format!(
            "<h2>{users}</h2><form method=\"post\" action=\"{p}/admin/users/create\">{tok}\
<label for=\"new-username\">{name}</label><input id=\"new-username\" name=\"username\" type=\"text\" required autocapitalize=\"none\" spellcheck=\"false\">\
<label for=\"new-email\">{email}</label><input id=\"new-email\" name=\"email\" type=\"email\">\
<label for=\"new-roles\">{roles_comma}</label><input id=\"new-roles\" name=\"roles\" type=\"text\" required autocapitalize=\"none\" spellcheck=\"false\">\
<button type=\"submit\">{create}</button></form>\
<table id=\"users\"><thead><tr><th scope=\"col\">{user_l}</th><th scope=\"col\">{roles}</th><th scope=\"col\">{state}</th><th scope=\"col\"><span class=\"muted\">{actions}</span></th></tr></thead><tbody>",
            tok = hidden(cx.token),
            users = t(gw, Msg::ConUsers),
            name = t(gw, Msg::ConUserName),
            email = t(gw, Msg::ConEmailOptional),
            roles_comma = t(gw, Msg::ConRolesComma),
            create = t(gw, Msg::ConCreateUser),
            user_l = t(gw, Msg::ConUser),
            roles = t(gw, Msg::ConRoles),
            state = t(gw, Msg::ConState),
            actions = t(gw, Msg::ConActions),
        ));
        for u in &users {
            let name = &u.username;
            let toggle = if u.disabled {
                button(cx, "users/enable", "user", name, &t(gw, Msg::ConEnable))
            } else {
                button(cx, "users/disable", "user", name, &t(gw, Msg::ConDisable))
            };
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"actions\">{toggle}{}{}{}</td></tr>",
                esc(name),
                esc(&u.roles.join(", ")),
                t(gw, if u.disabled { Msg::ConDisabled } else { Msg::ConEnabled }),
                button(cx, "users/reset-mfa", "user", name, &t(gw, Msg::ConResetMfa)),
                button(cx, "users/password", "user", name, &t(gw, Msg::ConResetPassword)),
                button(cx, "users/recovery-codes", "user", name, &t(gw, Msg::ConIssueCodes)),
            ));
        }
        body.push_str("</tbody></table>");

        // The audit log, newest first, a page at a time.
        let page = match paging::audit(&acc.users, &paging).await {
            Ok(v) => v,
            Err(e) => return store_error(gw, e),
        };
        body.push_str(&format!(
            "<h2>{log}</h2><form method=\"get\" action=\"{p}/admin\"><label for=\"audit-user\">{user_l}</label>\
<input id=\"audit-user\" name=\"user\" type=\"text\" value=\"{u}\" autocapitalize=\"none\" spellcheck=\"false\">\
<label for=\"audit-event\">{event_l}</label><input id=\"audit-event\" name=\"event\" type=\"text\" value=\"{e}\" autocapitalize=\"none\" spellcheck=\"false\">{k}\
<button type=\"submit\" class=\"secondary\">{filter}</button></form>\
<table id=\"audit\"><thead><tr><th scope=\"col\">{when}</th><th scope=\"col\">{event_l}</th><th scope=\"col\">{user_l}</th><th scope=\"col\">{outcome}</th><th scope=\"col\">{by}</th></tr></thead><tbody>",
            log = t(gw, Msg::ConAuditLog),
            user_l = t(gw, Msg::ConUser),
            event_l = t(gw, Msg::ConEvent),
            filter = t(gw, Msg::ConFilter),
            when = t(gw, Msg::ConWhen),
            outcome = t(gw, Msg::ConOutcome),
            by = t(gw, Msg::ConByWhy),
            u = esc(user.as_deref().unwrap_or_default()),
            e = esc(event.as_deref().unwrap_or_default()),
            k = keep(&[("per_page", per_page.clone())]),
        ));
        for r in &page.rows {
            body.push_str(&format!(
                "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&rfc3339(r.event.at)),
                time_html(now, r.event.at),
                esc(&r.event.kind),
                esc(r.event.user.as_deref().unwrap_or("-")),
                esc(&r.event.outcome),
                esc(r.event.reason.as_deref().unwrap_or("-")),
            ));
        }
        body.push_str("</tbody></table>");
        body.push_str(&audit_pager(cx, &paging, &page));
    }
    if gw.accounts.is_some() && !gw.config.break_glass.roles.is_empty() {
        match break_glass(cx).await {
            Ok(html) => body.push_str(&html),
            Err(e) => return store_error(gw, e),
        }
    }
    let status = if failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    pages::html_response(
        status,
        gw.chrome.layout(gw.chrome.t(Msg::ConTitle), &body, true),
    )
}

/// The links between pages of sessions; on a page past the end, the way back to the first.
fn sessions_pager(cx: &Cx<'_>, paging: &Paging, empty: bool, more: bool) -> String {
    let gw = cx.gw;
    let prefix = &gw.config.server.prefix;
    let at = paging.sessions_page;
    let link = |page: usize, id: &str, label: &str| {
        format!(
            "<a id=\"{id}\" href=\"{}\">{label}</a>",
            esc(&paging.link(prefix, page, paging.audit))
        )
    };
    let mut links = Vec::new();
    if empty && at > 1 {
        links.push(format!(
            "<span id=\"sessions-none\">{}</span>",
            t(gw, Msg::ConNoSessionsHere)
        ));
        links.push(link(1, "sessions-first", &t(gw, Msg::ConFirstPage)));
    } else {
        if at > 1 {
            links.push(link(
                at - 1,
                "sessions-previous",
                &t(gw, Msg::ConPrevSessions),
            ));
        }
        if more {
            links.push(link(at + 1, "sessions-next", &t(gw, Msg::ConMoreSessions)));
        }
    }
    pager(&t(gw, Msg::ConSessionPages), &links)
}

/// The links between pages of the audit log; on a page past either end, the way back to the
/// newest events.
fn audit_pager(cx: &Cx<'_>, paging: &Paging, page: &paging::AuditPage) -> String {
    let gw = cx.gw;
    let prefix = &gw.config.server.prefix;
    let link = |at: AuditAt, id: &str, label: &str| {
        format!(
            "<a id=\"{id}\" href=\"{}\">{label}</a>",
            esc(&paging.link(prefix, paging.sessions_page, at))
        )
    };
    let mut links = Vec::new();
    if page.rows.is_empty() && paging.audit != AuditAt::Newest {
        links.push(format!(
            "<span id=\"audit-none\">{}</span>",
            t(gw, Msg::ConNoEventsHere)
        ));
        links.push(link(
            AuditAt::Newest,
            "audit-newest",
            &t(gw, Msg::ConNewest),
        ));
    }
    if let Some(id) = page.newer {
        links.push(link(
            AuditAt::After(id),
            "audit-newer",
            &t(gw, Msg::ConNewer),
        ));
    }
    if let Some(id) = page.older {
        links.push(link(
            AuditAt::Before(id),
            "audit-older",
            &t(gw, Msg::ConOlder),
        ));
    }
    pager(&t(gw, Msg::ConAuditPages), &links)
}

fn pager(label: &str, links: &[String]) -> String {
    if links.is_empty() {
        return String::new();
    }
    let items: String = links.iter().map(|l| format!("<li>{l}</li>")).collect();
    format!("<nav class=\"ways-on pager\" aria-label=\"{label}\"><ul>{items}</ul></nav>")
}

/// A secret shown once (a generated password, recovery codes, an enrollment link); `title`
/// and `what` are raw text (escaped here).
pub fn shown_once(cx: &Cx<'_>, title: &str, what: &str, lines: &[&str]) -> Response<GatewayBody> {
    let mut body = format!(
        "<h1>{}</h1><p>{}</p><p class=\"muted\">{}</p><ul id=\"secret\">",
        esc(title),
        esc(what),
        t(cx.gw, Msg::ConShownOnce)
    );
    for l in lines {
        body.push_str(&format!("<li><code>{}</code></li>", esc(l)));
    }
    body.push_str(&format!(
        "</ul><p><a href=\"{}/admin\">{}</a></p>",
        esc(&cx.gw.config.server.prefix),
        t(cx.gw, Msg::ConBack)
    ));
    pages::html_response(StatusCode::OK, cx.gw.chrome.layout(title, &body, false))
}

/// The step-up: the gateway's factor again, or (`login`: no such factor) a new sign-in.
pub fn step_up(
    gw: &Gateway,
    token: &str,
    login: Option<&str>,
    error: Option<&str>,
) -> Response<GatewayBody> {
    let mut body = format!("<h1>{}</h1>", t(gw, Msg::ConConfirmYou));
    if let Some(e) = error {
        body.push_str(&format!(
            "<div class=\"error\" role=\"alert\" id=\"form-error\">{}</div>",
            esc(e)
        ));
    }
    match login {
        Some(url) => body.push_str(&format!(
            "<p>{}</p><p><a id=\"step-up-login\" href=\"{}\">{}</a></p>",
            esc(&gw.chrome.fill(Msg::ConNeedsSignIn, "n", &minutes(gw))),
            esc(url),
            t(gw, Msg::SignInAgain)
        )),
        None => body.push_str(&format!(
            "<p>{needs}</p>\
<form method=\"post\" action=\"{p}/admin/verify\" id=\"step-up\">{tok}<label for=\"code\">{code}</label>\
<input id=\"code\" name=\"code\" type=\"text\" autocomplete=\"one-time-code\" autocapitalize=\"none\" spellcheck=\"false\" required>\
<button type=\"submit\">{confirm}</button></form>",
            p = esc(&gw.config.server.prefix),
            tok = hidden(token),
            needs = t(gw, Msg::ConNeedsCode),
            code = t(gw, Msg::ConCode),
            confirm = t(gw, Msg::Confirm),
        )),
    }
    pages::html_response(
        StatusCode::UNAUTHORIZED,
        gw.chrome
            .layout(gw.chrome.t(Msg::ConConfirmYou), &body, false),
    )
}

fn minutes(gw: &Gateway) -> String {
    (gw.config.console.fresh_mfa.as_secs() / 60).to_string()
}

/// Break-glass: who is armed, the arming form, and disarming.
async fn break_glass(cx: &Cx<'_>) -> Result<String, crate::storage::StoreError> {
    let gw = cx.gw;
    let now = gw.clock.now();
    let armed = crate::auth::break_glass::status(&gw.store, now).await?;
    let mut html = format!("<h2>{}</h2>", t(gw, Msg::ConBreakGlass));
    if armed.is_empty() {
        html.push_str(&format!(
            "<p id=\"break-glass-status\">{}</p>",
            t(gw, Msg::ConNotArmed)
        ));
    } else {
        html.push_str(&format!(
            "<table id=\"break-glass-status\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            t(gw, Msg::ConUser),
            t(gw, Msg::ConUntil),
            t(gw, Msg::ConReason),
            t(gw, Msg::ConBy)
        ));
        for a in &armed {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.user),
                time_html(now, a.until),
                esc(&a.reason),
                esc(&a.actor)
            ));
        }
        html.push_str("</tbody></table>");
        html.push_str(&button(
            cx,
            "break-glass/disarm",
            "confirm",
            "yes",
            &t(gw, Msg::ConDisarm),
        ));
    }
    html.push_str(&format!(
        "<form method=\"post\" action=\"{p}/admin/break-glass/arm\">{tok}\
<label for=\"bg-users\">{users}</label><input id=\"bg-users\" name=\"users\" type=\"text\" required autocapitalize=\"none\" spellcheck=\"false\">\
<label for=\"bg-duration\">{how_long}</label><input id=\"bg-duration\" name=\"duration\" type=\"text\" value=\"2h\" required>\
<label for=\"bg-reason\">{reason}</label><input id=\"bg-reason\" name=\"reason\" type=\"text\" required maxlength=\"500\">\
<button type=\"submit\">{arm}</button></form>",
        p = esc(&gw.config.server.prefix),
        tok = hidden(cx.token),
        users = t(gw, Msg::ConBgUsers),
        how_long = esc(&gw.chrome.fill(
            Msg::ConBgDuration,
            "max",
            &format!("{}m", gw.config.break_glass.max_window.as_secs() / 60)
        )),
        reason = t(gw, Msg::ConReason),
        arm = t(gw, Msg::ConArm),
    ));
    Ok(html)
}
