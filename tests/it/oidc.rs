//! OIDC single sign-on against the test OpenID Provider on loopback: one test per row of
//! `conformance/oidc-rp.md` (named after the row), MFA evidence under deny / step_up / trust,
//! several IdPs, RP-initiated and back-channel logout.

use crate::support::browser::*;
use crate::support::oidc_provider::{ClientAuth, Fault, TestOp, CLIENT_ID, CLIENT_SECRET};
use crate::support::stores::Store;
use crate::support::*;
use hyper::StatusCode;
use portcullis::mfa::totp::code_at;
use portcullis::session::SessionStore;
use std::time::{Duration, Instant};

fn idp_toml(id: &str, op: &TestOp, extra: &str) -> String {
    format!(
        r#"
[[idp]]
id = "{id}"
kind = "oidc"
display_name = "{id} SSO"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
mfa_evidence = {{ amr_any = ["mfa", "hwk"], acr_any = ["urn:test:mfa"] }}
http_timeout = "1s"
{extra}
"#,
        issuer = op.issuer
    )
}

const STORAGE: &str = "\n[storage]\nurl = \"sqlite://users.db\"\n";

struct Env {
    op: TestOp,
    gw: TestGateway,
}

impl Env {
    /// One OIDC IdP `corp` (the default relay) with `extra` keys; `prep` sets the OP up first.
    async fn start(extra: &str, prep: impl FnOnce(&TestOp)) -> Env {
        Self::start_toml(
            |op| format!("{STORAGE}{}", idp_toml("corp", op, extra)),
            prep,
        )
        .await
    }

    async fn start_toml(toml: impl FnOnce(&TestOp) -> String, prep: impl FnOnce(&TestOp)) -> Env {
        Self::start_on(&Store::Memory, toml, prep).await
    }

    /// As `start_toml`, with the gateway's sessions and single-use state in `store`.
    async fn start_on(
        store: &Store,
        toml: impl FnOnce(&TestOp) -> String,
        prep: impl FnOnce(&TestOp),
    ) -> Env {
        let op = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
        prep(&op);
        let gw = TestGateway::start_on(store, &toml(&op), |_| {}).await;
        let clock = gw.clock.clone();
        op.with(|s| s.clock = clock);
        Env { op, gw }
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.gw.gateway().oidc.ready() {
            assert!(Instant::now() < deadline, "oidc provider never loaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn browser(&self) -> Browser {
        Browser::new(&format!("http://{}", self.gw.addr))
    }

    async fn audit_kinds(&self, kind: &str) -> Vec<(String, String)> {
        self.gw.audit(kind).await
    }
}

fn location(r: &Resp) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no redirect: {} {}", r.status, r.text()))
        .to_owned()
}

/// From a protected page to the URL the OP sends the browser back to (not yet visited).
async fn to_callback(b: &mut Browser, start: &str) -> String {
    let r = b.get(start).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let r = b.get(&location(&r)).await; // gateway /login → the OP
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let r = b.get(&location(&r)).await; // OP authorize → back with code and state
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    location(&r)
}

/// The whole login from a protected page; the final response.
async fn login(b: &mut Browser, start: &str) -> Resp {
    let cb = to_callback(b, start).await;
    let r = b.get(&cb).await;
    b.follow(r).await
}

/// A login the gateway must refuse: status, a correlation id on the page, no session.
async fn assert_refused(env: &Env, status: StatusCode) {
    let mut b = env.browser();
    let r = login(&mut b, "/agent/tickets").await;
    assert_eq!(r.status, status, "{}", r.text());
    assert!(
        r.text().contains("id=\"correlation-id\""),
        "clear page with a reference"
    );
    assert!(!b.jar.contains_key("portcullis"), "no session cookie");
    let again = b.get("/agent/tickets").await;
    assert_eq!(again.status, StatusCode::FOUND, "still signed out");
}

async fn assert_accepted(env: &Env) -> Resp {
    let mut b = env.browser();
    let r = login(&mut b, "/agent/tickets").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.upstream_header("x-auth-method").as_deref(),
        Some("oidc:corp")
    );
    r
}

#[tokio::test]
async fn rp_response_type_code_logs_the_user_in() {
    let env = Env::start("", |_| {}).await;
    env.ready().await;
    let mut b = env.browser();
    let r = login(&mut b, "/agent/tickets?id=7").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["path"], "/agent/tickets", "original path restored");
    assert_eq!(v["query"], "id=7");
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("sam.staff")
    );
    assert_eq!(
        r.upstream_header("x-forwarded-email").as_deref(),
        Some("sam@corp.example")
    );
    assert_eq!(
        r.upstream_header("x-forwarded-groups").as_deref(),
        Some("agents")
    );
    assert_eq!(r.upstream_header("x-auth-roles").as_deref(), Some("agent"));
    // Code flow with PKCE S256, state and nonce of at least 128 bits.
    let q = env.op.with(|s| s.last_authorize_query.clone()).unwrap();
    let p = |n: &str| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{n}=")))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(p("response_type"), "code");
    assert_eq!(p("code_challenge_method"), "S256");
    assert!(p("state").len() >= 22 && p("nonce").len() >= 22);
    assert!(p("scope").contains("openid"));
    assert_eq!(
        percent_encoding::percent_decode_str(&p("redirect_uri")).decode_utf8_lossy(),
        format!("http://{}/_portcullis/oidc/corp/callback", env.gw.addr)
    );
}

#[tokio::test]
async fn staff_login_with_amr_mfa_reaches_the_upstream_as_oidc_with_idp_mfa() {
    let env = Env::start("on_missing_mfa = \"deny\"", |_| {}).await;
    env.ready().await;
    let r = assert_accepted(&env).await;
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("idp"));
    let events = env.audit_kinds("login.success").await;
    assert_eq!(events, vec![("success".to_owned(), "idp".to_owned())]);
    assert_eq!(
        env.audit_kinds("stepup.decision").await,
        vec![("idp_evidence".to_owned(), "evidence_present".to_owned())]
    );
}

#[tokio::test]
async fn acr_in_acr_any_is_mfa_evidence_too() {
    let env = Env::start("", |op| {
        op.with(|s| {
            s.user.amr = None;
            s.user.acr = Some("urn:test:mfa".into());
        })
    })
    .await;
    env.ready().await;
    let r = assert_accepted(&env).await;
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("idp"));
}

#[tokio::test]
async fn rp_token_endpoint_client_secret_basic() {
    let env = Env::start("client_auth = \"client_secret_basic\"", |op| {
        op.with(|s| s.client_auth = ClientAuth::Basic)
    })
    .await;
    env.ready().await;
    assert_accepted(&env).await;
    assert_eq!(env.op.with(|s| s.last_client_auth), Some("basic"));
}

#[tokio::test]
async fn rp_token_endpoint_client_secret_post() {
    let env = Env::start("client_auth = \"client_secret_post\"", |op| {
        op.with(|s| s.client_auth = ClientAuth::Post)
    })
    .await;
    env.ready().await;
    assert_accepted(&env).await;
    assert_eq!(env.op.with(|s| s.last_client_auth), Some("post"));
}

#[tokio::test]
async fn rp_nonce_invalid_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::WrongNonce)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn nonce_replay_of_an_earlier_id_token_and_code_is_refused() {
    let env = Env::start("", |_| {}).await;
    env.ready().await;
    assert_accepted(&env).await;
    // The OP (or an attacker in its place) answers a new login with the earlier ID token.
    env.op.set_fault(Fault::ReplayLastIdToken);
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn state_missing_unknown_or_used_is_refused_without_a_token_request() {
    let env = Env::start("", |_| {}).await;
    env.ready().await;
    let mut b = env.browser();
    let cb = to_callback(&mut b, "/agent/tickets").await;
    let (base, query) = cb.split_once('?').unwrap();
    let code = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap();
    let tokens_before = env.op.with(|s| s.token_requests);
    for bad in [
        format!("{base}?code={code}"),
        format!("{base}?code={code}&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        format!("{base}?code={code}&state=%00%0a"),
    ] {
        let r = b.get(&bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.text().contains("Sign-in expired"));
    }
    assert_eq!(env.op.with(|s| s.token_requests), tokens_before);
    // The real callback works once ...
    let ok = b.get(&cb).await;
    assert_eq!(ok.status, StatusCode::FOUND);
    assert_eq!(env.op.with(|s| s.token_requests), tokens_before + 1);
    // ... and a second use of the same state is refused before any token request.
    let again = b.get(&cb).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(env.op.with(|s| s.token_requests), tokens_before + 1);
    // A state started in one browser cannot be completed in another.
    let mut b2 = env.browser();
    let cb2 = to_callback(&mut b2, "/agent/tickets").await;
    let mut thief = env.browser();
    let r = thief.get(&cb2).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(env.op.with(|s| s.token_requests), tokens_before + 1);
}

#[tokio::test]
async fn rp_id_token_issuer_mismatch_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::WrongIss)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn rp_id_token_aud_without_the_client_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::WrongAud)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn azp_missing_or_wrong_with_several_audiences_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::SeveralAudNoAzp)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
    env.op.set_fault(Fault::SeveralAudWrongAzp);
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn rp_id_token_iat_missing_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::NoIat)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn exp_in_the_past_beyond_the_leeway_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::Expired)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn rp_id_token_sub_missing_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::NoSub)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn rp_id_token_bad_sig_rs256_is_refused() {
    let env = Env::start("", |op| {
        op.with(|s| s.sign_with = "rsa-1");
        op.set_fault(Fault::BadSignature);
    })
    .await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
    // The same OP with a good RS256 signature is accepted.
    env.op.set_fault(Fault::None);
    assert_accepted(&env).await;
}

#[tokio::test]
async fn rp_id_token_bad_sig_es256_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::BadSignature)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn rp_id_token_sig_none_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::AlgNone)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::Hs256WithPublicKey)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn rp_id_token_kid_absent_single_jwks_is_accepted() {
    let env = Env::start("", |op| {
        op.with(|s| {
            s.jwks_keys = vec!["ec-1"];
            s.include_kid = false;
        })
    })
    .await;
    env.ready().await;
    assert_accepted(&env).await;
}

#[tokio::test]
async fn rp_id_token_kid_absent_multiple_jwks_accepts_only_if_one_key_verifies() {
    let env = Env::start("", |op| {
        op.with(|s| {
            s.jwks_keys = vec!["ec-2", "ec-1", "rsa-1"];
            s.include_kid = false;
            s.sign_with = "ec-1";
        })
    })
    .await;
    env.ready().await;
    assert_accepted(&env).await;
    // Signed with a key the JWKS does not have: no key verifies.
    env.op.with(|s| s.sign_with = "ec-rotated");
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
}

#[tokio::test]
async fn rp_key_rotation_op_sign_key_refetches_jwks_once_and_accepts() {
    let env = Env::start("", |_| {}).await;
    env.ready().await;
    assert_accepted(&env).await;
    let fetches = env.op.with(|s| s.jwks_fetches);
    env.op.with(|s| {
        s.jwks_keys = vec!["ec-rotated", "ec-1"];
        s.sign_with = "ec-rotated";
    });
    assert_accepted(&env).await;
    assert_eq!(env.op.with(|s| s.jwks_fetches), fetches + 1);
    // The new key is cached now: no further fetch.
    assert_accepted(&env).await;
    assert_eq!(env.op.with(|s| s.jwks_fetches), fetches + 1);
}

#[tokio::test]
async fn unknown_kid_flood_refetches_at_a_bounded_rate_and_is_refused() {
    let env = Env::start("", |op| op.set_fault(Fault::RandomKid)).await;
    env.ready().await;
    let fetches = env.op.with(|s| s.jwks_fetches);
    for _ in 0..8 {
        assert_refused(&env, StatusCode::BAD_GATEWAY).await;
    }
    assert_eq!(
        env.op.with(|s| s.jwks_fetches),
        fetches + 1,
        "one refetch per 10 s at most"
    );
}

#[tokio::test]
async fn rp_userinfo_bad_sub_claim_is_refused() {
    let env = Env::start("userinfo = true", |op| {
        op.set_fault(Fault::UserinfoOtherSub)
    })
    .await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
    assert_eq!(env.op.with(|s| s.userinfo_requests), 1);
}

#[tokio::test]
async fn rp_scope_userinfo_claims_are_merged() {
    let env = Env::start(
        "userinfo = true\nscopes = [\"openid\", \"profile\", \"email\", \"groups\"]",
        |op| op.with(|s| s.user.claims_only_in_userinfo = true),
    )
    .await;
    env.ready().await;
    let r = assert_accepted(&env).await;
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("sam.staff")
    );
    assert_eq!(
        r.upstream_header("x-forwarded-groups").as_deref(),
        Some("agents")
    );
    let q = env.op.with(|s| s.last_authorize_query.clone()).unwrap();
    assert!(q.contains("groups"), "configured scopes requested: {q}");
}

#[tokio::test]
async fn without_userinfo_claims_only_in_userinfo_give_no_role() {
    let env = Env::start("", |op| op.with(|s| s.user.claims_only_in_userinfo = true)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::FORBIDDEN).await;
    assert_eq!(env.op.with(|s| s.userinfo_requests), 0);
}

#[tokio::test]
async fn error_response_access_denied_shows_a_clear_page_without_session() {
    let env = Env::start("", |op| op.set_fault(Fault::AccessDenied)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::FORBIDDEN).await;
    assert_eq!(env.op.with(|s| s.token_requests), 0);
    let failures = env.audit_kinds("login.failure").await;
    assert_eq!(
        failures,
        vec![("refused".to_owned(), "idp_error".to_owned())]
    );
}

#[tokio::test]
async fn token_endpoint_down_or_slow_ends_on_a_clear_page_within_the_bound() {
    let env = Env::start("", |op| op.set_fault(Fault::Token500)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_GATEWAY).await;
    env.op.set_fault(Fault::TokenSlow(Duration::from_secs(5)));
    let started = Instant::now();
    assert_refused(&env, StatusCode::GATEWAY_TIMEOUT).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded by http_timeout (1s)"
    );
}

#[tokio::test]
async fn discovery_down_at_start_gateway_starts_not_ready_and_retries_with_backoff() {
    let env = Env::start_toml(
        |op| {
            format!(
                "{STORAGE}[admin]\nlisten = \"127.0.0.1:0\"\n{}",
                idp_toml("corp", op, "")
            )
        },
        |op| op.with(|s| s.discovery_down = true),
    )
    .await;
    let admin = env.gw.running.as_ref().unwrap().admin_addr.unwrap();
    let http = Http::new();
    let r = http.get(&format!("http://{admin}/readyz"), &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["checks"]["idp_metadata"], false);
    // The gateway serves meanwhile: a login attempt gets a clear 503 page.
    let mut b = env.browser();
    let r = b.get("/agent/x").await;
    let r = b.get(&location(&r)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    // The IdP comes back: the retry loads it.
    env.op.with(|s| s.discovery_down = false);
    env.ready().await;
    let r = http.get(&format!("http://{admin}/readyz"), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_accepted(&env).await;
}

#[tokio::test]
async fn missing_mfa_evidence_under_deny_refuses_with_an_audit_event() {
    let env = Env::start("on_missing_mfa = \"deny\"", |op| {
        op.with(|s| s.user.amr = Some(vec!["pwd".into()]))
    })
    .await;
    env.ready().await;
    assert_refused(&env, StatusCode::FORBIDDEN).await;
    assert_eq!(
        env.audit_kinds("stepup.decision").await,
        vec![("deny".to_owned(), "evidence_missing".to_owned())]
    );
    assert_eq!(
        env.audit_kinds("login.failure").await,
        vec![("refused".to_owned(), "mfa_evidence_missing".to_owned())]
    );
}

#[tokio::test]
async fn missing_mfa_evidence_under_trust_signs_in_with_mfa_none() {
    let env = Env::start("on_missing_mfa = \"trust\"", |op| {
        op.with(|s| s.user.amr = None)
    })
    .await;
    env.ready().await;
    let r = assert_accepted(&env).await;
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("none"));
    assert_eq!(
        env.audit_kinds("stepup.decision").await,
        vec![("trust".to_owned(), "evidence_missing".to_owned())]
    );
}

#[tokio::test]
async fn missing_mfa_evidence_under_step_up_enrolls_then_challenges_the_gateway_factor() {
    let env = Env::start("on_missing_mfa = \"step_up\"", |op| {
        op.with(|s| s.user.amr = None)
    })
    .await;
    env.ready().await;
    let mut b = env.browser();
    let cb = to_callback(&mut b, "/agent/tickets").await;
    let r = b.get(&cb).await;
    assert_eq!(
        location(&r),
        format!("http://{}/_portcullis/mfa/enroll", env.gw.addr)
    );
    assert!(
        !b.jar.contains_key("portcullis"),
        "no session before the step-up"
    );
    let page = b.get("/_portcullis/mfa/enroll").await;
    let html = page.text();
    let csrf = input_value(&html, "csrf_token").unwrap();
    let seed = seed_of(&element_text(&html, "totp-uri").unwrap());
    let ok = b
        .post(
            "/_portcullis/mfa/enroll",
            &[
                ("code", &code_at(&seed, env.gw.clock.now())),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let app = b.get("/agent/tickets").await;
    assert_eq!(app.status, StatusCode::OK);
    assert_eq!(app.upstream_header("x-auth-mfa").as_deref(), Some("totp"));
    assert_eq!(
        app.upstream_header("x-auth-method").as_deref(),
        Some("oidc:corp")
    );
    // The factor belongs to the SSO subject: next time, a challenge instead of enrollment.
    b.logout().await;
    env.gw.clock.advance(60);
    let cb = to_callback(&mut b, "/agent/tickets").await;
    let r = b.get(&cb).await;
    assert_eq!(
        location(&r),
        format!("http://{}/_portcullis/mfa", env.gw.addr)
    );
    let page = b.get("/_portcullis/mfa").await;
    let csrf = input_value(&page.text(), "csrf_token").unwrap();
    let done = b
        .post(
            "/_portcullis/mfa",
            &[
                ("code", &code_at(&seed, env.gw.clock.now())),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.text());
    let decisions = env.audit_kinds("stepup.decision").await;
    assert_eq!(decisions.len(), 2);
    assert!(decisions.iter().all(|(o, _)| o == "step_up"));
}

#[tokio::test]
async fn a_role_without_mfa_needs_no_evidence() {
    let env = Env::start("on_missing_mfa = \"deny\"", |op| {
        op.with(|s| {
            s.user.amr = None;
            s.user.groups = vec!["end-users".into()];
        })
    })
    .await;
    env.ready().await;
    let mut b = env.browser();
    let r = login(&mut b, "/home").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("none"));
}

#[tokio::test]
async fn two_idps_on_two_routes_and_a_chooser() {
    let second = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
    second.with(|s| {
        s.user.sub = "partner-7".into();
        s.user.preferred_username = "pat.partner".into();
        s.user.groups = vec!["end-users".into()];
        s.user.amr = None;
    });
    let partner_issuer = second.issuer.clone();
    let env = Env::start_toml(
        |op| {
            format!(
                "{STORAGE}{}{}\n[[routes]]\nprefix = \"/partner\"\nallow_roles = [\"end_user\"]\nlogin = \"partner\"\n",
                idp_toml("corp", op, ""),
                idp_toml("partner", &second, "").replace("partner SSO", "Partner portal")
            )
        },
        |_| {},
    )
    .await;
    let clock = env.gw.clock.clone();
    second.with(|s| s.clock = clock);
    env.ready().await;
    let mut staff = env.browser();
    let r = login(&mut staff, "/agent/tickets").await;
    assert_eq!(
        r.upstream_header("x-auth-method").as_deref(),
        Some("oidc:corp")
    );
    let mut partner = env.browser();
    let first = partner.get("/partner/orders").await;
    assert!(location(&first).contains("idp=partner"));
    let r = login(&mut partner, "/partner/orders").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.upstream_header("x-auth-method").as_deref(),
        Some("oidc:partner")
    );
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("pat.partner")
    );
    assert!(second.with(|s| s.last_authorize_query.is_some()));
    assert!(partner_issuer.starts_with("http://127.0.0.1:"));
    // /login without idp: a chooser naming both.
    let chooser = env.browser().get("/_portcullis/login?rd=%2Fagent").await;
    assert_eq!(chooser.status, StatusCode::OK);
    let html = chooser.text();
    assert!(html.contains("Sign in with corp SSO") && html.contains("Sign in with Partner portal"));
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_redirects_to_the_op() {
    let env = Env::start("logout = true", |_| {}).await;
    env.ready().await;
    let mut b = env.browser();
    let r = login(&mut b, "/agent/tickets").await;
    assert_eq!(r.status, StatusCode::OK);
    let id_token = env.op.with(|s| s.last_id_token.clone()).unwrap();
    let out = b.logout().await;
    assert_eq!(out.status, StatusCode::FOUND);
    let to = location(&out);
    assert!(
        to.starts_with(&format!("{}/end_session?", env.op.issuer)),
        "{to}"
    );
    let param = |n: &str| {
        let q = to.split_once('?').unwrap().1;
        q.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{n}=")))
            .map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    };
    assert_eq!(param("id_token_hint"), Some(id_token));
    assert_eq!(param("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        param("post_logout_redirect_uri"),
        Some(format!("http://{}/_portcullis/logout", env.gw.addr))
    );
    // The OP sends the browser back to the gateway's signed-out page.
    let back = b.get(&param("post_logout_redirect_uri").unwrap()).await;
    assert!(back.text().contains("You are signed out"));
    assert!(!b.jar.contains_key("portcullis"));
    let again = b.get("/agent/tickets").await;
    assert_eq!(again.status, StatusCode::FOUND, "session ended locally");
    assert!(!to.contains("portcullis="), "no cookie value leaks");
}

#[tokio::test]
async fn logout_without_rp_initiated_logout_stays_local() {
    let env = Env::start("", |_| {}).await;
    env.ready().await;
    let mut b = env.browser();
    login(&mut b, "/agent/tickets").await;
    let out = b.logout().await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.text().contains("You are signed out"));
}

#[tokio::test]
async fn back_channel_logout_ends_the_sessions_of_that_sid_at_once() {
    let env = Env::start("", |_| {}).await;
    env.ready().await;
    let mut b1 = env.browser();
    let mut b2 = env.browser();
    assert_eq!(login(&mut b1, "/agent/a").await.status, StatusCode::OK);
    assert_eq!(login(&mut b2, "/agent/b").await.status, StatusCode::OK);
    let url = env.gw.url("/_portcullis/oidc/corp/backchannel-logout");
    let http = Http::new();
    // Refused: a nonce (an ID token is not a logout token), no events, wrong audience, bad JWT.
    for bad in [
        env.op.logout_token(|c| {
            c.insert("nonce".into(), serde_json::json!("n"));
        }),
        env.op.logout_token(|c| {
            c.remove("events");
        }),
        env.op.logout_token(|c| {
            c.insert("aud".into(), serde_json::json!("someone-else"));
        }),
        env.op.logout_token(|c| {
            c.remove("sid");
            c.remove("sub");
        }),
        "not.a.token".to_owned(),
    ] {
        let r = http.post_form(&url, &[], &[("logout_token", &bad)]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    }
    assert_eq!(
        b1.get("/agent/a").await.status,
        StatusCode::OK,
        "still signed in"
    );
    let good = env.op.logout_token(|_| {});
    let r = http.post_form(&url, &[], &[("logout_token", &good)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    for b in [&mut b1, &mut b2] {
        let again = b.get("/agent/a").await;
        assert_eq!(again.status, StatusCode::FOUND, "session ended at once");
    }
    // The same token again: refused as a replay.
    let r = http.post_form(&url, &[], &[("logout_token", &good)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn back_channel_logout_by_sub_ends_every_session_of_the_subject() {
    let env = Env::start("", |op| op.with(|s| s.user.sid = None)).await;
    env.ready().await;
    let mut b = env.browser();
    assert_eq!(login(&mut b, "/agent/a").await.status, StatusCode::OK);
    let token = env.op.logout_token(|_| {});
    let r = Http::new()
        .post_form(
            &env.gw.url("/_portcullis/oidc/corp/backchannel-logout"),
            &[],
            &[("logout_token", &token)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(b.get("/agent/a").await.status, StatusCode::FOUND);
}

/// The `detail` JSON of every audit event `kind`, oldest first.
async fn audit_details(gw: &TestGateway, kind: &str) -> Vec<serde_json::Value> {
    use portcullis::storage::UserStore;
    let acc = gw.gateway().accounts.as_ref().unwrap();
    acc.users
        .query_audit(&portcullis::storage::AuditQuery {
            since: None,
            user: None,
            kind: Some(kind.into()),
            after_id: None,
            limit: 100,
            newest_first: false,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.event.detail.unwrap_or_default()).unwrap_or_default())
        .collect()
}

fn query_of(url: &str, name: &str) -> Option<String> {
    url.split_once('?')?.1.split('&').find_map(|kv| {
        kv.strip_prefix(&format!("{name}=")).map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The session cookie a response sets, if any (a login that made a session).
fn sets_session(gw: &TestGateway, r: &Resp) -> bool {
    let name = format!("{}=", gw.gateway().cookies.session);
    r.headers.get_all("set-cookie").iter().any(|v| {
        let v = v.to_str().unwrap();
        v.starts_with(&name) && !v.contains("Max-Age=0")
    })
}

/// A copy of `b` (same cookies) for a concurrent request.
fn twin(b: &Browser) -> Browser {
    let mut t = Browser::new(&b.base);
    t.jar = b.jar.clone();
    t
}

// --- RFC 9207: the authorization response's `iss` (finding 15a) ---

#[tokio::test]
async fn authorization_response_iss_of_another_issuer_is_refused_before_any_token_request() {
    for advertised in [false, true] {
        let env = Env::start("", |op| {
            op.with(|s| {
                s.advertise_response_iss = advertised;
                s.response_iss = Some("https://attacker.example".into());
            })
        })
        .await;
        env.ready().await;
        assert_refused(&env, StatusCode::BAD_REQUEST).await;
        assert_eq!(env.op.with(|s| s.token_requests), 0, "no code was redeemed");
        assert_eq!(
            env.audit_kinds("login.failure").await,
            vec![("refused".to_owned(), "authorization_response".to_owned())]
        );
        assert_eq!(env.gw.gateway().store.count().await.unwrap(), 0);
    }
}

#[tokio::test]
async fn authorization_response_without_iss_is_refused_when_the_idp_advertises_it() {
    let env = Env::start("", |op| op.with(|s| s.advertise_response_iss = true)).await;
    env.ready().await;
    assert_refused(&env, StatusCode::BAD_REQUEST).await;
    assert_eq!(env.op.with(|s| s.token_requests), 0);
    assert_eq!(env.gw.gateway().store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn the_code_flow_works_with_and_without_the_iss_parameter_and_its_discovery_flag() {
    // (advertised, sent): an IdP without RFC 9207, one that sends iss unasked, one that
    // promises and sends it.
    for (advertised, sent) in [(false, false), (false, true), (true, true)] {
        let env = Env::start("", |op| {
            op.with(|s| {
                s.advertise_response_iss = advertised;
                s.response_iss = sent.then(|| s.issuer.clone());
            })
        })
        .await;
        env.ready().await;
        assert_accepted(&env).await;
    }
}

#[tokio::test]
async fn a_repeated_code_or_iss_parameter_in_the_callback_is_refused() {
    let env = Env::start("", |op| {
        op.with(|s| s.response_iss = Some(s.issuer.clone()))
    })
    .await;
    env.ready().await;
    for extra in [
        "&iss=https%3A%2F%2Fattacker.example",
        "&code=other",
        "&c%6fde=other",
    ] {
        let mut b = env.browser();
        let cb = to_callback(&mut b, "/agent/tickets").await;
        let r = b.get(&format!("{cb}{extra}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra}: {}", r.text());
        assert!(!b.jar.contains_key("portcullis"));
    }
    assert_eq!(env.op.with(|s| s.token_requests), 0);
}

// --- IdP mix-up (finding 15b) ---

#[tokio::test]
async fn a_code_and_state_of_one_idp_delivered_at_another_idps_callback_is_refused_and_the_state_burned(
) {
    let second = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
    let env = Env::start_toml(
        |op| {
            format!(
                "{STORAGE}{}{}",
                idp_toml("corp", op, ""),
                idp_toml("partner", &second, "")
            )
        },
        |_| {},
    )
    .await;
    env.ready().await;
    let mut b = env.browser();
    let cb = to_callback(&mut b, "/agent/tickets").await;
    assert!(cb.contains("/oidc/corp/callback?"), "{cb}");
    // The attacker's IdP relays corp's answer to its own callback (or the reverse).
    let mixed = cb.replace("/oidc/corp/callback", "/oidc/partner/callback");
    let r = b.get(&mixed).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(!b.jar.contains_key("portcullis"));
    // The state is spent: the genuine callback fails as well, and no code was redeemed.
    let r = b.get(&cb).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(!b.jar.contains_key("portcullis"));
    assert_eq!(env.op.with(|s| s.token_requests), 0);
    assert_eq!(second.with(|s| s.token_requests), 0);
    assert_eq!(env.gw.gateway().store.count().await.unwrap(), 0);
}

// --- back-channel logout tokens (finding 15c) ---

#[tokio::test]
async fn logout_token_without_jti_or_exp_is_refused_and_ends_no_session() {
    let env = Env::start("", |_| {}).await;
    env.ready().await;
    let mut b = env.browser();
    assert_eq!(login(&mut b, "/agent/a").await.status, StatusCode::OK);
    let url = env.gw.url("/_portcullis/oidc/corp/backchannel-logout");
    let http = Http::new();
    for claim in ["jti", "exp"] {
        let token = env.op.logout_token(|c| {
            c.remove(claim);
        });
        for _ in 0..2 {
            let r = http.post_form(&url, &[], &[("logout_token", &token)]).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "without {claim}: {}",
                r.text()
            );
        }
    }
    // An `exp` far in the future would pin its jti in the replay cache for as long.
    let token = env.op.logout_token(|c| {
        c.insert(
            "exp".into(),
            serde_json::json!(env.gw.clock.now() + 400 * 86400),
        );
    });
    let r = http.post_form(&url, &[], &[("logout_token", &token)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        b.get("/agent/a").await.status,
        StatusCode::OK,
        "still signed in"
    );
    let refused = env.audit_kinds("logout.backchannel").await;
    assert_eq!(refused.len(), 5);
    assert!(refused
        .iter()
        .all(|(o, r)| o == "refused" && r == "logout_token"));
}

#[tokio::test]
async fn logout_token_replayed_with_the_same_jti_is_refused_even_when_reissued() {
    let env = Env::start("", |op| op.with(|s| s.user.sid = None)).await;
    env.ready().await;
    let url = env.gw.url("/_portcullis/oidc/corp/backchannel-logout");
    let http = Http::new();
    let first = env.op.logout_token(|c| {
        c.insert("jti".into(), serde_json::json!("jti-1"));
    });
    let r = http.post_form(&url, &[], &[("logout_token", &first)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // A later login, then a different token carrying the same jti: a replay.
    let mut b = env.browser();
    assert_eq!(login(&mut b, "/agent/a").await.status, StatusCode::OK);
    env.gw.clock.advance(30);
    let again = env.op.logout_token(|c| {
        c.insert("jti".into(), serde_json::json!("jti-1"));
    });
    assert_ne!(again, first);
    let r = http.post_form(&url, &[], &[("logout_token", &again)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.get("/agent/a").await.status, StatusCode::OK);
    assert!(env
        .audit_kinds("logout.backchannel")
        .await
        .contains(&("refused".to_owned(), "replay".to_owned())));
}

// --- role caps per IdP (finding 13) ---

/// A login at IdP `idp` from `/login`, followed to the end.
async fn login_at(b: &mut Browser, idp: &str, rd: &str) -> Resp {
    let r = b
        .get(&format!("/_portcullis/login?idp={idp}&rd={}", enc(rd)))
        .await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let r = b.get(&location(&r)).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let r = b.get(&location(&r)).await;
    b.follow(r).await
}

#[tokio::test]
async fn a_partner_idp_whose_roles_lack_admin_cannot_make_its_user_an_admin() {
    let second = TestOp::start(portcullis::clock::Clock::manual(1_800_000_000)).await;
    second.with(|s| {
        s.user.sub = "partner-bob".into();
        s.user.preferred_username = "bob".into();
        s.user.groups = vec!["admins".into(), "agents".into()];
    });
    let env = Env::start_toml(
        |op| {
            format!(
                "{STORAGE}{}{}",
                idp_toml("corp", op, ""),
                idp_toml("partner", &second, "roles = [\"agent\", \"end_user\"]")
            )
        },
        |op| {
            op.with(|s| {
                s.user.preferred_username = "bob".into();
                s.user.groups = vec!["admins".into(), "agents".into()];
            })
        },
    )
    .await;
    let clock = env.gw.clock.clone();
    second.with(|s| s.clock = clock);
    env.ready().await;
    // The same name and groups from the partner IdP: agent only, and `admins` not forwarded.
    let mut partner = env.browser();
    let r = login_at(&mut partner, "partner", "/agent/tickets").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-roles").as_deref(), Some("agent"));
    assert_eq!(
        r.upstream_header("x-forwarded-groups").as_deref(),
        Some("agents")
    );
    assert_eq!(
        r.upstream_header("x-auth-method").as_deref(),
        Some("oidc:partner")
    );
    assert_eq!(
        partner.get("/admin/users").await.status,
        StatusCode::FORBIDDEN
    );
    let dropped = audit_details(&env.gw, "login.roles_dropped").await;
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0]["dropped"], serde_json::json!(["admin"]));
    assert_eq!(dropped[0]["dropped_groups"], serde_json::json!(["admins"]));
    assert_eq!(dropped[0]["principal"], "partner:partner-bob");
    // The corp IdP (no `roles`) grants every role its groups map to.
    let mut staff = env.browser();
    let r = login_at(&mut staff, "corp", "/admin/users").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.upstream_header("x-auth-roles").as_deref(),
        Some("admin,agent")
    );
    // A partner user whose only role is beyond the cap: the usual "no role" page.
    second.with(|s| s.user.groups = vec!["admins".into()]);
    let mut only_admin = env.browser();
    let r = login_at(&mut only_admin, "partner", "/agent/tickets").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("No access"));
    assert!(!only_admin.jar.contains_key("portcullis"));
    assert!(env
        .audit_kinds("login.failure")
        .await
        .contains(&("refused".to_owned(), "no_role".to_owned())));
}

#[test]
fn check_refuses_an_unknown_role_in_an_idps_roles() {
    let text = r#"[server]
listen = "127.0.0.1:8443"
public_url = "https://helpdesk.example.com"

[upstream]
url = "http://127.0.0.1:3000"

[roles.agent]
groups = ["agents"]

[[routes]]
prefix = "/"
allow_roles = ["agent"]

[[idp]]
id = "partner"
kind = "oidc"
issuer = "https://partner.example.com"
client_id = "portcullis"
client_secret = "s"
roles = ["agent", "superuser"]

[[idp]]
id = "other"
kind = "oidc"
issuer = "https://other.example.com"
client_id = "portcullis"
client_secret = "s"
roles = []
"#;
    let p = std::path::Path::new("/etc/portcullis/test.toml");
    let errs: Vec<String> = match portcullis::config::Config::from_str_with_env(p, text, &|_| None)
    {
        Ok(_) => panic!("accepted an unknown role"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    };
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "/etc/portcullis/test.toml:21: idp[0].roles[1]: unknown role \"superuser\""
        ),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("/etc/portcullis/test.toml:29: idp[1].roles: an empty list"),
        "{errs:#?}"
    );
}

// --- single use under concurrency, on memory and on Redis (issue 14, class tests) ---

/// Two concurrent callbacks with the same state and code: one session, one refusal, one code
/// redeemed.
async fn one_state_two_concurrent_callbacks(store: Store) {
    let env = Env::start_on(
        &store,
        |op| format!("{STORAGE}{}", idp_toml("corp", op, "")),
        |_| {},
    )
    .await;
    env.ready().await;
    let mut b = env.browser();
    let cb = to_callback(&mut b, "/agent/tickets").await;
    let (mut x, mut y) = (twin(&b), twin(&b));
    let (r1, r2) = tokio::join!(x.get(&cb), y.get(&cb));
    let made = [&r1, &r2]
        .iter()
        .filter(|r| sets_session(&env.gw, r))
        .count();
    assert_eq!(made, 1, "{} / {}", r1.status, r2.status);
    let mut statuses = [r1.status, r2.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::FOUND, StatusCode::BAD_REQUEST]);
    assert_eq!(env.op.with(|s| s.token_requests), 1);
    assert_eq!(env.gw.gateway().store.count().await.unwrap(), 1);
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_state_used_by_two_concurrent_callbacks_makes_one_session_on_memory() {
    one_state_two_concurrent_callbacks(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_state_used_by_two_concurrent_callbacks_makes_one_session_on_redis() {
    let Some(store) = Store::redis("oidc_state_used_by_two_concurrent_callbacks") else {
        return;
    };
    one_state_two_concurrent_callbacks(store).await;
}

/// Two valid states that share one nonce (as if state handling were bypassed), each with its
/// own code, completed concurrently: the nonce's replay cache lets exactly one ID token in.
async fn one_nonce_two_concurrent_logins(store: Store) {
    let env = Env::start_on(
        &store,
        |op| format!("{STORAGE}{}", idp_toml("corp", op, "")),
        |_| {},
    )
    .await;
    env.ready().await;
    let mut b = env.browser();
    let r = b.get("/agent/tickets").await;
    let r = b.get(&location(&r)).await;
    let authorize = location(&r);
    let state = query_of(&authorize, "state").unwrap();
    // The OP issues two codes for the one nonce; the second state is a copy of the first.
    let http = Http::new();
    let cb1 = location(&http.get(&authorize, &[]).await);
    let cb2 = location(&http.get(&authorize, &[]).await);
    let code2 = query_of(&cb2, "code").unwrap();
    let store_ = &env.gw.gateway().store;
    let record = store_
        .get_ephemeral(&format!("oidc-state:{state}"))
        .await
        .unwrap()
        .unwrap();
    let state2 = "B".repeat(43);
    store_
        .put_ephemeral(
            &format!("oidc-state:{state2}"),
            record,
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let cb2 = format!(
        "{}?code={}&state={state2}",
        cb2.split_once('?').unwrap().0,
        enc(&code2)
    );
    let (mut x, mut y) = (twin(&b), twin(&b));
    let (r1, r2) = tokio::join!(x.get(&cb1), y.get(&cb2));
    assert_eq!(env.op.with(|s| s.token_requests), 2, "both codes redeemed");
    let made = [&r1, &r2]
        .iter()
        .filter(|r| sets_session(&env.gw, r))
        .count();
    assert_eq!(
        made,
        1,
        "{} {} / {} {}",
        r1.status,
        r1.text(),
        r2.status,
        r2.text()
    );
    let mut statuses = [r1.status, r2.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::FOUND, StatusCode::BAD_GATEWAY]);
    assert_eq!(env.gw.gateway().store.count().await.unwrap(), 1);
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_nonce_of_two_concurrent_id_tokens_admits_one_session_on_memory() {
    one_nonce_two_concurrent_logins(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_nonce_of_two_concurrent_id_tokens_admits_one_session_on_redis() {
    let Some(store) = Store::redis("oidc_nonce_of_two_concurrent_id_tokens") else {
        return;
    };
    one_nonce_two_concurrent_logins(store).await;
}

// Issue 14, finding 8: an identity value that cannot be a header refuses the login (it used to
// be forwarded as the literal `invalid`, making two such users one).
#[tokio::test]
async fn identity_values_that_cannot_be_sent_refuse_the_login_instead_of_becoming_invalid() {
    for (name, edit) in [
        (
            "control character in the name",
            Box::new(|u: &mut crate::support::oidc_provider::TestUser| {
                u.preferred_username = "eve\u{1}admin".into();
                u.email = "eve\u{1}admin@corp.example".into();
            }) as Box<dyn Fn(&mut _)>,
        ),
        (
            "groups over 8 KiB",
            Box::new(|u: &mut crate::support::oidc_provider::TestUser| {
                u.groups = (0..600).map(|i| format!("agents-{i:010}")).collect();
                u.groups.push("agents".into());
            }),
        ),
    ] {
        let env = Env::start("", |op| op.with(|s| edit(&mut s.user))).await;
        env.ready().await;
        let mut b = env.browser();
        let r = login(&mut b, "/agent/tickets").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name}: {}", r.text());
        assert!(r.text().contains("cannot be passed on"), "{name}");
        assert!(!b.jar.contains_key("portcullis"), "{name}: no session");
        let refused = env.audit_kinds("login.failure").await;
        assert!(
            refused.iter().any(|(o, r)| o == "refused"
                && (r == "identity_value" || r == "the group list is too long")),
            "{name}: {refused:?}"
        );
    }
    // UTF-8 is not such a value: it goes upstream as its bytes.
    let env = Env::start("", |op| {
        op.with(|s| {
            s.user.preferred_username = "zoë".into();
            s.user.email = "zoë@corp.example".into();
        })
    })
    .await;
    env.ready().await;
    let mut b = env.browser();
    let r = login(&mut b, "/agent/tickets").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let user = r
        .upstream_headers()
        .into_iter()
        .find(|(n, _)| n == "x-forwarded-user")
        .map(|(_, v)| v);
    assert!(
        user.as_deref().is_some_and(|u| u.starts_with("zoë")),
        "{user:?}"
    );
}

// Issue 14, finding 12: the IdP session index is one atomic set operation, so logins of one
// subject finishing at the same moment are all linked, and a back-channel logout by `sub` ends
// every one of them (a get-push-put list lost some of them on Redis).
async fn concurrent_logins_of_one_subject_all_end_by_back_channel_logout(store: Store) {
    let env = Env::start_on(
        &store,
        |op| format!("{STORAGE}{}", idp_toml("corp", op, "")),
        |op| op.with(|s| s.user.sid = None),
    )
    .await;
    env.ready().await;
    // Ten browsers each up to the callback, then all callbacks at once.
    let mut pending = Vec::new();
    for _ in 0..10 {
        let mut b = env.browser();
        let cb = to_callback(&mut b, "/agent/a").await;
        pending.push((b, cb));
    }
    let tasks: Vec<_> = pending
        .into_iter()
        .map(|(mut b, cb)| {
            tokio::spawn(async move {
                let r = b.get(&cb).await;
                assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
                b
            })
        })
        .collect();
    let mut browsers = Vec::new();
    for t in tasks {
        browsers.push(t.await.unwrap());
    }
    for b in &mut browsers {
        assert_eq!(b.get("/agent/a").await.status, StatusCode::OK);
    }
    let token = env.op.logout_token(|_| {});
    let r = Http::new()
        .post_form(
            &env.gw.url("/_portcullis/oidc/corp/backchannel-logout"),
            &[],
            &[("logout_token", &token)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for (i, b) in browsers.iter_mut().enumerate() {
        assert_eq!(
            b.get("/agent/a").await.status,
            StatusCode::FOUND,
            "session {i} survived the back-channel logout"
        );
    }
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_of_one_subject_all_end_by_back_channel_logout_on_memory() {
    concurrent_logins_of_one_subject_all_end_by_back_channel_logout(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_of_one_subject_all_end_by_back_channel_logout_on_redis() {
    let Some(store) = Store::redis("concurrent_logins_of_one_subject") else {
        return;
    };
    concurrent_logins_of_one_subject_all_end_by_back_channel_logout(store).await;
}
