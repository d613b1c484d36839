//! Prometheus metrics: fixed arrays of atomic counters indexed by closed enums, so the hot path
//! is one relaxed `fetch_add` and labels never carry user names, IPs or paths.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod process;

/// Which part of the gateway answered a request (the `class` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    /// The route table's: proxied upstream (public and protected routes alike).
    Proxy,
    /// The gateway's own pages and SSO endpoints (login start, MFA, account, OIDC, SAML, …).
    Gateway,
    /// The native login paths (`[native] paths`).
    Native,
    /// The forward-auth checks a proxy in front asks (`/auth/…`, DESIGN.md §9).
    ForwardAuth,
}

impl RouteClass {
    const ALL: [RouteClass; 4] = [
        RouteClass::Proxy,
        RouteClass::Gateway,
        RouteClass::Native,
        RouteClass::ForwardAuth,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RouteClass::Proxy => "proxy",
            RouteClass::Gateway => "gateway",
            RouteClass::Native => "native",
            RouteClass::ForwardAuth => "forward_auth",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

const STATUS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Upper bounds of the request-duration histogram, in microseconds and as their `le` labels.
const REQUEST_BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];
const REQUEST_LE: [&str; 14] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10",
];
/// Upper bounds (seconds) of the upstream latency histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Login methods and results with a metric of their own.
pub const LOGIN_METHODS: [&str; 3] = ["native", "oidc", "saml"];
pub const RESULTS: [&str; 2] = ["success", "failure"];
pub const MFA_METHODS: [&str; 5] = ["totp", "email", "recovery_code", "remembered_device", "idp"];

/// Account-safety mails (DESIGN.md §12), for `portcullis_notify_mails_total{kind}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailKind {
    NewDevice,
    RecoveryCode,
    FactorChanged,
    Reported,
    BreakGlass,
}

impl MailKind {
    const ALL: [MailKind; 5] = [
        MailKind::NewDevice,
        MailKind::RecoveryCode,
        MailKind::FactorChanged,
        MailKind::Reported,
        MailKind::BreakGlass,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MailKind::NewDevice => "new_device",
            MailKind::RecoveryCode => "recovery_code",
            MailKind::FactorChanged => "factor_changed",
            MailKind::Reported => "reported",
            MailKind::BreakGlass => "break_glass",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

const MAIL_RESULTS: [&str; 2] = ["sent", "failed"];

#[derive(Default)]
pub struct Metrics {
    /// Notices by kind: [sent, failed].
    notify_mails: [[AtomicU64; 2]; 5],
    requests: [[AtomicU64; 5]; 4],
    /// Request durations by class: one cell per bucket (not cumulative: one add per request),
    /// the last one above every bound; summed into `le` buckets when rendered.
    durations: [[AtomicU64; 15]; 4],
    /// Request durations by class, summed in microseconds.
    duration_sum_us: [AtomicU64; 4],
    upstream_buckets: [AtomicU64; 12],
    upstream_count: AtomicU64,
    upstream_sum_us: AtomicU64,
    logins: [[AtomicU64; 2]; 3],
    mfa: [[AtomicU64; 2]; 5],
    lockouts: AtomicU64,
    store_errors: AtomicU64,
    panics: AtomicU64,
    /// Connections closed at accept: [per-IP limit].
    refused_per_ip: AtomicU64,
    /// Connections cut because a response write stalled past `send_timeout`.
    send_timeouts: AtomicU64,
    /// Requests answered 502 because the TLS handshake with an https upstream failed.
    upstream_tls_failures: AtomicU64,
    /// HTTP/1.1 connections the fast lane handed to hyper (`server::fast`).
    handoffs: AtomicU64,
    /// `X-Portcullis-Assertion`s signed: the session cache's misses (`Signer::for_session`).
    assertions_signed: AtomicU64,
    /// Live reloads (`server::reload`): [applied, refused].
    reloads: [AtomicU64; 2],
    /// Bearer requests let through: [service token, JWT].
    bearer_accepted: [AtomicU64; 2],
    /// Bearer requests refused, by `auth::bearer::BearerError::REASONS` (401), then role (403).
    bearer_refused: [AtomicU64; BEARER_REFUSALS],
}

/// Reasons a bearer is refused: every `BearerError` reason, then `role` (403).
const BEARER_REFUSALS: usize = crate::auth::bearer::BearerError::REASONS.len() + 1;

fn bearer_refusal_names() -> impl Iterator<Item = &'static str> {
    crate::auth::bearer::BearerError::REASONS
        .into_iter()
        .chain(std::iter::once("role"))
}

/// The cell of a refusal reason (the reasons are a closed list; a name outside it, which no
/// caller passes, counts as `malformed`).
fn bearer_refusal_index(reason: &str) -> usize {
    bearer_refusal_names()
        .position(|r| r == reason)
        .unwrap_or(1)
}

/// An unlabelled counter in the text format: its `HELP`, `TYPE` and value lines.
fn counter(o: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} counter");
    let _ = writeln!(o, "{name} {value}");
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// One answered request: its status class, and its duration (head read to response head
    /// written) in the class's histogram. Two relaxed adds and a few compares; no lock.
    pub fn request(&self, class: RouteClass, status: u16, took: Duration) {
        let c = class.index();
        let s = usize::from(status / 100).saturating_sub(1).min(4);
        if let Some(cell) = self.requests.get(c).and_then(|r| r.get(s)) {
            bump(cell);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let b = REQUEST_BUCKETS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(REQUEST_BUCKETS_US.len());
        if let Some(cell) = self.durations.get(c).and_then(|r| r.get(b)) {
            bump(cell);
        }
        if let Some(sum) = self.duration_sum_us.get(c) {
            sum.fetch_add(us, Ordering::Relaxed);
        }
    }

    /// Like `request`: one bucket per observation (the first bound it is within; the rendering
    /// adds them up), not one add per bucket above it: this runs on every proxied request.
    pub fn upstream_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(cell) = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .and_then(|i| self.upstream_buckets.get(i))
        {
            bump(cell);
        }
        bump(&self.upstream_count);
        self.upstream_sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// `method` one of `LOGIN_METHODS` (by prefix: `oidc:okta` counts as `oidc`).
    pub fn login(&self, method: &str, success: bool) {
        let m = LOGIN_METHODS
            .iter()
            .position(|x| method.starts_with(x))
            .unwrap_or(0);
        if let Some(cell) = self
            .logins
            .get(m)
            .and_then(|r| r.get(usize::from(!success)))
        {
            bump(cell);
        }
    }

    pub fn mfa(&self, method: &str, success: bool) {
        if let Some(m) = MFA_METHODS.iter().position(|x| *x == method) {
            if let Some(cell) = self.mfa.get(m).and_then(|r| r.get(usize::from(!success))) {
                bump(cell);
            }
        }
    }

    pub fn lockout(&self) {
        bump(&self.lockouts);
    }

    pub fn store_error(&self) {
        bump(&self.store_errors);
    }

    /// A request handler panicked and was answered with a 500 (a bug, never client input).
    pub fn panic(&self) {
        bump(&self.panics);
    }

    /// A connection refused because its address already has `max_connections_per_ip`.
    pub fn refused_per_ip(&self) {
        bump(&self.refused_per_ip);
    }

    /// A connection cut because the client stopped reading.
    pub fn send_timeout(&self) {
        bump(&self.send_timeouts);
    }

    /// A request answered 502: the https upstream's certificate did not verify, or its
    /// handshake failed.
    pub fn upstream_tls_failure(&self) {
        bump(&self.upstream_tls_failures);
    }

    /// An HTTP/1.1 connection the fast lane handed to the general path.
    pub fn handoff(&self) {
        bump(&self.handoffs);
    }

    /// An assertion was signed (its session had none young enough to send again).
    pub fn assertion_signed(&self) {
        bump(&self.assertions_signed);
    }

    pub fn assertions_signed(&self) -> u64 {
        self.assertions_signed.load(Ordering::Relaxed)
    }

    /// A notice mail was sent (`ok`) or failed; failures never block what caused the mail.
    pub fn notify_mail(&self, kind: MailKind, ok: bool) {
        if let Some(cell) = self
            .notify_mails
            .get(kind.index())
            .and_then(|r| r.get(usize::from(!ok)))
        {
            bump(cell);
        }
    }

    /// A live reload, applied or refused (`portcullis_config_reloads_total{result}`).
    pub fn reload(&self, success: bool) {
        if let Some(cell) = self.reloads.get(usize::from(!success)) {
            bump(cell);
        }
    }

    /// A bearer request let through: a service token (`jwt` false) or a JWT.
    pub fn bearer_accepted(&self, jwt: bool) {
        if let Some(cell) = self.bearer_accepted.get(usize::from(jwt)) {
            bump(cell);
        }
    }

    /// A bearer request refused for `reason` (one of `BearerError::REASONS`, or `role`).
    pub fn bearer_refused(&self, reason: &str) {
        if let Some(cell) = self.bearer_refused.get(bearer_refusal_index(reason)) {
            bump(cell);
        }
    }

    /// How many bearer requests were refused for `reason`.
    pub fn bearer_refusals(&self, reason: &str) -> u64 {
        self.bearer_refused
            .get(bearer_refusal_index(reason))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// How many notices of `kind` were sent (`ok`) or failed.
    pub fn notify_mails(&self, kind: MailKind, ok: bool) -> u64 {
        self.notify_mails
            .get(kind.index())
            .and_then(|r| r.get(usize::from(!ok)))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// How many connections the fast lane has handed to the general path.
    pub fn handoffs(&self) -> u64 {
        self.handoffs.load(Ordering::Relaxed)
    }

    /// `portcullis_request_duration_seconds`, one histogram per route class.
    fn render_durations(&self, o: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(o, "# HELP portcullis_request_duration_seconds Time from a request's head read to its response head written, by route class.");
        let _ = writeln!(o, "# TYPE portcullis_request_duration_seconds histogram");
        for class in RouteClass::ALL {
            let name = class.as_str();
            let Some(cells) = self.durations.get(class.index()) else {
                continue;
            };
            // Each cell read once, so every bucket, `+Inf` and `_count` agree.
            let mut cumulative = 0_u64;
            for (le, cell) in REQUEST_LE.iter().zip(cells.iter()) {
                cumulative = cumulative.saturating_add(get(cell));
                let _ = writeln!(
                    o,
                    "portcullis_request_duration_seconds_bucket{{class=\"{name}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let count = cumulative.saturating_add(cells.last().map_or(0, get));
            let sum = self.duration_sum_us.get(class.index()).map_or(0, get) as f64 / 1e6;
            let _ = writeln!(
                o,
                "portcullis_request_duration_seconds_bucket{{class=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                o,
                "portcullis_request_duration_seconds_sum{{class=\"{name}\"}} {sum}"
            );
            let _ = writeln!(
                o,
                "portcullis_request_duration_seconds_count{{class=\"{name}\"}} {count}"
            );
        }
    }

    /// The Prometheus text exposition (version 0.0.4): the gateway's own metrics, its build,
    /// and (on Linux) the standard `process_*` ones.
    pub fn render(&self, active_sessions: Option<usize>) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut o = String::with_capacity(8192);
        let _ = writeln!(
            o,
            "# HELP portcullis_build_info The running build; the value is always 1."
        );
        let _ = writeln!(o, "# TYPE portcullis_build_info gauge");
        let _ = writeln!(
            o,
            "portcullis_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        process::render(&mut o);
        let _ = writeln!(o, "# HELP portcullis_http_requests_total Requests answered, by route class and status class.");
        let _ = writeln!(o, "# TYPE portcullis_http_requests_total counter");
        for class in RouteClass::ALL {
            for (si, status) in STATUS.iter().enumerate() {
                let v = self
                    .requests
                    .get(class.index())
                    .and_then(|r| r.get(si))
                    .map_or(0, get);
                let _ = writeln!(
                    o,
                    "portcullis_http_requests_total{{class=\"{}\",status=\"{status}\"}} {v}",
                    class.as_str()
                );
            }
        }
        self.render_durations(&mut o);
        let _ = writeln!(
            o,
            "# HELP portcullis_upstream_latency_seconds Time to the upstream's response head."
        );
        let _ = writeln!(o, "# TYPE portcullis_upstream_latency_seconds histogram");
        let mut below = 0;
        for (b, cell) in BUCKETS.iter().zip(self.upstream_buckets.iter()) {
            below += get(cell);
            let _ = writeln!(
                o,
                "portcullis_upstream_latency_seconds_bucket{{le=\"{b}\"}} {below}"
            );
        }
        let count = get(&self.upstream_count);
        let _ = writeln!(
            o,
            "portcullis_upstream_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "portcullis_upstream_latency_seconds_sum {}",
            get(&self.upstream_sum_us) as f64 / 1e6
        );
        let _ = writeln!(o, "portcullis_upstream_latency_seconds_count {count}");
        let _ = writeln!(o, "# HELP portcullis_logins_total Completed logins and refused first factors, by method and result.");
        let _ = writeln!(o, "# TYPE portcullis_logins_total counter");
        for (mi, m) in LOGIN_METHODS.iter().enumerate() {
            for (ri, r) in RESULTS.iter().enumerate() {
                let v = self.logins.get(mi).and_then(|x| x.get(ri)).map_or(0, get);
                let _ = writeln!(
                    o,
                    "portcullis_logins_total{{method=\"{m}\",result=\"{r}\"}} {v}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_mfa_total Second-factor checks, by method and result."
        );
        let _ = writeln!(o, "# TYPE portcullis_mfa_total counter");
        for (mi, m) in MFA_METHODS.iter().enumerate() {
            for (ri, r) in RESULTS.iter().enumerate() {
                let v = self.mfa.get(mi).and_then(|x| x.get(ri)).map_or(0, get);
                let _ = writeln!(
                    o,
                    "portcullis_mfa_total{{method=\"{m}\",result=\"{r}\"}} {v}"
                );
            }
        }
        counter(
            &mut o,
            "portcullis_lockouts_total",
            "Lock periods started.",
            get(&self.lockouts),
        );
        counter(
            &mut o,
            "portcullis_store_errors_total",
            "Store operations that failed (answered 503).",
            get(&self.store_errors),
        );
        counter(
            &mut o,
            "portcullis_panics_total",
            "Request handlers that panicked (answered 500; a bug).",
            get(&self.panics),
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_connections_refused_total Connections closed at accept (per-IP limit)."
        );
        let _ = writeln!(o, "# TYPE portcullis_connections_refused_total counter");
        let _ = writeln!(
            o,
            "portcullis_connections_refused_total{{reason=\"per_ip\"}} {}",
            get(&self.refused_per_ip)
        );
        counter(
            &mut o,
            "portcullis_send_timeouts_total",
            "Connections cut because the client stopped reading.",
            get(&self.send_timeouts),
        );
        counter(
            &mut o,
            "portcullis_upstream_tls_failures_total",
            "Requests refused (502) because the TLS handshake with the upstream failed.",
            get(&self.upstream_tls_failures),
        );
        counter(
            &mut o,
            "portcullis_fast_lane_handoffs_total",
            "HTTP/1.1 connections handed from the fast lane to the general path (a request it does not take).",
            get(&self.handoffs),
        );
        counter(
            &mut o,
            "portcullis_assertions_signed_total",
            "X-Portcullis-Assertion values signed (a session's cached one is sent again while it has 30 s or more left).",
            get(&self.assertions_signed),
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_notify_mails_total Account-safety mails, by kind and result."
        );
        let _ = writeln!(o, "# TYPE portcullis_notify_mails_total counter");
        for kind in MailKind::ALL {
            for (ri, r) in MAIL_RESULTS.iter().enumerate() {
                let v = self.notify_mails(kind, ri == 0);
                let _ = writeln!(
                    o,
                    "portcullis_notify_mails_total{{kind=\"{}\",result=\"{r}\"}} {v}",
                    kind.as_str()
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_config_reloads_total Live config reloads, applied or refused."
        );
        let _ = writeln!(o, "# TYPE portcullis_config_reloads_total counter");
        for (r, cell) in RESULTS.iter().zip(self.reloads.iter()) {
            let _ = writeln!(
                o,
                "portcullis_config_reloads_total{{result=\"{r}\"}} {}",
                get(cell)
            );
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_bearer_accepted_total Bearer requests let through, by credential kind."
        );
        let _ = writeln!(o, "# TYPE portcullis_bearer_accepted_total counter");
        for (k, cell) in ["service_token", "jwt"]
            .iter()
            .zip(self.bearer_accepted.iter())
        {
            let _ = writeln!(
                o,
                "portcullis_bearer_accepted_total{{kind=\"{k}\"}} {}",
                get(cell)
            );
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_bearer_refused_total Bearer requests refused (401, or 403 for role), by reason."
        );
        let _ = writeln!(o, "# TYPE portcullis_bearer_refused_total counter");
        for (r, cell) in bearer_refusal_names().zip(self.bearer_refused.iter()) {
            let _ = writeln!(
                o,
                "portcullis_bearer_refused_total{{reason=\"{r}\"}} {}",
                get(cell)
            );
        }
        if let Some(n) = active_sessions {
            let _ = writeln!(
                o,
                "# HELP portcullis_sessions_active Sessions in the store."
            );
            let _ = writeln!(o, "# TYPE portcullis_sessions_active gauge");
            let _ = writeln!(o, "portcullis_sessions_active {n}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_closed_labels() {
        let m = Metrics::default();
        m.request(RouteClass::Proxy, 200, Duration::from_micros(700));
        m.request(RouteClass::Proxy, 503, Duration::from_secs(60));
        m.login("oidc:okta", true);
        m.mfa("totp", false);
        m.upstream_latency(Duration::from_millis(3));
        m.panic();
        m.reload(false);
        let t = m.render(Some(7));
        assert!(t.contains("portcullis_config_reloads_total{result=\"success\"} 0\n"));
        assert!(t.contains("portcullis_config_reloads_total{result=\"failure\"} 1\n"));
        assert!(t.contains("portcullis_panics_total 1\n"));
        assert!(t.contains("portcullis_http_requests_total{class=\"proxy\",status=\"2xx\"} 1"));
        assert!(t.contains("portcullis_http_requests_total{class=\"proxy\",status=\"5xx\"} 1"));
        assert!(t.contains("portcullis_logins_total{method=\"oidc\",result=\"success\"} 1"));
        assert!(t.contains("portcullis_mfa_total{method=\"totp\",result=\"failure\"} 1"));
        assert!(t.contains("portcullis_upstream_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(t.contains("portcullis_upstream_latency_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(t.contains("portcullis_sessions_active 7"));
    }

    #[test]
    fn upstream_latency_buckets_render_cumulative_from_one_add_per_observation() {
        let m = Metrics::default();
        for ms in [3, 20, 20, 10_000] {
            m.upstream_latency(Duration::from_millis(ms));
        }
        let t = m.render(None);
        for (le, n) in [
            ("0.0025", 0),
            ("0.005", 1),
            ("0.025", 3),
            ("1", 3),
            ("5", 3),
        ] {
            let line = format!("portcullis_upstream_latency_seconds_bucket{{le=\"{le}\"}} {n}\n");
            assert!(t.contains(&line), "{line} in\n{t}");
        }
        assert!(t.contains("portcullis_upstream_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(t.contains("portcullis_upstream_latency_seconds_count 4\n"));
    }
}
