//! Why forwarding to the upstream failed (`ProxyError`), and the one fixed answer each failure
//! gets (`Reply`, from `ProxyError::reply`): both lanes answer an upstream failure from it.
//! Invariant: a reply is fixed text per cause; upstream text only ever reaches the log.

use hyper::StatusCode;

/// Why forwarding failed. Details go to the log; the client gets a fixed message.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream refused or reset the connection, or sent something unparseable.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The upstream did not answer within `upstream.timeout`.
    #[error("upstream timed out")]
    Timeout,
    /// The upstream answered 101 to a request that asked for no WebSocket upgrade, or
    /// switched to something other than the WebSocket the client asked for.
    #[error("upstream switched protocols unasked: {0}")]
    UnexpectedSwitch(&'static str),
    /// The TLS handshake with an https upstream failed: its certificate did not verify
    /// (unknown CA, wrong name, expired), it refused ours, or the handshake timed out.
    #[error("upstream TLS handshake failed: {0}")]
    Tls(String),
    /// The client's `Host` cannot be an HTTP/2 `:authority` (user info, bad syntax).
    #[error("Host header cannot be sent upstream as :authority")]
    BadHost,
}

/// What a client is told when a request stops: the status and fixed texts (the JSON `error`
/// code, and a page's title, what happened and what to do next).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub what: &'static str,
    pub next: &'static str,
}

impl ProxyError {
    /// The answer to this failure: blame the upstream (502, or 504 for a timeout), or the
    /// client for a `Host` HTTP/2 cannot carry (400).
    pub fn reply(&self) -> Reply {
        match self {
            ProxyError::Timeout => Reply {
                status: StatusCode::GATEWAY_TIMEOUT,
                code: "upstream_timeout",
                title: "The application did not answer",
                what: "The application behind this gateway did not answer in time.",
                next: "Try again in a minute.",
            },
            // The client's fault, not the upstream's.
            ProxyError::BadHost => Reply {
                status: StatusCode::BAD_REQUEST,
                code: "bad_request",
                title: "Bad request",
                what: "The Host header of this request is not a valid host name.",
                next: "Check the address you used.",
            },
            ProxyError::Unavailable(_) | ProxyError::UnexpectedSwitch(_) | ProxyError::Tls(_) => {
                Reply {
                    status: StatusCode::BAD_GATEWAY,
                    code: "upstream_unavailable",
                    title: "The application is unavailable",
                    what: "The application behind this gateway cannot be reached.",
                    next: "Try again in a minute.",
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_blame_the_upstream_with_fixed_texts() {
        let down = ProxyError::Unavailable("connect: refused by 10.0.0.7".into()).reply();
        assert_eq!(down.status, StatusCode::BAD_GATEWAY);
        assert!(!down.what.contains("10.0.0.7"));
        assert_eq!(ProxyError::UnexpectedSwitch("101").reply(), down);
        // A certificate that did not verify says no more than any other upstream failure.
        assert_eq!(
            ProxyError::Tls("invalid peer certificate: UnknownIssuer".into()).reply(),
            down
        );
        assert_eq!(
            ProxyError::Timeout.reply().status,
            StatusCode::GATEWAY_TIMEOUT
        );
    }
}
