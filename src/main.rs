//! The `portcullis` command: run, check, demo, certs. Thin: parsing arguments, printing, exit codes.

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};
use portcullis::clock::Clock;
use portcullis::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

// The proxy path allocates small, short-lived buffers per request; mimalloc serves them faster
// than glibc malloc (measured with bench/run.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An identity gateway in front of your helpdesk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, default_value = "config/portcullis.toml")]
        config: PathBuf,
    },
    /// Check a config file: prints `ok`, or every error with file, line and key (exit 1).
    /// Refuses everything `run` would refuse before serving; it does not connect to stores or IdPs.
    Check {
        #[arg(long, default_value = "config/portcullis.toml")]
        config: PathBuf,
        /// Do not read the environment: each `${VAR}` is a placeholder and the checks that need
        /// its value are skipped, each named in a warning (for CI of a config repository).
        #[arg(long)]
        no_env: bool,
    },
    /// Certificates for local use.
    Certs {
        #[command(subcommand)]
        what: CertsCommand,
    },
    /// Start the gateway and a sample helpdesk app on loopback, with a demo contractor.
    Demo {
        /// Port of the gateway on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Directory for the demo's config, database and keys (wiped at start if the demo
        /// made it; any other non-empty directory is refused).
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
    },
    /// Print a new admin API token and the config line that accepts it.
    AdminToken {
        /// A name for the token (shown in the audit log).
        name: String,
    },
    /// Machine clients' service tokens (`[[service_tokens]]`).
    Tokens {
        #[command(subcommand)]
        what: TokensCommand,
    },
    /// List or terminate sessions through the admin API of a running gateway.
    Sessions {
        #[arg(long, global = true, default_value = "config/portcullis.toml")]
        config: PathBuf,
        /// Admin token (default: $PORTCULLIS_ADMIN_TOKEN).
        #[arg(
            long,
            global = true,
            env = "PORTCULLIS_ADMIN_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
        #[command(subcommand)]
        what: SessionsCommand,
    },
    /// Emergency access while the IdP is down, through the admin API (DESIGN.md §12).
    BreakGlass {
        #[arg(long, global = true, default_value = "config/portcullis.toml")]
        config: PathBuf,
        /// Admin token (default: $PORTCULLIS_ADMIN_TOKEN).
        #[arg(
            long,
            global = true,
            env = "PORTCULLIS_ADMIN_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
        #[command(subcommand)]
        what: BreakGlassCommand,
    },
    /// Manage native users in the configured user store.
    Users {
        #[arg(long, global = true, default_value = "config/portcullis.toml")]
        config: PathBuf,
        #[command(subcommand)]
        what: UsersCommand,
    },
    /// Print a shell completion script to stdout (bash, zsh, fish, elvish or powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff, section 1) to stdout.
    Man,
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Print a fresh token once, and the `[[service_tokens]]` block (its hash) that accepts it.
    New {
        name: String,
        /// A role from the config (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List live sessions.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Terminate one session by id, or all of a user's sessions with --user.
    Revoke {
        // A session id is base64url: one in 64 starts with `-`, which is still an id.
        #[arg(allow_hyphen_values = true)]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        user: Option<String>,
    },
}

/// What `break-glass arm` sends: the admin API's body, field for field.
#[derive(clap::Args, serde::Serialize)]
struct ArmArgs {
    #[arg(long = "user", required = true)]
    users: Vec<String>,
    #[arg(
        long,
        help = "The window, e.g. \"2h\" (at most [break_glass] max_window)"
    )]
    duration: String,
    #[arg(long)]
    reason: String,
}

#[derive(Subcommand)]
enum BreakGlassCommand {
    /// Arm access for users (repeat --user); prints one single-use link each.
    Arm(ArmArgs),
    /// Disarm at once, ending every session it gave.
    Disarm,
    /// Who is armed, until when.
    Status,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user. Without --password-stdin a password is generated and printed once.
    Add {
        name: String,
        /// A role from the config (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long)]
        email: Option<String>,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Refuse all further logins of a user and end their sessions.
    Disable { name: String },
    /// Allow a disabled user again.
    Enable { name: String },
    /// Remove a user's second factors and remembered devices (they enroll again at next login).
    ResetMfa { name: String },
    /// Issue new recovery codes (printed once; the old ones stop working).
    RecoveryCodes {
        name: String,
        /// Lifetime, e.g. "30d"; default from mfa.recovery_codes.ttl.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Set a user's password (generated and printed once, or read with --password-stdin);
    /// their sessions and pending logins end.
    Password {
        name: String,
        /// Read the password from standard input (first line) instead of generating one.
        #[arg(long, conflicts_with = "generate")]
        password_stdin: bool,
        /// Generate one (the default).
        #[arg(long)]
        generate: bool,
    },
    /// Replace a user's roles; sessions carrying a role they no longer have end.
    SetRoles {
        name: String,
        /// A role from the config (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// Delete a user: their sessions end, their factors, devices and invitations go.
    Delete { name: String },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a self-signed certificate and key into a directory (default `certs/`).
    Dev {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// DNS names or IPs for the certificate (repeatable).
        #[arg(long = "name", default_values_t = vec!["localhost".to_string(), "127.0.0.1".to_string()])]
        names: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, no_env } => match if no_env {
            Config::load_without_env(&config)
        } else {
            Config::load(&config)
        } {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!("portcullis: refusing to start with an invalid configuration");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(e) = portcullis::logging::init(&config.log, &config.audit) {
                eprintln!("portcullis: {e}");
                return ExitCode::FAILURE;
            }
            for w in &config.warnings {
                tracing::warn!(warning = %w, "configuration warning");
            }
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("portcullis: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo { port, dir } => {
            portcullis::logging::init_default();
            code(demo(port, &dir))
        }
        Command::AdminToken { name } => {
            let token = portcullis::session::random_id(32);
            let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            println!("token (shown once; give it to the admin client): {token}");
            println!("add to [admin] in the config:");
            println!("tokens = [{{ name = \"{name}\", sha256 = \"{hex}\" }}]");
            ExitCode::SUCCESS
        }
        Command::Tokens {
            what: TokensCommand::New { name, roles },
        } => {
            match portcullis::auth::bearer::new_service_token(&name, &roles) {
                Ok((token, toml)) => {
                    println!("token (shown once; the client sends `Authorization: Bearer <token>`): {token}");
                    println!("add to the config:");
                    print!("{toml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("portcullis: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sessions {
            config,
            token,
            what,
        } => code(sessions(&config, token, what)),
        Command::BreakGlass {
            config,
            token,
            what,
        } => code(break_glass(&config, token, what)),
        Command::Users { config, what } => code(users(&config, what)),
        Command::Completions { shell } => {
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "portcullis", &mut out);
            ExitCode::SUCCESS
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command()).title("PORTCULLIS");
            code(man.render(&mut std::io::stdout()).map_err(Into::into))
        }
        Command::Certs {
            what: CertsCommand::Dev { dir, names },
        } => match portcullis::server::tls::write_dev_cert(&dir, &names) {
            Ok((cert, key)) => {
                println!("wrote {} and {}", cert.display(), key.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The exit code of a CLI action; its error is printed.
fn code(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    // One worker: a single-threaded runtime, like one nginx worker (no work-stealing overhead).
    let rt = if config.server.workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.server.workers)
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    rt.block_on(async move {
        // Registered before the listeners open: a SIGHUP is never the default "terminate".
        let hangups = hangups()?;
        let mut running = portcullis::server::start(config, Clock::system()).await?;
        reload_on(hangups, &running);
        println!("portcullis listening on {}", running.addr);
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        if let Some(stop) = running.take_stop() {
            stop.stop();
        }
        running.wait().await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(unix)]
type Hangups = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangups = ();

/// The SIGHUP stream (`systemctl reload`, logrotate); within the runtime.
fn hangups() -> anyhow::Result<Hangups> {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")
    }
    #[cfg(not(unix))]
    Ok(())
}

/// Each SIGHUP reloads the config live (DESIGN.md §11); `Live::reload` logs and audits it.
fn reload_on(hangups: Hangups, running: &portcullis::server::Running) {
    #[cfg(unix)]
    {
        let (mut hangups, live) = (hangups, std::sync::Arc::clone(&running.live));
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let _ = live.reload("sighup").await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (hangups, running);
}

fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn load(config: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(config).map_err(|e| anyhow::anyhow!("{e}\ninvalid configuration"))
}

/// The first line of standard input, as a password an admin chose.
fn password_from_stdin() -> anyhow::Result<portcullis::secret::Password> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password")?;
    let p = line.trim_end_matches(['\r', '\n']).to_owned();
    Ok(portcullis::manage::chosen_password(p)?)
}

/// After an action that ends sessions: with memory sessions they live in the running gateway's
/// memory, which this process cannot reach, so say so and name the way that can.
fn warn_memory_sessions(config: &Config, user: &str) {
    if config.session.store == portcullis::config::SessionStoreKind::Memory {
        eprintln!(
            "warning: session.store = \"memory\": the sessions of a running gateway live in its memory, \
             which this command cannot reach; {user}'s live sessions were NOT ended. End them with the \
             admin API: DELETE /api/v1/users/{user}/sessions (portcullis sessions revoke --user {user}), \
             or use the admin API for this action instead"
        );
    }
}

/// `portcullis users …`: the same `manage` functions as the admin API, on the config's stores,
/// audited with actor `cli`.
fn users(config_path: &std::path::Path, what: UsersCommand) -> anyhow::Result<()> {
    use portcullis::accounts::Accounts;
    use portcullis::manage::{self, Actor, Ctx};
    use portcullis::storage::UserStore;
    let config = load(config_path)?;
    let rt = small_runtime()?;
    rt.block_on(async move {
        let acc = Accounts::open(&config)
            .await?
            .context("this config has no [storage] section: there is no user store to manage")?;
        let store = portcullis::state::open_session_store(&config, Clock::system()).await?;
        let now = Clock::system().now();
        let ctx = Ctx {
            config: &config,
            store: &store,
            accounts: &acc,
            now,
            actor: Actor::Cli,
        };
        match what {
            UsersCommand::Add { name, roles, email, password_stdin } => {
                let password = password_stdin.then(password_from_stdin).transpose()?;
                let (user, generated) = manage::create_user(&ctx, &name, email, roles, password).await?;
                println!("created user {} with roles {}", user.username, user.roles.join(","));
                if let Some(p) = generated {
                    println!("password (shown once): {}", p.expose());
                }
                print_invite(&acc, &config, &user, now).await?;
            }
            UsersCommand::List => {
                let mut after: Option<String> = None;
                println!("{:<24} {:<8} {:<24} {:<30} created", "user", "status", "roles", "email");
                loop {
                    let page = acc.users.list_users(after.as_deref(), 200).await?;
                    for u in &page {
                        println!(
                            "{:<24} {:<8} {:<24} {:<30} {}",
                            u.username,
                            if u.disabled { "disabled" } else { "active" },
                            u.roles.join(","),
                            u.email.as_deref().unwrap_or("-"),
                            portcullis::clock::rfc3339(u.created_at)
                        );
                    }
                    match page.last() {
                        Some(u) if page.len() == 200 => after = Some(u.username.clone()),
                        _ => break,
                    }
                }
            }
            UsersCommand::Disable { name } => {
                let u = manage::set_disabled(&ctx, &name, true).await?;
                println!("disabled {}", u.username);
                warn_memory_sessions(&config, &u.username);
            }
            UsersCommand::Enable { name } => {
                let u = manage::set_disabled(&ctx, &name, false).await?;
                println!("enabled {}", u.username);
            }
            UsersCommand::ResetMfa { name } => {
                let (user, devices) = manage::reset_mfa(&ctx, &name).await?;
                println!("reset second factors of {} ({devices} remembered devices forgotten)", user.username);
                if !print_invite(&acc, &config, &user, now).await? {
                    println!("they enroll again at their next login");
                }
            }
            UsersCommand::RecoveryCodes { name, ttl } => {
                let ttl = match ttl {
                    Some(t) => portcullis::config::parse_duration(&t).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?,
                    None => config.mfa.recovery_ttl,
                };
                let (user, codes) = manage::issue_recovery_codes(&ctx, &name, ttl).await?;
                println!("recovery codes for {} (shown once; each works once; the old ones no longer work):", user.username);
                for c in codes {
                    println!("  {}", c.expose());
                }
            }
            UsersCommand::Password { name, password_stdin, generate: _ } => {
                let password = password_stdin.then(password_from_stdin).transpose()?;
                let done = manage::set_password(&ctx, &name, password).await?;
                println!("password of {} set; {} session(s) ended", done.user.username, done.sessions_ended);
                if let Some(p) = done.generated {
                    println!("password (shown once): {}", p.expose());
                }
                warn_memory_sessions(&config, &done.user.username);
            }
            UsersCommand::SetRoles { name, roles } => {
                let change = manage::Update { roles: Some(roles), email: None };
                let (user, ended) = manage::update_user(&ctx, &name, change).await?;
                println!("roles of {} are now {}; {ended} session(s) ended", user.username, user.roles.join(","));
                warn_memory_sessions(&config, &user.username);
            }
            UsersCommand::Delete { name } => {
                let user = manage::find_user(&ctx, &name).await?;
                let ended = manage::delete_user(&ctx, &user.username).await?;
                println!("deleted {}; {ended} session(s) ended", user.username);
                warn_memory_sessions(&config, &user.username);
            }
        }
        acc.users.close().await;
        Ok(())
    })
}

/// The file that marks a directory as the demo's own: only such a directory is wiped.
const DEMO_MARKER: &str = ".portcullis-demo";

/// Makes `dir` an empty demo directory. It is wiped only if an earlier demo made it (its marker
/// file is there) or it is empty: `--dir ~` or `--dir /etc` must never delete anything.
fn clear_demo_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() {
        let ours = dir.join(DEMO_MARKER).is_file();
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        anyhow::ensure!(
            ours || empty,
            "{} is not empty and was not made by `portcullis demo`: refusing to wipe it (choose another --dir)",
            dir.display()
        );
        if ours {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(DEMO_MARKER),
        "made by `portcullis demo`; the next demo run wipes this directory\n",
    )?;
    Ok(())
}

fn demo(port: u16, dir: &std::path::Path) -> anyhow::Result<()> {
    use portcullis::accounts::Accounts;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        clear_demo_dir(dir)?;
        let app = portcullis::demo::start_sample_app().await?;
        let config_path = dir.join("portcullis.toml");
        std::fs::write(&config_path, portcullis::demo::config_text(port, app))?;
        let config = load(&config_path)?;
        let acc = Accounts::open(&config)
            .await?
            .context("demo config has no storage")?;
        let now = Clock::system().now();
        let pw = portcullis::auth::password::generate_password();
        acc.create_user(
            &config,
            "contractor",
            Some("contractor@example.com".into()),
            vec!["contractor".into()],
            Some(pw.clone()),
            now,
        )
        .await?;
        let (_, uri) = acc.enroll_totp_now("contractor", now).await?;
        // The invite flow (DESIGN.md §6): no password, no factor, one enrollment link.
        let (newcomer, _) = acc
            .create_user(
                &config,
                "newcomer",
                None,
                vec!["contractor".into()],
                None,
                now,
            )
            .await?;
        let link = acc.create_invite(&config, &newcomer.username, now).await?;
        acc.users.close().await;
        let hangups = hangups()?;
        let mut running = portcullis::server::start(config, Clock::system()).await?;
        reload_on(hangups, &running);
        let url = format!("http://127.0.0.1:{port}/");
        println!();
        println!("  portcullis demo is running: open {url}");
        println!(
            "  (sample helpdesk app behind it on http://{app}; demo files in {})",
            dir.display()
        );
        println!();
        println!("  1. Contractor with an authenticator app already set up:");
        println!("       username: contractor");
        println!("       password: {}", pw.expose());
        println!("       authenticator: scan this QR code, or add the link below by hand");
        if let Ok(q) = portcullis::mfa::qr::terminal(&uri) {
            for line in q.lines() {
                println!("       {line}");
            }
        }
        println!("       {uri}");
        println!();
        println!("  2. A new contractor, invited: open this single-use enrollment link, choose a");
        println!("     password and set up two-step verification (the link is what an admin");
        println!("     would mail; without it a new account cannot pick its own second factor):");
        println!("       {link}");
        println!();
        println!("  Press Ctrl-C to stop.");
        shutdown_signal().await;
        if let Some(stop) = running.take_stop() {
            stop.stop();
        }
        running.wait().await;
        Ok(())
    })
}

/// With `[mfa] enrollment = "invite"`: makes the user's single-use enrollment link, mails it when
/// possible and prints it once (for out-of-band delivery). `false` when invitations are off.
async fn print_invite(
    acc: &portcullis::accounts::Accounts,
    config: &Config,
    user: &portcullis::storage::User,
    now: i64,
) -> anyhow::Result<bool> {
    if config.mfa.enrollment != portcullis::config::Enrollment::Invite {
        return Ok(false);
    }
    let link = acc.create_invite(config, &user.username, now).await?;
    let mailed = acc.mail_invite(config, user, &link).await;
    println!(
        "enrollment link (single use, shown once{}): {link}",
        if mailed {
            "; also mailed to the user"
        } else {
            ""
        }
    );
    Ok(true)
}

/// Calls the admin API of the gateway configured in `config_path`.
async fn admin_call(
    config: &Config,
    token: &str,
    method: hyper::Method,
    path_and_query: &str,
) -> anyhow::Result<(hyper::StatusCode, serde_json::Value)> {
    admin_send(config, token, method, path_and_query, None).await
}

/// `admin_call` with an optional JSON body.
async fn admin_send(
    config: &Config,
    token: &str,
    method: hyper::Method,
    path_and_query: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(hyper::StatusCode, serde_json::Value)> {
    use http_body_util::BodyExt;
    let admin = config
        .admin
        .as_ref()
        .context("this config has no [admin] section")?;
    anyhow::ensure!(
        admin.tls.is_none(),
        "the admin listener uses TLS: call it with an HTTPS client (e.g. curl --cacert) instead"
    );
    let mut addr = admin.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path_and_query}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
        .await
        .context("the admin API did not answer in time")?
        .with_context(|| format!("cannot reach the admin API at {addr}"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let v = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
    };
    Ok((status, v))
}

fn sessions(
    config_path: &std::path::Path,
    token: Option<String>,
    what: SessionsCommand,
) -> anyhow::Result<()> {
    let config = load(config_path)?;
    let token = token.context("an admin token is needed: --token or PORTCULLIS_ADMIN_TOKEN")?;
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    small_runtime()?.block_on(async move {
        match what {
            SessionsCommand::List { user } => {
                let mut cursor: Option<String> = None;
                println!(
                    "{:<24} {:<20} {:<16} {:<16} {:<10} {:<21} {:<21} ip",
                    "id", "user", "roles", "method", "mfa", "last seen", "expires"
                );
                loop {
                    let mut q = "/api/v1/sessions?limit=500".to_string();
                    if let Some(u) = &user {
                        q.push_str(&format!("&user={}", enc(u)));
                    }
                    if let Some(c) = &cursor {
                        q.push_str(&format!("&cursor={}", enc(c)));
                    }
                    let (status, v) = admin_call(&config, &token, hyper::Method::GET, &q).await?;
                    anyhow::ensure!(status.is_success(), "admin API answered {status}: {v}");
                    for s in v
                        .get("items")
                        .and_then(|i| i.as_array())
                        .into_iter()
                        .flatten()
                    {
                        let roles: Vec<&str> = s
                            .get("roles")
                            .and_then(|r| r.as_array())
                            .into_iter()
                            .flatten()
                            .filter_map(|r| r.as_str())
                            .collect();
                        println!(
                            "{:<24} {:<20} {:<16} {:<16} {:<10} {:<21} {:<21} {}",
                            s.get("id").and_then(|x| x.as_str()).unwrap_or("-"),
                            s.get("user").and_then(|x| x.as_str()).unwrap_or("-"),
                            roles.join(","),
                            s.get("method").and_then(|x| x.as_str()).unwrap_or("-"),
                            s.get("mfa").and_then(|x| x.as_str()).unwrap_or("-"),
                            s.get("last_seen_at")
                                .and_then(|x| x.as_str())
                                .unwrap_or("-"),
                            s.get("expires_at").and_then(|x| x.as_str()).unwrap_or("-"),
                            s.get("ip").and_then(|x| x.as_str()).unwrap_or("-"),
                        );
                    }
                    match v.get("next").and_then(|n| n.as_str()) {
                        Some(n) => cursor = Some(n.to_owned()),
                        None => break,
                    }
                }
            }
            SessionsCommand::Revoke {
                id: Some(id),
                user: None,
            } => {
                let (status, v) = admin_call(
                    &config,
                    &token,
                    hyper::Method::DELETE,
                    &format!("/api/v1/sessions/{}", enc(&id)),
                )
                .await?;
                anyhow::ensure!(status.is_success(), "admin API answered {status}: {v}");
                println!("terminated session {id}");
            }
            SessionsCommand::Revoke {
                id: None,
                user: Some(user),
            } => {
                let (status, v) = admin_call(
                    &config,
                    &token,
                    hyper::Method::DELETE,
                    &format!("/api/v1/users/{}/sessions", enc(&user)),
                )
                .await?;
                anyhow::ensure!(status.is_success(), "admin API answered {status}: {v}");
                println!(
                    "terminated {} session(s) of {user}",
                    v.get("terminated").cloned().unwrap_or_default()
                );
            }
            SessionsCommand::Revoke { .. } => anyhow::bail!("name a session id, or --user USER"),
        }
        Ok(())
    })
}

fn break_glass(
    config_path: &std::path::Path,
    token: Option<String>,
    what: BreakGlassCommand,
) -> anyhow::Result<()> {
    let config = load(config_path)?;
    let token = token.context("an admin token is needed: --token or PORTCULLIS_ADMIN_TOKEN")?;
    let (method, body) = match what {
        BreakGlassCommand::Arm(a) => (hyper::Method::POST, Some(serde_json::to_value(a)?)),
        BreakGlassCommand::Disarm => (hyper::Method::DELETE, None),
        BreakGlassCommand::Status => (hyper::Method::GET, None),
    };
    small_runtime()?.block_on(async move {
        let (status, v) = admin_send(&config, &token, method, "/api/v1/break-glass", body).await?;
        anyhow::ensure!(status.is_success(), "admin API answered {status}: {v}");
        println!("{}", serde_json::to_string_pretty(&v)?);
        Ok(())
    })
}
