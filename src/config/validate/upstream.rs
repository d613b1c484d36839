//! `[upstream]`: the URL (`http://` or `https://`), timeouts, the pool, and `upstream.tls`,
//! whose files are read and parsed here, so `check` refuses exactly what `run` would.
//! Invariant: an https upstream always gets a verifying rustls client (web PKI roots, or only
//! the configured CA; the name always checked); nothing here can turn verification off.

use super::ctx::{k, Ctx};
use crate::config::locate::Seg;
use crate::config::model::{UpstreamConfig, UpstreamTls};
use crate::config::raw::{RawUpstream, RawUpstreamTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroize;

/// `[upstream]`: `http://host[:port][/base]` or the same with `https` (port 443 by default).
pub(super) fn upstream(cx: &mut Ctx<'_>, u: &RawUpstream) -> UpstreamConfig {
    let up_path = [k("upstream"), k("url")];
    let (scheme, authority, base_path, host) = match u.url.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => {
            let (auth, path) = rest.find('/').map_or((rest, ""), |i| {
                (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or(""))
            });
            if auth.is_empty() || auth.contains('@') || path.contains('?') || path.contains('#') {
                cx.err(
                    &up_path,
                    format!("must be a URL like \"{scheme}://127.0.0.1:3000\""),
                );
            }
            let default_port = if scheme == "https" { 443 } else { 80 };
            let has_port = auth.contains(':') && !auth.ends_with(']');
            let host = if has_port {
                auth.rsplit_once(':').map_or(auth, |(h, _)| h)
            } else {
                auth
            };
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let auth = if has_port {
                auth.to_owned()
            } else {
                format!("{auth}:{default_port}")
            };
            (
                scheme.to_owned(),
                auth,
                path.trim_end_matches('/').to_owned(),
                host,
            )
        }
        _ => {
            cx.err(
                &up_path,
                format!("{:?} is not an absolute http or https URL", u.url),
            );
            (String::new(), String::new(), String::new(), String::new())
        }
    };
    let tls = match (scheme.as_str(), &u.tls) {
        ("https", t) => tls(cx, t.as_ref(), &host),
        ("http", Some(_)) => {
            // Fail closed: a CA or client certificate on a plain upstream would be a setting
            // that silently protects nothing.
            cx.err(
                &[k("upstream"), k("tls")],
                "is only for an https upstream; upstream.url is http:// (write https:// or remove tls)",
            );
            None
        }
        _ => None,
    };
    UpstreamConfig {
        scheme,
        authority,
        base_path,
        connect_timeout: u.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
        timeout: u.timeout.map_or(Duration::from_secs(60), |d| d.0),
        pool_idle_timeout: u.pool_idle_timeout.map_or(Duration::from_secs(90), |d| d.0),
        pool_max_idle: u.pool_max_idle.unwrap_or(256),
        tls,
    }
}

/// The rustls clients for an https upstream whose URL names `host`; `None` after an error.
fn tls(cx: &mut Ctx<'_>, t: Option<&RawUpstreamTls>, host: &str) -> Option<UpstreamTls> {
    let key = |name: &str| vec![k("upstream"), k("tls"), k(name)];
    let mut fingerprint = ring::digest::Context::new(&ring::digest::SHA256);
    let mut feed = |part: &[u8]| {
        fingerprint.update(&(part.len() as u64).to_be_bytes());
        fingerprint.update(part);
    };
    let mut ok = true;

    let (name_text, name_key) = match t.and_then(|t| t.server_name.as_deref()) {
        Some(n) => (n, key("server_name")),
        None => (host, vec![k("upstream"), k("url")]),
    };
    feed(name_text.as_bytes());
    let server_name = match ServerName::try_from(name_text.to_owned()) {
        Ok(n) => Some(n),
        Err(_) => {
            cx.err(
                &name_key,
                format!("{name_text:?} is not a valid DNS name or IP address to verify the upstream's certificate against"),
            );
            None
        }
    };

    let mut roots = rustls::RootCertStore::empty();
    match t.and_then(|t| t.ca.as_deref()) {
        // Only the configured CA: the web PKI is not consulted at all.
        Some(rel) => {
            let k = key("ca");
            match read(cx, &k, rel) {
                Some(bytes) => {
                    feed(&bytes);
                    for c in certs(cx, &k, rel, &bytes).unwrap_or_default() {
                        if let Err(e) = roots.add(c) {
                            cx.err(&k, format!("{rel}: a certificate is not a usable CA ({e})"));
                            ok = false;
                        }
                    }
                    ok &= !roots.is_empty();
                }
                None => ok = false,
            }
        }
        None => {
            feed(b"webpki-roots");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }

    let cert = t.and_then(|t| t.client_cert.as_deref());
    let client_key = t.and_then(|t| t.client_key.as_deref());
    let client = match (cert, client_key) {
        (None, None) => None,
        (Some(_), None) => {
            cx.err(
                &key("client_cert"),
                "needs client_key as well (the private key of this certificate)",
            );
            ok = false;
            None
        }
        (None, Some(_)) => {
            cx.err(
                &key("client_key"),
                "needs client_cert as well (the certificate of this key)",
            );
            ok = false;
            None
        }
        (Some(c), Some(kf)) => {
            let chain = read(cx, &key("client_cert"), c).and_then(|b| {
                feed(&b);
                certs(cx, &key("client_cert"), c, &b)
            });
            let private = read(cx, &key("client_key"), kf).and_then(|mut b| {
                feed(&b);
                let parsed = PrivateKeyDer::from_pem_slice(&b);
                b.zeroize();
                match parsed {
                    Ok(p) => Some(p),
                    Err(e) => {
                        cx.err(
                            &key("client_key"),
                            format!("{kf}: holds no PEM private key ({e})"),
                        );
                        None
                    }
                }
            });
            match (chain, private) {
                (Some(chain), Some(private)) => Some((chain, private)),
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    let fingerprint: [u8; 32] = fingerprint.finish().as_ref().try_into().ok()?;
    let server_name = server_name?;
    if !ok {
        return None;
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b.with_root_certificates(roots),
        Err(e) => {
            cx.err(
                &[k("upstream"), k("tls")],
                format!("TLS configuration refused: {e}"),
            );
            return None;
        }
    };
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((chain, private)) => match builder.with_client_auth_cert(chain, private) {
            Ok(c) => c,
            Err(rustls::Error::InconsistentKeys(_)) => {
                cx.err(
                    &key("client_key"),
                    "does not match the certificate in client_cert",
                );
                return None;
            }
            Err(e) => {
                cx.err(
                    &key("client_key"),
                    format!("cannot be used with client_cert: {e}"),
                );
                return None;
            }
        },
    };
    let mut h1 = config.clone();
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(UpstreamTls {
        server_name,
        client: Arc::new(config),
        client_h1: Arc::new(h1),
        fingerprint,
    })
}

/// The largest PEM file read (the web PKI's whole root set is about 250 KiB as PEM).
const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

/// The bytes of a PEM file named at `key`; `None` (reported) when it is missing, a directory
/// or unreadable.
fn read(cx: &mut Ctx<'_>, key: &[Seg], rel: &str) -> Option<Vec<u8>> {
    let p = cx.path(rel);
    if p.is_dir() {
        cx.err(
            key,
            format!("{} is a directory, not a PEM file", p.display()),
        );
        return None;
    }
    // A device or pipe (`/dev/zero`) would never end; a real CA bundle is far below the cap.
    match std::fs::metadata(&p) {
        Ok(m) if !m.is_file() => {
            cx.err(key, format!("{} is not a regular file", p.display()));
            return None;
        }
        Ok(m) if m.len() > MAX_PEM_BYTES => {
            cx.err(key, format!("{} is larger than {MAX_PEM_BYTES} bytes: not a PEM file of certificates or a key", p.display()));
            return None;
        }
        _ => {}
    }
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) => {
            cx.err(key, format!("cannot read {}: {e}", p.display()));
            None
        }
    }
}

/// The certificates of a PEM file; `None` (reported) when it holds none or bad PEM.
fn certs(
    cx: &mut Ctx<'_>,
    key: &[Seg],
    rel: &str,
    bytes: &[u8],
) -> Option<Vec<CertificateDer<'static>>> {
    match CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>() {
        Ok(v) if !v.is_empty() => Some(v),
        Ok(_) => {
            cx.err(
                key,
                format!("{rel}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            );
            None
        }
        Err(e) => {
            cx.err(key, format!("{rel}: is not valid PEM ({e})"));
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use crate::config::Config;
    use std::path::PathBuf;

    /// A directory with a CA, a server pair, a client pair and a second client key.
    struct Files(PathBuf);

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn files() -> Files {
        let dir = std::env::temp_dir().join(format!(
            "portcullis-upstream-tls-{}",
            crate::session::random_id(9)
        ));
        std::fs::create_dir_all(dir.join("a-directory.pem")).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca.internal".to_owned()]).unwrap();
        let client = rcgen::generate_simple_self_signed(vec!["gateway".to_owned()]).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        for (name, text) in [
            ("ca.pem", ca.cert.pem()),
            ("client.pem", client.cert.pem()),
            ("client.key", client.signing_key.serialize_pem()),
            ("other.key", other.serialize_pem()),
            ("not-pem.pem", "just some text\n".to_owned()),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Files(dir)
    }

    fn load(f: &Files, url: &str, tls: Option<&str>) -> Result<Config, String> {
        let tls = tls
            .map(|t| format!("tls = {{ {t} }}\n"))
            .unwrap_or_default();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"http://127.0.0.1:8080\"\n\
             [upstream]\nurl = \"{url}\"\n{tls}\
             [roles.agent]\ngroups = [\"agents\"]\n[[routes]]\nprefix = \"/\"\nallow_roles = [\"agent\"]\n"
        );
        Config::from_str(&f.0.join("portcullis.toml"), &text).map_err(|e| e.to_string())
    }

    /// The one error of a refused config: `line: key: message` after the file name.
    fn refused(f: &Files, url: &str, tls: &str) -> String {
        let e = load(f, url, Some(tls)).map(|_| ()).unwrap_err();
        assert_eq!(e.lines().count(), 1, "{e}");
        let file = format!("{}:", f.0.join("portcullis.toml").display());
        e.strip_prefix(&file)
            .unwrap_or_else(|| panic!("{e}"))
            .to_owned()
    }

    #[test]
    fn an_https_upstream_gets_a_verifying_client_for_the_url_host_or_server_name() {
        let f = files();
        let c = load(&f, "https://app.internal", None).unwrap();
        assert_eq!(c.upstream.authority, "app.internal:443");
        let tls = c.upstream.tls.unwrap();
        assert_eq!(
            format!("{:?}", tls.server_name),
            "DnsName(\"app.internal\")"
        );
        assert_eq!(
            tls.client.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(tls.client_h1.alpn_protocols, [b"http/1.1".to_vec()]);
        let c = load(&f, "https://10.0.0.7:8443/app", Some(r#"ca = "ca.pem""#)).unwrap();
        let tls = c.upstream.tls.unwrap();
        assert_eq!(
            tls.server_name,
            rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([10, 0, 0, 7]).into()),
            "an IP address is verified against an IP SAN"
        );
        let c = load(
            &f,
            "https://10.0.0.7:8443",
            Some(r#"ca = "ca.pem", server_name = "app.internal", client_cert = "client.pem", client_key = "client.key""#),
        )
        .unwrap();
        assert_eq!(
            format!("{:?}", c.upstream.tls.as_ref().unwrap().server_name),
            "DnsName(\"app.internal\")"
        );
        assert!(c
            .upstream
            .tls
            .unwrap()
            .client
            .client_auth_cert_resolver
            .has_certs());
        assert!(load(&f, "http://127.0.0.1:3000", None)
            .unwrap()
            .upstream
            .tls
            .is_none());
    }

    #[test]
    fn check_refuses_bad_ca_cert_and_key_files_naming_line_and_key() {
        let f = files();
        let url = "https://app.internal";
        for (tls, want) in [
            (r#"ca = "missing.pem""#, "6: upstream.tls.ca: cannot read"),
            (r#"ca = "a-directory.pem""#, "6: upstream.tls.ca: "),
            (r#"ca = "not-pem.pem""#, "6: upstream.tls.ca: not-pem.pem: holds no PEM certificate"),
            (r#"ca = "client.key""#, "6: upstream.tls.ca: client.key: holds no PEM certificate"),
            (
                r#"client_cert = "not-pem.pem", client_key = "client.key""#,
                "6: upstream.tls.client_cert: not-pem.pem: holds no PEM certificate",
            ),
            (
                r#"client_cert = "client.pem", client_key = "client.pem""#,
                "6: upstream.tls.client_key: client.pem: holds no PEM private key",
            ),
            (
                r#"client_cert = "client.pem", client_key = "missing.key""#,
                "6: upstream.tls.client_key: cannot read",
            ),
            (
                r#"client_cert = "client.pem""#,
                "6: upstream.tls.client_cert: needs client_key as well",
            ),
            (
                r#"client_key = "client.key""#,
                "6: upstream.tls.client_key: needs client_cert as well",
            ),
            (
                r#"client_cert = "client.pem", client_key = "other.key""#,
                "6: upstream.tls.client_key: does not match the certificate in client_cert",
            ),
            (
                r#"server_name = "not a name!""#,
                "6: upstream.tls.server_name: \"not a name!\" is not a valid DNS name or IP address",
            ),
        ] {
            let e = refused(&f, url, tls);
            assert!(e.starts_with(want), "{tls}: {e}");
        }
        assert!(refused(&f, url, r#"ca = "a-directory.pem""#).contains("is a directory"));
        let e = refused(&f, url, r#"ca = "/dev/zero""#);
        assert!(e.ends_with("/dev/zero is not a regular file"), "{e}");
    }

    #[test]
    fn tls_on_a_plain_upstream_and_a_url_host_that_is_no_name_are_refused() {
        let f = files();
        let e = refused(&f, "http://127.0.0.1:3000", r#"ca = "ca.pem""#);
        assert!(
            e.starts_with("6: upstream.tls: is only for an https upstream"),
            "{e}"
        );
        let e = load(&f, "https://bad_host!:443", None).unwrap_err();
        assert!(
            e.contains(": upstream.url: \"bad_host!\" is not a valid DNS name"),
            "{e}"
        );
    }

    #[test]
    fn the_fingerprint_changes_with_the_ca_file_and_never_shows_key_material() {
        let f = files();
        let tls = r#"ca = "ca.pem", client_cert = "client.pem", client_key = "client.key""#;
        let a = load(&f, "https://app.internal", Some(tls)).unwrap();
        let same = load(&f, "https://app.internal", Some(tls)).unwrap();
        assert_eq!(format!("{:?}", a.upstream), format!("{:?}", same.upstream));
        let rotated = rcgen::generate_simple_self_signed(vec!["ca2".to_owned()]).unwrap();
        std::fs::write(f.0.join("ca.pem"), rotated.cert.pem()).unwrap();
        let b = load(&f, "https://app.internal", Some(tls)).unwrap();
        assert_ne!(format!("{:?}", a.upstream), format!("{:?}", b.upstream));
        let key = std::fs::read_to_string(f.0.join("client.key")).unwrap();
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!format!("{:?}", a).contains(&body[..20]));
    }
}
