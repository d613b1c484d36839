//! Load and soak driver for `bench/load.sh` (issue 9, item 4). Loopback only; every mode ends
//! by itself after a bounded time.
//!
//! * `login`     — signs in through the real native login (`GET /normal`, `POST /normal`) and
//!   prints session cookies, one a line.
//! * `conns`     — (a) many concurrent keep-alive connections, each with a session cookie,
//!   all open at once, each sending a request every `--interval-ms`; every error counts.
//! * `slowloris` — (c) a normal client's latency (keep-alive and new connections, fixed rate)
//!   without and then with slow connections that trickle a request head one byte at a time.
//! * `flood`     — (d) concurrent wrong-password `POST /normal` with valid CSRF tokens for
//!   distinct user names, while a legitimate user signs in now and then.
//! * `soak`      — (e) peak req/s (closed loop), then a fixed rate (open loop, latency counted
//!   from the scheduled send time when behind) for `--secs`, sampling the gateway's RSS and
//!   open file descriptors; then the same rate straight at the upstream for comparison.
//!
//! Output: progress on stderr; `RESULT key=value` lines on stdout for the script.

// A measurement tool, not the gateway: failing loudly on a broken setup is what it should do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION, RETRY_AFTER, SET_COOKIE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::time::sleep_until;

#[derive(Parser)]
#[command(name = "load", about = "load and soak driver for bench/load.sh")]
struct Cli {
    /// Runtime threads of this load generator.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Native login; prints `portcullis=<token>` once per session.
    Login {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        user: String,
        #[arg(long, env = "LOAD_PASSWORD")]
        password: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// (a) concurrent keep-alive connections with sessions.
    Conns {
        #[arg(long)]
        addr: SocketAddr,
        /// File with one `name=value` session cookie a line; connections use them in turn.
        #[arg(long)]
        cookies: std::path::PathBuf,
        #[arg(long, default_value = "/app")]
        path: String,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Connections being opened at once.
        #[arg(long, default_value_t = 256)]
        connect_concurrency: usize,
        /// How long all connections stay open together, sending requests.
        #[arg(long, default_value_t = 30)]
        hold_secs: u64,
        /// Gap between two requests on one connection (keep it under server.header_timeout).
        #[arg(long, default_value_t = 3000)]
        interval_ms: u64,
        /// Gateway process to sample (RSS, open file descriptors).
        #[arg(long)]
        pid: Option<u32>,
    },
    /// (c) slowloris connections against a normal client's latency.
    Slowloris {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        cookies: std::path::PathBuf,
        #[arg(long, default_value = "/app")]
        path: String,
        #[arg(long, default_value_t = 1000)]
        slow: usize,
        /// Connections that connect and send nothing at all.
        #[arg(long, default_value_t = 10)]
        silent: usize,
        /// One byte per slow connection every this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        byte_interval_ms: u64,
        /// Length of each phase (without, then with the slow connections).
        #[arg(long, default_value_t = 30)]
        phase_secs: u64,
        /// Normal client: requests/s on keep-alive connections.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long, default_value_t = 4)]
        normal_connections: usize,
        /// Normal client: requests/s that each open a new connection.
        #[arg(long, default_value_t = 20.0)]
        probe_rate: f64,
        #[arg(long)]
        pid: Option<u32>,
    },
    /// (d) password-guessing flood and a legitimate login.
    Flood {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value = "/normal")]
        path: String,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 30)]
        secs: u64,
        /// Client addresses the flood comes from (X-Forwarded-For through a trusted proxy);
        /// 0: a new address for every attempt.
        #[arg(long, default_value_t = 64)]
        ip_pool: usize,
        #[arg(long)]
        legit_user: String,
        #[arg(long, env = "LOAD_LEGIT_PASSWORD")]
        legit_password: String,
        #[arg(long, default_value = "192.0.2.10")]
        legit_ip: String,
        #[arg(long, default_value_t = 5)]
        legit_logins: usize,
        /// The first legitimate login starts this long after the flood.
        #[arg(long, default_value_t = 3000)]
        legit_delay_ms: u64,
        /// Wait before the legitimate user tries again after a 503.
        #[arg(long, default_value_t = 1000)]
        legit_retry_ms: u64,
    },
    /// (e) peak, then a fixed rate for a long time, then the same rate against the upstream.
    Soak {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        cookies: std::path::PathBuf,
        #[arg(long, default_value = "/app")]
        path: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 5)]
        peak_secs: u64,
        /// Fraction of the peak to hold.
        #[arg(long, default_value_t = 0.5)]
        fraction: f64,
        /// Fixed rate instead of fraction × measured peak.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 600)]
        secs: u64,
        #[arg(long, default_value_t = 10)]
        sample_secs: u64,
        #[arg(long)]
        pid: Option<u32>,
        /// The upstream, for the same fixed rate without the gateway.
        #[arg(long)]
        direct: Option<SocketAddr>,
        #[arg(long, default_value_t = 60)]
        direct_secs: u64,
        /// A plain reverse proxy (nginx) to the same upstream, measured after the gateway the
        /// same way, so the added latency of the gateway can be read against it.
        #[arg(long)]
        compare: Option<SocketAddr>,
        /// Interleaved rounds for the upstream / gateway / comparison measurement.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

// ------------------------------------------------------------------------------ HTTP client

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(tx)
}

/// What one request got back (the body is read to the end).
struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

async fn send(tx: &mut Sender, req: Request<Full<Bytes>>) -> Result<Reply, String> {
    tx.ready().await.map_err(|e| format!("connection: {e}"))?;
    let resp = tx
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A GET with a cookie, built for every request (cheap next to the network round trip).
fn get(addr: SocketAddr, path: &str, cookie: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(HOST, addr.to_string());
    if !cookie.is_empty() {
        b = b.header(COOKIE, cookie);
    }
    b.body(Full::new(Bytes::new())).expect("request")
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of cookie `name` among the `Set-Cookie` headers.
fn set_cookie(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers.get_all(SET_COOKIE).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let first = v.split(';').next()?;
        let (n, val) = first.split_once('=')?;
        (n.trim() == name && !val.is_empty()).then(|| val.to_owned())
    })
}

fn csrf_token(body: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    let marker = "name=\"csrf_token\" value=\"";
    let start = s.find(marker)? + marker.len();
    let end = s[start..].find('"')? + start;
    Some(s[start..end].to_owned())
}

/// The login form: (pre-login cookie value, CSRF token).
async fn login_form(
    tx: &mut Sender,
    addr: SocketAddr,
    path: &str,
) -> Result<(String, String), String> {
    let r = send(tx, get(addr, path, "")).await?;
    if r.status != StatusCode::OK {
        return Err(format!("GET {path} answered {}", r.status));
    }
    let nonce = set_cookie(&r.headers, "portcullis-login").ok_or("no portcullis-login cookie")?;
    let csrf = csrf_token(&r.body).ok_or("no csrf_token in the form")?;
    Ok((nonce, csrf))
}

fn login_post(
    addr: SocketAddr,
    path: &str,
    nonce: &str,
    fields: &[(&str, &str)],
    xff: Option<&str>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(COOKIE, format!("portcullis-login={nonce}"));
    if let Some(ip) = xff {
        b = b.header("x-forwarded-for", ip);
    }
    b.body(Full::new(Bytes::from(form_encode(fields))))
        .expect("request")
}

/// One native login on a fresh connection: the POST's status and the session cookie (on 302).
async fn native_login(
    addr: SocketAddr,
    user: &str,
    password: &str,
    xff: Option<&str>,
) -> Result<(StatusCode, Option<String>), String> {
    let mut tx = connect(addr).await?;
    let (nonce, csrf) = login_form(&mut tx, addr, "/normal").await?;
    let fields = [
        ("username", user),
        ("password", password),
        ("csrf_token", csrf.as_str()),
        ("rd", "/"),
    ];
    let r = send(&mut tx, login_post(addr, "/normal", &nonce, &fields, xff)).await?;
    let session = set_cookie(&r.headers, "portcullis").map(|v| format!("portcullis={v}"));
    if r.status == StatusCode::FOUND && r.headers.get(LOCATION).is_none() {
        return Err("302 without Location".into());
    }
    Ok((r.status, session))
}

fn read_cookies(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!v.is_empty(), "{}: no cookies", path.display());
    v
}

// ------------------------------------------------------------------------------ statistics

/// Latencies in microseconds.
#[derive(Default)]
struct Lat(Vec<u32>);

impl Lat {
    fn push(&mut self, d: Duration) {
        self.0
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }
    fn extend(&mut self, o: Lat) {
        self.0.extend(o.0);
    }
    /// Percentile `q` (0..=1) in milliseconds; NaN when empty.
    fn ms(&mut self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let n = self.0.len();
        let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        f64::from(self.0[i]) / 1000.0
    }
}

fn result(key: &str, value: impl std::fmt::Display) {
    println!("RESULT {key}={value}");
}

/// (RSS in MiB, open file descriptors) of a process, from /proc.
fn proc_sample(pid: u32) -> Option<(f64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((kib / 1024.0, fds))
}

/// CPU time so far, in clock ticks (USER_HZ, 100 on Linux): the machine (busy and total, from
/// /proc/stat), this load generator and the gateway.
struct CpuSnap {
    busy: u64,
    total: u64,
    own: u64,
    gateway: u64,
    at: Instant,
}

/// utime + stime of a process (all its threads), in ticks.
fn proc_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

impl CpuSnap {
    fn take(pid: Option<u32>) -> CpuSnap {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let at = |i: usize| cpu.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        CpuSnap {
            busy,
            total: busy + at(3) + at(4),
            own: proc_ticks("self"),
            gateway: pid.map_or(0, |p| proc_ticks(&p.to_string())),
            at: Instant::now(),
        }
    }

    /// CPU use between `before` and now: the machine (% busy), this generator and the gateway
    /// (% of one core).
    fn report(&self, prefix: &str, before: &CpuSnap) {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(0.001);
        let machine = self.busy.saturating_sub(before.busy) as f64
            / self.total.saturating_sub(before.total).max(1) as f64;
        result(
            &format!("{prefix}_machine_cpu_pct"),
            format!("{:.0}", machine * 100.0),
        );
        result(
            &format!("{prefix}_generator_cpu_pct"),
            format!("{:.0}", self.own.saturating_sub(before.own) as f64 / secs),
        );
        result(
            &format!("{prefix}_gateway_cpu_pct"),
            format!(
                "{:.0}",
                self.gateway.saturating_sub(before.gateway) as f64 / secs
            ),
        );
    }
}

// ------------------------------------------------------------------------------ load shapes

#[derive(Default)]
struct RunStats {
    lat: Lat,
    ok: u64,
    bad_status: u64,
    errors: u64,
    first_error: Option<String>,
}

impl RunStats {
    fn merge(&mut self, o: RunStats) {
        self.lat.extend(o.lat);
        self.ok += o.ok;
        self.bad_status += o.bad_status;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

/// Closed loop: `conns` connections, each sending its next request as soon as the last one is
/// answered, for `secs`. Returns requests/s and the stats.
async fn closed_loop(
    addr: SocketAddr,
    path: &str,
    cookies: &[String],
    conns: usize,
    secs: f64,
) -> (f64, RunStats) {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for j in 0..conns {
        let path = path.to_owned();
        let cookie = cookies[j % cookies.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut st = RunStats::default();
            let mut tx: Option<Sender> = None;
            while Instant::now() < end {
                if tx.is_none() {
                    match connect(addr).await {
                        Ok(t) => tx = Some(t),
                        Err(e) => {
                            st.errors += 1;
                            st.first_error.get_or_insert(e);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(t) = tx.as_mut() else { continue };
                let t0 = Instant::now();
                match send(t, get(addr, &path, &cookie)).await {
                    Ok(r) if r.status == StatusCode::OK => {
                        st.ok += 1;
                        st.lat.push(t0.elapsed());
                    }
                    Ok(r) => {
                        st.bad_status += 1;
                        st.first_error.get_or_insert(format!("status {}", r.status));
                    }
                    Err(e) => {
                        st.errors += 1;
                        st.first_error.get_or_insert(e);
                        tx = None;
                    }
                }
            }
            st
        }));
    }
    let mut all = RunStats::default();
    for t in tasks {
        all.merge(t.await.expect("task"));
    }
    let took = start.elapsed().as_secs_f64();
    (all.ok as f64 / took, all)
}

/// Open loop at a fixed `rate` for `secs`, spread over `conns` connections (each with its own
/// evenly spaced schedule, like wrk2). A request's latency counts from its scheduled time when
/// the connection was still busy then (no coordinated omission), else from when it was sent
/// (the timer's millisecond granularity is not charged to the server). `fresh`: every request
/// opens a new connection, and the connect time is part of its latency.
async fn fixed_rate(
    addr: SocketAddr,
    path: &str,
    cookies: &[String],
    conns: usize,
    rate: f64,
    secs: f64,
    fresh: bool,
) -> RunStats {
    let conns = conns.max(1);
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for j in 0..conns {
        let path = path.to_owned();
        let cookie = cookies[j % cookies.len()].clone();
        let first = start + interval.mul_f64(j as f64 / conns as f64);
        tasks.push(tokio::spawn(async move {
            let mut st = RunStats::default();
            let mut tx: Option<Sender> = None;
            let mut k: u32 = 0;
            loop {
                let sched = first + interval * k;
                k += 1;
                if sched >= end {
                    break;
                }
                let begin = if Instant::now() < sched {
                    sleep_until(sched.into()).await;
                    Instant::now()
                } else {
                    sched
                };
                if fresh {
                    tx = None;
                }
                if tx.is_none() {
                    match connect(addr).await {
                        Ok(t) => tx = Some(t),
                        Err(e) => {
                            st.errors += 1;
                            st.first_error.get_or_insert(e);
                            continue;
                        }
                    }
                }
                let Some(t) = tx.as_mut() else { continue };
                match send(t, get(addr, &path, &cookie)).await {
                    Ok(r) if r.status == StatusCode::OK => {
                        st.ok += 1;
                        st.lat.push(begin.elapsed());
                    }
                    Ok(r) => {
                        st.bad_status += 1;
                        st.first_error.get_or_insert(format!("status {}", r.status));
                    }
                    Err(e) => {
                        st.errors += 1;
                        st.first_error.get_or_insert(e);
                        tx = None;
                    }
                }
            }
            st
        }));
    }
    let mut all = RunStats::default();
    for t in tasks {
        all.merge(t.await.expect("task"));
    }
    all
}

fn report_run(prefix: &str, st: &mut RunStats, secs: f64) {
    result(&format!("{prefix}_requests"), st.ok);
    result(
        &format!("{prefix}_rps"),
        format!("{:.0}", st.ok as f64 / secs),
    );
    result(
        &format!("{prefix}_p50_ms"),
        format!("{:.3}", st.lat.ms(0.50)),
    );
    result(
        &format!("{prefix}_p99_ms"),
        format!("{:.3}", st.lat.ms(0.99)),
    );
    result(
        &format!("{prefix}_p999_ms"),
        format!("{:.3}", st.lat.ms(0.999)),
    );
    result(
        &format!("{prefix}_max_ms"),
        format!("{:.3}", st.lat.ms(1.0)),
    );
    result(&format!("{prefix}_errors"), st.errors + st.bad_status);
    if let Some(e) = &st.first_error {
        eprintln!("load: {prefix}: first error: {e}");
    }
}

// ------------------------------------------------------------------------------ (a) conns

#[allow(clippy::too_many_arguments)] // one flag each, straight from the command line
async fn conns(
    addr: SocketAddr,
    cookies: Vec<String>,
    path: String,
    n: usize,
    connect_concurrency: usize,
    hold: Duration,
    interval: Duration,
    pid: Option<u32>,
) {
    let gate = Arc::new(Semaphore::new(connect_concurrency.max(1)));
    let established = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (go_tx, go_rx) = watch::channel::<Option<Instant>>(None);
    let t_open = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let gate = Arc::clone(&gate);
        let established = Arc::clone(&established);
        let failed = Arc::clone(&failed);
        let mut go = go_rx.clone();
        let cookie = cookies[i % cookies.len()].clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut st = RunStats::default();
            let mut first_lat = Lat::default();
            // Open and send the first request, a bounded number at a time.
            let permit = gate.acquire().await.expect("semaphore");
            let first = async {
                let mut tx = connect(addr).await?;
                let t0 = Instant::now();
                let r = send(&mut tx, get(addr, &path, &cookie)).await?;
                if r.status != StatusCode::OK {
                    return Err(format!("first request: status {}", r.status));
                }
                Ok::<_, String>((tx, t0.elapsed()))
            }
            .await;
            drop(permit);
            let mut tx = match first {
                Ok((tx, d)) => {
                    st.ok += 1;
                    first_lat.push(d);
                    established.fetch_add(1, Ordering::AcqRel);
                    tx
                }
                Err(e) => {
                    st.errors += 1;
                    st.first_error = Some(e);
                    failed.fetch_add(1, Ordering::AcqRel);
                    return (st, first_lat);
                }
            };
            // Everyone open: then a request every `interval` on this same connection.
            let end = loop {
                if let Some(end) = *go.borrow_and_update() {
                    break end;
                }
                if go.changed().await.is_err() {
                    return (st, first_lat);
                }
            };
            let offset = interval.mul_f64((i % 1000) as f64 / 1000.0);
            let mut next = Instant::now() + offset;
            while next < end {
                sleep_until(next.into()).await;
                let t0 = Instant::now();
                match send(&mut tx, get(addr, &path, &cookie)).await {
                    Ok(r) if r.status == StatusCode::OK => {
                        st.ok += 1;
                        st.lat.push(t0.elapsed());
                    }
                    Ok(r) => {
                        st.bad_status += 1;
                        st.first_error.get_or_insert(format!("status {}", r.status));
                    }
                    Err(e) => {
                        // No reconnect: a dropped keep-alive connection is a failure here.
                        st.errors += 1;
                        st.first_error.get_or_insert(e);
                        break;
                    }
                }
                next += interval;
            }
            // Hold the connection until every task is done with its requests.
            sleep_until(end.into()).await;
            drop(tx);
            (st, first_lat)
        }));
    }
    // Wait for every connection to be open (or failed), at most 180 s.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last_print = Instant::now();
    loop {
        let e = established.load(Ordering::Acquire);
        let f = failed.load(Ordering::Acquire);
        if e + f >= n || Instant::now() > deadline {
            break;
        }
        if last_print.elapsed() > Duration::from_secs(2) {
            eprintln!("load: conns: {e} open, {f} failed");
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_secs = t_open.elapsed().as_secs_f64();
    let open = established.load(Ordering::Acquire);
    eprintln!(
        "load: conns: {open} of {n} open after {open_secs:.1}s; holding them {}s",
        hold.as_secs()
    );
    let at_open = pid.and_then(proc_sample);
    let end = Instant::now() + hold;
    let _ = go_tx.send(Some(end));
    // Sample the gateway while everything is open.
    let mut max_rss = at_open.map_or(0.0, |s| s.0);
    let mut max_fds = at_open.map_or(0, |s| s.1);
    let mut min_fds = at_open.map_or(usize::MAX, |s| s.1);
    if let Some(pid) = pid {
        while Instant::now() + Duration::from_secs(1) < end {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some((r, f)) = proc_sample(pid) {
                max_rss = max_rss.max(r);
                max_fds = max_fds.max(f);
                min_fds = min_fds.min(f);
            }
        }
    }
    let mut all = RunStats::default();
    let mut first = Lat::default();
    for t in tasks {
        let (st, f) = t.await.expect("task");
        all.merge(st);
        first.extend(f);
    }
    let secs = open_secs + hold.as_secs_f64();
    result("a_connections", n);
    result("a_open", open);
    result("a_open_secs", format!("{open_secs:.1}"));
    result("a_hold_secs", hold.as_secs());
    result("a_requests", all.ok);
    result(
        "a_rps_hold",
        format!(
            "{:.0}",
            all.ok.saturating_sub(open as u64) as f64 / hold.as_secs_f64()
        ),
    );
    result("a_connect_failures", failed.load(Ordering::Acquire));
    result("a_bad_status", all.bad_status);
    result("a_errors", all.errors + all.bad_status);
    // First requests (while 10,000 connections are being opened) and the requests while held.
    result("a_first_p50_ms", format!("{:.3}", first.ms(0.50)));
    result("a_first_p99_ms", format!("{:.3}", first.ms(0.99)));
    result("a_p50_ms", format!("{:.3}", all.lat.ms(0.50)));
    result("a_p99_ms", format!("{:.3}", all.lat.ms(0.99)));
    result("a_max_ms", format!("{:.3}", all.lat.ms(1.0)));
    if pid.is_some() {
        result(
            "a_gw_fds_min_while_open",
            if min_fds == usize::MAX { 0 } else { min_fds },
        );
        result("a_gw_fds_max", max_fds);
        result("a_gw_rss_max_mib", format!("{max_rss:.1}"));
    }
    if let Some(e) = &all.first_error {
        eprintln!("load: conns: first error: {e}");
    }
    eprintln!(
        "load: conns: {} requests over {secs:.0}s, {} errors",
        all.ok,
        all.errors + all.bad_status
    );
}

// ------------------------------------------------------------------------------ (c) slowloris

#[derive(Default)]
struct Slow {
    opened: AtomicU64,
    connect_errors: AtomicU64,
    open_now: AtomicU64,
    closed: AtomicU64,
    /// Lifetimes (s) of connections the gateway closed.
    lifetimes: Mutex<Vec<f64>>,
    /// Ages (s) of connections still open when the attack stopped.
    ages_at_stop: Mutex<Vec<f64>>,
    /// First status line bytes the gateway sent before closing, by status code.
    answers: Mutex<BTreeMap<String, u64>>,
}

enum Outcome {
    Closed,
    Stopped,
}

/// One slowloris connection at a time, reconnecting when the gateway closes it (as an attacker
/// would), until `stop`. `silent`: connect and never send a byte.
async fn slow_conn(
    addr: SocketAddr,
    interval: Duration,
    first_delay: Duration,
    silent: bool,
    mut stop: watch::Receiver<bool>,
    st: Arc<Slow>,
) {
    let head = format!("GET /app HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: slow\r\nX-Slow: ");
    let mut delay = first_delay;
    while !*stop.borrow() {
        let t0 = Instant::now();
        let mut s = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(_) => {
                st.connect_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        st.opened.fetch_add(1, Ordering::Relaxed);
        st.open_now.fetch_add(1, Ordering::Relaxed);
        let mut next = Instant::now() + delay;
        delay = interval;
        let mut buf = [0u8; 1024];
        let mut answer: Option<String> = None;
        let mut wrote_head = silent;
        let outcome = loop {
            if !wrote_head {
                wrote_head = true;
                if s.write_all(head.as_bytes()).await.is_err() {
                    break Outcome::Closed;
                }
            }
            tokio::select! {
                _ = stop.changed() => break Outcome::Stopped,
                r = s.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break Outcome::Closed,
                    Ok(n) => {
                        if answer.is_none() {
                            let line = String::from_utf8_lossy(&buf[..n]);
                            let code = line.split_whitespace().nth(1).unwrap_or("?").to_owned();
                            answer = Some(code);
                        }
                    }
                },
                _ = sleep_until(next.into()), if !silent => {
                    if s.write_all(b"a").await.is_err() {
                        break Outcome::Closed;
                    }
                    next += interval;
                }
            }
        };
        st.open_now.fetch_sub(1, Ordering::Relaxed);
        let age = t0.elapsed().as_secs_f64();
        match outcome {
            Outcome::Closed => {
                st.closed.fetch_add(1, Ordering::Relaxed);
                st.lifetimes.lock().expect("lock").push(age);
                let key = answer.unwrap_or_else(|| "none".into());
                *st.answers.lock().expect("lock").entry(key).or_default() += 1;
            }
            Outcome::Stopped => {
                st.ages_at_stop.lock().expect("lock").push(age);
                return;
            }
        }
    }
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// The normal client for one phase: keep-alive and new-connection requests at fixed rates.
async fn normal_client(
    addr: SocketAddr,
    path: &str,
    cookies: &[String],
    conns: usize,
    rate: f64,
    probe_rate: f64,
    secs: f64,
) -> (RunStats, RunStats) {
    let ka = fixed_rate(addr, path, cookies, conns, rate, secs, false);
    let fresh = fixed_rate(addr, path, cookies, 2, probe_rate, secs, true);
    tokio::join!(ka, fresh)
}

#[allow(clippy::too_many_arguments)] // one flag each, straight from the command line
async fn slowloris(
    addr: SocketAddr,
    cookies: Vec<String>,
    path: String,
    slow: usize,
    silent: usize,
    interval: Duration,
    phase: Duration,
    rate: f64,
    normal_conns: usize,
    probe_rate: f64,
    pid: Option<u32>,
) {
    let secs = phase.as_secs_f64();
    eprintln!("load: slowloris: baseline {secs:.0}s at {rate} req/s keep-alive + {probe_rate} req/s new connections");
    let (mut base_ka, mut base_new) =
        normal_client(addr, &path, &cookies, normal_conns, rate, probe_rate, secs).await;
    report_run("c_base_ka", &mut base_ka, secs);
    report_run("c_base_new", &mut base_new, secs);

    let st = Arc::new(Slow::default());
    let silent_st = Arc::new(Slow::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let t_attack = Instant::now();
    for i in 0..slow {
        // Spread the connects over ~2 s and the byte timers over one interval.
        let first = interval.mul_f64((i % 997) as f64 / 997.0);
        tasks.push(tokio::spawn(slow_conn(
            addr,
            interval,
            first,
            false,
            stop_rx.clone(),
            Arc::clone(&st),
        )));
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for _ in 0..silent {
        tasks.push(tokio::spawn(slow_conn(
            addr,
            interval,
            interval,
            true,
            stop_rx.clone(),
            Arc::clone(&silent_st),
        )));
    }
    let ramp = Instant::now() + Duration::from_secs(10);
    while (st.open_now.load(Ordering::Relaxed) as usize) < slow && Instant::now() < ramp {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_at_start = st.open_now.load(Ordering::Relaxed);
    let fds_at_start = pid.and_then(proc_sample).map_or(0, |s| s.1);
    eprintln!("load: slowloris: {open_at_start} slow connections open (gateway fds {fds_at_start}); measuring {secs:.0}s");
    let (mut ka, mut new) =
        normal_client(addr, &path, &cookies, normal_conns, rate, probe_rate, secs).await;
    let open_at_end = st.open_now.load(Ordering::Relaxed);
    let attack_secs = t_attack.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    report_run("c_attack_ka", &mut ka, secs);
    report_run("c_attack_new", &mut new, secs);
    let mut life = st.lifetimes.lock().expect("lock").clone();
    let mut ages = st.ages_at_stop.lock().expect("lock").clone();
    result("c_slow", slow);
    result("c_attack_secs", format!("{attack_secs:.0}"));
    result("c_slow_open_at_start", open_at_start);
    result("c_slow_open_at_end", open_at_end);
    result("c_slow_opened", st.opened.load(Ordering::Relaxed));
    result(
        "c_slow_connect_errors",
        st.connect_errors.load(Ordering::Relaxed),
    );
    result("c_slow_closed", st.closed.load(Ordering::Relaxed));
    result(
        "c_slow_life_min_s",
        format!("{:.1}", quantile(&mut life, 0.0)),
    );
    result(
        "c_slow_life_p50_s",
        format!("{:.1}", quantile(&mut life, 0.5)),
    );
    result(
        "c_slow_life_max_s",
        format!("{:.1}", quantile(&mut life, 1.0)),
    );
    result(
        "c_slow_oldest_at_stop_s",
        format!("{:.1}", quantile(&mut ages, 1.0)),
    );
    let answers = st.answers.lock().expect("lock");
    result(
        "c_slow_answers",
        answers
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    let mut silent_ages = silent_st.ages_at_stop.lock().expect("lock").clone();
    result("c_silent", silent);
    result("c_silent_closed", silent_st.closed.load(Ordering::Relaxed));
    result(
        "c_silent_oldest_at_stop_s",
        format!("{:.1}", quantile(&mut silent_ages, 1.0)),
    );
}

// ------------------------------------------------------------------------------ (d) flood

#[derive(Default)]
struct FloodStats {
    statuses: BTreeMap<u16, u64>,
    retry_after_503: u64,
    form_errors: u64,
    errors: u64,
    first_error: Option<String>,
    lat: Lat,
    /// Seconds into the flood of the first lockout answer (429).
    first_locked: Option<f64>,
}

fn flood_ip(k: usize) -> String {
    // 10.0.0.0/8 addresses, one per index.
    format!(
        "10.{}.{}.{}",
        (k >> 16) & 255,
        (k >> 8) & 255,
        (k & 255).max(1)
    )
}

#[allow(clippy::too_many_arguments)] // one flag each, straight from the command line
async fn flood(
    addr: SocketAddr,
    path: String,
    concurrency: usize,
    secs: u64,
    ip_pool: usize,
    legit_user: String,
    legit_password: String,
    legit_ip: String,
    legit_logins: usize,
    legit_delay: Duration,
    legit_retry: Duration,
) {
    let start = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let counter = Arc::new(AtomicUsize::new(0));
    let tag = std::process::id();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let counter = Arc::clone(&counter);
        let path = path.clone();
        let stop = stop_rx.clone();
        workers.push(tokio::spawn(async move {
            let mut st = FloodStats::default();
            let mut tx: Option<Sender> = None;
            while !*stop.borrow() {
                if tx.is_none() {
                    match connect(addr).await {
                        Ok(t) => tx = Some(t),
                        Err(e) => {
                            st.errors += 1;
                            st.first_error.get_or_insert(e);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(t) = tx.as_mut() else { continue };
                let (nonce, csrf) = match login_form(t, addr, &path).await {
                    Ok(x) => x,
                    Err(e) => {
                        st.form_errors += 1;
                        st.first_error.get_or_insert(e);
                        tx = None;
                        continue;
                    }
                };
                let k = counter.fetch_add(1, Ordering::Relaxed);
                let user = format!("guess{tag}-{k}");
                let password = format!("Winter2024!{k}");
                let ip = flood_ip(if ip_pool == 0 { k } else { k % ip_pool });
                let fields = [
                    ("username", user.as_str()),
                    ("password", password.as_str()),
                    ("csrf_token", csrf.as_str()),
                    ("rd", "/"),
                ];
                let t0 = Instant::now();
                match send(t, login_post(addr, &path, &nonce, &fields, Some(&ip))).await {
                    Ok(r) => {
                        st.lat.push(t0.elapsed());
                        *st.statuses.entry(r.status.as_u16()).or_default() += 1;
                        if r.status == StatusCode::SERVICE_UNAVAILABLE
                            && r.headers.contains_key(RETRY_AFTER)
                        {
                            st.retry_after_503 += 1;
                        }
                        if r.status == StatusCode::TOO_MANY_REQUESTS && st.first_locked.is_none() {
                            st.first_locked = Some(start.elapsed().as_secs_f64());
                        }
                    }
                    Err(e) => {
                        st.errors += 1;
                        st.first_error.get_or_insert(e);
                        tx = None;
                    }
                }
            }
            st
        }));
    }

    // The legitimate user: logins spread over the flood, each on a new connection (a browser),
    // retrying after a 503 like a person clicking again. Each runs on its own, so a slow one
    // does not push the next one past the flood; the flood lasts until the last one is done.
    let gap = Duration::from_secs(secs)
        .saturating_sub(legit_delay)
        .checked_div(u32::try_from(legit_logins.max(1)).unwrap_or(1))
        .unwrap_or_default();
    let mut logins = Vec::new();
    for i in 0..legit_logins {
        let at = start + legit_delay + gap * u32::try_from(i).unwrap_or(0);
        let (user, password, ip) = (legit_user.clone(), legit_password.clone(), legit_ip.clone());
        logins.push(tokio::spawn(async move {
            sleep_until(at.into()).await;
            let t0 = Instant::now();
            let at_s = start.elapsed().as_secs_f64();
            let mut attempts = 0u32;
            let mut busy = 0u32;
            let outcome = loop {
                attempts += 1;
                match native_login(addr, &user, &password, Some(&ip)).await {
                    Ok((StatusCode::FOUND, Some(_))) => break "ok".to_owned(),
                    Ok((StatusCode::SERVICE_UNAVAILABLE, _)) => {
                        busy += 1;
                        if t0.elapsed() > Duration::from_secs(30) {
                            break "gave up after 30 s of 503".to_owned();
                        }
                        tokio::time::sleep(legit_retry).await;
                    }
                    Ok((s, _)) => break format!("status {s}"),
                    Err(e) => break format!("error: {e}"),
                }
            };
            let took = t0.elapsed().as_secs_f64();
            eprintln!(
                "load: flood: legitimate login {} (at {at_s:.1}s): {outcome} in {took:.2}s ({attempts} attempts, {busy} × 503)",
                i + 1
            );
            (took, attempts, busy, outcome, at_s)
        }));
    }
    let mut legit = Vec::new();
    for l in logins {
        legit.push(l.await.expect("task"));
    }
    sleep_until((start + Duration::from_secs(secs)).into()).await;
    let _ = stop_tx.send(true);
    let mut all = FloodStats::default();
    for w in workers {
        let st = w.await.expect("task");
        for (k, v) in st.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
        all.retry_after_503 += st.retry_after_503;
        all.form_errors += st.form_errors;
        all.errors += st.errors;
        if all.first_error.is_none() {
            all.first_error = st.first_error;
        }
        all.lat.extend(st.lat);
        all.first_locked = match (all.first_locked, st.first_locked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let took = start.elapsed().as_secs_f64();
    let total: u64 = all.statuses.values().sum();
    result("d_concurrency", concurrency);
    result("d_secs", format!("{took:.0}"));
    result(
        "d_first_429_s",
        all.first_locked
            .map_or("never".to_owned(), |t| format!("{t:.1}")),
    );
    result("d_ip_pool", ip_pool);
    result("d_posts", total);
    result("d_posts_per_s", format!("{:.0}", total as f64 / took));
    result(
        "d_statuses",
        all.statuses
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    result("d_503_with_retry_after", all.retry_after_503);
    result("d_form_errors", all.form_errors);
    result("d_errors", all.errors);
    result("d_post_p50_ms", format!("{:.1}", all.lat.ms(0.5)));
    result("d_post_p99_ms", format!("{:.1}", all.lat.ms(0.99)));
    if let Some(e) = &all.first_error {
        eprintln!("load: flood: first error: {e}");
    }
    let ok = legit.iter().filter(|l| l.3 == "ok").count();
    let mut times: Vec<f64> = legit.iter().map(|l| l.0).collect();
    result("d_legit_logins", legit.len());
    result("d_legit_ok", ok);
    result(
        "d_legit_times_s",
        legit
            .iter()
            .map(|l| format!("{:.2}", l.0))
            .collect::<Vec<_>>()
            .join(","),
    );
    result(
        "d_legit_at_s",
        legit
            .iter()
            .map(|l| format!("{:.0}", l.4))
            .collect::<Vec<_>>()
            .join(","),
    );
    result(
        "d_legit_attempts",
        legit
            .iter()
            .map(|l| l.1.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    result("d_legit_max_s", format!("{:.2}", quantile(&mut times, 1.0)));
    result("d_legit_p50_s", format!("{:.2}", quantile(&mut times, 0.5)));
    let failures: Vec<&str> = legit
        .iter()
        .filter(|l| l.3 != "ok")
        .map(|l| l.3.as_str())
        .collect();
    result(
        "d_legit_failures",
        if failures.is_empty() {
            "none".to_owned()
        } else {
            failures.join(";")
        },
    );
}

// ------------------------------------------------------------------------------ (e) soak

#[allow(clippy::too_many_arguments)] // one flag each, straight from the command line
async fn soak(
    addr: SocketAddr,
    cookies: Vec<String>,
    path: String,
    conns: usize,
    peak_secs: u64,
    fraction: f64,
    fixed: Option<f64>,
    secs: u64,
    sample_secs: u64,
    pid: Option<u32>,
    direct: Option<SocketAddr>,
    direct_secs: u64,
    compare: Option<SocketAddr>,
    rounds: usize,
) {
    // Warm-up, then the closed-loop peak.
    let _ = closed_loop(addr, &path, &cookies, conns, 1.0).await;
    let c0 = CpuSnap::take(pid);
    let (peak, mut pst) = closed_loop(addr, &path, &cookies, conns, peak_secs as f64).await;
    CpuSnap::take(pid).report("e_peak", &c0);
    result("e_peak_rps", format!("{peak:.0}"));
    result("e_peak_p99_ms", format!("{:.3}", pst.lat.ms(0.99)));
    result("e_peak_errors", pst.errors + pst.bad_status);
    let rate = fixed.unwrap_or(peak * fraction).max(1.0);
    result("e_rate", format!("{rate:.0}"));
    eprintln!("load: soak: peak {peak:.0} req/s; holding {rate:.0} req/s for {secs}s");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let samples: Arc<Mutex<Vec<(f64, f64, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let sampler = pid.map(|pid| {
        let samples = Arc::clone(&samples);
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(sample_secs.max(1)));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => {
                        if let Some((r, f)) = proc_sample(pid) {
                            samples.lock().expect("lock").push((t0.elapsed().as_secs_f64(), r, f));
                        }
                        return;
                    }
                }
                if let Some((r, f)) = proc_sample(pid) {
                    eprintln!(
                        "load: soak: t={:>4.0}s gateway RSS {r:.1} MiB, {f} fds",
                        t0.elapsed().as_secs_f64()
                    );
                    samples
                        .lock()
                        .expect("lock")
                        .push((t0.elapsed().as_secs_f64(), r, f));
                }
            }
        })
    });
    let cpu0 = CpuSnap::take(pid);
    let mut st = fixed_rate(addr, &path, &cookies, conns, rate, secs as f64, false).await;
    let cpu1 = CpuSnap::take(pid);
    let _ = stop_tx.send(true);
    if let Some(s) = sampler {
        let _ = s.await;
    }
    report_run("e_soak", &mut st, secs as f64);
    cpu1.report("e_soak", &cpu0);
    let samples = samples.lock().expect("lock").clone();
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let max_rss = samples.iter().map(|s| s.1).fold(0.0, f64::max);
        let max_fds = samples.iter().map(|s| s.2).max().unwrap_or(0);
        result("e_samples", samples.len());
        result("e_rss_first_mib", format!("{:.1}", first.1));
        result("e_rss_last_mib", format!("{:.1}", last.1));
        result("e_rss_max_mib", format!("{max_rss:.1}"));
        result("e_fds_first", first.2);
        result("e_fds_last", last.2);
        result("e_fds_max", max_fds);
        result(
            "e_series",
            samples
                .iter()
                .map(|s| format!("{:.0}s:{:.1}MiB:{}fd", s.0, s.1, s.2))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    if let Some(up) = direct {
        // The same fixed rate and connections straight at the upstream, through the gateway
        // again and through the comparison proxy, in interleaved rounds (as bench/run.sh does):
        // one slow stretch of the machine then weighs on one round, not on one side. The long
        // soak above is not used for the difference: it includes rare events a short run may
        // miss, so both sides are measured the same way.
        let d = direct_secs.min(secs).max(1);
        let rounds = rounds.max(1);
        let seg = (d as f64 / rounds as f64).max(1.0);
        eprintln!(
            "load: soak: {rate:.0} req/s, {rounds} rounds of {seg:.0}s: upstream, gateway{}",
            if compare.is_some() {
                ", comparison proxy"
            } else {
                ""
            }
        );
        let (mut all_d, mut all_g, mut all_c) = (
            RunStats::default(),
            RunStats::default(),
            RunStats::default(),
        );
        let (mut added, mut cmp_added) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let c0 = CpuSnap::take(None);
            let mut ds = fixed_rate(up, &path, &cookies, conns, rate, seg, false).await;
            if round == 0 {
                CpuSnap::take(None).report("e_direct", &c0);
            }
            let c0 = CpuSnap::take(pid);
            let mut gs = fixed_rate(addr, &path, &cookies, conns, rate, seg, false).await;
            if round == 0 {
                CpuSnap::take(pid).report("e_gw_short", &c0);
            }
            let direct_p99 = ds.lat.ms(0.99);
            added.push(gs.lat.ms(0.99) - direct_p99);
            if let Some(other) = compare {
                let c0 = CpuSnap::take(None);
                let mut ns = fixed_rate(other, &path, &cookies, conns, rate, seg, false).await;
                if round == 0 {
                    CpuSnap::take(None).report("e_cmp", &c0);
                }
                cmp_added.push(ns.lat.ms(0.99) - direct_p99);
                all_c.merge(ns);
            }
            all_d.merge(ds);
            all_g.merge(gs);
        }
        report_run("e_direct", &mut all_d, seg * rounds as f64);
        report_run("e_gw_short", &mut all_g, seg * rounds as f64);
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n == 0 {
                f64::NAN
            } else if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        };
        result("e_rounds", rounds);
        result("e_added_p99_rounds", list(&added));
        result("e_added_p99_ms", format!("{:.3}", median(&mut added)));
        if compare.is_some() {
            report_run("e_cmp", &mut all_c, seg * rounds as f64);
            result("e_cmp_added_p99_rounds", list(&cmp_added));
            result(
                "e_cmp_added_p99_ms",
                format!("{:.3}", median(&mut cmp_added)),
            );
        }
    }
}

// ------------------------------------------------------------------------------ main

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Login { addr, user, password, count } => {
                for _ in 0..count {
                    match native_login(addr, &user, &password, None).await {
                        Ok((StatusCode::FOUND, Some(c))) => println!("{c}"),
                        Ok((s, _)) => {
                            eprintln!("load: login: POST /normal answered {s} instead of 302 with a session");
                            std::process::exit(1);
                        }
                        Err(e) => {
                            eprintln!("load: login: {e}");
                            std::process::exit(1);
                        }
                    }
                }
            }
            Cmd::Conns { addr, cookies, path, connections, connect_concurrency, hold_secs, interval_ms, pid } => {
                conns(
                    addr,
                    read_cookies(&cookies),
                    path,
                    connections,
                    connect_concurrency,
                    Duration::from_secs(hold_secs),
                    Duration::from_millis(interval_ms),
                    pid,
                )
                .await;
            }
            Cmd::Slowloris {
                addr, cookies, path, slow, silent, byte_interval_ms, phase_secs, rate,
                normal_connections, probe_rate, pid,
            } => {
                slowloris(
                    addr,
                    read_cookies(&cookies),
                    path,
                    slow,
                    silent,
                    Duration::from_millis(byte_interval_ms),
                    Duration::from_secs(phase_secs),
                    rate,
                    normal_connections,
                    probe_rate,
                    pid,
                )
                .await;
            }
            Cmd::Flood {
                addr, path, concurrency, secs, ip_pool, legit_user, legit_password, legit_ip,
                legit_logins, legit_delay_ms, legit_retry_ms,
            } => {
                flood(
                    addr,
                    path,
                    concurrency,
                    secs,
                    ip_pool,
                    legit_user,
                    legit_password,
                    legit_ip,
                    legit_logins,
                    Duration::from_millis(legit_delay_ms),
                    Duration::from_millis(legit_retry_ms),
                )
                .await;
            }
            Cmd::Soak {
                addr, cookies, path, connections, peak_secs, fraction, rate, secs, sample_secs,
                pid, direct, direct_secs, compare, rounds,
            } => {
                soak(
                    addr,
                    read_cookies(&cookies),
                    path,
                    connections,
                    peak_secs,
                    fraction,
                    rate,
                    secs,
                    sample_secs,
                    pid,
                    direct,
                    direct_secs,
                    compare,
                    rounds,
                )
                .await;
            }
        }
    });
}
