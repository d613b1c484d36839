//! Fuzz corpus replay and a bounded-time mutation fuzzer, both on stable Rust (issue 9).
//! Every file of `fuzz/corpus/<target>/` goes through its target on every test run; a target
//! without a corpus, or a corpus directory without a target, fails the run.
//!
//! The fuzzer (`scripts/fuzz [target] [seconds]`, an ignored test here) mutates corpus entries
//! blindly (no coverage feedback on stable) and writes any input that panics a target to
//! `fuzz/corpus/<target>/crash-<hash>`, where the replay keeps it forever: fix, then keep.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use portcullis::fuzzing::TARGETS;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

/// The corpus files of one target, sorted; panics when the directory is missing or empty.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_root().join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz target {target}: no corpus at {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "fuzz target {target}: corpus {} is empty",
        dir.display()
    );
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

#[test]
fn every_corpus_entry_passes_its_fuzz_target() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, target) in TARGETS {
        for (path, data) in corpus(name) {
            total += 1;
            if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} corpus entries panic their target:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_corpus_directory_belongs_to_a_target() {
    let mut dirs: Vec<String> = std::fs::read_dir(corpus_root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(dirs, names, "fuzz/corpus/* and fuzzing::TARGETS differ");
}

/// xorshift64*: tiny, fast, and reproducible from the seed printed at the start of a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-enough in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes that separate, escape or end things in paths, headers, cookies, forms, JSON and TOML.
const INTERESTING_BYTES: &[u8] = b"/\\%\0\r\n\t .:;=&?#@\"'{}[],+-_~<>\x7f\xff\xc3\x80";

/// Fragments that change meaning when they appear: encodings, dot segments, JSON and TOML bits.
const INTERESTING_TOKENS: &[&[u8]] = &[
    b"%2f",
    b"%2F",
    b"%5c",
    b"%2e",
    b"%2e%2e",
    b"%00",
    b"%25",
    b"%252f",
    b"%0d%0a",
    b"%09",
    b"..",
    b"/../",
    b"//",
    b"\\\\",
    b"\r\n",
    b"https:",
    b"javascript:",
    b"@",
    b"%u002f",
    b"\xef\xbc\x8f",
    b"\xe2\x80\xa8",
    b"=",
    b"&",
    b";",
    b"\"",
    b"null",
    b"[]",
    b"{}",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"9999999999999999999999",
    b"\"alg\":\"none\"",
    b"\"kid\":\"x\"",
    b"[[routes]]\n",
    b"[server]\n",
    b"\"${X}\"",
    b"x-auth-roles",
    b"X_Forwarded_User",
    b"portcullis=",
    b"__Host-portcullis=",
];

/// One random edit of `data`; `other` is another corpus entry for splicing.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(10) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = *rng.pick(INTERESTING_BYTES);
        }
        2 => {
            let i = rng.below(len + 1);
            data.insert(i, *rng.pick(INTERESTING_BYTES));
        }
        3 => {
            let i = rng.below(len + 1);
            let t = rng.pick(INTERESTING_TOKENS);
            data.splice(i..i, t.iter().copied());
        }
        4 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(16)).min(len);
            data.drain(a..b);
        }
        5 if len > 0 => {
            // A long run: limits, and quadratic behaviour.
            let i = rng.below(len);
            let b = data[i];
            let n = if rng.below(8) == 0 {
                4096
            } else {
                1 + rng.below(64)
            };
            data.splice(i..i, std::iter::repeat_n(b, n));
        }
        6 if len > 0 => {
            // Duplicate a slice elsewhere.
            let a = rng.below(len);
            let b = (a + 1 + rng.below(32)).min(len);
            let chunk = data[a..b].to_vec();
            let i = rng.below(len + 1);
            data.splice(i..i, chunk);
        }
        7 if !other.is_empty() => {
            // Splice: our head, the other entry's tail.
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        8 if len > 1 => {
            data.truncate(rng.below(len));
        }
        _ => {
            let i = rng.below(len + 1);
            data.insert(i, rng.next() as u8);
        }
    }
    data.truncate(64 * 1024);
}

fn hex_digest(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Mutates one target's corpus for `budget`; returns the crash files written.
fn fuzz_target(name: &str, target: fn(&[u8]), budget: Duration, rng: &mut Rng) -> Vec<PathBuf> {
    let mut pool: Vec<Vec<u8>> = corpus(name).into_iter().map(|(_, d)| d).collect();
    let seeds = pool.len();
    let start = Instant::now();
    let (mut runs, mut slowest) = (0u64, Duration::ZERO);
    let mut crashes = Vec::new();
    while start.elapsed() < budget && crashes.len() < 20 {
        let mut input = rng.pick(&pool).clone();
        let other = rng.pick(&pool).clone();
        for _ in 0..1 + rng.below(4) {
            mutate(rng, &mut input, &other);
        }
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        slowest = slowest.max(t.elapsed());
        runs += 1;
        if outcome.is_err() {
            let path = corpus_root()
                .join(name)
                .join(format!("crash-{}", hex_digest(&input)));
            if !path.exists() {
                std::fs::write(&path, &input).unwrap();
                eprintln!("fuzz {name}: crash written to {}", path.display());
                crashes.push(path);
            }
        } else if pool.len() < seeds + 256 && rng.below(64) == 0 {
            // Keep some survivors in memory so mutations can stack up over the run.
            pool.push(input);
        }
    }
    eprintln!(
        "fuzz {name}: {runs} runs in {:.1} s, slowest {:.1} ms, {} crash(es)",
        start.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1000.0,
        crashes.len()
    );
    crashes
}

/// `FUZZ_TARGET` (a name, or `all`), `FUZZ_SECONDS` per target (default 30), `FUZZ_SEED`.
#[test]
#[ignore = "bounded-time fuzzing: run through scripts/fuzz"]
fn fuzz() {
    let wanted = std::env::var("FUZZ_TARGET").unwrap_or_else(|_| "all".into());
    let secs: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    let targets: Vec<_> = TARGETS
        .iter()
        .filter(|(n, _)| wanted == "all" || *n == wanted)
        .collect();
    assert!(
        !targets.is_empty(),
        "unknown fuzz target {wanted:?}; known: {}",
        TARGETS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!("fuzz: seed {seed} (FUZZ_SEED={seed} repeats this run), {secs} s per target");
    // Expected panics are counted, not printed one by one.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed);
    let mut crashes = Vec::new();
    for (name, target) in targets {
        crashes.extend(fuzz_target(
            name,
            *target,
            Duration::from_secs(secs),
            &mut rng,
        ));
    }
    std::panic::set_hook(hook);
    // Replay each crash with the normal hook so its message and location are shown.
    for c in &crashes {
        let name = c
            .parent()
            .and_then(|p| p.file_name())
            .unwrap()
            .to_string_lossy();
        let target = TARGETS.iter().find(|(n, _)| *n == name).unwrap().1;
        let data = std::fs::read(c).unwrap();
        let _ = catch_unwind(AssertUnwindSafe(|| target(&data)));
    }
    assert!(
        crashes.is_empty(),
        "{} crashing input(s) written; they now fail the corpus replay until fixed:\n{}",
        crashes.len(),
        crashes
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
