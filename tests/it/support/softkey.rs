//! A software WebAuthn authenticator (ES256, attestation "none"), for the server-side passkey
//! tests: it answers the gateway's real options with real signatures, and can be told to lie
//! (another origin, another RP id, a counter that goes backwards). CBOR is written by hand for
//! the few shapes an authenticator sends.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};

/// What an answer claims besides the truth (each a refusal case).
#[derive(Clone, Default)]
pub struct Lie {
    pub origin: Option<String>,
    pub rp_id: Option<String>,
    /// Sign with this counter instead of the next one.
    pub counter: Option<u32>,
    /// Sign over this challenge instead of the options' one.
    pub challenge: Option<Vec<u8>>,
    /// Claim no user verification.
    pub no_uv: bool,
}

pub struct SoftKey {
    key: EcdsaKeyPair,
    pub cred_id: Vec<u8>,
    pub counter: u32,
    pub user_handle: Vec<u8>,
    pub rp_id: String,
    pub origin: String,
}

fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
    }
}

fn cbor_int(v: i64, out: &mut Vec<u8>) {
    if v >= 0 {
        cbor_head(0, v as u64, out)
    } else {
        cbor_head(1, (-1 - v) as u64, out)
    }
}

fn cbor_bytes(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len() as u64, out);
    out.extend_from_slice(b);
}

fn cbor_text(s: &str, out: &mut Vec<u8>) {
    cbor_head(3, s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

fn challenge_of(options: &Value) -> Vec<u8> {
    let c = options["publicKey"]["challenge"].as_str().unwrap();
    B64.decode(c.trim_end_matches('=')).unwrap()
}

impl SoftKey {
    pub fn new(rp_id: &str, origin: &str) -> SoftKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut cred_id = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&rng, &mut cred_id).unwrap();
        SoftKey {
            key,
            cred_id,
            counter: 0,
            user_handle: Vec::new(),
            rp_id: rp_id.to_owned(),
            origin: origin.to_owned(),
        }
    }

    fn client_data(&self, kind: &str, challenge: &[u8], lie: &Lie) -> Vec<u8> {
        let origin = lie.origin.clone().unwrap_or_else(|| self.origin.clone());
        json!({
            "type": kind,
            "challenge": B64.encode(lie.challenge.as_deref().unwrap_or(challenge)),
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }

    fn auth_data(&self, flags: u8, counter: u32, lie: &Lie) -> Vec<u8> {
        let rp = lie.rp_id.clone().unwrap_or_else(|| self.rp_id.clone());
        let mut d = sha256(rp.as_bytes());
        let flags = if lie.no_uv { flags & !0x04 } else { flags };
        d.push(flags);
        d.extend(counter.to_be_bytes());
        d
    }

    /// The answer to registration `options` (the JSON the gateway sent).
    pub fn register(&mut self, options: &Value) -> String {
        self.register_lying(options, &Lie::default())
    }

    pub fn register_lying(&mut self, options: &Value, lie: &Lie) -> String {
        let challenge = challenge_of(options);
        let user = options["publicKey"]["user"]["id"].as_str().unwrap();
        self.user_handle = B64.decode(user.trim_end_matches('=')).unwrap();
        let client = self.client_data("webauthn.create", &challenge, lie);
        // UP | UV | AT
        let mut auth = self.auth_data(0x45, self.counter, lie);
        auth.extend([0u8; 16]); // AAGUID: none
        auth.extend((self.cred_id.len() as u16).to_be_bytes());
        auth.extend_from_slice(&self.cred_id);
        let point = self.key.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        let mut cose = Vec::new();
        cbor_head(5, 5, &mut cose);
        cbor_int(1, &mut cose);
        cbor_int(2, &mut cose); // kty: EC2
        cbor_int(3, &mut cose);
        cbor_int(-7, &mut cose); // alg: ES256
        cbor_int(-1, &mut cose);
        cbor_int(1, &mut cose); // crv: P-256
        cbor_int(-2, &mut cose);
        cbor_bytes(x, &mut cose);
        cbor_int(-3, &mut cose);
        cbor_bytes(y, &mut cose);
        auth.extend(cose);
        let mut att = Vec::new();
        cbor_head(5, 3, &mut att);
        cbor_text("fmt", &mut att);
        cbor_text("none", &mut att);
        cbor_text("attStmt", &mut att);
        cbor_head(5, 0, &mut att);
        cbor_text("authData", &mut att);
        cbor_bytes(&auth, &mut att);
        json!({
            "id": B64.encode(&self.cred_id),
            "rawId": B64.encode(&self.cred_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "attestationObject": B64.encode(att),
                "clientDataJSON": B64.encode(client),
                "transports": ["internal"],
            },
        })
        .to_string()
    }

    /// The answer to assertion `options`, with the next counter value.
    pub fn assert(&mut self, options: &Value) -> String {
        self.assert_lying(options, &Lie::default())
    }

    pub fn assert_lying(&mut self, options: &Value, lie: &Lie) -> String {
        let challenge = challenge_of(options);
        let counter = match lie.counter {
            Some(c) => c,
            None => {
                self.counter += 1;
                self.counter
            }
        };
        let client = self.client_data("webauthn.get", &challenge, lie);
        let auth = self.auth_data(0x05, counter, lie);
        let mut signed = auth.clone();
        signed.extend(sha256(&client));
        let sig = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .unwrap()
            .as_ref()
            .to_vec();
        json!({
            "id": B64.encode(&self.cred_id),
            "rawId": B64.encode(&self.cred_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "authenticatorData": B64.encode(auth),
                "clientDataJSON": B64.encode(client),
                "signature": B64.encode(sig),
                "userHandle": B64.encode(&self.user_handle),
            },
        })
        .to_string()
    }
}
