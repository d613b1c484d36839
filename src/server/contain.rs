//! Panic containment (issue 9, DESIGN.md §6 "never a panic"): a panic inside one request's
//! handler becomes a logged, counted `500` page with a correlation id, and the connection and
//! the process keep serving. Invariant: no client input and no config key can arm the test probe.

use crate::http::{respond, GatewayError};
use crate::proxy::forward::GatewayBody;
use crate::state::Gateway;
use futures_util::FutureExt as _;
use hyper::Response;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

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
