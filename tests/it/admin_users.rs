//! The admin API's user changes (issue 18 item 6): set a password, change roles and email,
//! delete; `Allow` on 405, unknown query parameters refused, audit newest first.

use crate::admin::{Admin, PW, READ_TOKEN};
use crate::support::browser::*;
use hyper::{Method, StatusCode};
use portcullis::storage::UserStore;
use serde_json::json;

/// A native login attempt's answer (302 with a session cookie when it worked).
async fn try_login(a: &Admin, user: &str, password: &str) -> (StatusCode, bool) {
    let mut b = Browser::new(&format!("http://{}", a.gw.addr));
    let form = b.get("/normal").await;
    let csrf = input_value(&form.text(), "csrf_token").unwrap();
    let fields = [
        ("username", user),
        ("password", password),
        ("csrf_token", &csrf),
        ("rd", "/"),
    ];
    let r = b.post("/normal", &fields).await;
    (r.status, b.jar.contains_key("portcullis"))
}

/// The newest audit event of `kind`, as the audit API shows it.
async fn last_event(a: &Admin, kind: &str) -> serde_json::Value {
    let r = a
        .call(
            Method::GET,
            &format!("/api/v1/audit?type={kind}&order=desc&limit=1"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["items"][0].clone()
}

/// Whether the browser's session still gets through (a 302 means it was sent to sign in).
async fn passes(b: &mut Browser) -> bool {
    let r = b.get("/app").await;
    assert!(
        r.status == StatusCode::OK || r.status == StatusCode::FOUND,
        "{}",
        r.status
    );
    r.status == StatusCode::OK
}

#[tokio::test]
async fn setting_a_password_ends_live_sessions_and_only_the_new_one_signs_in() {
    let a = Admin::start().await;
    a.add_user("pat", &["end_user"]).await;
    let mut b = a.login("pat").await;
    assert!(passes(&mut b).await);
    let r = a
        .call(
            Method::POST,
            "/api/v1/users/pat/password",
            Some(json!({"password": "a brand new secret"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["sessions_ended"], 1);
    assert!(
        r.json().get("password").is_none(),
        "a chosen one is not echoed"
    );
    assert!(!passes(&mut b).await, "the old session is sent to sign in");
    assert!(!try_login(&a, "pat", PW).await.1, "old password");
    assert!(passes(&mut a.login_with("pat", "a brand new secret").await).await);
    let ev = last_event(&a, "admin.user_password_set").await;
    assert_eq!(ev["user"], "pat");
    assert_eq!(ev["reason"], "token:ops");
    assert_eq!(ev["outcome"], "success");
    let detail = ev["detail"].as_str().unwrap();
    assert!(detail.contains("\"generated\":false"), "{detail}");
    assert!(
        !detail.contains("brand new"),
        "never the password: {detail}"
    );
}

#[tokio::test]
async fn a_generated_password_is_answered_once_uncached_and_clears_the_lockout() {
    let a = Admin::start().await;
    a.add_user("gina", &["end_user"]).await;
    // Three wrong guesses lock the account (max_failures = 3).
    for _ in 0..3 {
        assert!(!try_login(&a, "gina", "wrong password").await.1);
    }
    assert!(
        !try_login(&a, "gina", PW).await.1,
        "locked, even with the right one"
    );
    for body in [None, Some(json!({})), Some(json!({"generate": true}))] {
        let r = a
            .call(Method::POST, "/api/v1/users/gina/password", body.clone())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{body:?}: {}", r.text());
        assert_eq!(
            r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        let pw = r.json()["password"].as_str().unwrap().to_owned();
        assert!(pw.chars().count() >= 16, "a strong one");
        // The lock is gone: the owner signs in with it at once.
        assert!(passes(&mut a.login_with("gina", &pw).await).await);
    }
    let ev = last_event(&a, "admin.user_password_set").await;
    assert!(ev["detail"]
        .as_str()
        .unwrap()
        .contains("\"generated\":true"));
}

#[tokio::test]
async fn the_password_endpoint_refuses_bad_bodies_unknown_users_and_read_tokens() {
    let a = Admin::start().await;
    a.add_user("rita", &["end_user"]).await;
    let path = "/api/v1/users/rita/password";
    for bad in [
        json!({"password": "short"}),
        json!({"password": "long enough one", "generate": true}),
        json!({"password": "long enough one", "hint": "x"}),
        json!(["not", "an", "object"]),
    ] {
        let r = a.call(Method::POST, path, Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = a
        .call(
            Method::POST,
            "/api/v1/users/ghost/password",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .call_as(READ_TOKEN, Method::POST, path, Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Nothing changed: the old password still works.
    assert!(passes(&mut a.login("rita").await).await);
}

#[tokio::test]
async fn a_role_change_ends_only_the_sessions_that_lost_a_role() {
    let a = Admin::start().await;
    a.add_user("rolf", &["end_user"]).await;
    let mut narrow = a.login("rolf").await;
    // A role added ends nothing: every role the session carries still holds.
    let r = a
        .call(
            Method::PATCH,
            "/api/v1/users/rolf",
            Some(json!({"roles": ["end_user", "contractor"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["sessions_ended"], 0);
    assert_eq!(r.json()["user"]["roles"], json!(["end_user", "contractor"]));
    assert!(passes(&mut narrow).await);
    // A session made now carries both roles (contractor needs a second factor, so it is made
    // here directly in the store, as a login would).
    let (cookie, _) = a.gw.session_for("rolf", &["end_user", "contractor"]).await;
    let mut wide = Browser::new(&format!("http://{}", a.gw.addr));
    let (name, value) = cookie.split_once('=').unwrap();
    wide.jar.insert(name.into(), value.into());
    assert!(passes(&mut wide).await);
    let r = a
        .call(
            Method::PATCH,
            "/api/v1/users/rolf",
            Some(json!({"roles": ["end_user"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["sessions_ended"], 1);
    assert!(
        !passes(&mut wide).await,
        "the session that lost contractor ended"
    );
    assert!(
        passes(&mut narrow).await,
        "the one whose roles all hold goes on"
    );
    let ev = last_event(&a, "admin.user_updated").await;
    assert_eq!(ev["reason"], "token:ops");
    let detail: serde_json::Value = serde_json::from_str(ev["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["roles"]["before"], json!(["end_user", "contractor"]));
    assert_eq!(detail["roles"]["after"], json!(["end_user"]));
    assert_eq!(detail["sessions_ended"], 1);
}

#[tokio::test]
async fn patch_changes_the_email_and_refuses_bad_input_unknown_users_and_read_tokens() {
    let a = Admin::start().await;
    a.add_user("emma", &["end_user"]).await;
    let path = "/api/v1/users/emma";
    let r = a
        .call(
            Method::PATCH,
            path,
            Some(json!({"email": "emma@example.com"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["user"]["email"], "emma@example.com");
    assert_eq!(r.json()["user"]["roles"], json!(["end_user"]), "roles kept");
    for bad in [
        json!({}),
        json!({"roles": []}),
        json!({"roles": ["wizard"]}),
        json!({"email": "not an address"}),
        json!({"email": "a@b\r\nBcc: x@y"}),
        json!({"disabled": true}),
        json!({"username": "other"}),
    ] {
        let r = a.call(Method::PATCH, path, Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = a
        .call(
            Method::PATCH,
            "/api/v1/users/ghost",
            Some(json!({"roles": ["end_user"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .call_as(
            READ_TOKEN,
            Method::PATCH,
            path,
            Some(json!({"email": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = a
        .call(Method::PATCH, path, Some(json!({"email": null})))
        .await;
    assert_eq!(
        r.json()["user"]["email"],
        serde_json::Value::Null,
        "cleared"
    );
    let shown = a.call(Method::GET, path, None).await.json();
    assert_eq!(shown["email"], serde_json::Value::Null);
    assert_eq!(shown["roles"], json!(["end_user"]));
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_removes_their_factors_and_refuses_their_login() {
    let a = Admin::start().await;
    a.add_user("dora", &["end_user"]).await;
    a.add_user("kept", &["end_user"]).await;
    let g = a.gw.gateway();
    let acc = g.accounts.as_ref().unwrap();
    let now = a.gw.clock.now();
    acc.enroll_totp_now("dora", now).await.unwrap();
    acc.issue_recovery_codes("native:dora", 5, std::time::Duration::ZERO, now)
        .await
        .unwrap();
    acc.create_invite(&g.config, "dora", now).await.unwrap();
    let mut b = a.login("dora").await;
    let mut other = a.login("kept").await;
    let r = a
        .call_as(READ_TOKEN, Method::DELETE, "/api/v1/users/dora", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(passes(&mut b).await, "a refused delete changes nothing");
    let r = a.call(Method::DELETE, "/api/v1/users/dora", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["deleted"], "dora");
    assert_eq!(r.json()["sessions_ended"], 1);
    assert!(!passes(&mut b).await, "the session ended");
    assert!(passes(&mut other).await, "another user's did not");
    assert!(!try_login(&a, "dora", PW).await.1, "no login any more");
    assert!(acc.users.get_user("dora").await.unwrap().is_none());
    assert!(acc.users.get_totp("native:dora").await.unwrap().is_none());
    assert_eq!(
        acc.users
            .count_recovery_codes("native:dora", now)
            .await
            .unwrap(),
        0
    );
    assert!(acc
        .users
        .list_devices("native:dora", now)
        .await
        .unwrap()
        .is_empty());
    let r = a.call(Method::GET, "/api/v1/users/dora", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.call(Method::DELETE, "/api/v1/users/dora", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "a second delete");
    let ev = last_event(&a, "admin.user_deleted").await;
    assert_eq!(ev["user"], "dora");
    assert_eq!(ev["reason"], "token:ops");
    assert!(ev["detail"]
        .as_str()
        .unwrap()
        .contains("\"sessions_ended\":1"));
}

#[tokio::test]
async fn a_405_names_the_methods_the_path_has() {
    let a = Admin::start().await;
    for (method, path, allow) in [
        (Method::PUT, "/api/v1/users", "GET, POST"),
        (Method::POST, "/api/v1/users/someone", "GET, PATCH, DELETE"),
        (Method::GET, "/api/v1/users/someone/password", "POST"),
        (Method::POST, "/api/v1/sessions", "GET"),
        (Method::PUT, "/api/v1/break-glass", "POST, GET, DELETE"),
        (Method::DELETE, "/healthz", "GET"),
        (Method::GET, "/api/v1/reload", "POST"),
    ] {
        let r = a.call(method.clone(), path, None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(
            r.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
    }
    let r = a.call(Method::GET, "/api/v1/nothing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.headers.get("allow").is_none());
}

#[tokio::test]
async fn unknown_or_repeated_query_parameters_are_refused_on_every_endpoint() {
    let a = Admin::start().await;
    a.add_user("quinn", &["end_user"]).await;
    for r in portcullis::admin::routes::ROUTES {
        let path = r
            .path
            .replace("{id}", "AAAAAAAAAAAAAAAAAAAAAA")
            .replace("{user}", "quinn");
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let resp = a
            .call(method.clone(), &format!("{path}?frobnicate=1"), None)
            .await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {}",
            resp.text()
        );
    }
    // Nothing was acted on: the user is still there and enabled.
    let shown = a
        .call(Method::GET, "/api/v1/users/quinn", None)
        .await
        .json();
    assert_eq!(shown["disabled"], false);
    for q in [
        "limit=1&limit=500",
        "limit=2&Limit=3&x",
        "cursor=a&cursor=b",
    ] {
        let r = a
            .call(Method::GET, &format!("/api/v1/users?{q}"), None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
    }
    let r = a.call(Method::GET, "/api/v1/users?limit=1", None).await;
    assert_eq!(r.status, StatusCode::OK, "a listed parameter is taken");
    let r = a
        .call(Method::GET, "/api/v1/audit?type=x&order=desc&user=y", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn the_audit_log_reads_newest_first_and_pages_both_ways() {
    let a = Admin::start().await;
    for i in 0..5 {
        let r = a
            .call(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": format!("u{i}"), "roles": ["end_user"]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let pages = |order: &'static str| {
        let a = &a;
        async move {
            let mut users = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut q = format!("/api/v1/audit?type=admin.user_created&limit=2&order={order}");
                if let Some(c) = &cursor {
                    q.push_str(&format!("&cursor={c}"));
                }
                let page = a.call(Method::GET, &q, None).await.json();
                let items = page["items"].as_array().unwrap();
                assert!(items.len() <= 2);
                users.extend(items.iter().map(|e| e["user"].as_str().unwrap().to_owned()));
                match page["next"].as_str() {
                    Some(n) => cursor = Some(n.to_owned()),
                    None => break,
                }
            }
            users
        }
    };
    let newest = pages("desc").await;
    assert_eq!(newest, ["u4", "u3", "u2", "u1", "u0"]);
    let oldest = pages("asc").await;
    assert_eq!(oldest, ["u0", "u1", "u2", "u3", "u4"]);
    let r = a
        .call(Method::GET, "/api/v1/audit?order=sideways", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_cli_disable_ends_a_live_session_in_a_shared_redis_store() {
    let Some(url) = portcullis::testing::redis_url() else {
        return;
    };
    let tag = portcullis::session::random_id(6).replace(['-', '_'], "x");
    let a = Admin::start_with_sessions(&format!(
        "store = \"redis\"\nredis_url = \"{url}\"\nredis_prefix = \"pc-it-cli-{tag}:\""
    ))
    .await;
    a.add_user("carol", &["end_user"]).await;
    let mut b = a.login("carol").await;
    let mut other = a.login_with("carol", PW).await;
    assert!(passes(&mut b).await);
    // The CLI runs on the gateway's own config: the same user store and the same Redis.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["users", "disable", "carol", "--config"])
        .arg(&a.gw.config_path)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("NOT ended"),
        "no memory warning with Redis: {err}"
    );
    assert!(!passes(&mut b).await, "the live session ended");
    assert!(!passes(&mut other).await, "every one of them");
    assert!(!try_login(&a, "carol", PW).await.1, "and no new one");
    let ev = last_event(&a, "admin.user_disabled").await;
    assert_eq!(ev["reason"], "cli");
    assert!(ev["ip"].is_null());
    assert!(ev["detail"]
        .as_str()
        .unwrap()
        .contains("\"sessions_ended\":2"));
}

/// Every `$ref` in `v`.
fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x.as_str()) {
                    ("$ref", Some(r)) => out.push(r.to_owned()),
                    _ => refs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_covers_the_user_changes_and_every_refusal() {
    let a = Admin::start().await;
    let doc = a
        .call(Method::GET, "/api/v1/openapi.json", None)
        .await
        .json();
    let paths = &doc["paths"];
    for (path, method, body) in [
        ("/api/v1/users/{user}/password", "post", "PasswordRequest"),
        ("/api/v1/users/{user}", "patch", "UserUpdate"),
    ] {
        let op = &paths[path][method];
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{body}")
        );
        assert_eq!(op["x-portcullis-scope"], "write");
    }
    assert_eq!(
        paths["/api/v1/users/{user}"]["delete"]["x-portcullis-scope"],
        "write"
    );
    let audit = paths["/api/v1/audit"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(
        audit.iter().any(|p| p["name"] == "order"),
        "order documented"
    );
    for (path, ops) in paths.as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let responses = &op["responses"];
            assert!(responses["400"].is_object(), "{method} {path}: 400");
            if op.get("security").is_none() {
                assert!(responses["403"].is_object(), "{method} {path}: 403");
            }
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} resolves"
        );
    }
}
