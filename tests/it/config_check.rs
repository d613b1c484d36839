//! `check` = `run` (issue 18 items 2 and 3), with the real binary: every refusal `run` could
//! meet before serving is refused by `check` with file:line:key, `run` writes nothing before its
//! config has passed, every error is reported in one pass, `--no-env`, `${VAR}` and `*_file`.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HEX_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A config directory with real key material: a TLS pair, a second unrelated key, a SAML SP
/// pair, IdP metadata with and without a signing certificate, a page template with a script,
/// and garbage.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = TempDir::new(tag);
        let d = dir.path();
        let pair = |names: &[&str]| {
            rcgen::generate_simple_self_signed(
                names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let gw = pair(&["localhost"]);
        std::fs::write(d.join("gw.crt"), gw.cert.pem()).unwrap();
        std::fs::write(d.join("gw.key"), gw.signing_key.serialize_pem()).unwrap();
        let other = pair(&["other.example"]);
        std::fs::write(d.join("other.key"), other.signing_key.serialize_pem()).unwrap();
        let sp = pair(&["sp.example"]);
        std::fs::write(d.join("sp.crt"), sp.cert.pem()).unwrap();
        std::fs::write(d.join("sp.key"), sp.signing_key.serialize_pem()).unwrap();
        let idp = crate::support::saml_idp::SamlIdp::new("https://idp.example.com/meta");
        std::fs::write(d.join("idp.xml"), idp.metadata_xml()).unwrap();
        std::fs::write(d.join("idp-unsigned.xml"), idp.metadata_xml_without_certs()).unwrap();
        std::fs::write(
            d.join("garbage.pem"),
            "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(d.join("not-pem.txt"), "hello\n").unwrap();
        std::fs::create_dir(d.join("a-directory")).unwrap();
        std::fs::create_dir(d.join("pages")).unwrap();
        std::fs::write(
            d.join("pages/layout.html"),
            "<title>{{title}}</title><script>x()</script>{{content}}",
        )
        .unwrap();
        Fixture { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// Valid with the fixture's files: TLS on both listeners, SQLite with a sealing key, email
/// codes, a SAML IdP with SP keys. Each table case breaks one thing in it.
const BASE: &str = r#"[server]
listen = "127.0.0.1:0"
public_url = "https://helpdesk.example.com"
tls = { cert = "gw.crt", key = "gw.key" }
signing_key = "keys/assertion.p8"

[upstream]
url = "http://127.0.0.1:3000"

[admin]
listen = "127.0.0.1:0"
tls = { cert = "gw.crt", key = "gw.key" }

[storage]
url = "sqlite://data/users.db"
encryption_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

[native]

[mfa]
methods = ["totp", "email", "recovery_code"]
email = { smtp_url = "smtp://127.0.0.1:2525", from = "helpdesk@example.com" }

[[idp]]
id = "corp"
kind = "saml"
metadata = "idp.xml"
sp_entity_id = "https://helpdesk.example.com/sp"
sp_key = "sp.key"
sp_cert = "sp.crt"

[roles.agent]
groups = ["agents"]

[[routes]]
prefix = "/"
allow_roles = ["agent"]
"#;

fn portcullis(args: &[&str], config: &Path, cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("--config")
        .arg(config)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_base_config_of_the_table_passes_check_and_check_writes_nothing() {
    let f = Fixture::new("cc-base");
    let cfg = f.write("base.toml", BASE);
    let before = listing(f.path());
    let out = portcullis(&["check"], &cfg, f.path());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        stderr(&out)
    );
    assert_eq!(listing(f.path()), before, "check created files");
}

/// Each refusal `run` can meet at start before serving, as (what, edit of BASE, the line `check`
/// must print). `run` must refuse it with the same line, having written nothing.
#[test]
fn check_refuses_everything_run_would_refuse_and_run_writes_nothing_first() {
    let f = Fixture::new("cc-table");
    let file = |name: &str| f.path().join(name).display().to_string();
    let cases: Vec<(&str, String, String)> = vec![
        (
            "TLS certificate that is not PEM",
            BASE.replacen("cert = \"gw.crt\"", "cert = \"garbage.pem\"", 1),
            format!("4: server.tls.cert: cannot load certificate {}", file("garbage.pem")),
        ),
        (
            "TLS file with no certificate in it",
            BASE.replacen("cert = \"gw.crt\"", "cert = \"not-pem.txt\"", 1),
            "4: server.tls.cert: cannot load certificate".into(),
        ),
        (
            "TLS key that is not PEM",
            BASE.replacen("key = \"gw.key\"", "key = \"not-pem.txt\"", 1),
            "4: server.tls.key: cannot load private key".into(),
        ),
        (
            "TLS key that is not the certificate's",
            BASE.replacen("key = \"gw.key\"", "key = \"other.key\"", 1),
            format!("4: server.tls.key: private key {} does not match certificate {}", file("other.key"), file("gw.crt")),
        ),
        (
            "admin TLS key that is not the certificate's",
            BASE.replace(
                "listen = \"127.0.0.1:0\"\ntls = { cert = \"gw.crt\", key = \"gw.key\" }",
                "listen = \"127.0.0.1:0\"\ntls = { cert = \"gw.crt\", key = \"other.key\" }",
            ),
            "12: admin.tls.key: private key".into(),
        ),
        (
            "TLS certificate that is a directory",
            BASE.replacen("cert = \"gw.crt\"", "cert = \"a-directory\"", 1),
            format!("4: server.tls.cert: {} is a directory", file("a-directory")),
        ),
        (
            "TLS key that does not exist",
            BASE.replacen("key = \"gw.key\"", "key = \"missing.key\"", 1),
            format!("4: server.tls.key: file {} does not exist", file("missing.key")),
        ),
        (
            "encryption key of the wrong length (hex)",
            BASE.replace(HEX_KEY, &HEX_KEY[2..]),
            "16: storage.encryption_key: must be 32 bytes written as 64 hex characters or standard base64 (this one has 62 characters)".into(),
        ),
        (
            "encryption key of the wrong length (base64 of 16 bytes)",
            BASE.replace(HEX_KEY, "AAECAwQFBgcICQoLDA0ODw=="),
            "16: storage.encryption_key: must be 32 bytes".into(),
        ),
        (
            "assertion signing key that is not a P-256 key",
            BASE.replace("keys/assertion.p8", "sp.key"),
            format!("5: server.signing_key: {} is not a P-256 PKCS#8 key", file("sp.key")),
        ),
        (
            "assertion signing key that is a directory",
            BASE.replace("keys/assertion.p8", "a-directory"),
            format!("5: server.signing_key: {} is a directory", file("a-directory")),
        ),
        (
            "assertion signing key under a file",
            BASE.replace("keys/assertion.p8", "gw.crt/assertion.p8"),
            format!("5: server.signing_key: {}/assertion.p8 cannot be created: {} is not a directory", file("gw.crt"), file("gw.crt")),
        ),
        (
            "SAML metadata without a signing certificate",
            BASE.replace("\"idp.xml\"", "\"idp-unsigned.xml\""),
            "27: idp[0].metadata:".into(),
        ),
        (
            "SAML SP key that is not the SP certificate's",
            BASE.replace("sp_key = \"sp.key\"", "sp_key = \"gw.key\""),
            "29: idp[0].sp_key:".into(),
        ),
        (
            "SAML SP certificate that is not PEM",
            BASE.replace("sp_cert = \"sp.crt\"", "sp_cert = \"garbage.pem\""),
            format!("29: idp[0].sp_key: key: {} is not a PEM certificate", file("garbage.pem")),
        ),
        (
            "SQLite URL with options the store refuses",
            BASE.replace("sqlite://data/users.db", "sqlite://data/users.db?mode=rwc"),
            "15: storage.url: user store unavailable: sqlite url options".into(),
        ),
        (
            "SQLite file that is a directory",
            BASE.replace("sqlite://data/users.db", "sqlite://a-directory"),
            format!("15: storage.url: {} is a directory", file("a-directory")),
        ),
        (
            "PostgreSQL URL with a schema the store refuses",
            BASE.replace("sqlite://data/users.db", "postgres://u@127.0.0.1/db?schema=Bad-Name"),
            "15: storage.url: user store unavailable: postgres url: `schema` must match".into(),
        ),
        (
            "sender address the mailer cannot parse",
            BASE.replace("from = \"helpdesk@example.com\"", "from = \"Help Desk helpdesk@example.com\""),
            "22: mfa.email.from: \"Help Desk helpdesk@example.com\" is not an email address".into(),
        ),
        (
            "SMTP URL the mailer cannot parse",
            BASE.replace("smtp://127.0.0.1:2525", "smtp://127.0.0.1:port"),
            "22: mfa.email.smtp_url: is not an SMTP URL".into(),
        ),
        (
            "Redis URL the client cannot parse",
            BASE.replace(
                "[storage]",
                "[session]\nstore = \"redis\"\nredis_url = \"redis://:pw@127.0.0.1:port/0\"\n\n[storage]",
            ),
            "16: session.redis_url: does not parse as a Redis URL".into(),
        ),
        (
            "secret file that is a directory",
            BASE.replace(
                &format!("encryption_key = \"{HEX_KEY}\""),
                "encryption_key_file = \"a-directory\"",
            ),
            "16: storage.encryption_key_file:".into(),
        ),
        (
            "page template with a script tag",
            BASE.replace("[roles.agent]", "[pages]\ntemplates = \"pages\"\n\n[roles.agent]"),
            format!("33: pages.templates: template {}: line 1: <script is not allowed", file("pages/layout.html")),
        ),
    ];
    for (what, text, want) in &cases {
        let cfg = f.write("case.toml", text);
        let want = format!("{}:{want}", cfg.display());
        let before = listing(f.path());
        let check = portcullis(&["check"], &cfg, f.path());
        let check_err = stderr(&check);
        assert_eq!(
            check.status.code(),
            Some(1),
            "{what}: check did not refuse:\n{check_err}"
        );
        assert!(
            check_err.lines().any(|l| l.starts_with(&want)),
            "{what}: want a line starting {want:?} in\n{check_err}"
        );
        let run = portcullis(&["run"], &cfg, f.path());
        let run_err = stderr(&run);
        assert_eq!(
            run.status.code(),
            Some(1),
            "{what}: run did not refuse:\n{run_err}"
        );
        assert!(
            run_err.starts_with(&check_err),
            "{what}: run must print the check lines:\n{run_err}"
        );
        assert_eq!(
            listing(f.path()),
            before,
            "{what}: run wrote files before refusing"
        );
    }
}

#[test]
fn a_key_file_readable_by_others_is_refused_by_check_as_by_run() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new("cc-keyfile");
    std::fs::create_dir(f.path().join("data")).unwrap();
    let key = f.path().join("data/users.key");
    std::fs::write(&key, HEX_KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = BASE.replace(&format!("encryption_key = \"{HEX_KEY}\"\n"), "");
    let cfg = f.write("keyfile.toml", &text);
    let out = portcullis(&["check"], &cfg, f.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("storage.encryption_key: (not set, so the key file is used) key file")
            && err.contains("has mode 644"),
        "{err}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = portcullis(&["check"], &cfg, f.path());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unreadable_file_is_refused_by_check() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new("cc-unreadable");
    let key = f.path().join("gw.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&key).is_ok() {
        // Root (or CAP_DAC_OVERRIDE) reads it anyway: `run` would too, so there is nothing to
        // refuse. The "cannot read" path is the same code as "is a directory", tested above.
        eprintln!("skipped: this process reads files with mode 000 (running as root)");
        return;
    }
    let cfg = f.write("unreadable.toml", BASE);
    let out = portcullis(&["check"], &cfg, f.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("4: server.tls.key: cannot read"), "{err}");
}

/// The test the brief asks for by name: a bad config in an empty directory, and the directory
/// is still empty afterwards (before this, `run` made `data/`, the SQLite file and the signing
/// key, then refused the encryption key).
#[test]
fn run_with_a_bad_config_in_an_empty_directory_leaves_it_empty() {
    let dir = TempDir::new("cc-empty");
    let etc = TempDir::new("cc-empty-etc");
    let cfg = etc.path().join("portcullis.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1\"\nsigning_key = \"{d}/certs/signing.p8\"\n\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\n[storage]\nurl = \"sqlite://{d}/data/users.db\"\nencryption_key = \"too-short\"\n\n[native]\n\n[roles.agent]\ngroups = []\n\n[[routes]]\nprefix = \"/\"\nallow_roles = [\"agent\"]\n",
        d = dir.path().display()
    );
    std::fs::write(&cfg, text).unwrap();
    let run = portcullis(&["run"], &cfg, dir.path());
    let err = stderr(&run);
    assert_ne!(run.status.code(), Some(0), "{err}");
    assert!(
        err.contains("storage.encryption_key: must be 32 bytes"),
        "{err}"
    );
    assert_eq!(listing(dir.path()), Vec::<String>::new(), "{err}");
    assert_eq!(listing(etc.path()), vec!["portcullis.toml".to_owned()]);
}

#[test]
fn every_independent_error_is_reported_in_one_pass_sorted_by_line() {
    let f = Fixture::new("cc-many");
    let text = BASE
        .replacen("public_url", "lisen = \"x\"\npublic_url", 1)
        .replace(
            "url = \"http://127.0.0.1:3000\"",
            "url = \"http://127.0.0.1:3000\"\ntimeout = 30",
        )
        .replace(
            "key = \"gw.key\" }\nsigning_key",
            "key = \"other.key\" }\nsigning_key",
        )
        .replace(HEX_KEY, "abcd")
        .replace(
            "groups = [\"agents\"]",
            "groups = [\"agents\"]\nremember_mfa = \"7 days\"",
        )
        .replace(
            "sp_cert = \"sp.crt\"",
            "sp_cert = \"sp.crt\"\nsp_keys = \"x\"",
        )
        .replace(
            "allow_roles = [\"agent\"]",
            "allow_roles = [\"agent\", \"${NO_SUCH_VAR}\"]",
        );
    let cfg = f.write("many.toml", &text);
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&cfg)
        .env_remove("NO_SUCH_VAR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let c = cfg.display();
    let want = [
        format!("{c}:3: server.lisen: unknown key \"lisen\" in [server] — did you mean \"listen\"?"),
        format!("{c}:5: server.tls.key: private key"),
        format!("{c}:10: upstream.timeout: 30 has no unit"),
        format!("{c}:18: storage.encryption_key: must be 32 bytes"),
        format!("{c}:33: idp[0].sp_keys: unknown key \"sp_keys\" in [idp[0]] — did you mean \"sp_key\"?"),
        format!("{c}:37: roles.agent.remember_mfa: invalid duration \"7 days\""),
        format!("{c}:41: routes[0].allow_roles[1]: environment variable NO_SUCH_VAR is not set"),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), want.len(), "{err}");
    for (line, want) in lines.iter().zip(&want) {
        assert!(
            line.starts_with(want.as_str()),
            "want {want:?}, got {line:?}\n{err}"
        );
    }
}

#[test]
fn check_no_env_accepts_unset_variables_and_names_the_checks_it_skipped() {
    let f = Fixture::new("cc-noenv");
    let text = BASE
        .replace("https://helpdesk.example.com\"", "https://${PUBLIC_HOST}\"")
        .replacen(
            "cert = \"gw.crt\", key = \"gw.key\"",
            "cert = \"${TLS_DIR}/gw.crt\", key = \"${TLS_DIR}/gw.key\"",
            1,
        )
        .replace(HEX_KEY, "${PORTCULLIS_KEY}")
        .replace(
            "smtp://127.0.0.1:2525",
            "smtp://mailer:${SMTP_PASSWORD}@127.0.0.1:2525",
        );
    let cfg = f.write("noenv.toml", &text);
    let c = cfg.display().to_string();
    let clean = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .env_remove("PUBLIC_HOST")
            .env_remove("TLS_DIR")
            .env_remove("PORTCULLIS_KEY")
            .env_remove("SMTP_PASSWORD")
            .output()
            .unwrap()
    };
    let out = clean(&["check", "--no-env"]);
    let err = stderr(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{err}");
    for (line, key, var) in [
        (3, "server.public_url", "${PUBLIC_HOST}"),
        (4, "server.tls.cert", "${TLS_DIR}"),
        (4, "server.tls.key", "${TLS_DIR}"),
        (16, "storage.encryption_key", "${PORTCULLIS_KEY}"),
        (22, "mfa.email.smtp_url", "${SMTP_PASSWORD}"),
    ] {
        let want = format!("warning: {c}:{line}: {key}: not fully checked (--no-env): {var} unset; checks that need the real value");
        assert!(
            err.lines().any(|l| l.starts_with(&want)),
            "missing {want:?} in\n{err}"
        );
    }
    // Without --no-env each unset variable is an error naming it, its file, line and key.
    let out = clean(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for want in [
        format!("{c}:3: server.public_url: environment variable PUBLIC_HOST is not set"),
        format!("{c}:4: server.tls.cert: environment variable TLS_DIR is not set"),
        format!("{c}:16: storage.encryption_key: environment variable PORTCULLIS_KEY is not set"),
        format!("{c}:22: mfa.email.smtp_url: environment variable SMTP_PASSWORD is not set"),
    ] {
        assert!(err.lines().any(|l| l == want), "missing {want:?} in\n{err}");
    }
    // --no-env still refuses what does not depend on a variable.
    let broken = text.replace("sp_key = \"sp.key\"", "sp_key = \"gw.key\"");
    std::fs::write(&cfg, broken).unwrap();
    let out = clean(&["check", "--no-env"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{c}:29: idp[0].sp_key:")), "{err}");
}

#[test]
fn secrets_can_come_from_files_with_one_trailing_newline_removed() {
    let f = Fixture::new("cc-files");
    f.write("enc.key", &format!("{HEX_KEY}\n"));
    f.write("smtp.url", "smtp://mailer:s3cret@127.0.0.1:2525\r\n");
    f.write("db.url", "sqlite://data/from-file.db");
    f.write("redis.url", "redis://:pw@127.0.0.1:6379/0\n");
    f.write("oidc.secret", "top secret\n\n");
    let text = BASE
        .replace("url = \"sqlite://data/users.db\"", "url_file = \"db.url\"")
        .replace(&format!("encryption_key = \"{HEX_KEY}\""), "encryption_key_file = \"enc.key\"")
        .replace("smtp_url = \"smtp://127.0.0.1:2525\"", "smtp_url_file = \"smtp.url\"")
        .replace(
            "[storage]",
            "[session]\nstore = \"redis\"\nredis_url_file = \"redis.url\"\n\n[storage]",
        )
        + "\n[[idp]]\nid = \"okta\"\nkind = \"oidc\"\nissuer = \"https://corp.okta.com\"\nclient_id = \"p\"\nclient_secret_file = \"oidc.secret\"\n";
    let cfg = f.write("files.toml", &text);
    let c = portcullis::config::Config::from_str_with_env(&cfg, &text, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let st = c.storage.as_ref().unwrap();
    assert_eq!(st.url, "sqlite://data/from-file.db");
    assert_eq!(st.encryption_key.as_deref(), Some(HEX_KEY));
    assert_eq!(
        c.mfa.email.as_ref().unwrap().smtp_url,
        "smtp://mailer:s3cret@127.0.0.1:2525"
    );
    assert_eq!(
        c.session.redis_url.as_deref(),
        Some("redis://:pw@127.0.0.1:6379/0")
    );
    let oidc = c.idps.iter().find_map(|i| i.oidc.as_ref()).unwrap();
    assert_eq!(
        oidc.client_secret.expose(),
        "top secret\n",
        "only one newline is removed"
    );
    // Both forms at once is an error; so is a secret file that is not there.
    let both = text.replace(
        "url_file = \"db.url\"",
        "url_file = \"db.url\"\nurl = \"sqlite://x.db\"",
    );
    let errs = portcullis::config::Config::from_str_with_env(&cfg, &both, &|_| None).unwrap_err();
    assert!(
        errs.to_string()
            .contains("storage.url_file: set either url or url_file, not both"),
        "{errs}"
    );
    std::fs::remove_file(f.path().join("oidc.secret")).unwrap();
    let errs = portcullis::config::Config::from_str_with_env(&cfg, &text, &|_| None).unwrap_err();
    assert!(
        errs.to_string()
            .contains("idp[1].client_secret_file: file ")
            && errs.to_string().contains("oidc.secret does not exist"),
        "{errs}"
    );
}

#[test]
fn variables_work_in_every_string_value_and_double_dollar_brace_is_literal() {
    let text = r#"[server]
listen = "${LISTEN}"
public_url = "https://${HOST}"

[upstream]
url = "http://${APP}/base"

[admin]
tokens = [{ name = "${TOKEN_NAME}", sha256 = "${TOKEN_HASH}" }]

[session]
idle_timeout = "${IDLE}"

[mfa]
issuer = "Cost $${HOME} ${HOST}"

[roles.agent]
groups = ["${GROUP}"]

[[routes]]
prefix = "${PREFIX}"
allow_roles = ["agent"]
"#;
    let env = |k: &str| {
        Some(
            match k {
                "LISTEN" => "127.0.0.1:8443",
                "HOST" => "helpdesk.example.com",
                "APP" => "127.0.0.1:3000",
                "TOKEN_NAME" => "ops",
                "TOKEN_HASH" => "aa".repeat(32).leak(),
                "IDLE" => "45m",
                "GROUP" => "staff",
                "PREFIX" => "/",
                _ => return None,
            }
            .to_owned(),
        )
    };
    let c =
        portcullis::config::Config::from_str_with_env(Path::new("/etc/p/vars.toml"), text, &env)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8443");
    assert_eq!(c.server.public_origin, "https://helpdesk.example.com");
    assert_eq!(c.upstream.authority, "127.0.0.1:3000");
    assert_eq!(c.admin.as_ref().unwrap().tokens[0].name, "ops");
    assert_eq!(
        c.session.idle_timeout,
        std::time::Duration::from_secs(45 * 60)
    );
    assert_eq!(c.mfa.issuer, "Cost ${HOME} helpdesk.example.com");
    assert_eq!(c.roles["agent"].groups, vec!["staff".to_owned()]);
    assert_eq!(c.routes[0].prefix, "/");
}

#[test]
fn the_admin_listener_defaults_to_loopback_port_9090() {
    let text = "[server]\nlisten = \"0.0.0.0:8443\"\npublic_url = \"https://h.example.com\"\n\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\n[admin]\ntokens = []\n\n[roles.a]\ngroups = []\n\n[[routes]]\nprefix = \"/\"\nallow_roles = [\"a\"]\n";
    let c =
        portcullis::config::Config::from_str_with_env(Path::new("/etc/p/a.toml"), text, &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.admin.unwrap().listen.to_string(), "127.0.0.1:9090");
}
