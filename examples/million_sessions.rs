//! Memory budget of the in-memory session store (DESIGN.md §7: one million sessions under
//! 600 MB resident). Inserts `--sessions` realistic sessions (user names, emails, groups,
//! roles, login method, client IP, user agent) into `portcullis::session::MemoryStore` through
//! `SessionStore::insert`, exactly as a login does, and reports this process's resident memory
//! (VmRSS) before and after, and per session. A second step gives every session the signed
//! `X-Portcullis-Assertion` that the proxy path caches in a session at its first request
//! (`assertion::Signer::for_session`), which is what a session that has been used holds.
//!
//! Uses mimalloc as the global allocator, like the gateway binary (`src/main.rs`).
//! Run: `cargo run --release --example million_sessions -- [--sessions N] [--users N]`.
//! Output: a readable report on stderr and `RESULT key=value` lines on stdout (bench/load.sh).

// A measurement tool, not the gateway: failing loudly on a broken setup is what it should do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use portcullis::assertion::Signer;
use portcullis::clock::Clock;
use portcullis::session::{
    new_token, AuthMethod, Identity, MemoryStore, MfaUsed, Session, SessionId, SessionStore,
};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FIRST: &[&str] = &[
    "maria", "james", "sofia", "liam", "emma", "noah", "olivia", "lucas", "mia", "elias", "hannah",
    "leon", "amelie", "finn", "lea", "paul", "anna", "jonas", "clara", "felix", "yuki", "ahmed",
    "fatima", "chen", "priya", "diego", "ingrid", "kwame", "olga", "mateo",
];
const LAST: &[&str] = &[
    "schmidt",
    "muller",
    "garcia",
    "smith",
    "johnson",
    "rossi",
    "dubois",
    "novak",
    "kowalski",
    "jensen",
    "silva",
    "tanaka",
    "nguyen",
    "okafor",
    "hansen",
    "lindqvist",
    "moreau",
    "fischer",
    "weber",
    "kim",
    "patel",
    "santos",
    "ivanova",
    "berg",
    "costa",
    "larsen",
    "meyer",
    "wagner",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "customer-mail.example",
    "acme-corp.example",
    "contoso.example",
    "helpdesk-users.example",
    "mail.example.org",
];
const GROUPS: &[&str] = &[
    "end-users",
    "customers-eu",
    "customers-us",
    "premium-support",
    "agents",
    "tier2-agents",
    "billing",
    "contractors",
    "it-staff",
    "beta-testers",
];
const ROLES: &[&str] = &["end_user", "agent", "contractor", "supervisor"];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
];

/// xorshift64*: deterministic, no dependency; good enough to pick realistic-looking values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Resident set size of this process in bytes (VmRSS in /proc/self/status).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        * 1024
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// The identity of user number `u` (the same user always gets the same identity).
fn identity(u: usize) -> Identity {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ (u as u64).wrapping_mul(0x1000_0000_01B3));
    let first = r.pick(FIRST);
    let last = r.pick(LAST);
    let user = format!("{first}.{last}{}", u % 10_000);
    let email =
        (r.below(10) < 9).then(|| format!("{first}.{last}{}@{}", u % 10_000, r.pick(DOMAINS)));
    let groups = (0..1 + r.below(3))
        .map(|_| r.pick(GROUPS).to_owned())
        .collect();
    let roles = (0..1 + r.below(2))
        .map(|_| r.pick(ROLES).to_owned())
        .collect();
    let (method, mfa) = match r.below(10) {
        0..=3 => (
            AuthMethod::Native,
            if r.below(2) == 0 {
                MfaUsed::Totp
            } else {
                MfaUsed::None
            },
        ),
        4..=7 => (AuthMethod::Oidc("corp-entra".into()), MfaUsed::Idp),
        _ => (AuthMethod::Saml("okta".into()), MfaUsed::Idp),
    };
    // Principals as the gateway makes them (`<idp-id>:<subject>`): Entra's subjects are 43
    // characters, a SAML IdP's persistent NameIDs often the address.
    let principal = match &method {
        AuthMethod::Oidc(idp) => format!("{idp}:{:043x}", u.wrapping_mul(0x9E37_79B9)),
        AuthMethod::Saml(idp) => format!("{idp}:{user}@example.com"),
        _ => format!("native:{user}"),
    };
    Identity {
        user,
        principal,
        email,
        groups,
        roles,
        method,
        mfa,
    }
}

fn client_ip(r: &mut Rng) -> String {
    if r.below(5) == 0 {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            r.below(65_536),
            r.below(65_536),
            r.below(65_536)
        )
    } else {
        format!(
            "{}.{}.{}.{}",
            1 + r.below(223),
            r.below(256),
            r.below(256),
            1 + r.below(254)
        )
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
        })
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("usage: million_sessions [--sessions 1000000] [--users 600000] [--no-assertion]");
        return;
    }
    let n = arg(&args, "--sessions", 1_000_000);
    let users = arg(&args, "--users", 600_000).clamp(1, n.max(1));
    let with_assertion = !args.iter().any(|a| a == "--no-assertion");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let clock = Clock::system();
    let store = MemoryStore::new(clock.clone(), 2_000_000);
    let dir = std::env::temp_dir().join(format!("portcullis-million-{}", std::process::id()));
    let signer = Signer::load_or_create(&dir.join("assertion.p8"), "https://gateway.example")
        .expect("assertion key");
    let _ = std::fs::remove_dir_all(&dir);

    let before = rss_bytes();
    eprintln!(
        "million_sessions: {n} sessions of {users} users; RSS before: {:.1} MiB",
        mib(before)
    );
    let now = clock.now();
    let t0 = Instant::now();
    let mut r = Rng(0x5EED_1234_5678_9ABC);
    // Only the ids are kept for step 2 (22 bytes each, subtracted below): a kept `Arc<Session>`
    // would hold a decoded session alive that the store itself keeps compact.
    let mut kept: Vec<[u8; 22]> = Vec::new();
    rt.block_on(async {
        for i in 0..n {
            // Users have one to a few sessions (browsers, devices); spread them over the users.
            let u = if i < users { i } else { r.below(users) };
            let token = new_token().expect("random token");
            let ua = r.pick(USER_AGENTS).to_owned();
            let s = Session::new(
                SessionId::of(&token),
                identity(u),
                now - r.below(3600) as i64,
                Duration::from_secs(12 * 3600),
                Duration::from_secs(30 * 60),
                Some(client_ip(&mut r)),
                Some(ua),
            )
            .expect("a valid identity");
            let s = store.insert(s).await.expect("insert");
            if with_assertion {
                kept.push(s.id.as_str().as_bytes().try_into().expect("22-byte id"));
            }
        }
    });
    let insert_secs = t0.elapsed().as_secs_f64();
    let count = rt.block_on(store.count()).expect("count");
    assert_eq!(count, n, "every session is in the store");
    // The ids kept for step 2 cost 22 bytes per session: measured without them.
    let kept_bytes = (kept.capacity() * 22) as u64;
    let after = rss_bytes().saturating_sub(kept_bytes);
    let per = (after.saturating_sub(before)) as f64 / n.max(1) as f64;
    eprintln!(
        "million_sessions: inserted in {insert_secs:.1}s; RSS after: {:.1} MiB; {per:.0} bytes per session",
        mib(after)
    );
    println!("RESULT sessions={n}");
    println!("RESULT users={users}");
    println!("RESULT rss_before_mib={:.1}", mib(before));
    println!("RESULT rss_after_mib={:.1}", mib(after));
    println!("RESULT bytes_per_session={per:.0}");
    println!("RESULT insert_secs={insert_secs:.1}");
    // The fixed part of one session (the rest is its strings and header values, the map
    // entries and the per-user index).
    println!(
        "RESULT session_struct_bytes={}",
        std::mem::size_of::<Session>()
    );

    if with_assertion {
        // Step 2: every session makes a request, as the proxy path does it: the session is
        // looked up (decoded into the store's bounded hot set when it is not there) and gets
        // its signed assertion (an ES256 JWT of ~700 bytes), cached in the session for 30 s.
        let t1 = Instant::now();
        let mut len = 0usize;
        let metrics = portcullis::metrics::Metrics::default();
        rt.block_on(async {
            for k in &kept {
                let id = SessionId::parse(std::str::from_utf8(k).expect("ascii id")).expect("id");
                let s = store.get(&id).await.expect("get").expect("session present");
                let v = signer.for_session(&s, now, &metrics).expect("sign");
                len = v.len();
            }
        });
        let kept_bytes = (kept.capacity() * 22) as u64;
        let sign_secs = t1.elapsed().as_secs_f64();
        let after2 = rss_bytes().saturating_sub(kept_bytes);
        let per2 = (after2.saturating_sub(before)) as f64 / n.max(1) as f64;
        eprintln!(
            "million_sessions: with a cached assertion ({len} bytes each, signed in {sign_secs:.1}s): RSS {:.1} MiB; {per2:.0} bytes per session",
            mib(after2)
        );
        println!("RESULT assertion_bytes={len}");
        println!("RESULT rss_with_assertion_mib={:.1}", mib(after2));
        println!("RESULT bytes_per_session_with_assertion={per2:.0}");
    }
    // Keep the store alive until measured.
    drop(store);
}
