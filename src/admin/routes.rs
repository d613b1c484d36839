//! The admin API's route table. The router dispatches from it and the OpenAPI document is
//! generated from it, so the two cannot drift: a route exists in both or in neither.

/// What an admin route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    ListSessions,
    DeleteSession,
    DeleteUserSessions,
    ListUsers,
    CreateUser,
    GetUser,
    DisableUser,
    EnableUser,
    ResetMfa,
    IssueRecoveryCodes,
    SetPassword,
    UpdateUser,
    DeleteUser,
    Audit,
    ArmBreakGlass,
    BreakGlassStatus,
    DisarmBreakGlass,
    Reload,
}

/// One query parameter: name, schema type, description.
pub type Param = (&'static str, &'static str, &'static str);

pub struct Route {
    pub method: &'static str,
    /// Path template; `{name}` segments capture one path segment.
    pub path: &'static str,
    pub op: Op,
    pub summary: &'static str,
    /// Whether a bearer token is required.
    pub auth: bool,
    pub query: &'static [Param],
    /// Name of the request body schema in `components.schemas`, if any.
    pub body: Option<&'static str>,
    /// Status codes with their description and response schema name ("" for none).
    pub responses: &'static [(u16, &'static str, &'static str)],
}

const PAGE: [Param; 2] = [
    ("cursor", "string", "the `next` value of the previous page"),
    ("limit", "integer", "items per page, 1-500 (default 100)"),
];
const AUTH_ERRORS: [(u16, &str, &str); 1] = [(401, "missing or wrong bearer token", "Error")];

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/healthz",
        op: Op::Healthz,
        summary: "Liveness: the process answers.",
        auth: false,
        query: &[],
        body: None,
        responses: &[(200, "alive", "Status")],
    },
    Route {
        method: "GET",
        path: "/readyz",
        op: Op::Readyz,
        summary: "Readiness: the session store and the user store answer.",
        auth: false,
        query: &[],
        body: None,
        responses: &[
            (200, "ready", "Status"),
            (503, "a store is unreachable", "Status"),
        ],
    },
    Route {
        method: "GET",
        path: "/metrics",
        op: Op::Metrics,
        summary:
            "Prometheus metrics (text format 0.0.4: `text/plain; version=0.0.4; charset=utf-8`).",
        auth: true,
        query: &[],
        body: None,
        responses: &[(200, "metrics", ""), AUTH_ERRORS[0]],
    },
    Route {
        method: "GET",
        path: "/api/v1/openapi.json",
        op: Op::OpenApi,
        summary: "This document.",
        auth: true,
        query: &[],
        body: None,
        responses: &[(200, "OpenAPI 3 document", ""), AUTH_ERRORS[0]],
    },
    Route {
        method: "GET",
        path: "/api/v1/sessions",
        op: Op::ListSessions,
        summary: "List live sessions, optionally of one user.",
        auth: true,
        query: &[
            ("user", "string", "only this user's sessions"),
            PAGE[0],
            PAGE[1],
        ],
        body: None,
        responses: &[
            (200, "a page of sessions", "SessionPage"),
            AUTH_ERRORS[0],
            (503, "session store unavailable", "Error"),
        ],
    },
    Route {
        method: "DELETE",
        path: "/api/v1/sessions/{id}",
        op: Op::DeleteSession,
        summary: "Terminate one session: the next request with it is unauthenticated.",
        auth: true,
        query: &[],
        body: None,
        responses: &[
            (204, "terminated", ""),
            (404, "no such session", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "DELETE",
        path: "/api/v1/users/{user}/sessions",
        op: Op::DeleteUserSessions,
        summary: "Terminate all of a user's sessions (and remembered devices with devices=true).",
        auth: true,
        query: &[(
            "devices",
            "boolean",
            "also forget the user's remembered devices",
        )],
        body: None,
        responses: &[(200, "terminated", "Terminated"), AUTH_ERRORS[0]],
    },
    Route {
        method: "GET",
        path: "/api/v1/users",
        op: Op::ListUsers,
        summary: "List native users.",
        auth: true,
        query: &[PAGE[0], PAGE[1]],
        body: None,
        responses: &[(200, "a page of users", "UserPage"), AUTH_ERRORS[0]],
    },
    Route {
        method: "POST",
        path: "/api/v1/users",
        op: Op::CreateUser,
        summary: "Create a native user; without a password one is generated and returned once.",
        auth: true,
        query: &[],
        body: Some("NewUser"),
        responses: &[
            (201, "created", "CreatedUser"),
            (400, "invalid body, name or role", "Error"),
            (409, "the user exists", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "GET",
        path: "/api/v1/users/{user}",
        op: Op::GetUser,
        summary: "One native user, with their second factors.",
        auth: true,
        query: &[],
        body: None,
        responses: &[
            (200, "the user", "User"),
            (404, "no such user", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "PATCH",
        path: "/api/v1/users/{user}",
        op: Op::UpdateUser,
        summary: "Change a user's roles and/or email; sessions carrying a role the user no longer has end.",
        auth: true,
        query: &[],
        body: Some("UserUpdate"),
        responses: &[
            (200, "updated", "UpdatedUser"),
            (400, "invalid body, role or email", "Error"),
            (404, "no such user", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "DELETE",
        path: "/api/v1/users/{user}",
        op: Op::DeleteUser,
        summary: "Delete a user: their sessions end, their factors, devices and invitations go.",
        auth: true,
        query: &[],
        body: None,
        responses: &[
            (200, "deleted", "DeletedUser"),
            (404, "no such user", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "POST",
        path: "/api/v1/users/{user}/password",
        op: Op::SetPassword,
        summary: "Set a user's password, or generate one (returned once); all their sessions and pending logins end.",
        auth: true,
        query: &[],
        body: Some("PasswordRequest"),
        responses: &[
            (200, "set", "PasswordSet"),
            (400, "invalid body or password too short", "Error"),
            (404, "no such user", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "POST",
        path: "/api/v1/users/{user}/disable",
        op: Op::DisableUser,
        summary: "Refuse all further logins of a user and end their sessions.",
        auth: true,
        query: &[],
        body: None,
        responses: &[
            (200, "disabled", "User"),
            (404, "no such user", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "POST",
        path: "/api/v1/users/{user}/enable",
        op: Op::EnableUser,
        summary: "Allow a disabled user again.",
        auth: true,
        query: &[],
        body: None,
        responses: &[
            (200, "enabled", "User"),
            (404, "no such user", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "DELETE",
        path: "/api/v1/users/{user}/mfa",
        op: Op::ResetMfa,
        summary: "Reset a user's second factors and remembered devices.",
        auth: true,
        query: &[],
        body: None,
        responses: &[
            (204, "reset", ""),
            (404, "no such user", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "POST",
        path: "/api/v1/users/{user}/recovery-codes",
        op: Op::IssueRecoveryCodes,
        summary: "Issue new recovery codes (returned once; the old ones stop working).",
        auth: true,
        query: &[],
        body: Some("RecoveryCodeRequest"),
        responses: &[
            (201, "the codes", "RecoveryCodes"),
            (400, "invalid ttl", "Error"),
            (404, "no such user", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "GET",
        path: "/api/v1/audit",
        op: Op::Audit,
        summary: "Audit events, oldest first; order=desc reads the newest first.",
        auth: true,
        query: &[
            (
                "order",
                "string",
                "desc: newest first, paging back in time; asc (default): oldest first",
            ),
            ("since", "string", "RFC 3339 time"),
            ("user", "string", "only this user"),
            ("type", "string", "only this event type, e.g. login.failure"),
            PAGE[0],
            PAGE[1],
        ],
        body: None,
        responses: &[
            (200, "a page of events", "AuditPage"),
            (400, "invalid filter", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "POST",
        path: "/api/v1/break-glass",
        op: Op::ArmBreakGlass,
        summary:
            "Arm emergency access for named users; answers one single-use link each (shown once).",
        auth: true,
        query: &[],
        body: Some("BreakGlassRequest"),
        responses: &[
            (201, "armed", "BreakGlassLinks"),
            (400, "invalid users, duration, reason or roles", "Error"),
            AUTH_ERRORS[0],
        ],
    },
    Route {
        method: "GET",
        path: "/api/v1/break-glass",
        op: Op::BreakGlassStatus,
        summary: "Who is armed for emergency access, until when.",
        auth: true,
        query: &[],
        body: None,
        responses: &[(200, "status", "BreakGlassStatus"), AUTH_ERRORS[0]],
    },
    Route {
        method: "DELETE",
        path: "/api/v1/break-glass",
        op: Op::DisarmBreakGlass,
        summary: "Disarm at once: links stop working and every session it gave ends.",
        auth: true,
        query: &[],
        body: None,
        responses: &[(200, "disarmed", "BreakGlassDisarmed"), AUTH_ERRORS[0]],
    },
    Route {
        method: "POST",
        path: "/api/v1/reload",
        op: Op::Reload,
        summary:
            "Read the config file and every file it names again, and apply it live (as SIGHUP).",
        auth: true,
        query: &[],
        body: None,
        responses: &[
            (
                200,
                "applied; restart_required names what was not",
                "Reloaded",
            ),
            AUTH_ERRORS[0],
            (
                422,
                "refused: the running config stays in force",
                "ReloadRefused",
            ),
        ],
    },
];

/// The route for a method and path, with the captured `{…}` segments (percent-decoded).
/// `Err` lists the methods the path has (empty: no such path, 404; otherwise 405 with `Allow`).
pub fn find(method: &str, path: &str) -> Result<(&'static Route, Vec<String>), Vec<&'static str>> {
    let mut allowed = Vec::new();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for r in ROUTES {
        let tpl: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
        if tpl.len() != segs.len() {
            continue;
        }
        let mut caps = Vec::new();
        let ok = tpl.iter().zip(segs.iter()).all(|(t, s)| {
            if t.starts_with('{') {
                match percent_encoding::percent_decode_str(s).decode_utf8() {
                    Ok(v) if !v.is_empty() => {
                        caps.push(v.into_owned());
                        true
                    }
                    _ => false,
                }
            } else {
                t == s
            }
        });
        if ok {
            if r.method == method {
                return Ok((r, caps));
            }
            if !allowed.contains(&r.method) {
                allowed.push(r.method);
            }
        }
    }
    Err(allowed)
}

/// Whether a query names only parameters the route lists, each once: the one table
/// (`Route::query`) says what each endpoint takes, and the OpenAPI document shows it.
pub fn query_allowed(route: &Route, query: Option<&str>) -> bool {
    let mut seen: Vec<String> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let key = pair
            .split_once('=')
            .map_or(pair, |(k, _)| k)
            .replace('+', " ");
        let Ok(key) = percent_encoding::percent_decode_str(&key).decode_utf8() else {
            return false;
        };
        let key = key.into_owned();
        if !route.query.iter().any(|(name, _, _)| *name == key) || seen.contains(&key) {
            return false;
        }
        seen.push(key);
    }
    true
}
