//! Private store servers a test starts on loopback: a test CA (rcgen), Redis with TLS, Redis
//! primaries, replicas and sentinels, and a PostgreSQL instance with `ssl = on`. Each lives in
//! its own temp dir on an ephemeral port and is stopped when dropped; a missing binary skips
//! the test, or fails it under CI (`support::require`).

use super::{loopback_listener, TempDir};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        TestCa {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate for `names` (IP addresses become IP SANs): (cert PEM, key PEM).
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A program, if installed (else the test skips, or fails under CI).
pub fn program(path: &str, package: &str) -> Option<PathBuf> {
    let found = if Path::new(path).exists() {
        Ok(PathBuf::from(path))
    } else {
        Err(format!(
            "{path} not installed (scripts/setup-system --tests installs {package})"
        ))
    };
    portcullis::testing::require(package, found)
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

impl Proc {
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    /// SIGINT (a fast, clean shutdown for both servers), then SIGKILL after 5 s.
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if c.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }
}

/// Waits until `port` accepts TCP connections.
pub async fn wait_port(port: u16, what: &str) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Starts `redis-server` with `args` in `dir` on a free port (`--port` or `--tls-port` is
/// given by `port_arg`); stdout/stderr go to `dir/redis.log`.
pub async fn redis_server(dir: &Path, port_arg: &str, args: &[String]) -> Proc {
    let port = loopback_listener().1;
    let log = std::fs::File::create(dir.join(format!("redis-{port}.log"))).unwrap();
    let mut cmd = Command::new("/usr/bin/redis-server");
    if port_arg == "--tls-port" {
        cmd.args(["--port", "0", "--tls-port", &port.to_string()]);
    } else {
        cmd.args(["--port", &port.to_string()]);
    }
    let child = cmd
        .args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir)
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_port(port, "redis-server").await;
    Proc {
        child: Some(child),
        port,
        dir: dir.to_owned(),
    }
}

/// A Redis with TLS only: `rediss://127.0.0.1:PORT`, certificate for 127.0.0.1 from `ca`.
pub async fn redis_tls(dir: &TempDir, ca: &TestCa) -> Option<Proc> {
    program("/usr/bin/redis-server", "redis-server")?;
    let (cert, key) = ca.leaf(&["127.0.0.1", "localhost"]);
    let d = dir.path();
    std::fs::write(d.join("redis.crt"), cert).unwrap();
    std::fs::write(d.join("redis.key"), key).unwrap();
    std::fs::write(d.join("redis-ca.pem"), ca.pem()).unwrap();
    let f = |n: &str| d.join(n).display().to_string();
    Some(
        redis_server(
            d,
            "--tls-port",
            &[
                "--tls-cert-file".into(),
                f("redis.crt"),
                "--tls-key-file".into(),
                f("redis.key"),
                "--tls-ca-cert-file".into(),
                f("redis-ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
        )
        .await,
    )
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The newest `/usr/lib/postgresql/*/bin`.
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn os_user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A private PostgreSQL with `ssl = on` (certificate for 127.0.0.1 from `ca`) that accepts
/// only TLS connections (`hostssl`), trust auth, user `postgres`. Run as the `postgres` OS
/// user when the test runs as root (initdb refuses root).
pub async fn postgres_ssl(dir: &TempDir, ca: &TestCa) -> Option<Proc> {
    let bin = pg_bin().unwrap_or_else(|| PathBuf::from(PG_BIN));
    program(&bin.join("initdb").display().to_string(), "postgresql")?;
    let root = dir.path().join("pg");
    std::fs::create_dir_all(&root).unwrap();
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let ids = if as_root {
        let ids = os_user_ids("postgres");
        portcullis::testing::require(
            "the postgres OS user",
            ids.ok_or_else(|| "no postgres user to run initdb as".to_owned()),
        )?
    } else {
        (0, 0)
    };
    let run_as = |program: &Path| {
        let mut c = if as_root {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={}", ids.0),
                format!("--regid={}", ids.1),
                "--clear-groups".into(),
                "--".into(),
            ])
            .arg(program);
            c
        } else {
            Command::new(program)
        };
        c.current_dir(&root);
        c
    };
    if as_root {
        std::os::unix::fs::chown(dir.path(), Some(ids.0), Some(ids.1)).unwrap();
        std::os::unix::fs::chown(&root, Some(ids.0), Some(ids.1)).unwrap();
    }
    let data = root.join("data");
    let st = run_as(&bin.join("initdb"))
        .args(["-D"])
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(st.success(), "initdb failed");
    let (cert, key) = ca.leaf(&["127.0.0.1", "localhost"]);
    std::fs::write(data.join("server.crt"), cert).unwrap();
    std::fs::write(data.join("server.key"), key).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    if as_root {
        for f in ["server.crt", "server.key", "pg_hba.conf"] {
            std::os::unix::fs::chown(data.join(f), Some(ids.0), Some(ids.1)).unwrap();
        }
    }
    let port = loopback_listener().1;
    let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
    let child = run_as(&bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
        .args(["-c", "fsync=off", "-c"])
        .arg(format!("unix_socket_directories={}", root.display()))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_port(port, "postgres").await;
    Some(Proc {
        child: Some(child),
        port,
        dir: root,
    })
}
