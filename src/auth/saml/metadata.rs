//! IdP metadata (the part the gateway uses) and the SP's own signing keys. Metadata is scanned
//! for a DOCTYPE before it is parsed; keys are checked to match their certificate at load.

use super::error::{SamlError, REDIRECT_BINDING};
use super::scan::scan_prolog;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use openssl::pkey::{PKey, Private};
use samael::crypto::CertificateDer;
use samael::metadata::EntityDescriptor;
use std::path::Path;

/// What the gateway needs of an IdP's metadata.
#[derive(Clone, Debug)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// Only these certificates verify responses; a KeyInfo in a message never counts.
    pub certs: Vec<CertificateDer>,
    pub sso_redirect: String,
    pub slo_redirect: Option<String>,
    /// Where LogoutResponses go (`ResponseLocation`, else `Location`).
    pub slo_response: Option<String>,
}

impl IdpMetadata {
    pub fn parse(xml: &str) -> Result<IdpMetadata, SamlError> {
        let m = |s: &str| SamlError::Metadata(s.to_owned());
        scan_prolog(xml)?;
        let ed: EntityDescriptor = xml
            .parse()
            .map_err(|e| SamlError::Metadata(format!("not an EntityDescriptor: {e}")))?;
        let entity_id = ed
            .entity_id
            .clone()
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| m("EntityDescriptor has no entityID"))?;
        let descriptors = ed
            .idp_sso_descriptors
            .as_deref()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| m("no IDPSSODescriptor (is this the IdP's metadata?)"))?;
        let mut certs = Vec::new();
        let mut sso = None;
        let mut slo = None;
        for d in descriptors {
            for kd in &d.key_descriptors {
                if !matches!(kd.key_use.as_deref(), None | Some("") | Some("signing")) {
                    continue;
                }
                for c in kd
                    .key_info
                    .x509_data
                    .iter()
                    .flat_map(|x| x.certificates.iter())
                {
                    let clean: String = c.chars().filter(|c| !c.is_whitespace()).collect();
                    let der = B64
                        .decode(clean)
                        .map_err(|_| m("a signing certificate is not valid base64"))?;
                    openssl::x509::X509::from_der(&der)
                        .map_err(|_| m("a signing certificate is not a valid X.509 certificate"))?;
                    certs.push(CertificateDer::from(der));
                }
            }
            sso = sso.or_else(|| {
                d.single_sign_on_services
                    .iter()
                    .find(|e| e.binding == REDIRECT_BINDING)
                    .map(|e| e.location.clone())
            });
            slo = slo.or_else(|| {
                d.single_logout_services
                    .iter()
                    .find(|e| e.binding == REDIRECT_BINDING)
                    .map(|e| (e.location.clone(), e.response_location.clone()))
            });
        }
        if certs.is_empty() {
            return Err(m(
                "the IdP metadata has no signing certificate; portcullis does not accept unsigned SAML, so add the IdP's signing certificate to its metadata",
            ));
        }
        let sso_redirect = sso.ok_or_else(|| {
            m("the IdP offers no SingleSignOnService with the HTTP-Redirect binding")
        })?;
        let (slo_redirect, slo_response) = match slo {
            Some((loc, resp)) => (Some(loc.clone()), Some(resp.unwrap_or(loc))),
            None => (None, None),
        };
        Ok(IdpMetadata {
            entity_id,
            certs,
            sso_redirect,
            slo_redirect,
            slo_response,
        })
    }
}

/// The SP's signing key and certificate (`sp_key`, `sp_cert`).
pub struct SpKeys {
    pub key: PKey<Private>,
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for SpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpKeys(***)")
    }
}

impl SpKeys {
    pub fn load(key: &Path, cert: &Path) -> Result<SpKeys, SamlError> {
        let kp =
            std::fs::read(key).map_err(|e| SamlError::Key(format!("{}: {e}", key.display())))?;
        let cp =
            std::fs::read(cert).map_err(|e| SamlError::Key(format!("{}: {e}", cert.display())))?;
        let pkey = PKey::private_key_from_pem(&kp)
            .map_err(|_| SamlError::Key(format!("{} is not a PEM private key", key.display())))?;
        let x509 = openssl::x509::X509::from_pem(&cp)
            .map_err(|_| SamlError::Key(format!("{} is not a PEM certificate", cert.display())))?;
        let matches = x509.public_key().ok().is_some_and(|p| pkey.public_eq(&p));
        if !matches {
            return Err(SamlError::Key(format!(
                "{} is not the certificate of {}",
                cert.display(),
                key.display()
            )));
        }
        let cert_der = x509
            .to_der()
            .map_err(|_| SamlError::Key("cannot encode the certificate".into()))?;
        Ok(SpKeys {
            key: pkey,
            cert_der,
        })
    }
}
