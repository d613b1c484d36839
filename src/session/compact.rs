//! A session in a few hundred bytes, for the memory store's cold entries (DESIGN.md §7: a
//! million sessions under 600 MB). Length-prefixed fields in a fixed order; only this process
//! reads what it wrote, but decoding still checks every length and never panics.

use super::id::SessionId;
use super::identity::{AuthMethod, Identity, MfaUsed};
use super::model::Session;
use crate::clock::UnixTime;
use dashmap::DashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

const MFA: [MfaUsed; 7] = MfaUsed::ALL;

/// Strings that many sessions share (user agents, groups, roles, login methods), stored once
/// and referred to by number. Bounded: past `cap` distinct strings, or for values longer than
/// `MAX_INTERNED`, strings are stored inline instead. Entries live as long as the store.
pub struct Interner {
    ids: DashMap<Arc<str>, u32>,
    all: RwLock<Vec<Arc<str>>>,
    cap: usize,
}

const MAX_INTERNED: usize = 1024;

impl Interner {
    pub fn new(cap: usize) -> Self {
        Self {
            ids: DashMap::new(),
            all: RwLock::new(Vec::new()),
            cap,
        }
    }

    fn index(&self, s: &str) -> Option<u32> {
        if s.len() > MAX_INTERNED {
            return None;
        }
        if let Some(i) = self.ids.get(s) {
            return Some(*i);
        }
        let mut all = self.all.write().ok()?;
        // Another thread may have added it while we waited for the lock.
        if let Some(i) = self.ids.get(s) {
            return Some(*i);
        }
        if all.len() >= self.cap {
            return None;
        }
        let i = u32::try_from(all.len()).ok()?;
        let shared: Arc<str> = Arc::from(s);
        all.push(Arc::clone(&shared));
        self.ids.insert(shared, i);
        Some(i)
    }

    fn get(&self, i: u32) -> Option<String> {
        let all = self.all.read().ok()?;
        all.get(usize::try_from(i).ok()?).map(|s| s.to_string())
    }

    #[cfg(test)]
    fn count(&self) -> usize {
        self.all.read().map_or(0, |a| a.len())
    }
}

/// A length or count as LEB128: one byte below 128, so short names cost what a `u8` did, and
/// nothing is ever cut short (a session decoded again must carry exactly the identity it had).
fn put_len(out: &mut Vec<u8>, n: usize) {
    let mut n = n as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_inline(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// A string either inline (tag 0) or by its number in the interner (tag 1).
fn put_str(out: &mut Vec<u8>, s: &str, shared: Option<&Interner>) {
    match shared.and_then(|t| t.index(s)) {
        Some(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        None => {
            out.push(0);
            put_inline(out, s);
        }
    }
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>, shared: Option<&Interner>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s, shared);
        }
        None => out.push(0),
    }
}

fn put_list(out: &mut Vec<u8>, items: &[String], shared: &Interner) {
    put_len(out, items.len());
    for s in items {
        put_str(out, s, Some(shared));
    }
}

/// The principal of a native user, which the user name alone determines.
const NATIVE: &str = "native:";

/// The owner (principal) and the user name, in as few bytes as the common cases allow:
/// tag 0 — a native principal, `native:` + the user name, which follows inline;
/// tag 1 — principal and user name inline;
/// tag 2 — the principal's IdP part (`<idp-id>:`, shared by every user of one IdP) interned,
///         its subject and the user name inline.
fn put_owner(out: &mut Vec<u8>, principal: &str, user: &str, shared: &Interner) {
    if principal.strip_prefix(NATIVE) == Some(user) {
        out.push(0);
        put_inline(out, user);
        return;
    }
    match principal
        .find(':')
        .and_then(|at| principal.split_at_checked(at + 1))
        .and_then(|(issuer, subject)| Some((shared.index(issuer)?, subject)))
    {
        Some((i, subject)) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
            put_inline(out, subject);
        }
        None => {
            out.push(1);
            put_inline(out, principal);
        }
    }
    put_inline(out, user);
}

/// Everything of a session but its id and idle timestamp (kept beside it by the store). The
/// owner comes first, so [`owner`] can read it without decoding the rest.
pub fn encode(s: &Session, shared: &Interner) -> Vec<u8> {
    let i = &s.identity;
    let mut out = Vec::with_capacity(128);
    put_owner(&mut out, &i.principal, &i.user, shared);
    put_opt(&mut out, i.email.as_deref(), None);
    put_list(&mut out, &i.groups, shared);
    put_list(&mut out, &i.roles, shared);
    put_str(&mut out, &i.method.header_value(), Some(shared));
    out.push(
        MFA.iter()
            .position(|m| *m == i.mfa)
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(0),
    );
    out.extend_from_slice(&s.created_at.to_le_bytes());
    out.extend_from_slice(&s.expires_at.to_le_bytes());
    out.extend_from_slice(&s.idle_timeout.as_secs().to_le_bytes());
    put_opt(&mut out, s.ip.as_deref(), None);
    put_opt(&mut out, s.user_agent.as_deref(), Some(shared));
    out.shrink_to_fit();
    out
}

/// The owner (principal) of an encoded session.
pub fn owner(bytes: &[u8], shared: &Interner) -> Option<String> {
    Reader(bytes).owner(shared).map(|(p, _)| p)
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
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A `put_len` value; `None` past 10 bytes or 64 bits.
    fn len(&mut self) -> Option<usize> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return usize::try_from(n).ok();
            }
        }
        None
    }
    fn inline(&mut self) -> Option<&'a str> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).ok()
    }
    /// What `put_owner` wrote: (principal, user name).
    fn owner(&mut self, shared: &Interner) -> Option<(String, String)> {
        let principal = match self.u8()? {
            0 => {
                let user = self.inline()?;
                return Some((format!("{NATIVE}{user}"), user.to_owned()));
            }
            1 => self.inline()?.to_owned(),
            2 => {
                let issuer = shared.get(self.u32()?)?;
                format!("{issuer}{}", self.inline()?)
            }
            _ => return None,
        };
        Some((principal, self.inline()?.to_owned()))
    }
    fn str(&mut self, shared: &Interner) -> Option<String> {
        match self.u8()? {
            0 => self.inline().map(str::to_owned),
            1 => shared.get(self.u32()?),
            _ => None,
        }
    }
    fn opt(&mut self, shared: &Interner) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.str(shared).map(Some),
            _ => None,
        }
    }
    fn list(&mut self, shared: &Interner) -> Option<Vec<String>> {
        // Every item takes at least one byte: a count beyond the bytes left is not a list
        // (and must not size an allocation).
        let n = self.len()?;
        if n > self.0.len() {
            return None;
        }
        (0..n).map(|_| self.str(shared)).collect()
    }
}

/// The session `encode` wrote, with its id and idle timestamp; `None` if the bytes are not one.
pub fn decode(
    id: SessionId,
    bytes: &[u8],
    last_seen: UnixTime,
    shared: &Interner,
) -> Option<Session> {
    let mut r = Reader(bytes);
    let (principal, user) = r.owner(shared)?;
    let email = r.opt(shared)?;
    let groups = r.list(shared)?;
    let roles = r.list(shared)?;
    let method = AuthMethod::parse(&r.str(shared)?)?;
    let mfa = *MFA.get(usize::from(r.u8()?))?;
    let created_at = r.i64()?;
    let expires_at = r.i64()?;
    let idle = r.u64()?;
    let ip = r.opt(shared)?;
    let user_agent = r.opt(shared)?;
    if !r.0.is_empty() {
        return None;
    }
    Session::restore(
        id,
        Identity {
            user,
            principal,
            email,
            groups,
            roles,
            method,
            mfa,
        },
        created_at,
        expires_at,
        Duration::from_secs(idle),
        ip,
        user_agent,
        last_seen,
    )
    .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::secret::SessionToken;
    use proptest::prelude::*;

    fn session(identity: Identity, ip: Option<String>, ua: Option<String>) -> Session {
        let id = SessionId::of(&SessionToken::new("t".into()));
        Session::new(
            id,
            identity,
            1_700_000_000,
            Duration::from_secs(12 * 3600),
            Duration::from_secs(1800),
            ip,
            ua,
        )
        .unwrap()
    }

    fn same(a: &Session, b: &Session) -> bool {
        a.id == b.id
            && a.identity.user == b.identity.user
            && a.identity.principal == b.identity.principal
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
            user in "[^\\x00-\\x1f\\x7f]{0,40}", email in proptest::option::of("[^\\x00-\\x1f\\x7f]{0,40}"),
            native in any::<bool>(), subject in "[^\\x00-\\x1f\\x7f]{0,20}",
            groups in proptest::collection::vec("[^\\x00-\\x1f\\x7f]{0,12}", 0..5),
            roles in proptest::collection::vec("[^\\x00-\\x1f\\x7f]{0,12}", 0..3),
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
            let principal = match (native, subject.len() % 3) {
                (true, _) => format!("native:{user}"),
                (false, 0) => format!("corp:{subject}"),
                (false, 1) => format!("partner:{subject}:{subject}"),
                (false, _) => format!("no-colon-{subject}"),
            };
            let s = session(
                Identity { user, principal, email, groups, roles, method, mfa: MFA[mfa] },
                ip,
                ua,
            );
            s.set_last_seen(last_seen);
            let shared = Interner::new(2);
            let bytes = encode(&s, &shared);
            prop_assert_eq!(super::owner(&bytes, &shared), Some(s.identity.principal.clone()));
            let back = decode(s.id.clone(), &bytes, last_seen, &shared).unwrap();
            prop_assert!(same(&s, &back));
        }

        #[test]
        fn any_bytes_decode_or_refuse_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let shared = Interner::new(4);
            let _ = shared.index("agents");
            let _ = decode(SessionId::of(&SessionToken::new("t".into())), &bytes, 0, &shared);
        }
    }

    #[test]
    fn large_identities_come_back_whole() {
        // Directory users may carry hundreds of groups; nothing may be cut on the way back,
        // or the forwarded groups, roles and name would change between requests.
        let s = session(
            Identity {
                user: "u".repeat(8_000),
                principal: format!("corp:{}", "s".repeat(8_000)),
                email: Some("e".repeat(300)),
                groups: (0..300).map(|i| format!("group-{i}")).collect(),
                roles: (0..260).map(|i| format!("role-{i}")).collect(),
                method: AuthMethod::Native,
                mfa: MfaUsed::Totp,
            },
            None,
            Some("x".repeat(5000)),
        );
        let shared = Interner::new(100);
        let bytes = encode(&s, &shared);
        assert_eq!(
            super::owner(&bytes, &shared),
            Some(s.identity.principal.clone())
        );
        assert!(same(
            &s,
            &decode(s.id.clone(), &bytes, s.last_seen(), &shared).unwrap()
        ));
    }

    #[test]
    fn lengths_are_one_byte_below_128_and_overlong_ones_are_refused() {
        for n in [0usize, 1, 127, 128, 300, 70_000, usize::MAX >> 1] {
            let mut out = Vec::new();
            put_len(&mut out, n);
            assert_eq!(out.len() == 1, n < 128);
            assert_eq!(Reader(&out).len(), Some(n));
        }
        assert_eq!(Reader(&[0x80; 11]).len(), None);
    }

    #[test]
    fn truncated_or_padded_bytes_are_refused() {
        let s = session(
            Identity {
                user: "ann".into(),
                principal: "corp:ann".into(),
                email: Some("ann@example.com".into()),
                groups: vec!["agents".into()],
                roles: vec!["agent".into()],
                method: AuthMethod::Oidc("corp".into()),
                mfa: MfaUsed::Idp,
            },
            Some("192.0.2.1".into()),
            Some("Mozilla/5.0".into()),
        );
        let shared = Interner::new(100);
        let b = encode(&s, &shared);
        for n in 0..b.len() {
            assert!(
                decode(s.id.clone(), &b[..n], 0, &shared).is_none(),
                "cut at {n}"
            );
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode(s.id.clone(), &longer, 0, &shared).is_none());
        // An index the interner does not have is refused, not guessed.
        assert!(decode(s.id.clone(), &b, 0, &Interner::new(100)).is_none());
    }

    #[test]
    fn shared_strings_are_stored_once_and_the_interner_is_bounded() {
        let shared = Interner::new(3);
        assert_eq!(shared.index("Mozilla/5.0"), Some(0));
        assert_eq!(shared.index("agents"), Some(1));
        assert_eq!(
            shared.index("Mozilla/5.0"),
            Some(0),
            "the same string, the same number"
        );
        assert_eq!(shared.index("agent"), Some(2));
        assert_eq!(shared.index("tier2"), None, "full: stored inline instead");
        assert_eq!(
            shared.index(&"x".repeat(MAX_INTERNED + 1)),
            None,
            "too long to share"
        );
        assert_eq!(shared.count(), 3);
        let s = session(
            Identity {
                user: "ann".into(),
                principal: "native:ann".into(),
                email: None,
                groups: vec!["agents".into(), "tier2".into()],
                roles: vec!["agent".into()],
                method: AuthMethod::Native,
                mfa: MfaUsed::None,
            },
            None,
            Some("Mozilla/5.0".into()),
        );
        s.set_last_seen(5);
        let b = encode(&s, &shared);
        let back = decode(s.id.clone(), &b, 5, &shared).unwrap();
        assert!(same(&s, &back), "shared and inline strings mix");
        assert!(b.len() < 80, "{} bytes", b.len());
    }
}
