//! Packaging (issue 18 item 8): the systemd unit passes `systemd-analyze verify`, the Debian
//! package built by `scripts/package-deb` installs with `dpkg -i` into a scratch root and its
//! default config passes the installed `portcullis check`, and `completions` / `man` print
//! usable scripts and a man page. A missing system tool skips its test with a message.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `tool` is on the PATH; if not, says that the test skipped.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped {test}: {tool} is not installed");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_of(args: &[&str]) -> String {
    String::from_utf8(run(Command::new(BIN).args(args)).stdout).unwrap()
}

/// The unit's `Key=value` lines (comments and sections left out).
fn unit_keys(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_systemd_unit_is_hardened_and_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(repo().join("dist/portcullis.service")).unwrap();
    let keys = unit_keys(&unit);
    let has = |k: &str, v: &str| keys.iter().any(|(a, b)| a == k && b == v);
    for (k, v) in [
        ("User", "portcullis"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("StateDirectory", "portcullis"),
        ("ConfigurationDirectory", "portcullis"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        (
            "ExecStartPre",
            "/usr/bin/portcullis check --config /etc/portcullis/portcullis.toml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert!(has(k, v), "{k}={v} missing from the unit");
    }
    if !have("systemd-analyze", "the systemd-analyze check") {
        return;
    }
    // verify wants the binaries to exist: a copy that runs the one just built. The man page is
    // the package's, not installed here (`--man=no`).
    let dir = TempDir::new("unit");
    let copy = dir.path().join("portcullis.service");
    std::fs::write(&copy, unit.replace("/usr/bin/portcullis", BIN)).unwrap();
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy));
    // Unknown keys and values systemd cannot parse are only warnings: none is allowed.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "systemd-analyze: {stderr}");
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish_and_the_bash_one_parses() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("portcullis"), "{shell}: {script}");
        assert!(
            script.contains("check") && script.contains("users"),
            "{shell}"
        );
    }
    let dir = TempDir::new("completions");
    let file = dir.path().join("portcullis.bash");
    std::fs::write(&file, stdout_of(&["completions", "bash"])).unwrap();
    run(Command::new("bash").arg("-n").arg(&file));
    let bad = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!bad.status.success(), "an unknown shell is refused");
}

#[test]
fn the_man_page_is_roff_for_section_one_and_names_the_commands() {
    let man = stdout_of(&["man"]);
    assert!(man.contains(".TH PORTCULLIS 1"), "{man}");
    assert!(man.contains(".SH NAME"), "{man}");
    for cmd in ["run", "check", "users", "completions"] {
        assert!(man.contains(cmd), "{cmd} in the man page");
    }
}

/// Installs `deb` with dpkg into the empty root `root` (its own dpkg database; maintainer
/// scripts run without chroot and see `DPKG_ROOT`, so the host's users and systemd are left
/// alone; the dependencies are the host's, not the scratch root's).
fn dpkg_install(root: &Path, deb: &Path) {
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-depends", "-i"])
        .arg(deb));
}

#[test]
fn the_debian_package_installs_into_a_scratch_root_and_its_config_passes_the_installed_check() {
    if !have("dpkg-deb", "the package test") || !have("dpkg", "the package test") {
        return;
    }
    let dir = TempDir::new("deb");
    let out = run(Command::new(repo().join("scripts/package-deb"))
        .args(["--binary", BIN, "--fast", "--out"])
        .arg(dir.path().join("out")));
    let deb = PathBuf::from(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    );
    assert!(deb.is_file(), "{}", deb.display());
    let info = String::from_utf8(run(Command::new("dpkg-deb").arg("-I").arg(&deb)).stdout).unwrap();
    assert!(info.contains("Package: portcullis"), "{info}");
    assert!(info.contains("Depends: libc6"), "{info}");

    let root = dir.path().join("root");
    dpkg_install(&root, &deb);
    let status = String::from_utf8(
        run(Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args(["-s", "portcullis"]))
        .stdout,
    )
    .unwrap();
    assert!(status.contains("Status: install ok installed"), "{status}");
    let conffiles =
        std::fs::read_to_string(root.join("var/lib/dpkg/info/portcullis.conffiles")).unwrap();
    assert!(
        conffiles.contains("/etc/portcullis/portcullis.toml"),
        "{conffiles}"
    );
    for f in [
        "usr/bin/portcullis",
        "lib/systemd/system/portcullis.service",
        "etc/logrotate.d/portcullis",
        "usr/share/man/man1/portcullis.1.gz",
        "usr/share/bash-completion/completions/portcullis",
        "usr/share/zsh/vendor-completions/_portcullis",
        "usr/share/fish/vendor_completions.d/portcullis.fish",
        "usr/share/doc/portcullis/copyright",
    ] {
        assert!(root.join(f).is_file(), "{f} installed");
    }
    // postinst made the state directory (under DPKG_ROOT) and closed the config to others.
    assert!(root.join("var/lib/portcullis").is_dir());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(root.join("etc/portcullis/portcullis.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);

    let config = root.join("etc/portcullis/portcullis.toml");
    let check = run(Command::new(root.join("usr/bin/portcullis"))
        .args(["check", "--config"])
        .arg(&config));
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
}
