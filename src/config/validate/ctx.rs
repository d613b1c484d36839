//! [`Ctx`]: what every part of the validator shares while it reads one file: where errors and
//! warnings go (with file, line and key), `${ENV}` interpolation, paths relative to the file,
//! and the small checks several sections use (names, clean paths, sockets, TLS files).
//! Invariant: a check reports through `err` and goes on, so every problem of a file is found
//! in one run; nothing here panics.

use crate::config::error::ConfigError;
use crate::config::locate::{render, Locator, Seg};
use crate::config::model::TlsFiles;
use crate::config::raw::RawTls;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub(super) struct Ctx<'a> {
    pub(super) file: PathBuf,
    pub(super) base_dir: PathBuf,
    pub(super) loc: Locator,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<ConfigError>,
}

pub(super) fn k(s: &str) -> Seg {
    Seg::Key(s.to_owned())
}

pub(super) fn i(n: usize) -> Seg {
    Seg::Index(n)
}

impl Ctx<'_> {
    pub(super) fn err(&mut self, path: &[Seg], message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: self.loc.line_of_path(path),
            key: render(path),
            message: message.into(),
        });
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

    /// Resolves `${NAME}` references from the environment.
    pub(super) fn interpolate(&mut self, path: &[Seg], value: &str) -> Option<String> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(rest.get(..start).unwrap_or_default());
            let after = rest.get(start + 2..).unwrap_or_default();
            let Some(end) = after.find('}') else {
                self.err(path, "unterminated ${...} reference");
                return None;
            };
            let name = after.get(..end).unwrap_or_default();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                self.err(path, format!("invalid environment variable name {name:?}"));
                return None;
            }
            match (self.env)(name) {
                Some(v) => out.push_str(&v),
                None => {
                    self.err(path, format!("environment variable {name} is not set"));
                    return None;
                }
            }
            rest = after.get(end + 1..).unwrap_or_default();
        }
        out.push_str(rest);
        Some(out)
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    pub(super) fn existing_file(&mut self, path: &[Seg], rel: &str) -> PathBuf {
        let p = self.path(rel);
        if !p.is_file() {
            self.err(path, format!("file {} does not exist", p.display()));
        }
        p
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

    pub(super) fn tls(&mut self, path: &[Seg], t: &RawTls) -> TlsFiles {
        let cert = self.existing_file(&[path, &[k("cert")]].concat(), &t.cert);
        let key = self.existing_file(&[path, &[k("key")]].concat(), &t.key);
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
