//! Passkey ceremonies as steps of a login or of a signed-in session (DESIGN.md §10): where the
//! ceremony state lives and which checks run in which order. Invariants: a ceremony's state is
//! bound to one pending login, one session or one pre-login cookie (its key names it) and is
//! taken, not read, when the answer comes (single use, on any replica); every assertion runs
//! under the lockout; a use is recorded only with a sign count that moved forward.

use crate::accounts::{native_principal, Accounts};
use crate::auth::lockout::Admission;
use crate::auth::native::{settle, CodeCheck};
use crate::mfa::webauthn::{self as wa, PasskeyError, Passkeys, CEREMONY_TTL};
use crate::mfa::MfaError;
use crate::session::{AnySessionStore, MfaUsed, SessionStore};
use crate::storage::model::User;
use crate::storage::passkeys::{PasskeyRecord, MAX_PASSKEYS};
use crate::storage::{StoreError, UserStore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use std::net::IpAddr;

/// What a ceremony is bound to; the state key names it, so state made for one never serves
/// another (DESIGN.md §10: bound to the pending login).
#[derive(Clone, Copy)]
pub enum Bound<'a> {
    /// The second factor of a pending login (its id).
    Pending(&'a str),
    /// Registration at enrollment (the pending login's id).
    Enroll(&'a str),
    /// Registration on the account page (the session id).
    Session(&'a str),
    /// The passkey sign-in (the pre-login cookie's nonce).
    SignIn(&'a str),
}

impl Bound<'_> {
    fn key(self) -> String {
        match self {
            Bound::Pending(id) => format!("webauthn:mfa:{id}"),
            Bound::Enroll(id) => format!("webauthn:enroll:{id}"),
            Bound::Session(id) => format!("webauthn:account:{id}"),
            Bound::SignIn(nonce) => format!("webauthn:signin:{nonce}"),
        }
    }
}

/// The principal's stored credentials, parsed; a row that does not parse is skipped and
/// logged (it can never verify), never trusted.
pub async fn credentials(
    acc: &Accounts,
    principal: &str,
) -> Result<Vec<(PasskeyRecord, webauthn_rs::prelude::Passkey)>, StoreError> {
    let rows = acc.users.list_passkeys(principal).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match wa::from_json(&r.passkey) {
            Ok(p) => Some((r, p)),
            Err(_) => {
                tracing::warn!(principal, credential = %r.credential_id, "stored passkey does not parse; ignored");
                None
            }
        })
        .collect())
}

/// A browser's answer to a ceremony: what, when, from where.
pub struct Answer<'a> {
    pub response: &'a str,
    pub now: i64,
    pub ip: IpAddr,
}

/// Starts an assertion over the principal's credentials; `Ok(None)` when it has none.
pub async fn begin_login(
    acc: &Accounts,
    store: &AnySessionStore,
    rp: &Passkeys,
    principal: &str,
    bound: Bound<'_>,
) -> Result<Option<Result<String, PasskeyError>>, StoreError> {
    let creds: Vec<_> = credentials(acc, principal)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if creds.is_empty() {
        return Ok(None);
    }
    let (options, state) = match rp.start_login(&creds) {
        Ok(x) => x,
        Err(e) => return Ok(Some(Err(e))),
    };
    store
        .put_ephemeral(&bound.key(), state, CEREMONY_TTL)
        .await?;
    Ok(Some(Ok(options)))
}

/// Checks a second-factor assertion of `principal` under the lockout; the ceremony state is
/// taken first, so an answer can be tried once, whatever it is.
pub async fn check_login(
    acc: &Accounts,
    store: &AnySessionStore,
    rp: &Passkeys,
    principal: &str,
    bound: Bound<'_>,
    answer: Answer<'_>,
) -> Result<CodeCheck, StoreError> {
    let Answer { response, now, ip } = answer;
    let attempt = match acc.lockout.admit(store, principal, ip).await? {
        Admission::Admitted(a) => a,
        Admission::Locked => return Ok(CodeCheck::Locked),
    };
    let checked = verify_login(acc, store, rp, principal, bound, response, now).await;
    settle(
        acc,
        store,
        attempt,
        checked.map(|r| r.map(|()| (MfaUsed::Webauthn, None))),
    )
    .await
}

async fn verify_login(
    acc: &Accounts,
    store: &AnySessionStore,
    rp: &Passkeys,
    principal: &str,
    bound: Bound<'_>,
    response: &str,
    now: i64,
) -> Result<Result<(), MfaError>, StoreError> {
    let Some(state) = store.take_ephemeral(&bound.key()).await? else {
        return Ok(Err(MfaError::Passkey(PasskeyError::WrongChallenge)));
    };
    let creds: Vec<_> = credentials(acc, principal)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let used = match rp.finish_login(response, &state, &creds) {
        Ok(u) => u,
        Err(e) => return Ok(Err(MfaError::Passkey(e))),
    };
    record(acc, principal, &used, now).await
}

/// Records a use; a counter that did not move forward (a race with another use of a cloned
/// key) is refused as the library would have.
async fn record(
    acc: &Accounts,
    principal: &str,
    used: &wa::Used,
    now: i64,
) -> Result<Result<(), MfaError>, StoreError> {
    let recorded = acc
        .users
        .record_passkey_use(
            principal,
            &used.credential_id,
            &used.passkey,
            used.sign_count,
            now,
        )
        .await?;
    Ok(if recorded {
        Ok(())
    } else {
        Err(MfaError::Passkey(PasskeyError::CounterBackwards))
    })
}

/// Starts a registration for `principal` (its existing credentials excluded). The user
/// handle is the principal's existing one, or a new random one for its first credential.
pub async fn begin_register(
    acc: &Accounts,
    store: &AnySessionStore,
    rp: &Passkeys,
    principal: &str,
    user: &str,
    bound: Bound<'_>,
) -> Result<Result<String, PasskeyError>, StoreError> {
    let creds = credentials(acc, principal).await?;
    if creds.len() >= MAX_PASSKEYS {
        return Ok(Err(PasskeyError::AlreadyRegistered));
    }
    let handle = creds
        .first()
        .and_then(|(r, _)| B64.decode(&r.user_handle).ok())
        .and_then(|h| <[u8; 16]>::try_from(h.as_slice()).ok())
        .unwrap_or_else(wa::new_handle);
    let existing: Vec<_> = creds.into_iter().map(|(_, p)| p).collect();
    let (options, state) = match rp.start_register(&handle, user, &existing) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    // The handle travels with the state: the one the browser was given is the one stored.
    let mut kept = handle.to_vec();
    kept.extend_from_slice(&state);
    store
        .put_ephemeral(&bound.key(), kept, CEREMONY_TTL)
        .await?;
    Ok(Ok(options))
}

/// What a registration is for.
pub struct Registration<'a> {
    pub principal: &'a str,
    pub bound: Bound<'a>,
    /// The browser's answer (JSON).
    pub response: &'a str,
    pub name: &'a str,
    /// At enrollment through a link: its token hash, spent once the ceremony verified (of two
    /// registrations through one link, only one goes on).
    pub invite: Option<&'a str>,
    /// At enrollment (`Some(unless_totp)`): stored only as the principal's first factor, never
    /// beside one another login enrolled meanwhile. `None`: the account page adds one more.
    pub first: Option<bool>,
}

/// Finishes a registration: the new credential stored under `name`, or why not.
pub async fn finish_register(
    acc: &Accounts,
    store: &AnySessionStore,
    rp: &Passkeys,
    reg: Registration<'_>,
    now: i64,
) -> Result<Result<PasskeyRecord, PasskeyError>, StoreError> {
    let Registration {
        principal,
        bound,
        response,
        name,
        invite,
        first,
    } = reg;
    let Some(kept) = store.take_ephemeral(&bound.key()).await? else {
        return Ok(Err(PasskeyError::WrongChallenge));
    };
    let Some((handle, state)) = kept.split_at_checked(16) else {
        return Ok(Err(PasskeyError::Malformed));
    };
    let passkey = match rp.finish_register(response, state) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    if acc.users.list_passkeys(principal).await?.len() >= MAX_PASSKEYS {
        return Ok(Err(PasskeyError::AlreadyRegistered));
    }
    if let Some(hash) = invite {
        if !acc.users.spend_invite(hash, now).await? {
            // The link was used meanwhile: this ceremony's challenge no longer stands.
            return Ok(Err(PasskeyError::WrongChallenge));
        }
    }
    let Ok(json) = wa::to_json(&passkey) else {
        return Ok(Err(PasskeyError::Invalid));
    };
    let record = PasskeyRecord {
        credential_id: wa::credential_id(&passkey),
        principal: principal.to_owned(),
        user_handle: B64.encode(handle),
        name: clean_name(name),
        passkey: json,
        sign_count: 0,
        created_at: now,
        last_used_at: None,
    };
    let added = match first {
        Some(unless_totp) => acc
            .users
            .add_first_passkey(&record, unless_totp)
            .await
            .map(|first| {
                if first {
                    Ok(())
                } else {
                    Err(PasskeyError::AlreadyRegistered)
                }
            }),
        None => acc.users.add_passkey(&record).await.map(Ok),
    };
    match added {
        Ok(Ok(())) => Ok(Ok(record)),
        Ok(Err(e)) => Ok(Err(e)),
        // DESIGN.md §10: a credential id is unique in the store (this user's or another's).
        Err(StoreError::Conflict) => Ok(Err(PasskeyError::AlreadyRegistered)),
        Err(e) => Err(e),
    }
}

/// A credential name as stored: trimmed, control characters dropped, at most 64 characters;
/// empty becomes "Passkey".
pub fn clean_name(name: &str) -> String {
    let n: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
        .trim()
        .to_owned();
    if n.is_empty() {
        "Passkey".to_owned()
    } else {
        n
    }
}

/// Starts a passkey sign-in (discoverable credentials) bound to a pre-login cookie's nonce.
pub async fn begin_signin(
    store: &AnySessionStore,
    rp: &Passkeys,
    nonce: &str,
) -> Result<Result<String, PasskeyError>, StoreError> {
    let (options, state) = match rp.start_signin() {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    store
        .put_ephemeral(&Bound::SignIn(nonce).key(), state, CEREMONY_TTL)
        .await?;
    Ok(Ok(options))
}

/// The answer to a passkey sign-in.
pub enum SignIn {
    /// Verified: this user (exists, enabled) proved both factors.
    Verified(User),
    /// Refused before a user was known (no ceremony, unknown credential): nothing counted.
    Refused(PasskeyError),
    /// Refused for this user (counted toward their lockout).
    RefusedFor(String, PasskeyError, bool),
    /// The user is locked out.
    Locked(String),
    /// The answer verified, but the user is disabled.
    Disabled(String),
}

/// Checks a passkey sign-in: the ceremony taken, the credential looked up by id, its user
/// handle and owner checked, the user enabled, all under that user's lockout.
pub async fn check_signin(
    acc: &Accounts,
    store: &AnySessionStore,
    rp: &Passkeys,
    nonce: &str,
    response: &str,
    now: i64,
    ip: IpAddr,
) -> Result<SignIn, StoreError> {
    let Some(state) = store.take_ephemeral(&Bound::SignIn(nonce).key()).await? else {
        return Ok(SignIn::Refused(PasskeyError::WrongChallenge));
    };
    let (handle, id) = match rp.identify(response) {
        Ok(x) => x,
        Err(e) => return Ok(SignIn::Refused(e)),
    };
    let Some(row) = acc.users.find_passkey(&id).await? else {
        return Ok(SignIn::Refused(PasskeyError::UnknownCredential));
    };
    if row.user_handle != B64.encode(handle) {
        return Ok(SignIn::Refused(PasskeyError::UnknownCredential));
    }
    let Some(username) = row.principal.strip_prefix("native:") else {
        return Ok(SignIn::Refused(PasskeyError::UnknownCredential));
    };
    let Some(user) = acc.users.get_user(username).await? else {
        return Ok(SignIn::Refused(PasskeyError::UnknownCredential));
    };
    if native_principal(&user.username) != row.principal {
        return Ok(SignIn::Refused(PasskeyError::UnknownCredential));
    }
    let attempt = match acc.lockout.admit(store, &row.principal, ip).await? {
        Admission::Admitted(a) => a,
        Admission::Locked => return Ok(SignIn::Locked(user.username)),
    };
    let checked = match wa::from_json(&row.passkey) {
        Ok(cred) => match rp.finish_signin(response, &state, &cred) {
            Ok(used) => record(acc, &row.principal, &used, now).await,
            Err(e) => Ok(Err(MfaError::Passkey(e))),
        },
        Err(e) => Ok(Err(MfaError::Passkey(e))),
    };
    let name = user.username.clone();
    Ok(
        match settle(
            acc,
            store,
            attempt,
            checked.map(|r| r.map(|()| (MfaUsed::Webauthn, None))),
        )
        .await?
        {
            // A disabled user learns it only with their key, and is refused like any other
            // refusal (nothing tells a key-less caller the account state).
            CodeCheck::Verified(..) if user.disabled => SignIn::Disabled(name),
            CodeCheck::Verified(..) => SignIn::Verified(user),
            CodeCheck::Refused { error, locked_now } => {
                let e = match error {
                    MfaError::Passkey(e) => e,
                    _ => PasskeyError::Invalid,
                };
                SignIn::RefusedFor(name, e, locked_now)
            }
            CodeCheck::Locked => SignIn::Locked(name),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_bounded() {
        assert_eq!(clean_name("  Work laptop \u{7} "), "Work laptop");
        assert_eq!(clean_name(""), "Passkey");
        assert_eq!(clean_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn each_binding_has_its_own_key() {
        let keys = [
            Bound::Pending("a").key(),
            Bound::Enroll("a").key(),
            Bound::Session("a").key(),
            Bound::SignIn("a").key(),
        ];
        for (i, k) in keys.iter().enumerate() {
            assert!(keys.iter().skip(i + 1).all(|o| o != k));
        }
    }
}
