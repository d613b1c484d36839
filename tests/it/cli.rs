//! The command line: `users` on the configured store, `certs dev`, `demo`.

use crate::support::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

fn config_in(dir: &TempDir) -> std::path::PathBuf {
    let p = dir.path().join("portcullis.toml");
    let up: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    std::fs::write(
        &p,
        base_config(
            UNSERVED_PORT,
            up,
            "[storage]\nurl = \"sqlite://users.db\"\n[native]\n",
        ),
    )
    .unwrap();
    p
}

fn run(args: &[&str], config: &std::path::Path, stdin: Option<&str>) -> (i32, String, String) {
    let mut c = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(c.stdin.take());
    let out = c.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn users_commands_manage_the_configured_store() {
    let dir = TempDir::new("cli");
    let cfg = config_in(&dir);
    let (code, out, err) = run(
        &[
            "users",
            "add",
            "Alice",
            "--role",
            "agent",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        &cfg,
        Some("a long enough password\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "created user alice with roles agent");
    let (code, out, _) = run(&["users", "add", "bob", "--role", "end_user"], &cfg, None);
    assert_eq!(code, 0);
    assert!(
        out.contains("password (shown once): "),
        "a generated password is printed once"
    );
    let (code, _, err) = run(&["users", "add", "carl", "--role", "wizard"], &cfg, None);
    assert_eq!(code, 1);
    assert!(err.contains("unknown role \"wizard\""), "{err}");
    let (code, _, err) = run(&["users", "add", "alice", "--role", "agent"], &cfg, None);
    assert_eq!(code, 1, "duplicate user refused: {err}");
    let (_, out, _) = run(&["users", "list"], &cfg, None);
    assert!(
        out.lines().any(|l| l.starts_with("alice")
            && l.contains("active")
            && l.contains("alice@example.com")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("bob")));
    let (code, out, _) = run(&["users", "disable", "alice"], &cfg, None);
    assert_eq!((code, out.trim()), (0, "disabled alice"));
    let (_, out, _) = run(&["users", "list"], &cfg, None);
    assert!(out
        .lines()
        .any(|l| l.starts_with("alice") && l.contains("disabled")));
    let (code, _, _) = run(&["users", "enable", "alice"], &cfg, None);
    assert_eq!(code, 0);
    let (code, out, _) = run(
        &["users", "recovery-codes", "alice", "--ttl", "30d"],
        &cfg,
        None,
    );
    assert_eq!(code, 0);
    let codes: Vec<&str> = out.lines().skip(1).map(str::trim).collect();
    assert_eq!(codes.len(), 10, "{out}");
    assert!(portcullis::mfa::recovery::normalise(codes[0]).is_some());
    let (code, out, _) = run(&["users", "reset-mfa", "alice"], &cfg, None);
    assert_eq!(code, 0);
    assert!(out.contains("reset second factors of alice"));
    let (code, _, err) = run(&["users", "disable", "nobody"], &cfg, None);
    assert_eq!(code, 1);
    assert!(err.contains("no such user"), "{err}");
}

#[test]
fn with_invitations_the_cli_prints_a_single_use_enrollment_link_and_check_warns_without_them() {
    let dir = TempDir::new("cli-invite");
    let p = dir.path().join("portcullis.toml");
    let up: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let port = UNSERVED_PORT;
    let text = |mode: &str| {
        base_config(
            port,
            up,
            &format!(
                "[storage]\nurl = \"sqlite://users.db\"\n[native]\n[mfa]\nenrollment = \"{mode}\"\n"
            ),
        )
    };
    std::fs::write(&p, text("invite")).unwrap();
    let (code, out, _) = run(&["users", "add", "ines", "--role", "agent"], &p, None);
    assert_eq!(code, 0);
    assert!(
        !out.contains("password"),
        "chosen at the link, not generated: {out}"
    );
    let link = |out: &str| {
        out.lines()
            .find_map(|l| {
                l.split(": ")
                    .nth(1)
                    .filter(|u| u.contains("/normal?invite="))
            })
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no link in {out}"))
    };
    let first = link(&out);
    assert!(first.starts_with(&format!("http://127.0.0.1:{port}/normal?invite=")));
    let (code, out, _) = run(&["users", "reset-mfa", "ines"], &p, None);
    assert_eq!(code, 0);
    assert_ne!(link(&out), first, "a new link replaces the old one");
    // `check` passes an invite config quietly, and warns about first_login (file:line:key).
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    std::fs::write(&p, text("first_login")).unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success(), "a warning, not an error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: ")
            && err.contains(": mfa.enrollment: ")
            && err.contains("first_login"),
        "{err}"
    );
}

#[test]
fn certs_dev_writes_a_certificate_and_a_private_key() {
    let dir = TempDir::new("certs");
    let out = Command::new(bin())
        .args(["certs", "dev", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let cert = std::fs::read_to_string(dir.path().join("gateway.crt")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("gateway.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // It refuses to overwrite.
    let again = Command::new(bin())
        .args(["certs", "dev", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[tokio::test]
async fn the_demo_serves_a_login_and_prints_what_a_newcomer_needs() {
    let dir = TempDir::new("demo");
    // The demo binds `--port` itself: a port taken between probe and bind makes it exit
    // before its banner, and it is started again on another port.
    let mut started = None;
    for _ in 0..5 {
        let port = loopback_listener().1;
        let mut child = Command::new(bin())
            .args(["demo", "--port", &port.to_string(), "--dir"])
            .arg(dir.path().join(format!("d{port}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = tokio::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let done = l.contains("Press Ctrl-C");
                seen.push(l);
                if done {
                    return Some(seen);
                }
            }
            None // exited before its banner
        });
        match tokio::time::timeout(Duration::from_secs(60), lines).await {
            Ok(Ok(Some(seen))) => {
                started = Some((child, port, seen.join("\n")));
                break;
            }
            Ok(Ok(None)) => {
                let _ = child.wait();
                eprintln!("demo exited before listening on {port}; retrying");
            }
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => {
                let _ = child.kill();
                panic!("demo did not start");
            }
        }
    }
    let (mut child, port, text) = started.expect("the demo got a port in five tries");
    assert!(
        text.contains(&format!("open http://127.0.0.1:{port}/")),
        "{text}"
    );
    assert!(text.contains("username: contractor"));
    assert!(text.contains("otpauth://totp/"));
    let password = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap()
        .to_owned();
    let uri = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("otpauth://")
                .map(|r| format!("otpauth://{r}"))
        })
        .unwrap();
    // The printed credentials really log in and reach the sample app.
    let mut b = browser::Browser::new(&format!("http://127.0.0.1:{port}"));
    let r = b.get("/").await;
    assert_eq!(r.status, hyper::StatusCode::FOUND);
    let r = b.follow(r).await;
    let csrf = browser::input_value(&r.text(), "csrf_token").unwrap();
    let r = b
        .post(
            "/normal",
            &[
                ("username", "contractor"),
                ("password", &password),
                ("csrf_token", &csrf),
                ("rd", "/"),
            ],
        )
        .await;
    assert_eq!(r.status, hyper::StatusCode::FOUND);
    let page = b.get("/_portcullis/mfa").await;
    let csrf = browser::input_value(&page.text(), "csrf_token").unwrap();
    let seed = browser::seed_of(&uri);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let r = b
        .post(
            "/_portcullis/mfa",
            &[
                ("code", &portcullis::mfa::totp::code_at(&seed, now)),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    let app = b.follow(r).await;
    assert_eq!(app.status, hyper::StatusCode::OK);
    assert!(app.text().contains("Welcome, contractor"), "{}", app.text());
    // The newcomer's printed enrollment link: choose a password, then enroll.
    let link = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("http://127.0.0.1:{port}")))
        .filter(|l| l.starts_with("/normal?invite="))
        .unwrap_or_else(|| panic!("no enrollment link in:\n{text}"))
        .to_owned();
    let mut n = browser::Browser::new(&format!("http://127.0.0.1:{port}"));
    let form = n.get(&link).await;
    assert!(
        form.text().contains("name=\"new_password\""),
        "{}",
        form.text()
    );
    let csrf = browser::input_value(&form.text(), "csrf_token").unwrap();
    let invite = browser::input_value(&form.text(), "invite").unwrap();
    let r = n
        .post(
            "/normal",
            &[
                ("username", "newcomer"),
                ("new_password", "a demo password"),
                ("confirm_password", "a demo password"),
                ("invite", &invite),
                ("csrf_token", &csrf),
                ("rd", "/"),
            ],
        )
        .await;
    assert!(
        r.header("location")
            .is_some_and(|l| l.ends_with("/_portcullis/mfa/enroll")),
        "{}",
        r.text()
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_demo_refuses_to_wipe_a_directory_it_did_not_make() {
    let dir = TempDir::new("demo-foreign");
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let out = Command::new(bin())
        .args(["demo", "--port", &UNSERVED_PORT.to_string(), "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was not made by `portcullis demo`"), "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
}

#[test]
fn every_cli_user_action_is_audited_with_actor_cli() {
    let dir = TempDir::new("cli-audit");
    let cfg = config_in(&dir);
    let steps: [&[&str]; 8] = [
        &["users", "add", "ivy", "--role", "end_user"],
        &["users", "disable", "ivy"],
        &["users", "enable", "ivy"],
        &["users", "password", "ivy"],
        &[
            "users",
            "set-roles",
            "ivy",
            "--role",
            "end_user",
            "--role",
            "agent",
        ],
        &["users", "reset-mfa", "ivy"],
        &["users", "recovery-codes", "ivy"],
        &["users", "delete", "ivy"],
    ];
    let mut warnings = Vec::new();
    for args in steps {
        let (code, out, err) = run(args, &cfg, None);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        warnings.push(err.contains("cannot reach"));
    }
    // Memory sessions live in a running gateway: the commands that end sessions say they could not.
    assert_eq!(
        warnings,
        [false, true, false, true, true, false, false, true],
        "memory-session warnings"
    );
    let (code, _, err) = run(&["users", "password", "ivy"], &cfg, None);
    assert_eq!(code, 1, "deleted: {err}");
    let (code, _, err) = run(
        &["users", "password", "x", "--password-stdin"],
        &cfg,
        Some("short\n"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("at least 8 characters"), "{err}");
    let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use portcullis::storage::UserStore;
        let store = portcullis::storage::AnyUserStore::open("sqlite://users.db", dir.path())
            .await
            .unwrap();
        store
            .query_audit(&portcullis::storage::AuditQuery {
                user: Some("ivy".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    });
    let kinds: Vec<&str> = rows.iter().map(|r| r.event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "admin.user_created",
            "admin.user_disabled",
            "admin.user_enabled",
            "admin.user_password_set",
            "admin.user_updated",
            "admin.mfa_reset",
            "admin.recovery_codes_issued",
            "admin.user_deleted",
        ]
    );
    for r in &rows {
        assert_eq!(r.event.reason.as_deref(), Some("cli"), "{}", r.event.kind);
        assert_eq!(r.event.outcome, "success");
    }
}
