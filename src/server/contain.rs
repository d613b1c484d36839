//! Panic containment (issue 9, DESIGN.md §6 "never a panic"): a panic inside one request's
//! handler becomes a logged, counted `500` page with a correlation id, and the connection and
//! the process keep serving. Invariant: no client input and no config key can arm the test probe.

use super::gateway::{respond, GatewayError};
use super::Gateway;
use crate::proxy::forward::GatewayBody;
use futures_util::FutureExt as _;
use hyper::Response;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// Runs one request's handler; a panic in it is answered through `respond` as
/// `GatewayError::Panicked` instead of dropping the connection.
///
/// `AssertUnwindSafe` is sound enough here: the handler's own state dies with its future, and
/// the shared state it may leave half-updated is built to survive that (std locks poison and
/// every `lock()` in the crate treats poisoning as "unavailable"; dashmap shard guards release
/// on unwind; counters are atomics). Cost per request: a landing pad per poll, no allocation.
///
/// A combinator rather than an `async fn`: an `async fn` would keep `handler` both as its
/// argument and inside the `CatchUnwind` it awaits, doubling the future hyper moves per request.
pub fn contained<'a, F>(
    gw: &'a Gateway,
    html: bool,
    handler: F,
) -> impl Future<Output = Response<GatewayBody>> + 'a
where
    F: Future<Output = Response<GatewayBody>> + 'a,
{
    AssertUnwindSafe(handler)
        .catch_unwind()
        .map(move |r| match r {
            Ok(r) => r,
            Err(payload) => respond(gw, GatewayError::Panicked(panic_message(&*payload)), html),
        })
}

/// The text of a panic payload (`panic!` with a literal or a format string), for the log only.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_owned())
}

/// A deliberate panic on one path, for tests of the containment only. It exists because a
/// containment that is never exercised cannot be trusted, and no real input may reach a panic.
/// It is armed from Rust code alone (`Gateway::inject_panic_on_path`): never from the network
/// or the config file. Disarmed, it costs one relaxed atomic load per request.
#[derive(Debug, Default)]
pub struct PanicProbe {
    armed: AtomicBool,
    path: RwLock<Option<String>>,
}

impl PanicProbe {
    /// Panics when armed for exactly this raw request path.
    #[inline]
    pub fn check(&self, path: &str) {
        if self.armed.load(Ordering::Relaxed) {
            self.fire(path);
        }
    }

    /// Whether the probe is armed for some path (test-only; the fast lane then steps aside so
    /// the probe fires where panics are contained).
    #[inline]
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    #[cold]
    #[inline(never)]
    fn fire(&self, path: &str) {
        let hit = self.path.read().is_ok_and(|p| p.as_deref() == Some(path));
        if hit {
            // The probe's one purpose: a real panic inside a request handler.
            #[allow(clippy::panic)]
            {
                panic!("injected test panic on {path}");
            }
        }
    }

    fn set(&self, path: Option<String>) {
        let armed = path.is_some();
        if let Ok(mut p) = self.path.write() {
            *p = path;
        }
        self.armed.store(armed, Ordering::Relaxed);
    }
}

impl Gateway {
    /// Test hook: the next requests whose raw path is `path` panic inside the handler
    /// (`None` disarms). See `PanicProbe` for why it exists; never reachable from outside.
    #[doc(hidden)]
    pub fn inject_panic_on_path(&self, path: Option<String>) {
        self.panic_probe.set(path);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn probe_fires_only_when_armed_for_that_path() {
        let p = PanicProbe::default();
        p.check("/boom");
        p.set(Some("/boom".into()));
        p.check("/other");
        assert!(std::panic::catch_unwind(|| p.check("/boom")).is_err());
        p.set(None);
        p.check("/boom");
    }

    #[test]
    fn panic_payload_text_is_kept_for_the_log() {
        let lit = std::panic::catch_unwind(|| std::panic::panic_any("literal")).unwrap_err();
        assert_eq!(panic_message(&*lit), "literal");
        let fmt =
            std::panic::catch_unwind(|| std::panic::panic_any(format!("n={}", 4))).unwrap_err();
        assert_eq!(panic_message(&*fmt), "n=4");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(&*other), "non-text panic payload");
    }
}
