//! The stores over TLS (issue 18 item 7): a Redis started with TLS only and a PostgreSQL with
//! `ssl = on` that refuses plain connections, both with certificates from a CA made by the
//! test. The configured CA is the only trust anchor; without it (web PKI) or with another CA
//! the gateway fails closed: it refuses to start, saying why.

use crate::support::servers::{postgres_ssl, redis_tls, TestCa};
use crate::support::*;
use hyper::StatusCode;
use portcullis::config::Config;
use std::path::Path;
use std::process::{Command, Stdio};

fn session_toml(port: u16, tls: &str) -> String {
    format!(
        "store = \"redis\"\nredis_url = \"rediss://127.0.0.1:{port}/0\"\n\
         redis_prefix = \"pc-tls:\"\n{tls}\n"
    )
}

/// `portcullis check` then `portcullis run` on `session` keys: (check ok, run's exit and stderr).
fn check_then_run(dir: &Path, session: &str) -> (bool, Option<i32>, String) {
    let port = loopback_listener().1;
    let cfg = dir.join("refused.toml");
    let upstream: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    std::fs::write(&cfg, base_config_full(port, upstream, "", session, "")).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        check.status.success(),
        run.status.code(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

#[tokio::test]
async fn sessions_live_in_a_redis_over_tls_verified_with_the_configured_ca_and_any_other_ca_refuses_to_start(
) {
    let ca = TestCa::new("portcullis test redis ca");
    let dir = TempDir::new("redis-tls");
    let Some(redis) = redis_tls(&dir, &ca).await else {
        return;
    };
    let ca_file = dir.path().join("redis-ca.pem");
    let tls = format!("redis_tls = {{ ca = \"{}\" }}", ca_file.display());
    let gw = TestGateway::start_full("", &session_toml(redis.port, &tls), "", |_| {}).await;
    let (cookie, _) = gw.session_for("ann", &["agent"]).await;
    let r = Http::new()
        .get(&gw.url("/app"), &[("cookie", &cookie)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.upstream_header("x-forwarded-user").as_deref(),
        Some("ann")
    );
    gw.stop().await;

    // Another CA: the certificate does not verify. `check` passes (the file is a good CA),
    // `run` refuses to start (exit 1) and says why: fail closed, never a plain or unverified
    // connection.
    let other = TestCa::new("some other ca");
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_file, other.pem()).unwrap();
    let tls = format!("redis_tls = {{ ca = \"{}\" }}", other_file.display());
    let (checked, code, stderr) = check_then_run(dir.path(), &session_toml(redis.port, &tls));
    assert!(checked, "a readable CA passes check");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Redis session store")
            && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );
    // No CA: the web PKI roots, which do not know the test CA either.
    let (_, code, stderr) = check_then_run(dir.path(), &session_toml(redis.port, ""));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Redis session store"),
        "{stderr}"
    );
}

const STORAGE_BASE: &str = r#"[server]
listen = "127.0.0.1:1"
public_url = "http://127.0.0.1:1"

[upstream]
url = "http://127.0.0.1:3000"

[roles.agent]
groups = ["agents"]

[[routes]]
prefix = "/"
allow_roles = ["agent"]
"#;

/// Opens the user store of a config with `[storage]` = `storage`: Ok, or the error text.
async fn open_storage(dir: &Path, storage: &str) -> Result<(), String> {
    let text = format!(
        "{STORAGE_BASE}\n[storage]\nencryption_key = \"{}\"\n{storage}\n",
        "cd".repeat(32)
    );
    let config = Config::from_str(&dir.join("pg.toml"), &text).map_err(|e| e.to_string())?;
    match portcullis::accounts::Accounts::open(&config).await {
        Ok(Some(a)) => {
            a.users.close().await;
            Ok(())
        }
        Ok(None) => Err("no store".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn postgres_over_tls_verifies_the_server_with_storage_tls_ca_and_refuses_it_without() {
    let ca = TestCa::new("portcullis test postgres ca");
    let dir = TempDir::new("pg-tls");
    let Some(pg) = postgres_ssl(&dir, &ca).await else {
        return;
    };
    let ca_file = dir.path().join("pg-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let url = |mode: &str| format!("postgres://postgres@127.0.0.1:{}/postgres?{mode}", pg.port);
    // The server takes TLS connections only, so every success below was over TLS.
    let plain = open_storage(dir.path(), &format!("url = \"{}\"", url("sslmode=disable"))).await;
    assert!(plain.is_err(), "the server refuses plain connections");
    let verified = format!(
        "url = \"{}\"\ntls = {{ ca = \"{}\" }}",
        url("sslmode=verify-full"),
        ca_file.display()
    );
    // Started just now: it may still be coming up.
    let mut opened = open_storage(dir.path(), &verified).await;
    for _ in 0..20 {
        if opened.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        opened = open_storage(dir.path(), &verified).await;
    }
    assert_eq!(opened, Ok(()), "verify-full with the configured CA");
    // A CA and no sslmode: verify-full.
    let implied = format!(
        "url = \"{}\"\ntls = {{ ca = \"{}\" }}",
        url(""),
        ca_file.display()
    );
    assert_eq!(open_storage(dir.path(), &implied).await, Ok(()));
    // Without the CA the web PKI roots are used, and the test CA is not one of them.
    let web_pki = open_storage(
        dir.path(),
        &format!("url = \"{}\"", url("sslmode=verify-full")),
    )
    .await;
    assert!(web_pki.is_err(), "{web_pki:?}");
    // Another CA does not verify the server either.
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_file, TestCa::new("other").pem()).unwrap();
    let other = format!(
        "url = \"{}\"\ntls = {{ ca = \"{}\" }}",
        url("sslmode=verify-full"),
        other_file.display()
    );
    assert!(open_storage(dir.path(), &other).await.is_err());
    // `require` encrypts without verifying (check warns about it): it connects.
    assert_eq!(
        open_storage(dir.path(), &format!("url = \"{}\"", url("sslmode=require"))).await,
        Ok(())
    );
}
