//! Break-glass access (issue 19, DESIGN.md §12) through the admin API, the real SMTP listener
//! and real stores: arm → link → factor → session → window end → refused; a link used twice
//! and a link nobody armed; disarm ending the sessions it gave on every replica (two gateways
//! sharing Redis); every step's audit event and the admins' mails.

use crate::notify::{subject_of, Env, Opts, ADMIN_MAIL};
use crate::support::browser::{element_text, input_value, seed_of, Browser};
use crate::support::login::Store;
use crate::support::*;
use hyper::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

const BREAK_GLASS: &str = "\n[break_glass]\nmax_window = \"4h\"\nroles = [\"agent\"]\n";

fn opts(store: Store) -> Opts {
    Opts {
        store,
        extra: BREAK_GLASS.into(),
        ..Default::default()
    }
}

/// Arms `users` for `duration` on `env`; returns each user's link as a path and query.
async fn arm(env: &Env, users: &[&str], duration: &str) -> Vec<String> {
    let r = env
        .admin(
            Method::POST,
            "/api/v1/break-glass",
            Some(json!({"users": users, "duration": duration, "reason": "IdP outage"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let origin = format!("http://{}", env.gw.addr);
    r.json()["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["url"]
                .as_str()
                .unwrap()
                .strip_prefix(&origin)
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Opens `link` in `b` and uses it: the answer of the POST.
async fn use_link(b: &mut Browser, link: &str) -> Resp {
    let page = b.get(link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let t = input_value(&page.text(), "t").unwrap();
    b.post("/_portcullis/break-glass", &[("t", &t)]).await
}

/// Uses `link` and enrolls the break-glass principal's TOTP: a session in `b`.
async fn break_in(env: &Env, b: &mut Browser, link: &str) {
    let r = use_link(b, link).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert!(r
        .header("location")
        .unwrap()
        .ends_with("/_portcullis/mfa/enroll"));
    let page = b.get("/_portcullis/mfa/enroll").await;
    let seed = seed_of(&element_text(&page.text(), "totp-uri").unwrap());
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let r = b
        .post(
            "/_portcullis/mfa/enroll",
            &[("code", &env.code(&seed)), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

async fn reaches_agent(b: &mut Browser) -> Option<Resp> {
    let r = b.get("/agent/x").await;
    (r.status == StatusCode::OK).then_some(r)
}

#[tokio::test]
async fn break_glass_arm_link_factor_session_then_window_end_refuses() {
    let env = Env::start(opts(Store::Memory)).await;
    let links = arm(&env, &["ivy"], "20m").await;
    let status = env.admin(Method::GET, "/api/v1/break-glass", None).await;
    assert_eq!(status.json()["users"][0]["user"], "ivy");
    assert_eq!(status.json()["users"][0]["reason"], "IdP outage");
    let mut b = env.browser();
    break_in(&env, &mut b, &links[0]).await;
    let app = reaches_agent(&mut b).await.expect("a break-glass session");
    assert_eq!(
        app.upstream_header("x-auth-method").as_deref(),
        Some("break_glass")
    );
    assert_eq!(
        app.upstream_header("x-forwarded-user").as_deref(),
        Some("ivy")
    );
    assert_eq!(app.upstream_header("x-auth-mfa").as_deref(), Some("totp"));
    assert_eq!(
        app.upstream_header("x-auth-roles").as_deref(),
        Some("agent")
    );
    // The session is the break-glass principal's and ends with the window.
    let list = env
        .admin(Method::GET, "/api/v1/sessions?user=break_glass:ivy", None)
        .await;
    let s = &list.json()["items"][0];
    assert_eq!(s["method"], "break_glass");
    assert_eq!(s["expires_at"], status.json()["users"][0]["until"]);
    // Window end (before the idle timeout): refused.
    env.gw.clock.advance(20 * 60 + 1);
    assert!(reaches_agent(&mut b).await.is_none());
    // Every step is in the audit log.
    for kind in [
        "break_glass.armed",
        "break_glass.link",
        "mfa.enroll",
        "break_glass.session",
    ] {
        let ev = env.audit(kind).await;
        assert_eq!(
            ev.first().map(|e| e.0.as_str()),
            Some("success"),
            "{kind}: {ev:?}"
        );
    }
    let armed = env.audit("break_glass.armed").await;
    assert_eq!(armed[0].1, "token:ops", "audited with the acting token");
    // And mailed to the admins.
    let mails = env.mails(Duration::from_secs(1)).await;
    let to_admins: Vec<String> = mails
        .iter()
        .filter(|m| m.to == vec![ADMIN_MAIL.to_owned()])
        .map(subject_of)
        .collect();
    for step in ["armed for ivy", "link used by ivy", "session for ivy"] {
        assert!(
            to_admins.iter().any(|s| s.contains(step)),
            "{step} in {to_admins:?}"
        );
    }
}

#[tokio::test]
async fn a_link_used_twice_or_never_armed_or_over_the_window_is_refused() {
    let env = Env::start(opts(Store::Memory)).await;
    let links = arm(&env, &["jay"], "1h").await;
    let mut b = env.browser();
    assert_eq!(use_link(&mut b, &links[0]).await.status, StatusCode::FOUND);
    let mut again = env.browser();
    assert_eq!(
        use_link(&mut again, &links[0]).await.status,
        StatusCode::FORBIDDEN
    );
    let mut stranger = env.browser();
    let forged = "/_portcullis/break-glass?t=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        use_link(&mut stranger, forged).await.status,
        StatusCode::FORBIDDEN
    );
    let refused = env.audit("break_glass.link").await;
    assert_eq!(
        refused.iter().filter(|e| e.0 == "refused").count(),
        2,
        "{refused:?}"
    );
    // Over the window, an unknown role, no users: refused up front.
    for body in [
        json!({"users": ["jay"], "duration": "5h", "reason": "x"}),
        json!({"users": ["jay"], "duration": "1h", "reason": "x", "roles": ["admin"]}),
        json!({"users": [], "duration": "1h", "reason": "x"}),
        json!({"users": ["jay"], "duration": "1h", "reason": " "}),
    ] {
        let r = env
            .admin(Method::POST, "/api/v1/break-glass", Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
    // A login past the link stops once disarmed, and stays ended when the user is armed again
    // later (a fresh link for the real person): only the new link leads in.
    let r = env.admin(Method::DELETE, "/api/v1/break-glass", None).await;
    assert_eq!(r.status, StatusCode::OK);
    env.gw.clock.advance(2);
    let _ = arm(&env, &["jay"], "1h").await;
    let page = b.get("/_portcullis/mfa/enroll").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
}

#[tokio::test]
async fn disarm_ends_the_sessions_it_gave_on_every_replica() {
    let Some(Store::Redis { url, prefix }) =
        Store::redis("disarm_ends_the_sessions_it_gave_on_every_replica")
    else {
        return;
    };
    let shared = TempDir::new("bg-replicas");
    let key = shared.path().join("signing.p8");
    let db = format!("sqlite://{}", shared.path().join("users.db").display());
    let replica = |url: &str, prefix: &str| Opts {
        store: Store::Redis {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        },
        server_extra: format!("signing_key = \"{}\"", key.display()),
        storage_url: Some(db.clone()),
        extra: BREAK_GLASS.into(),
        ..Default::default()
    };
    let a = Env::start(replica(&url, &prefix)).await;
    let b = Env::start(replica(&url, &prefix)).await;
    let links = arm(&a, &["kim"], "2h").await;
    // The link from replica A, used and completed on replica B.
    let link = links[0].clone();
    let mut on_b = b.browser();
    break_in(&b, &mut on_b, &link).await;
    let mut on_a = a.browser();
    on_a.jar = on_b.jar.clone();
    assert!(reaches_agent(&mut on_a).await.is_some());
    assert!(reaches_agent(&mut on_b).await.is_some());
    let r = a.admin(Method::DELETE, "/api/v1/break-glass", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["sessions_ended"], 1);
    assert_eq!(r.json()["users"], json!(["kim"]));
    assert!(reaches_agent(&mut on_b).await.is_none(), "ended on B");
    assert!(reaches_agent(&mut on_a).await.is_none(), "ended on A");
    let st = b.admin(Method::GET, "/api/v1/break-glass", None).await;
    assert_eq!(st.json()["armed"], false);
    assert_eq!(a.audit("break_glass.disarmed").await.len(), 1);
}

/// `portcullis break-glass arm|status|disarm` goes through the admin API: arming prints one
/// link per user, status shows who is armed, disarming ends it; a wrong token is refused.
#[tokio::test]
async fn the_break_glass_cli_arms_shows_and_disarms_through_the_admin_api() {
    let env = Env::start(opts(Store::Memory)).await;
    // The gateway's config says admin port 0; the CLI gets a copy naming the bound port.
    let admin_addr = env.gw.running.as_ref().unwrap().admin_addr.unwrap();
    let text = std::fs::read_to_string(&env.gw.config_path).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:0\""));
    let cfg = env.gw.dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        text.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{admin_addr}\""),
        ),
    )
    .unwrap();
    let cli = |args: &[&str], token: &str| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        c.arg("break-glass")
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .env("PORTCULLIS_ADMIN_TOKEN", token);
        async move {
            let out = c.output().await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let token = crate::support::login::ADMIN_TOKEN;
    let (ok, out, err) = cli(
        &[
            "arm",
            "--user",
            "ann",
            "--duration",
            "1h",
            "--reason",
            "IdP outage",
        ],
        token,
    )
    .await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let url = v["links"][0]["url"].as_str().unwrap();
    assert!(url.contains("/_portcullis/break-glass?t="), "{url}");
    let (ok, out, err) = cli(&["status"], token).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["armed"], true);
    assert_eq!(v["users"][0]["user"], "ann");
    let (ok, _, err) = cli(&["disarm"], token).await;
    assert!(ok, "{err}");
    let (_, out, _) = cli(&["status"], token).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["armed"], false);
    // The link died with the disarm.
    let origin = format!("http://{}", env.gw.addr);
    let mut b = env.browser();
    let r = use_link(&mut b, url.strip_prefix(&origin).unwrap()).await;
    assert_ne!(r.status, StatusCode::OK);
    let (ok, _, err) = cli(&["status"], "wrong").await;
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
}
