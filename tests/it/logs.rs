//! Logs (DESIGN.md §11, issue 18 item 4), on the real binary: `[log] format = "json"` writes one
//! JSON object per line on stderr, text logs carry no colour codes when stderr is not a
//! terminal, and `[audit] file` receives the audit events as JSON lines.

use crate::support::*;
use hyper::{Method, StatusCode};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "logs-admin-token-0123456789";

struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the binary on `base_config` plus `extra`, with stderr kept in `dir/stderr`; returns it
/// and its port.
async fn run(dir: &TempDir, up: std::net::SocketAddr, extra: &str) -> (Proc, u16) {
    run_with(dir, up, extra, false).await
}

/// `run`, with `server.access_log` on or off.
async fn run_with(
    dir: &TempDir,
    up: std::net::SocketAddr,
    extra: &str,
    access_log: bool,
) -> (Proc, u16) {
    let cfg = dir.path().join("c.toml");
    let err = dir.path().join("stderr");
    let (child, port) = spawn_listening("portcullis run", Duration::from_secs(20), |port| {
        let text = base_config(port, up, extra)
            .replace("access_log = false", &format!("access_log = {access_log}"));
        std::fs::write(&cfg, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap()
    })
    .await;
    (Proc(child), port)
}

/// Stops the process with SIGTERM and waits for it (its logs are then complete).
fn stop(mut p: Proc) {
    let _ = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status();
    let _ = p.0.wait();
}

#[tokio::test]
async fn json_logs_parse_line_by_line_and_the_audit_file_carries_the_events() {
    let up = TestUpstream::start().await;
    let dir = TempDir::new("logs-json");
    let admin_port = loopback_listener().1;
    let extra = format!(
        "\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntokens = [{{ name = \"ops\", sha256 = \"{}\" }}]\n\n[log]\nformat = \"json\"\nlevel = \"info\"\n\n[audit]\nfile = \"audit.jsonl\"\n",
        sha256_hex(TOKEN)
    );
    let (p, port) = run(&dir, up.addr, &extra).await;
    let http = Http::new();
    assert_eq!(
        http.get(&format!("http://127.0.0.1:{port}/hc/x"), &[])
            .await
            .status,
        StatusCode::OK
    );
    let admin = format!("http://127.0.0.1:{admin_port}");
    let wrong = http
        .send(
            Method::GET,
            &format!("{admin}/api/v1/sessions"),
            &[("authorization", "Bearer wrong")],
            Vec::new(),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let auth = format!("Bearer {TOKEN}");
    let r = http
        .send(
            Method::POST,
            &format!("{admin}/api/v1/reload"),
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    stop(p);

    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for l in &lines {
        for key in ["ts", "level", "target", "message"] {
            assert!(l[key].is_string(), "{key} missing: {l}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "listening" && l["addr"].as_str().is_some()),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no escape codes");

    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(events.iter().all(|e| e["target"] == "audit"), "{audit}");
    assert!(
        events.iter().any(|e| e["kind"] == "admin.unauthorized"),
        "{audit}"
    );
    let reload = events
        .iter()
        .find(|e| e["kind"] == "config.reload")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(reload["outcome"], "success");
    assert_eq!(reload["user"], "ops");
}

/// The JSON lines of `target` in `dir/stderr`.
fn lines_of(dir: &TempDir, target: &str) -> (String, Vec<serde_json::Value>) {
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    let lines = stderr
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["target"] == target)
        .collect();
    (stderr, lines)
}

#[tokio::test]
async fn both_lanes_write_the_same_access_line_fields_and_never_the_query_string() {
    let up = TestUpstream::start().await;
    let dir = TempDir::new("logs-access");
    let extra = "\n[log]\nformat = \"json\"\nlevel = \"info\"\n";
    let (p, port) = run_with(&dir, up.addr, extra, true).await;
    let http = Http::new();
    let url = format!("http://127.0.0.1:{port}/hc/x?token=s3cret-in-query");
    // A bodiless GET on a public route is the fast lane's; a POST is handed to hyper.
    assert_eq!(http.get(&url, &[]).await.status, StatusCode::OK);
    let posted = http.send(Method::POST, &url, &[], b"a=1".to_vec()).await;
    assert_eq!(posted.status, StatusCode::OK);
    // A refusal the gateway makes itself (no session on a protected route), general lane.
    let refused = http
        .get(&format!("http://127.0.0.1:{port}/agent/y"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    stop(p);

    let (stderr, lines) = lines_of(&dir, "access");
    assert_eq!(lines.len(), 3, "{stderr}");
    let keys = |l: &serde_json::Value| {
        let mut k: Vec<String> = l.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let expected: Vec<String> = [
        "bytes",
        "class",
        "duration_ms",
        "lane",
        "level",
        "message",
        "method",
        "path",
        "peer",
        "principal",
        "request_id",
        "session",
        "status",
        "target",
        "ts",
        "user",
    ]
    .map(String::from)
    .to_vec();
    for l in &lines {
        assert_eq!(keys(l), expected, "{l}");
        assert_eq!(l["message"], "request");
        assert_eq!(l["peer"], "127.0.0.1");
        assert_eq!(l["user"], "-");
        assert!(l["duration_ms"].as_f64().unwrap() >= 0.0, "{l}");
        assert!(l["request_id"].as_u64().unwrap() >= 1, "{l}");
    }
    let fast = &lines[0];
    assert_eq!(
        (
            &fast["lane"],
            &fast["method"],
            &fast["path"],
            &fast["status"],
            &fast["class"]
        ),
        (
            &"fast".into(),
            &"GET".into(),
            &"/hc/x".into(),
            &200.into(),
            &"proxy".into()
        )
    );
    let general = &lines[1];
    assert_eq!(
        (
            &general["lane"],
            &general["method"],
            &general["path"],
            &general["status"]
        ),
        (
            &"general".into(),
            &"POST".into(),
            &"/hc/x".into(),
            &200.into()
        )
    );
    let refusal = &lines[2];
    assert_eq!(
        (&refusal["lane"], &refusal["path"], &refusal["status"]),
        (&"general".into(), &"/agent/y".into(), &401.into())
    );
    assert!(refusal["bytes"].as_i64().unwrap() > 0, "{refusal}");
    assert!(
        !stderr.contains("s3cret-in-query"),
        "the query was logged: {stderr}"
    );
}

#[tokio::test]
async fn no_access_line_is_written_when_the_level_leaves_info_out() {
    let up = TestUpstream::start().await;
    let dir = TempDir::new("logs-access-off");
    let extra = "\n[log]\nformat = \"json\"\nlevel = \"warn\"\n";
    let (p, port) = run_with(&dir, up.addr, extra, true).await;
    let http = Http::new();
    let url = format!("http://127.0.0.1:{port}/hc/x");
    assert_eq!(http.get(&url, &[]).await.status, StatusCode::OK);
    stop(p);
    let (stderr, lines) = lines_of(&dir, "access");
    assert!(lines.is_empty(), "{stderr}");
}

/// The audit events in `path` (one JSON object per line).
fn events_in(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn sighup_reopens_the_audit_file_so_lines_after_a_rotation_land_in_a_new_file() {
    let up = TestUpstream::start().await;
    let dir = TempDir::new("logs-rotate");
    let admin_port = loopback_listener().1;
    let extra = format!(
        "\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntokens = [{{ name = \"ops\", sha256 = \"{}\" }}]\n\n[audit]\nfile = \"audit.jsonl\"\n",
        sha256_hex(TOKEN)
    );
    let (p, _port) = run(&dir, up.addr, &extra).await;
    let http = Http::new();
    let sessions = format!("http://127.0.0.1:{admin_port}/api/v1/sessions");
    let refused = || async {
        let r = http
            .send(
                Method::GET,
                &sessions,
                &[("authorization", "Bearer wrong")],
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    };
    refused().await;
    let live = dir.path().join("audit.jsonl");
    let rotated = dir.path().join("audit.jsonl.1");
    // As logrotate does: rename, then `postrotate` sends SIGHUP (the config is unchanged).
    std::fs::rename(&live, &rotated).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !events_in(&live)
        .iter()
        .any(|e| e["kind"] == "config.reload")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload event in a new file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refused().await;
    stop(p);

    let old = events_in(&rotated);
    assert_eq!(
        old.iter().map(|e| e["kind"].clone()).collect::<Vec<_>>(),
        vec![serde_json::Value::from("admin.unauthorized")],
        "only the line before the rotation stays in the rotated file"
    );
    let new = events_in(&live);
    let kinds: Vec<&str> = new.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["config.reload", "admin.unauthorized"], "{new:?}");
    assert_eq!(new[0]["user"], "sighup");
}

#[tokio::test]
async fn text_logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let up = TestUpstream::start().await;
    let dir = TempDir::new("logs-text");
    let (p, port) = run(&dir, up.addr, "\n[log]\nlevel = \"info\"\n").await;
    let http = Http::new();
    assert_eq!(
        http.get(&format!("http://127.0.0.1:{port}/hc/x"), &[])
            .await
            .status,
        StatusCode::OK
    );
    stop(p);
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(stderr.contains("listening"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes in: {stderr:?}");
}

#[test]
fn an_unknown_log_format_or_level_is_a_config_error() {
    let dir = TempDir::new("logs-bad");
    let p = dir.path().join("c.toml");
    let text = base_config(UNSERVED_PORT, "127.0.0.1:9".parse().unwrap(), "")
        + "\n[log]\nformat = \"xml\"\nlevel = \"loud[\"\n\n[audit]\nfile = \"no-such-dir/a.jsonl\"\n";
    std::fs::write(&p, text).unwrap();
    let e = portcullis::config::Config::load(&p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("log.format: unknown log format \"xml\""), "{e}");
    assert!(e.contains("log.level: invalid level"), "{e}");
    assert!(e.contains("audit.file: the directory of"), "{e}");
}
