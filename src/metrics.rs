//! Prometheus metrics: fixed arrays of atomic counters indexed by closed enums, so the hot path
//! is one relaxed `fetch_add` and labels never carry user names, IPs or paths.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which part of the gateway answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    Proxy,
    Gateway,
    Native,
}

const CLASSES: [&str; 3] = ["proxy", "gateway", "native"];
const STATUS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
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
    requests: [[AtomicU64; 5]; 3],
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
    /// HTTP/1.1 connections the fast lane handed to hyper (`server::fast`).
    handoffs: AtomicU64,
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

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn request(&self, class: RouteClass, status: u16) {
        let c = match class {
            RouteClass::Proxy => 0,
            RouteClass::Gateway => 1,
            RouteClass::Native => 2,
        };
        let s = usize::from(status / 100).saturating_sub(1).min(4);
        if let Some(row) = self.requests.get(c) {
            if let Some(cell) = row.get(s) {
                bump(cell);
            }
        }
    }

    pub fn upstream_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, cell) in BUCKETS.iter().zip(self.upstream_buckets.iter()) {
            if secs <= *b {
                bump(cell);
            }
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

    /// An HTTP/1.1 connection the fast lane handed to the general path.
    pub fn handoff(&self) {
        bump(&self.handoffs);
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

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, active_sessions: Option<usize>) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut o = String::with_capacity(4096);
        let _ = writeln!(o, "# HELP portcullis_http_requests_total Requests answered, by route class and status class.");
        let _ = writeln!(o, "# TYPE portcullis_http_requests_total counter");
        for (ci, class) in CLASSES.iter().enumerate() {
            for (si, status) in STATUS.iter().enumerate() {
                let v = self.requests.get(ci).and_then(|r| r.get(si)).map_or(0, get);
                let _ = writeln!(
                    o,
                    "portcullis_http_requests_total{{class=\"{class}\",status=\"{status}\"}} {v}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_upstream_latency_seconds Time to the upstream's response head."
        );
        let _ = writeln!(o, "# TYPE portcullis_upstream_latency_seconds histogram");
        for (b, cell) in BUCKETS.iter().zip(self.upstream_buckets.iter()) {
            let _ = writeln!(
                o,
                "portcullis_upstream_latency_seconds_bucket{{le=\"{b}\"}} {}",
                get(cell)
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
        let _ = writeln!(o, "# HELP portcullis_lockouts_total Lock periods started.");
        let _ = writeln!(o, "# TYPE portcullis_lockouts_total counter");
        let _ = writeln!(o, "portcullis_lockouts_total {}", get(&self.lockouts));
        let _ = writeln!(
            o,
            "# HELP portcullis_store_errors_total Store operations that failed (answered 503)."
        );
        let _ = writeln!(o, "# TYPE portcullis_store_errors_total counter");
        let _ = writeln!(
            o,
            "portcullis_store_errors_total {}",
            get(&self.store_errors)
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_panics_total Request handlers that panicked (answered 500; a bug)."
        );
        let _ = writeln!(o, "# TYPE portcullis_panics_total counter");
        let _ = writeln!(o, "portcullis_panics_total {}", get(&self.panics));
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
        let _ = writeln!(
            o,
            "# HELP portcullis_send_timeouts_total Connections cut because the client stopped reading."
        );
        let _ = writeln!(o, "# TYPE portcullis_send_timeouts_total counter");
        let _ = writeln!(
            o,
            "portcullis_send_timeouts_total {}",
            get(&self.send_timeouts)
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_fast_lane_handoffs_total HTTP/1.1 connections handed from the fast lane to the general path (a request it does not take)."
        );
        let _ = writeln!(o, "# TYPE portcullis_fast_lane_handoffs_total counter");
        let _ = writeln!(
            o,
            "portcullis_fast_lane_handoffs_total {}",
            get(&self.handoffs)
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
        m.request(RouteClass::Proxy, 200);
        m.request(RouteClass::Proxy, 503);
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
}
