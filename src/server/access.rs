//! The access log (`server.access_log`, issue 18 item 4): one event, target `access`, message
//! `request`, with one fixed field set, written by `emit` for both lanes (`fast` and the router).
//! Invariants: the query string, cookies and tokens are never logged (a query can carry a
//! secret: only the path is); nothing is copied or allocated for a line the level filters out.

use crate::metrics::RouteClass;
use crate::session::Session;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which lane served the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// `server::fast`: raw HTTP/1.1.
    Fast,
    /// The router on hyper (HTTP/2, bodies, the gateway's own pages, every refusal).
    General,
}

impl Lane {
    pub const fn as_str(self) -> &'static str {
        match self {
            Lane::Fast => "fast",
            Lane::General => "general",
        }
    }
}

/// How many characters of the session id the line carries: enough to find the session in the
/// admin API's list, and still only a prefix of an id that is a one-way hash of the cookie.
const SESSION_PREFIX: usize = 8;

/// Per-process request numbers, in the order lines are written (a gap-free count per process).
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Whether an access line would be written: the config switch, then the level filter (which
/// `RUST_LOG=access=off` or `[log] level = "warn"` turns off). Callers copy nothing before it.
pub fn enabled(on: bool) -> bool {
    on && tracing::enabled!(target: "access", tracing::Level::INFO)
}

/// One request's access line: what the lane knows once the response head is written.
pub struct AccessLine<'a> {
    pub lane: Lane,
    pub method: &'a str,
    /// The path as the client sent it, without the query string.
    pub path: &'a str,
    pub peer: IpAddr,
    pub session: Option<&'a Session>,
}

/// Writes the line. `bytes`: the response body's length as its head declares it (`None`:
/// streamed without a length, logged as -1); `took`: from the request head to the response.
pub fn emit(
    line: &AccessLine<'_>,
    class: RouteClass,
    status: u16,
    bytes: Option<u64>,
    took: Duration,
) {
    let (user, principal, session) = match line.session {
        Some(s) => (
            s.identity.user.as_str(),
            s.identity.principal.as_str(),
            s.id.as_str().get(..SESSION_PREFIX).unwrap_or_default(),
        ),
        None => ("-", "-", "-"),
    };
    tracing::info!(
        target: "access",
        request_id = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed),
        lane = line.lane.as_str(),
        class = class.as_str(),
        method = line.method,
        path = line.path,
        status,
        bytes = bytes.and_then(|b| i64::try_from(b).ok()).unwrap_or(-1),
        duration_ms = took.as_secs_f64() * 1000.0,
        peer = %line.peer,
        user,
        principal,
        session,
        "request"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::logging::JsonLines;
    use crate::session::{AuthMethod, Identity, MfaUsed, SessionId};
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || out.clone())
                .event_format(JsonLines),
        );
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_signed_in_line_names_the_principal_and_only_a_prefix_of_the_session_id() {
        let id = SessionId::of_str("cookie-token-value");
        let identity = Identity {
            user: "alice".into(),
            principal: "native:alice".into(),
            email: None,
            groups: vec![],
            roles: vec!["agent".into()],
            method: AuthMethod::Native,
            mfa: MfaUsed::None,
        };
        let s = Session::new(
            id.clone(),
            identity,
            0,
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(60),
            None,
            None,
        )
        .unwrap();
        let got = lines(|| {
            let line = AccessLine {
                lane: Lane::Fast,
                method: "GET",
                path: "/agent/x",
                peer: "192.0.2.7".parse().unwrap(),
                session: Some(&s),
            };
            emit(
                &line,
                RouteClass::Proxy,
                200,
                Some(12),
                Duration::from_micros(1500),
            );
        });
        assert_eq!(got.len(), 1);
        let l = &got[0];
        assert_eq!(l["target"], "access");
        assert_eq!(l["message"], "request");
        assert_eq!(l["lane"], "fast");
        assert_eq!(l["class"], "proxy");
        assert_eq!(l["user"], "alice");
        assert_eq!(l["principal"], "native:alice");
        assert_eq!(l["session"], &id.as_str()[..SESSION_PREFIX]);
        assert_eq!(l["bytes"], 12);
        assert_eq!(l["duration_ms"], 1.5);
        assert_eq!(l["peer"], "192.0.2.7");
        let text = l.to_string();
        assert!(!text.contains("cookie-token-value"), "{text}");
        assert!(!text.contains(id.as_str()), "the whole id: {text}");
    }

    #[test]
    fn no_line_is_written_when_the_switch_is_off_or_the_level_filters_it_out() {
        // Callsite interest is cached process-wide, and other tests install subscribers on
        // other threads at the same time: each check asks again under its own subscriber.
        let enabled = |on| {
            tracing::callsite::rebuild_interest_cache();
            enabled(on)
        };
        let got = lines(|| assert!(!enabled(false)));
        assert!(got.is_empty());
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::EnvFilter::new("info,access=off")),
        );
        tracing::subscriber::with_default(sub, || assert!(!enabled(true)));
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::EnvFilter::new("info")),
        );
        tracing::subscriber::with_default(sub, || assert!(enabled(true)));
    }
}
