//! Test support shared by the unit tests and `tests/it`: the one place that decides whether a
//! test whose service (Redis, PostgreSQL, an installed server or browser) is missing skips or fails.
//!
//! Under CI (`CI` set) a missing service fails the test, so a CI run can never pass by
//! skipping; elsewhere the test prints `skipped: …` and returns. Not used by the gateway itself.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a reachability probe waits for one TCP connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `found` when the service is there. Otherwise (`why` says what is missing and how to get it)
/// the test fails under CI and prints that it skipped elsewhere (the caller then returns).
#[allow(clippy::panic)] // failing the test that called it is this function's job
pub fn require<T>(service: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(v) => Some(v),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{service} is required under CI (CI is set): {why}")
        }
        Err(why) => {
            eprintln!("skipped: {service}: {why}");
            None
        }
    }
}

/// The Redis of `REDIS_URL` when it is set and accepts connections (see `require`).
pub fn redis_url() -> Option<String> {
    require(
        "Redis",
        reachable_url("REDIS_URL", 6379, "e.g. redis://127.0.0.1:6379/0"),
    )
}

/// The PostgreSQL of `DATABASE_URL` when it is set and accepts connections (see `require`).
pub fn database_url() -> Option<String> {
    require(
        "PostgreSQL",
        reachable_url(
            "DATABASE_URL",
            5432,
            "e.g. postgres://postgres@127.0.0.1:5432/test",
        ),
    )
}

/// Whether `program` runs (`args` such as `--version` make it exit at once).
pub fn program(program: &str, args: &[&str]) -> Result<(), String> {
    match std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{program} does not run ({e})")),
    }
}

/// The URL in `var` if it is set and its host accepts a TCP connection. A URL without a TCP
/// host (a unix socket) is passed on unprobed: the test then fails on it by itself.
pub fn reachable_url(var: &str, default_port: u16, example: &str) -> Result<String, String> {
    let url = match std::env::var(var) {
        Ok(u) if !u.is_empty() => u,
        _ => return Err(format!("{var} is not set ({example})")),
    };
    let Some(authority) = authority(&url, default_port) else {
        return Ok(url);
    };
    // The URL may carry a password: messages name only host and port.
    let addrs = authority
        .to_socket_addrs()
        .map_err(|e| format!("{var} names {authority}, which does not resolve ({e})"))?;
    for a in addrs {
        if TcpStream::connect_timeout(&a, PROBE_TIMEOUT).is_ok() {
            return Ok(url);
        }
    }
    Err(format!(
        "nothing accepts connections at {authority} ({var})"
    ))
}

/// `host:port` of `scheme://[user[:pw]@]host[:port][/…]`, or `None` without a host.
fn authority(url: &str, default_port: u16) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let hostport = rest.get(..end)?;
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    if hostport.is_empty() {
        return None;
    }
    // `[::1]:6379`, `[::1]`, `host:6379`, `host`.
    let has_port = match hostport.rfind(']') {
        Some(close) => hostport
            .get(close + 1..)
            .is_some_and(|p| p.starts_with(':')),
        None => hostport.contains(':'),
    };
    Some(if has_port {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    })
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authority_is_host_and_port_without_credentials() {
        assert_eq!(
            authority("redis://:pw@127.0.0.1:1/0", 6379).as_deref(),
            Some("127.0.0.1:1")
        );
        assert_eq!(
            authority("postgres://postgres@localhost/test?x=1", 5432).as_deref(),
            Some("localhost:5432")
        );
        assert_eq!(
            authority("redis://[::1]/0", 6379).as_deref(),
            Some("[::1]:6379")
        );
        assert_eq!(authority("postgres:///db?host=/run/pg", 5432), None);
        assert_eq!(authority("not a url", 5432), None);
    }
}
