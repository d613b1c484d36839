//! Passkeys (DESIGN.md §10): WebAuthn ceremonies through `webauthn-rs`, the relying party fixed
//! by `server.public_url`. No HTTP and no persistence here: ceremony state goes out as bytes for
//! the session store, credentials as JSON for the user store; every check (challenge, origin,
//! RP id hash, signature, user verification, sign count) is the library's.

use crate::config::WebauthnConfig;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder, WebauthnError,
};

/// How long a browser may take over a ceremony; the stored state lives as long.
pub const CEREMONY_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Why a ceremony was refused. The names are what audit events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// The browser's answer does not parse (or the ceremony state does not).
    #[error("malformed")]
    Malformed,
    /// Signed over another challenge (replayed, or from another login).
    #[error("wrong_challenge")]
    WrongChallenge,
    /// Made for another origin (a phishing proxy's page).
    #[error("wrong_origin")]
    WrongOrigin,
    /// Made for another relying party id.
    #[error("wrong_rp_id")]
    WrongRpId,
    /// The credential is not one the ceremony allows (unknown, or another user's).
    #[error("unknown_credential")]
    UnknownCredential,
    /// The authenticator's sign count did not move forward: possibly a cloned key.
    #[error("sign_count_backwards")]
    CounterBackwards,
    /// User verification (PIN, biometrics) was required and not done.
    #[error("user_not_verified")]
    NotVerified,
    /// The credential is already registered (to this user or another).
    #[error("already_registered")]
    AlreadyRegistered,
    /// The signature or another part of the response does not verify.
    #[error("invalid")]
    Invalid,
    /// The relying party configuration was refused by the library.
    #[error("configuration")]
    Configuration,
}

impl From<WebauthnError> for PasskeyError {
    fn from(e: WebauthnError) -> Self {
        match e {
            WebauthnError::MismatchedChallenge | WebauthnError::ChallengeNotFound => {
                PasskeyError::WrongChallenge
            }
            WebauthnError::InvalidRPOrigin => PasskeyError::WrongOrigin,
            WebauthnError::InvalidRPIDHash => PasskeyError::WrongRpId,
            WebauthnError::CredentialNotFound => PasskeyError::UnknownCredential,
            WebauthnError::CredentialPossibleCompromise => PasskeyError::CounterBackwards,
            WebauthnError::UserNotVerified | WebauthnError::UserNotPresent => {
                PasskeyError::NotVerified
            }
            WebauthnError::CredentialAlreadyExists
            | WebauthnError::CredentialExcludedFromRequest => PasskeyError::AlreadyRegistered,
            WebauthnError::ParseJSONFailure(_)
            | WebauthnError::ParseCBORFailure(_)
            | WebauthnError::ParseNOMFailure
            | WebauthnError::ParseInsufficientBytesAvailable => PasskeyError::Malformed,
            WebauthnError::Configuration => PasskeyError::Configuration,
            _ => PasskeyError::Invalid,
        }
    }
}

/// A verified use of a credential, with what the store must record.
pub struct Used {
    /// The credential id (base64url).
    pub credential_id: String,
    /// The updated credential (its counter moved), as JSON.
    pub passkey: String,
    pub sign_count: i64,
}

/// The relying party: one per config, cheap to share.
pub struct Passkeys {
    wa: Webauthn,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passkeys")
    }
}

impl Passkeys {
    pub fn new(cfg: &WebauthnConfig) -> Result<Self, PasskeyError> {
        let origin = Url::parse(&cfg.origin).map_err(|_| PasskeyError::Configuration)?;
        let wa = WebauthnBuilder::new(&cfg.rp_id, &origin)?
            .rp_name(&cfg.rp_name)
            .timeout(CEREMONY_TTL)
            .build()?;
        Ok(Self { wa })
    }

    /// Registration options (JSON for `navigator.credentials.create`) and the state to keep.
    /// A discoverable credential is asked for (preferred), so the same passkey can sign in
    /// without a password where `[native] passkey_login` is on.
    pub fn start_register(
        &self,
        handle: &[u8; 16],
        user: &str,
        existing: &[Passkey],
    ) -> Result<(String, Vec<u8>), PasskeyError> {
        let exclude: Vec<CredentialID> = existing.iter().map(|p| p.cred_id().clone()).collect();
        let (ccr, state) = self.wa.start_passkey_registration(
            Uuid::from_bytes(*handle),
            user,
            user,
            (!exclude.is_empty()).then_some(exclude),
        )?;
        let mut options = serde_json::to_value(&ccr).map_err(|_| PasskeyError::Configuration)?;
        if let Some(sel) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(|v| v.as_object_mut())
        {
            sel.insert("residentKey".into(), "preferred".into());
        }
        Ok((options.to_string(), encode_state(&state)?))
    }

    /// The new credential, checked against the state `start_register` made.
    pub fn finish_register(&self, response: &str, state: &[u8]) -> Result<Passkey, PasskeyError> {
        let reg: RegisterPublicKeyCredential =
            serde_json::from_str(response).map_err(|_| PasskeyError::Malformed)?;
        let state: PasskeyRegistration = decode_state(state)?;
        Ok(self.wa.finish_passkey_registration(&reg, &state)?)
    }

    /// Options allowing exactly `creds` (a second factor after the password).
    pub fn start_login(&self, creds: &[Passkey]) -> Result<(String, Vec<u8>), PasskeyError> {
        let (rcr, state) = self.wa.start_passkey_authentication(creds)?;
        let options = serde_json::to_string(&rcr).map_err(|_| PasskeyError::Configuration)?;
        Ok((options, encode_state(&state)?))
    }

    /// Checks an assertion against the state `start_login` made and the user's credentials.
    pub fn finish_login(
        &self,
        response: &str,
        state: &[u8],
        creds: &[Passkey],
    ) -> Result<Used, PasskeyError> {
        let cred: PublicKeyCredential =
            serde_json::from_str(response).map_err(|_| PasskeyError::Malformed)?;
        let state: PasskeyAuthentication = decode_state(state)?;
        let result = self.wa.finish_passkey_authentication(&cred, &state)?;
        used(creds, &result)
    }

    /// Options for a discoverable credential (the passkey sign-in): no allow-list; the
    /// browser's modal picker rather than the autofill one.
    pub fn start_signin(&self) -> Result<(String, Vec<u8>), PasskeyError> {
        let (rcr, state) = self.wa.start_discoverable_authentication()?;
        let mut options = serde_json::to_value(&rcr).map_err(|_| PasskeyError::Configuration)?;
        if let Some(o) = options.as_object_mut() {
            o.remove("mediation");
        }
        Ok((options.to_string(), encode_state(&state)?))
    }

    /// Which user handle and credential id a sign-in answer claims (to be looked up, then
    /// checked by `finish_signin`).
    pub fn identify(&self, response: &str) -> Result<([u8; 16], String), PasskeyError> {
        let cred: PublicKeyCredential =
            serde_json::from_str(response).map_err(|_| PasskeyError::Malformed)?;
        let (handle, id) = self
            .wa
            .identify_discoverable_authentication(&cred)
            .map_err(|_| PasskeyError::UnknownCredential)?;
        Ok((*handle.as_bytes(), B64.encode(id)))
    }

    /// Checks a sign-in answer against its state and the one credential it named.
    pub fn finish_signin(
        &self,
        response: &str,
        state: &[u8],
        cred: &Passkey,
    ) -> Result<Used, PasskeyError> {
        let answer: PublicKeyCredential =
            serde_json::from_str(response).map_err(|_| PasskeyError::Malformed)?;
        let state: DiscoverableAuthentication = decode_state(state)?;
        let result = self.wa.finish_discoverable_authentication(
            &answer,
            state,
            &[DiscoverableKey::from(cred)],
        )?;
        used(std::slice::from_ref(cred), &result)
    }
}

/// The credential `result` used, updated with its new counter.
fn used(
    creds: &[Passkey],
    result: &webauthn_rs::prelude::AuthenticationResult,
) -> Result<Used, PasskeyError> {
    let mut cred = creds
        .iter()
        .find(|c| c.cred_id() == result.cred_id())
        .cloned()
        .ok_or(PasskeyError::UnknownCredential)?;
    cred.update_credential(result);
    Ok(Used {
        credential_id: credential_id(&cred),
        passkey: to_json(&cred)?,
        sign_count: i64::from(result.counter()),
    })
}

/// A credential's id as the store keys it (base64url, no padding).
pub fn credential_id(p: &Passkey) -> String {
    B64.encode(p.cred_id().as_ref())
}

/// A credential as the store keeps it.
pub fn to_json(p: &Passkey) -> Result<String, PasskeyError> {
    serde_json::to_string(p).map_err(|_| PasskeyError::Configuration)
}

/// A stored credential; a row that does not parse is refused, never trusted.
pub fn from_json(s: &str) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(s).map_err(|_| PasskeyError::Malformed)
}

fn encode_state<T: serde::Serialize>(state: &T) -> Result<Vec<u8>, PasskeyError> {
    serde_json::to_vec(state).map_err(|_| PasskeyError::Configuration)
}

fn decode_state<T: serde::de::DeserializeOwned>(state: &[u8]) -> Result<T, PasskeyError> {
    serde_json::from_slice(state).map_err(|_| PasskeyError::Malformed)
}

/// A new, random WebAuthn user handle: v4-UUID bytes (the library's, from the OS CSPRNG).
pub fn new_handle() -> [u8; 16] {
    *Uuid::new_v4().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp() -> Passkeys {
        let cfg = WebauthnConfig {
            rp_id: "localhost".into(),
            rp_name: "portcullis".into(),
            origin: "http://localhost:8443".into(),
        };
        Passkeys::new(&cfg).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn registration_options_ask_for_a_discoverable_credential_with_user_verification() {
        let (options, state) = rp()
            .start_register(&[7; 16], "alice", &[])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let v: serde_json::Value = serde_json::from_str(&options).unwrap_or_default();
        assert_eq!(
            v.pointer("/publicKey/rp/id").cloned().unwrap_or_default(),
            "localhost"
        );
        assert_eq!(
            v.pointer("/publicKey/authenticatorSelection/residentKey")
                .cloned()
                .unwrap_or_default(),
            "preferred"
        );
        assert_eq!(
            v.pointer("/publicKey/authenticatorSelection/userVerification")
                .cloned()
                .unwrap_or_default(),
            "required"
        );
        assert!(!state.is_empty());
    }

    #[test]
    fn sign_in_options_use_the_modal_picker() {
        let (options, _) = rp().start_signin().unwrap_or_else(|e| unreachable!("{e}"));
        let v: serde_json::Value = serde_json::from_str(&options).unwrap_or_default();
        assert!(v.get("mediation").is_none());
        assert_eq!(
            v.pointer("/publicKey/userVerification")
                .cloned()
                .unwrap_or_default(),
            "required"
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let p = rp();
        assert_eq!(
            p.finish_register("{", b"{}").err(),
            Some(PasskeyError::Malformed)
        );
        assert_eq!(p.identify("[]").err(), Some(PasskeyError::Malformed));
        assert_eq!(
            p.finish_login("{}", b"x", &[]).err(),
            Some(PasskeyError::Malformed)
        );
    }
}
