//! A session in a few hundred bytes, for the memory store's cold entries (DESIGN.md §7: a
//! million sessions under 600 MB). Length-prefixed fields in a fixed order; only this process
//! reads what it wrote, but decoding still checks every length and never panics.

use super::{AuthMethod, Identity, MfaUsed, Session, SessionId};
use crate::clock::UnixTime;
use std::time::Duration;

const MFA: [MfaUsed; 6] = [
    MfaUsed::None,
    MfaUsed::Idp,
    MfaUsed::Totp,
    MfaUsed::Email,
    MfaUsed::RecoveryCode,
    MfaUsed::RememberedDevice,
];

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Longer values than 64 KiB are cut at a character boundary: they only come from IdPs and
    // browsers, and no header or page could carry them anyway.
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = s.get(..end).unwrap_or_default();
    out.extend_from_slice(&u16::try_from(cut.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(cut.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn put_list(out: &mut Vec<u8>, items: &[String]) {
    let n = items.len().min(usize::from(u8::MAX));
    out.push(u8::try_from(n).unwrap_or(u8::MAX));
    for s in items.iter().take(n) {
        put_str(out, s);
    }
}

/// Everything of a session but its id, user name and idle timestamp (kept beside it by the
/// store, which needs them without decoding).
pub fn encode(s: &Session) -> Vec<u8> {
    let i = &s.identity;
    let mut out = Vec::with_capacity(256);
    put_opt(&mut out, i.email.as_deref());
    put_list(&mut out, &i.groups);
    put_list(&mut out, &i.roles);
    put_str(&mut out, &i.method.header_value());
    out.push(
        MFA.iter()
            .position(|m| *m == i.mfa)
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(0),
    );
    out.extend_from_slice(&s.created_at.to_le_bytes());
    out.extend_from_slice(&s.expires_at.to_le_bytes());
    out.extend_from_slice(&s.idle_timeout.as_secs().to_le_bytes());
    put_opt(&mut out, s.ip.as_deref());
    put_opt(&mut out, s.user_agent.as_deref());
    out.shrink_to_fit();
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        let b = self.take(usize::from(n))?;
        std::str::from_utf8(b).ok().map(str::to_owned)
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.str().map(Some),
            _ => None,
        }
    }
    fn list(&mut self) -> Option<Vec<String>> {
        let n = self.u8()?;
        (0..n).map(|_| self.str()).collect()
    }
}

fn parse_method(s: &str) -> Option<AuthMethod> {
    match s {
        "native" => Some(AuthMethod::Native),
        "demo" => Some(AuthMethod::Demo),
        _ => s
            .strip_prefix("oidc:")
            .map(|idp| AuthMethod::Oidc(idp.to_owned()))
            .or_else(|| {
                s.strip_prefix("saml:")
                    .map(|idp| AuthMethod::Saml(idp.to_owned()))
            }),
    }
}

/// The session `encode` wrote, with its id, user and idle timestamp; `None` if the bytes are
/// not one.
pub fn decode(id: SessionId, user: String, bytes: &[u8], last_seen: UnixTime) -> Option<Session> {
    let mut r = Reader(bytes);
    let email = r.opt()?;
    let groups = r.list()?;
    let roles = r.list()?;
    let method = parse_method(&r.str()?)?;
    let mfa = *MFA.get(usize::from(r.u8()?))?;
    let created_at = r.i64()?;
    let expires_at = r.i64()?;
    let idle = r.u64()?;
    let ip = r.opt()?;
    let user_agent = r.opt()?;
    if !r.0.is_empty() {
        return None;
    }
    let max_lifetime = u64::try_from(expires_at.saturating_sub(created_at)).unwrap_or(0);
    let s = Session::new(
        id,
        Identity {
            user,
            email,
            groups,
            roles,
            method,
            mfa,
        },
        created_at,
        Duration::from_secs(max_lifetime),
        Duration::from_secs(idle),
        ip,
        user_agent,
    );
    s.set_last_seen(last_seen);
    Some(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::secret::SessionToken;
    use proptest::prelude::*;

    fn session(identity: Identity, ip: Option<String>, ua: Option<String>) -> Session {
        Session::new(
            SessionId::of(&SessionToken::new("t".into())),
            identity,
            1_700_000_000,
            Duration::from_secs(12 * 3600),
            Duration::from_secs(1800),
            ip,
            ua,
        )
    }

    fn same(a: &Session, b: &Session) -> bool {
        a.id == b.id
            && a.identity.user == b.identity.user
            && a.identity.email == b.identity.email
            && a.identity.groups == b.identity.groups
            && a.identity.roles == b.identity.roles
            && a.identity.method == b.identity.method
            && a.identity.mfa == b.identity.mfa
            && a.created_at == b.created_at
            && a.expires_at == b.expires_at
            && a.idle_timeout == b.idle_timeout
            && a.ip == b.ip
            && a.user_agent == b.user_agent
            && a.last_seen() == b.last_seen()
    }

    proptest! {
        #[test]
        fn sessions_round_trip(
            user in ".{0,40}", email in proptest::option::of(".{0,40}"),
            groups in proptest::collection::vec(".{0,12}", 0..5),
            roles in proptest::collection::vec(".{0,12}", 0..3),
            method in 0usize..4, idp in "[a-z:-]{0,10}", mfa in 0usize..6,
            ip in proptest::option::of("[0-9a-f:.]{0,39}"), ua in proptest::option::of(".{0,200}"),
            last_seen in any::<i64>(),
        ) {
            let method = match method {
                0 => AuthMethod::Native,
                1 => AuthMethod::Demo,
                2 => AuthMethod::Oidc(idp),
                _ => AuthMethod::Saml(idp),
            };
            let s = session(
                Identity { user, email, groups, roles, method, mfa: MFA[mfa] },
                ip,
                ua,
            );
            s.set_last_seen(last_seen);
            let back = decode(s.id.clone(), s.identity.user.clone(), &encode(&s), last_seen).unwrap();
            prop_assert!(same(&s, &back));
        }

        #[test]
        fn any_bytes_decode_or_refuse_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(SessionId::of(&SessionToken::new("t".into())), String::new(), &bytes, 0);
        }
    }

    #[test]
    fn truncated_or_padded_bytes_are_refused() {
        let s = session(
            Identity {
                user: "ann".into(),
                email: Some("ann@example.com".into()),
                groups: vec!["agents".into()],
                roles: vec!["agent".into()],
                method: AuthMethod::Oidc("corp".into()),
                mfa: MfaUsed::Idp,
            },
            Some("192.0.2.1".into()),
            Some("Mozilla/5.0".into()),
        );
        let b = encode(&s);
        for n in 0..b.len() {
            assert!(
                decode(s.id.clone(), "ann".into(), &b[..n], 0).is_none(),
                "cut at {n}"
            );
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode(s.id.clone(), "ann".into(), &longer, 0).is_none());
    }
}
