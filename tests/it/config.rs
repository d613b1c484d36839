//! Configuration: errors name file, line and key; `check` and `run` agree; shipped configs pass.

use crate::support::*;
use portcullis::config::Config;
use std::path::Path;
use std::process::Command;

fn errors_of(text: &str) -> Vec<String> {
    let p = Path::new("/etc/portcullis/test.toml");
    match Config::from_str_with_env(p, text, &|k| (k == "SET_VAR").then(|| HEX_KEY.to_owned())) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

/// A valid `storage.encryption_key` (32 bytes as hex).
const HEX_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

const MINIMAL: &str = r#"[server]
listen = "127.0.0.1:8443"
public_url = "https://helpdesk.example.com"

[upstream]
url = "http://127.0.0.1:3000"

[roles.agent]
groups = ["agents"]

[[routes]]
prefix = "/"
allow_roles = ["agent"]
"#;

#[test]
fn a_minimal_config_is_valid() {
    assert_eq!(errors_of(MINIMAL), Vec::<String>::new());
}

#[test]
fn an_unknown_key_names_file_line_and_key() {
    let text = MINIMAL.replace("[upstream]\n", "[upstream]\ncolour = \"blue\"\n");
    assert_eq!(
        errors_of(&text),
        vec!["/etc/portcullis/test.toml:6: upstream.colour: unknown key \"colour\" in [upstream]; the keys here are url, connect_timeout, timeout, pool_idle_timeout, pool_max_idle, tls"]
    );
}

#[test]
fn a_bad_duration_names_its_key() {
    let text = MINIMAL.replace("[upstream]\n", "[upstream]\ntimeout = \"ten\"\n");
    assert_eq!(
        errors_of(&text),
        vec!["/etc/portcullis/test.toml:6: upstream.timeout: invalid duration \"ten\": expected a duration like \"90m\" or \"1h30m\" (units: ms, s, m, h, d, w)"]
    );
}

#[test]
fn cross_checks_report_every_error_with_its_line() {
    let text = r#"[server]
listen = "0.0.0.0:8443"
public_url = "helpdesk.example.com"
tls = { cert = "missing.crt", key = "missing.key" }
default_login = "okta"

[upstream]
url = "http://127.0.0.1:3000"

[admin]
listen = "127.0.0.1:8443"

[[idp]]
id = "okta"
kind = "oidc"

[[idp]]
id = "okta"
kind = "oidc"

[roles.agent]
groups = ["agents"]

[[routes]]
prefix = "/agent"
allow_roles = ["agent", "ghost"]
login = "nowhere"

[[routes]]
prefix = "/agent"
access = "public"
"#;
    let errs = errors_of(text);
    let f = "/etc/portcullis/test.toml";
    for want in [
        format!(
            "{f}:3: server.public_url: \"helpdesk.example.com\" is not an absolute http(s) URL"
        ),
        format!("{f}:4: server.tls.cert: file /etc/portcullis/missing.crt does not exist"),
        format!("{f}:4: server.tls.key: file /etc/portcullis/missing.key does not exist"),
        format!("{f}:11: admin.listen: overlaps server.listen (0.0.0.0:8443)"),
        format!("{f}:18: idp[1].id: duplicate IdP id \"okta\""),
        format!("{f}:26: routes[0].allow_roles[1]: unknown role \"ghost\""),
        format!("{f}:27: routes[0].login: unknown login \"nowhere\""),
        format!("{f}:30: routes[1].prefix: duplicate route prefix \"/agent\""),
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(&want)),
            "missing {want:?} in {errs:#?}"
        );
    }
}

/// `MINIMAL` with native users, `[mfa]` and more for the passkey checks (DESIGN.md §10).
fn with_mfa(public_url: &str, roles: &str, mfa: &str, native: &str) -> String {
    format!(
        "{}\n{roles}\n[storage]\nurl = \"sqlite://x.db\"\nencryption_key = \"{HEX_KEY}\"\n\n[native]\n{native}\n\n[mfa]\n{mfa}\n",
        MINIMAL
            .replace("https://helpdesk.example.com", public_url)
            .replace("groups = [\"agents\"]", "groups = [\"agents\"]\nrequire_mfa = true\nmfa_methods = [\"webauthn\"]")
    )
}

#[test]
fn passkeys_and_per_role_factor_lists_are_checked_against_the_methods_and_public_url() {
    let url = "https://helpdesk.example.com";
    let both = "methods = [\"webauthn\", \"totp\"]";
    let ok = with_mfa(url, "", both, "passkey_login = true");
    assert_eq!(errors_of(&ok), Vec::<String>::new());
    let c = Config::from_str_with_env(Path::new("/x/c.toml"), &ok, &|_| None).unwrap();
    let w = c.mfa.webauthn.as_ref().unwrap();
    assert_eq!(
        (w.rp_id.as_str(), w.origin.as_str()),
        ("helpdesk.example.com", url)
    );
    assert_eq!(
        c.mfa_methods_for(&["agent".into()]).len(),
        1,
        "the role narrows"
    );

    // A role naming a factor that is not offered, and so left with none.
    let e = errors_of(&with_mfa(url, "", "methods = [\"totp\"]", ""));
    assert!(
        e.iter()
            .any(|e| e
                .contains("roles.agent.mfa_methods[0]: \"webauthn\" is not one of [mfa] methods")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|e| e.contains("roles.agent.mfa_methods: leaves this role no second factor")),
        "{e:#?}"
    );
    // An empty list, an unknown name.
    let e = errors_of(
        &with_mfa(url, "", both, "").replace("mfa_methods = [\"webauthn\"]", "mfa_methods = []"),
    );
    assert!(
        e.iter()
            .any(|e| e.contains("roles.agent.mfa_methods: is empty")),
        "{e:#?}"
    );
    let e = errors_of(
        &with_mfa(url, "", both, "")
            .replace("mfa_methods = [\"webauthn\"]", "mfa_methods = [\"sms\"]"),
    );
    assert!(
        e.iter()
            .any(|e| e.contains("roles.agent.mfa_methods[0]: unknown method \"sms\"")),
        "{e:#?}"
    );
    // Browsers refuse an IP address as the relying party.
    let e = errors_of(&with_mfa("http://127.0.0.1:8443", "", both, ""));
    assert!(
        e.iter()
            .any(|e| e.contains("server.public_url: is an IP address")),
        "{e:#?}"
    );
    // rp_id: the host or a parent domain of it, nothing else.
    let rp = |id: &str| format!("{both}\nwebauthn = {{ rp_id = \"{id}\" }}");
    assert_eq!(
        errors_of(&with_mfa(url, "", &rp("example.com"), "")),
        Vec::<String>::new()
    );
    let e = errors_of(&with_mfa(url, "", &rp("evil.com"), ""));
    assert!(
        e.iter()
            .any(|e| e.contains("mfa.webauthn.rp_id: \"evil.com\" must be")),
        "{e:#?}"
    );
    // The passkey sign-in needs passkeys.
    let e = errors_of(
        &with_mfa(url, "", "methods = [\"totp\"]", "passkey_login = true")
            .replace("mfa_methods = [\"webauthn\"]", "mfa_methods = [\"totp\"]"),
    );
    assert!(
        e.iter()
            .any(|e| e.contains("native.passkey_login: needs \"webauthn\"")),
        "{e:#?}"
    );
    // Two roles that require a factor but share none: a warning (a user with both is stuck).
    let two = with_mfa(
        url,
        "[roles.ops]\ngroups = [\"ops\"]\nrequire_mfa = true\nmfa_methods = [\"totp\"]\n",
        both,
        "",
    );
    let c = Config::from_str_with_env(Path::new("/x/c.toml"), &two, &|_| None).unwrap();
    assert!(
        c.warnings.iter().any(|w| w
            .to_string()
            .contains("has no factor in common with role \"agent\"")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn secrets_come_from_the_environment_and_a_missing_variable_is_an_error() {
    let ok =
        format!("{MINIMAL}[storage]\nurl = \"sqlite://x.db\"\nencryption_key = \"${{SET_VAR}}\"\n");
    assert_eq!(errors_of(&ok), Vec::<String>::new());
    let c =
        Config::from_str_with_env(Path::new("/x/c.toml"), &ok, &|_| Some(HEX_KEY.into())).unwrap();
    assert_eq!(c.storage.unwrap().encryption_key.as_deref(), Some(HEX_KEY));
    let missing = ok.replace("SET_VAR", "UNSET_VAR");
    assert_eq!(
        errors_of(&missing),
        vec!["/etc/portcullis/test.toml:16: storage.encryption_key: environment variable UNSET_VAR is not set"]
    );
}

#[test]
fn invalid_toml_names_the_line() {
    let errs = errors_of("[server]\nlisten = \n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("/etc/portcullis/test.toml:2:"),
        "{errs:?}"
    );
}

#[test]
fn check_and_run_print_the_same_errors_and_exit_1() {
    let dir = TempDir::new("cfgcli");
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        MINIMAL.replace("allow_roles = [\"agent\"]", "allow_roles = [\"nobody\"]"),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let check = Command::new(bin)
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let check_err = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(
        check_err.contains("bad.toml:13: routes[0].allow_roles[0]: unknown role \"nobody\""),
        "{check_err}"
    );
    let run = Command::new(bin)
        .args(["run", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let run_err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(
        run_err.starts_with(&check_err),
        "run must print the check errors first:\n{run_err}"
    );
    assert!(run_err.contains("refusing to start"));
}

#[test]
fn check_and_run_refuse_an_upstream_client_key_that_does_not_match_its_certificate() {
    let dir = TempDir::new("cfgtls");
    let cert = rcgen::generate_simple_self_signed(vec!["gateway".to_owned()]).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("client.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("other.key"), other.serialize_pem()).unwrap();
    let p = dir.path().join("tls.toml");
    std::fs::write(
        &p,
        MINIMAL.replace(
            "url = \"http://127.0.0.1:3000\"\n",
            "url = \"https://127.0.0.1:3000\"\ntls = { client_cert = \"client.pem\", client_key = \"other.key\" }\n",
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let want = "tls.toml:7: upstream.tls.client_key: does not match the certificate in client_cert";
    for cmd in ["check", "run"] {
        let out = Command::new(bin)
            .args([cmd, "--config"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{cmd}: {err}");
    }
}

#[test]
fn the_shipped_configs_pass_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let mut files = vec![root.join("config/portcullis.toml")];
    for e in std::fs::read_dir(root.join("config/examples")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            files.push(p);
        }
    }
    assert!(
        files.len() >= 4,
        "config/portcullis.toml and at least three examples"
    );
    for f in files {
        let out = Command::new(bin)
            .args(["check", "--config"])
            .arg(&f)
            .env("PORTCULLIS_KEY", "0".repeat(64))
            .env("OKTA_SECRET", "s")
            .env("ENTRA_SECRET", "s")
            .env("KEYCLOAK_SECRET", "s")
            .env("SMTP_PASSWORD", "s")
            .env("REDIS_PASSWORD", "s")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(stdout.trim(), "ok", "{name}: {stderr}");
        // The CI of a config repository has none of the secrets: --no-env passes too.
        let out = Command::new(bin)
            .args(["check", "--no-env", "--config"])
            .arg(&f)
            .env_clear()
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stdout.trim(), "ok", "{name} --no-env: {stderr}");
        let uses_vars = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .any(|l| l.split('#').next().unwrap_or("").contains("${"));
        if uses_vars {
            assert!(
                stderr.contains("not fully checked (--no-env)"),
                "{name}: {stderr}"
            );
        }
    }
}

#[test]
fn an_oidc_idp_names_missing_foreign_and_bad_keys() {
    let text = format!(
        "{MINIMAL}{}",
        r#"
[[idp]]
id = "okta"
kind = "oidc"
issuer = "http://corp.okta.com"
client_auth = "private_key_jwt"
sp_entity_id = "https://x"
scopes = ["email"]
on_missing_mfa = "step_up"
mfa_evidence = { amr_any = ["mfa"], authn_context_any = ["x"] }
"#
    );
    let errs = errors_of(&text);
    let f = "/etc/portcullis/test.toml";
    let want = [
        format!("{f}:18: idp[0].issuer: \"http://corp.okta.com\" is not an absolute https URL"),
        format!("{f}:19: idp[0].client_auth: unknown value \"private_key_jwt\""),
        format!("{f}:20: idp[0].sp_entity_id: is a SAML setting"),
        format!("{f}:21: idp[0].scopes: must include \"openid\""),
        format!("{f}:22: idp[0].on_missing_mfa: \"step_up\" needs a [storage] section"),
        format!("{f}:23: idp[0].mfa_evidence.authn_context_any: is a SAML setting"),
    ];
    for w in &want {
        assert!(
            errs.iter().any(|e| e.starts_with(w.as_str())),
            "missing {w:?} in {errs:#?}"
        );
    }
    for key in ["client_id", "client_secret"] {
        assert!(
            errs.iter()
                .any(|e| e.contains(&format!("idp[0].{key}: is required for an OIDC IdP"))),
            "missing {key} in {errs:#?}"
        );
    }
    assert!(!errs
        .iter()
        .any(|e| e.contains("not available in this build")));
}

#[test]
fn a_complete_oidc_idp_is_valid_and_a_bare_saml_idp_names_what_it_lacks() {
    let oidc = format!(
        "{MINIMAL}{}",
        r#"
[[idp]]
id = "kc"
kind = "oidc"
issuer = "https://sso.example.com/realms/x"
client_id = "portcullis"
client_secret = "${SET_VAR}"
"#
    );
    assert_eq!(errors_of(&oidc), Vec::<String>::new());
    let local = oidc.replace("https://sso.example.com", "http://127.0.0.1:8080");
    assert_eq!(
        errors_of(&local),
        Vec::<String>::new(),
        "plain http on loopback"
    );
    let saml = format!("{MINIMAL}\n[[idp]]\nid = \"s\"\nkind = \"saml\"\nclient_id = \"x\"\n");
    let errs = errors_of(&saml);
    for want in [
        "idp[0].metadata: a SAML IdP needs its metadata",
        "idp[0].sp_entity_id: is required for a SAML IdP",
        "idp[0].client_id: is an OIDC setting",
    ] {
        assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:#?}");
    }
}

#[test]
fn server_hsts_is_a_year_with_https_can_be_turned_off_and_is_validated() {
    let p = Path::new("/etc/portcullis/test.toml");
    let hsts = |text: &str| {
        Config::from_str_with_env(p, text, &|_| None)
            .unwrap()
            .server
            .hsts
    };
    let with =
        |base: &str, v: &str| base.replacen("public_url", &format!("hsts = {v}\npublic_url"), 1);
    assert_eq!(hsts(MINIMAL).as_deref(), Some("max-age=31536000"));
    assert_eq!(hsts(&with(MINIMAL, "\"off\"")), None);
    let own = "max-age=600; includeSubDomains; preload";
    assert_eq!(
        hsts(&with(MINIMAL, &format!("{own:?}"))).as_deref(),
        Some(own)
    );
    assert_eq!(
        hsts(&with(MINIMAL, "'max-age=\"60\"'")).as_deref(),
        Some("max-age=\"60\"")
    );
    let http = MINIMAL.replace("https://", "http://");
    assert_eq!(hsts(&http), None);
    assert_eq!(hsts(&with(&http, "\"off\"")), None);
    for (value, why) in [
        ("includeSubDomains", "max-age is required"),
        ("", "max-age is required"),
        ("max-age=soon", "max-age needs a number of seconds"),
        ("max-age", "max-age needs a number of seconds"),
        ("max-age=1; Max-Age=2", "a directive appears twice"),
        (
            "max-age=1\u{7}",
            "only visible ASCII, no leading or trailing space",
        ),
        (
            " max-age=1",
            "only visible ASCII, no leading or trailing space",
        ),
        ("max-age=1; in cluded", "a directive name is not a token"),
    ] {
        assert_eq!(
            // JSON string escapes are TOML basic-string escapes.
            errors_of(&with(MINIMAL, &serde_json::to_string(value).unwrap())),
            vec![format!("/etc/portcullis/test.toml:3: server.hsts: {value:?} is not a Strict-Transport-Security value ({why}); write e.g. \"max-age=31536000; includeSubDomains\", or \"off\"")],
            "{value:?}"
        );
    }
    assert_eq!(
        errors_of(&with(&http, "\"max-age=60\"")),
        vec!["/etc/portcullis/test.toml:3: server.hsts: Strict-Transport-Security is sent only when public_url is https; remove this key (or write \"off\")"]
    );
}

#[test]
fn identity_header_names_are_configurable_and_checked() {
    let p = Path::new("/etc/portcullis/test.toml");
    let names = |text: &str| {
        Config::from_str_with_env(p, text, &|_| None)
            .unwrap()
            .identity_headers
    };
    let d = names(MINIMAL);
    assert_eq!(d.user, "x-forwarded-user");
    assert_eq!(d.assertion, "x-portcullis-assertion");
    let with = |table: &str| format!("{MINIMAL}\n[identity_headers]\n{table}\n");
    let n = names(&with(
        "user = \"X-Remote-User\"\nroles = \"x-remote-roles\"",
    ));
    assert_eq!(n.user, "x-remote-user", "lower-cased");
    assert_eq!(n.roles, "x-remote-roles");
    assert_eq!(
        n.email, "x-forwarded-email",
        "unset names keep their default"
    );
    for (table, why) in [
        (
            "user = \"x remote\"",
            "identity_headers.user: must be a header name",
        ),
        (
            "user = \"\"",
            "identity_headers.user: must be a header name",
        ),
        (
            "email = \"cookie\"",
            "identity_headers.email: \"cookie\" already has a meaning",
        ),
        (
            "mfa = \"X_Forwarded_For\"",
            "identity_headers.mfa: \"x_forwarded_for\" already has a meaning",
        ),
        (
            "session = \"x-auth-roles\"",
            "identity_headers.session: \"x-auth-roles\" is also the name for roles",
        ),
        (
            "user = \"a-b\"\ngroups = \"A_B\"",
            "identity_headers.groups: \"a_b\" is also the name for user",
        ),
        ("colour = \"x\"", "identity_headers.colour: unknown key \"colour\""),
        ("mfa = \"Accept\"", "identity_headers.mfa: \"accept\" already has a meaning"),
        (
            "user = \"x-auth-roles\"",
            "identity_headers.roles: the default name \"x-auth-roles\" is already the name for user",
        ),
    ] {
        let errors = errors_of(&with(table));
        assert!(
            errors
                .iter()
                .any(|e| e.contains(why) && e.starts_with("/etc/portcullis/test.toml:")),
            "{table}: {errors:?}"
        );
    }
}

fn warnings_of(text: &str) -> Vec<String> {
    Config::from_str(Path::new("/etc/portcullis/test.toml"), text)
        .unwrap_or_else(|e| panic!("{e}"))
        .warnings
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn service_tokens_and_bearer_settings_are_checked_with_file_line_and_key() {
    let good = "a".repeat(64);
    let text = format!(
        r#"{MINIMAL}
[[routes]]
prefix = "/api"
allow_roles = ["agent"]
bearer = true

[[routes]]
prefix = "/hc"
access = "public"
bearer = true

[[service_tokens]]
name = "crm-sync"
sha256 = "{good}"
roles = ["agent"]

[[service_tokens]]
name = "crm-sync"
sha256 = "{good}"
roles = ["ghost"]

[[service_tokens]]
name = "Bad Name"
sha256 = "+f{short}"
roles = []

[[idp]]
id = "corp"
kind = "oidc"
issuer = "https://corp.example.com"
client_id = "gw"
client_secret = "s"
bearer = {{ audience = " ", roles_claim = "roles" }}

[[idp]]
id = "partner"
kind = "saml"
metadata_url = "https://partner.example.com/metadata"
sp_entity_id = "https://helpdesk.example.com/saml"
bearer = {{ audience = "api" }}
"#,
        short = "f".repeat(62)
    );
    let f = "/etc/portcullis/test.toml";
    assert_eq!(
        errors_of(&text),
        vec![
            format!("{f}:23: routes[2].bearer: a public route admits everyone; bearer = true needs allow_roles"),
            format!("{f}:31: service_tokens[1].name: duplicate service token name \"crm-sync\""),
            format!("{f}:32: service_tokens[1].sha256: the same token is configured twice; each client needs its own"),
            format!("{f}:33: service_tokens[1].roles[0]: unknown role \"ghost\"; define [roles.ghost]"),
            format!("{f}:36: service_tokens[2].name: token names use a-z, 0-9, '_' and '-' (at most 64)"),
            format!("{f}:37: service_tokens[2].sha256: must be 64 hex characters: the SHA-256 of the token (`portcullis tokens new NAME --role R` prints one)"),
            format!("{f}:38: service_tokens[2].roles: a service token must name the roles it carries"),
            format!("{f}:46: idp[0].bearer.audience: must name the audience (aud) the access tokens are issued for"),
            format!("{f}:53: idp[1].bearer: is an OIDC setting; a SAML IdP (kind = \"saml\") does not take it"),
        ]
    );
}

#[test]
fn a_bearer_route_no_bearer_can_reach_and_an_audience_that_is_the_client_id_are_warnings() {
    let text = format!(
        r#"{MINIMAL}
[[routes]]
prefix = "/api"
allow_roles = ["agent"]
bearer = true
"#
    );
    assert_eq!(
        warnings_of(&text),
        vec!["/etc/portcullis/test.toml:18: routes[1].bearer: no [[service_tokens]] and no [[idp]] with bearer: every bearer token is refused here"]
    );
    let text = format!(
        r#"{text}
[[idp]]
id = "corp"
kind = "oidc"
issuer = "https://corp.example.com"
client_id = "gw"
client_secret = "s"
bearer = {{ audience = "gw" }}
"#
    );
    assert_eq!(
        warnings_of(&text),
        vec!["/etc/portcullis/test.toml:26: idp[0].bearer.audience: is the gateway's own client_id: ID tokens issued to the gateway would be accepted as access tokens; use the API's own audience"]
    );
}

#[test]
fn store_tls_and_sentinel_keys_are_checked_with_file_line_and_key() {
    let dir = TempDir::new("store-tls-check");
    let d = dir.path();
    let ca = crate::support::servers::TestCa::new("check ca");
    let (cert, key) = ca.leaf(&["127.0.0.1"]);
    std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.join("client.crt"), &cert).unwrap();
    std::fs::write(d.join("client.key"), &key).unwrap();
    std::fs::write(d.join("garbage.pem"), "not a certificate").unwrap();
    let (_, other_key) = ca.leaf(&["127.0.0.2"]);
    std::fs::write(d.join("other.key"), other_key).unwrap();
    let p = |n: &str| d.join(n).display().to_string();
    let one = |session: &str| {
        errors_of(&format!(
            "{MINIMAL}\n[session]\nstore = \"redis\"\n{session}\n"
        ))
    };
    // A good TLS setup and a good sentinel setup pass.
    assert_eq!(
        one(&format!(
            "redis_url = \"rediss://127.0.0.1:6380/0\"\nredis_tls = {{ ca = \"{}\", client_cert = \"{}\", client_key = \"{}\" }}",
            p("ca.pem"), p("client.crt"), p("client.key")
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        one("redis_sentinel = { master = \"m\", nodes = [\"redis://127.0.0.1:26379\", \"redis://127.0.0.1:26380\"] }"),
        Vec::<String>::new()
    );
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "redis_url = \"redis://127.0.0.1:6379\"\nredis_sentinel = { master = \"m\", nodes = [\"redis://127.0.0.1:26379\"] }".into(),
            "session.redis_sentinel",
            "exclusive",
        ),
        ("redis_sentinel = { master = \"m\", nodes = [] }".into(), "session.redis_sentinel.nodes", "at least one"),
        ("redis_sentinel = { master = \"\", nodes = [\"redis://127.0.0.1:26379\"] }".into(), "session.redis_sentinel.master", "name"),
        (
            "redis_sentinel = { master = \"m\", nodes = [\"redis://127.0.0.1:26379\", \"rediss://127.0.0.1:26380\"] }".into(),
            "session.redis_sentinel.nodes",
            "mixes",
        ),
        ("redis_url = \"rediss://127.0.0.1:6380/#insecure\"".into(), "session.redis_url", "cannot be turned off"),
        ("redis_url = \"http://127.0.0.1:6379\"".into(), "session.redis_url", "rediss://"),
        (
            format!("redis_url = \"rediss://127.0.0.1:6380\"\nredis_tls = {{ ca = \"{}\" }}", p("missing.pem")),
            "session.redis_tls.ca",
            "cannot read",
        ),
        (
            format!("redis_url = \"rediss://127.0.0.1:6380\"\nredis_tls = {{ ca = \"{}\" }}", p("garbage.pem")),
            "session.redis_tls.ca",
            "PEM",
        ),
        (
            format!("redis_url = \"rediss://127.0.0.1:6380\"\nredis_tls = {{ ca = \"{}\" }}", d.display()),
            "session.redis_tls.ca",
            "cannot read",
        ),
        (
            format!("redis_url = \"rediss://127.0.0.1:6380\"\nredis_tls = {{ client_cert = \"{}\" }}", p("client.crt")),
            "session.redis_tls.client_cert",
            "client_key",
        ),
        (
            format!(
                "redis_url = \"rediss://127.0.0.1:6380\"\nredis_tls = {{ client_cert = \"{}\", client_key = \"{}\" }}",
                p("client.crt"),
                p("other.key")
            ),
            "session.redis_tls.client_key",
            "does not go with",
        ),
        (
            format!("redis_url = \"redis://127.0.0.1:6379\"\nredis_tls = {{ ca = \"{}\" }}", p("ca.pem")),
            "session.redis_tls",
            "not rediss://",
        ),
    ];
    for (session, key, message) in cases {
        let errors = one(&session);
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!(": {key}: ")) && e.contains(message)),
            "{session}\n=> {errors:?}"
        );
        assert!(
            errors
                .iter()
                .all(|e| e.starts_with("/etc/portcullis/test.toml:")),
            "{errors:?}"
        );
    }
    let storage = |s: &str| {
        errors_of(&format!(
            "{MINIMAL}\n[storage]\nencryption_key = \"{}\"\n{s}\n",
            "ab".repeat(32)
        ))
    };
    assert_eq!(
        storage(&format!(
            "url = \"postgres://db.internal/p?sslmode=verify-full\"\ntls = {{ ca = \"{}\" }}",
            p("ca.pem")
        )),
        Vec::<String>::new()
    );
    for (s, key, message) in [
        (
            format!(
                "url = \"sqlite://u.db\"\ntls = {{ ca = \"{}\" }}",
                p("ca.pem")
            ),
            "storage.tls",
            "postgres",
        ),
        (
            "url = \"postgres://db/p?sslrootcert=/ca.pem\"".to_owned(),
            "storage.url",
            "storage.tls",
        ),
        (
            "url = \"postgres://db/p?sslmode=sometimes\"".to_owned(),
            "storage.url",
            "not one of",
        ),
        (
            format!(
                "url = \"postgres://db/p?sslmode=require\"\ntls = {{ ca = \"{}\" }}",
                p("ca.pem")
            ),
            "storage.url",
            "verify-full",
        ),
        (
            format!(
                "url = \"postgres://db/p?sslmode=disable\"\ntls = {{ ca = \"{}\" }}",
                p("ca.pem")
            ),
            "storage.url",
            "verify-full",
        ),
    ] {
        let errors = storage(&s);
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!(": {key}: ")) && e.contains(message)),
            "{s}\n=> {errors:?}"
        );
    }
}
