//! `[log]` (format and level of the process log) and `[audit]` (the audit stream as JSON lines
//! in a file or on stdout), DESIGN.md §11. Both are read once at start: a reload names them as
//! needing a restart (`config::restart`).

use super::ctx::{k, Ctx};
use crate::config::model::{AuditConfig, AuditSink, LogConfig, LogFormat};
use crate::config::raw::{RawAudit, RawLog};

/// `[log]`: `format = "text" | "json"` (default text), `level` a filter directive (default info).
pub(super) fn log(cx: &mut Ctx<'_>, raw: Option<&RawLog>) -> LogConfig {
    let format = match raw.and_then(|l| l.format.as_deref()) {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            cx.err(
                &[k("log"), k("format")],
                format!("unknown log format {other:?}: use \"text\" or \"json\""),
            );
            LogFormat::Text
        }
    };
    let level = raw
        .and_then(|l| l.level.clone())
        .unwrap_or_else(|| "info".to_owned());
    // The directive `run` would hand to the subscriber must parse here, not fail there.
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        cx.err(
            &[k("log"), k("level")],
            format!("invalid level {level:?} ({e}): use e.g. \"info\", \"warn\" or \"info,portcullis=debug\""),
        );
    }
    LogConfig { format, level }
}

/// `[audit] file`: `"-"` for stdout, else a file appended to (its directory must exist).
pub(super) fn audit(cx: &mut Ctx<'_>, raw: Option<&RawAudit>) -> AuditConfig {
    let file = match raw.and_then(|a| a.file.as_deref()) {
        None => None,
        Some("-") => Some(AuditSink::Stdout),
        Some(rel) => {
            let p = cx.path(rel);
            if p.is_dir() {
                cx.err(
                    &[k("audit"), k("file")],
                    format!("{} is a directory", p.display()),
                );
            } else if !p.parent().is_some_and(std::path::Path::is_dir) {
                cx.err(
                    &[k("audit"), k("file")],
                    format!("the directory of {} does not exist", p.display()),
                );
            } else if p.is_file() {
                // As `run` opens it, minus `create`: nothing is written (a FIFO is not opened,
                // that would block until a reader came).
                if let Err(e) = std::fs::OpenOptions::new().append(true).open(&p) {
                    cx.err(
                        &[k("audit"), k("file")],
                        format!("{} cannot be appended to: {e}", p.display()),
                    );
                }
            }
            Some(AuditSink::File(p))
        }
    };
    AuditConfig { file }
}
