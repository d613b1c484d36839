//! [`Ctx`]: what every part of the validator shares while it reads one file: where errors and
//! warnings go (with file, line and key), `${ENV}` interpolation, paths relative to the file,
//! and the small checks several sections use (names, clean paths, sockets, TLS files).
//! Invariant: a check reports through `err` and goes on, so every problem of a file is found
//! in one run; nothing here panics.

use crate::config::error::ConfigError;
use crate::config::locate::{render, Locator, Seg};
use crate::config::model::TlsFiles;
use crate::config::raw::RawTls;
use crate::pem::TlsError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub(super) struct Ctx<'a> {
    pub(super) file: PathBuf,
    pub(super) base_dir: PathBuf,
    pub(super) loc: Locator,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    /// `check --no-env`: an unset variable is a note, and checks of its value are skipped.
    pub(super) no_env: bool,
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<ConfigError>,
    /// Rendered keys whose value holds a placeholder (an unset `${NAME}`) or was refused while
    /// reading: a later check of them would only repeat or mislead, so it is not reported.
    pub(super) unchecked: Vec<String>,
}

pub(super) fn k(s: &str) -> Seg {
    Seg::Key(s.to_owned())
}

pub(super) fn i(n: usize) -> Seg {
    Seg::Index(n)
}

impl Ctx<'_> {
    pub(super) fn err(&mut self, path: &[Seg], message: impl Into<String>) {
        if self.suppressed(path) {
            return;
        }
        let line = self.loc.line_of_path(path);
        self.err_at(line, render(path), message);
    }

    /// An error at a known line (serde's own, or one of the TOML syntax).
    pub(super) fn err_at(&mut self, line: Option<usize>, key: String, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            key,
            message: message.into(),
        });
    }

    /// Whether errors at `path` are left unsaid: it (or a key above it) holds a placeholder or
    /// was refused while reading, which was reported once already.
    pub(super) fn suppressed(&self, path: &[Seg]) -> bool {
        let key = render(path);
        self.unchecked.iter().any(|u| {
            key == *u
                || key
                    .strip_prefix(u.as_str())
                    .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
        })
    }

    /// A value serde refused (reported already); dropped, so later checks see it absent.
    pub(super) fn refused(&mut self, path: &[Seg]) {
        self.unchecked.push(render(path));
    }

    /// A value that named variables without a value: an error naming them, or with `--no-env`
    /// a note that the checks needing the real value were skipped.
    pub(super) fn placeholder(&mut self, path: &[Seg], unset: &[String]) {
        let names = unset
            .iter()
            .map(|n| format!("${{{n}}}"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.no_env {
            self.warn(
                path,
                format!("not fully checked (--no-env): {names} unset; checks that need the real value (files, key lengths, URL syntax) were skipped"),
            );
        } else {
            let what = match unset {
                [one] => format!("environment variable {one} is not set"),
                _ => format!("environment variables {} are not set", unset.join(", ")),
            };
            self.err(path, what);
        }
        self.unchecked.push(render(path));
    }

    pub(super) fn has_placeholders(&self) -> bool {
        !self.unchecked.is_empty()
    }

    /// A setting that is valid but weakens security: reported, not refused.
    pub(super) fn warn(&mut self, path: &[Seg], message: impl Into<String>) {
        self.warnings.push(ConfigError {
            file: self.file.clone(),
            line: self.loc.line_of_path(path),
            key: render(path),
            message: message.into(),
        });
    }

    /// A key that parses but whose feature is not part of this build: refuse, never ignore.
    pub(super) fn unsupported(&mut self, path: &[Seg], what: &str) {
        self.err(
            path,
            format!("{what} is not available in this build of portcullis yet; remove this setting"),
        );
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    /// A file `run` will read: it must exist, be a regular file (not a directory) and be
    /// readable by this process. Returns the absolute path, and whether it can be read.
    pub(super) fn readable_file(&mut self, path: &[Seg], rel: &str) -> (PathBuf, bool) {
        let p = self.path(rel);
        if self.suppressed(path) {
            return (p, false);
        }
        let problem = match std::fs::metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("file {} does not exist", p.display()))
            }
            Err(e) => Some(format!("cannot read {}: {e}", p.display())),
            Ok(m) if m.is_dir() => Some(format!(
                "{} is a directory; name the file in it",
                p.display()
            )),
            Ok(m) if !m.is_file() => Some(format!("{} is not a regular file", p.display())),
            // Opening is the only honest test of "readable" (modes, ACLs, root, LSMs).
            Ok(_) => std::fs::File::open(&p)
                .err()
                .map(|e| format!("cannot read {}: {e}", p.display())),
        };
        let ok = problem.is_none();
        if let Some(m) = problem {
            self.err(path, m);
        }
        (p, ok)
    }

    pub(super) fn existing_file(&mut self, path: &[Seg], rel: &str) -> PathBuf {
        self.readable_file(path, rel).0
    }

    /// A secret given inline (`key = "…"`, `${NAME}` allowed) or as `key_file = "path"` (the
    /// file's text, one trailing newline removed). Both at once is an error.
    pub(super) fn secret(
        &mut self,
        table: &[Seg],
        key: &str,
        inline: Option<&String>,
        file: Option<&String>,
    ) -> Option<String> {
        let file_key = format!("{key}_file");
        let at_file = [table, &[k(&file_key)]].concat();
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.err(
                    &at_file,
                    format!("set either {key} or {file_key}, not both"),
                );
                None
            }
            (Some(v), None) => Some(v.clone()),
            (None, None) => None,
            (None, Some(_)) if self.suppressed(&at_file) => {
                // The value is as unknown as its file's name: its checks are skipped too.
                self.unchecked.push(render(&[table, &[k(key)]].concat()));
                Some(crate::config::env::PLACEHOLDER.to_owned())
            }
            (None, Some(rel)) => {
                let (p, ok) = self.readable_file(&at_file, rel);
                if !ok {
                    return None;
                }
                match std::fs::read(&p).map(String::from_utf8) {
                    Ok(Ok(mut text)) => {
                        if text.ends_with('\n') {
                            text.pop();
                            if text.ends_with('\r') {
                                text.pop();
                            }
                        }
                        Some(text)
                    }
                    Ok(Err(_)) => {
                        self.err(&at_file, format!("{} is not UTF-8 text", p.display()));
                        None
                    }
                    Err(e) => {
                        self.err(&at_file, format!("cannot read {}: {e}", p.display()));
                        None
                    }
                }
            }
        }
    }

    pub(super) fn socket(&mut self, path: &[Seg], s: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    path,
                    format!("{s:?} is not an address like \"0.0.0.0:8443\" or \"[::1]:8443\""),
                );
                None
            }
        }
    }

    /// A TLS certificate chain and its key: both readable, both PEM, and the key the
    /// certificate's (loaded exactly as the listener will load them).
    pub(super) fn tls(&mut self, path: &[Seg], t: &RawTls) -> TlsFiles {
        let at_cert = [path, &[k("cert")]].concat();
        let at_key = [path, &[k("key")]].concat();
        let (cert, cert_ok) = self.readable_file(&at_cert, &t.cert);
        let (key, key_ok) = self.readable_file(&at_key, &t.key);
        if cert_ok && key_ok {
            match crate::pem::server_config(&cert, &key) {
                Ok(_) => {}
                Err(e @ TlsError::Cert { .. }) => self.err(&at_cert, e.to_string()),
                Err(e) => self.err(&at_key, e.to_string()),
            }
        }
        TlsFiles { cert, key }
    }
}

pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A route prefix or native path: absolute, no dot segments, no `//`, no `\`, `%` or `;`.
pub(super) fn is_clean_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.contains("//")
        && !p.split('/').any(|s| s == "." || s == "..")
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'\\' | b'%' | b';' | b'?' | b'#'))
}
