//! Fuzz target for a browser's answer to a passkey ceremony (DESIGN.md §10): whatever the
//! `credential` field holds, the relying party refuses it without panicking, for each ceremony
//! (registration, second factor, passkey sign-in); no forged bytes verify.

use super::input::text;
use crate::config::WebauthnConfig;
use crate::mfa::webauthn::Passkeys;

/// Any answer against real ceremony state: refused, never a panic, never a credential.
pub fn passkey_answer(data: &[u8]) {
    let answer = text(data);
    let cfg = WebauthnConfig {
        rp_id: "localhost".into(),
        rp_name: "fuzz".into(),
        origin: "http://localhost:8443".into(),
    };
    let Ok(rp) = Passkeys::new(&cfg) else {
        return;
    };
    if let Ok((_, state)) = rp.start_register(&[1; 16], "fuzz", &[]) {
        assert!(
            rp.finish_register(&answer, &state).is_err(),
            "a forged registration verified: {answer:?}"
        );
        // The state itself is ours, but a store could hand back anything.
        let _ = rp.finish_register(&answer, answer.as_bytes());
    }
    if let Ok((_, state)) = rp.start_signin() {
        let _ = rp.identify(&answer);
        assert!(rp.finish_login(&answer, &state, &[]).is_err());
    }
}
