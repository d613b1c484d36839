//! The process log and the audit stream (DESIGN.md §11): text or JSON lines on stderr, colour
//! codes only when stderr is a terminal, `RUST_LOG` over `[log] level`; with `[audit] file` the
//! `audit` target is also written, whatever the level, as JSON lines to that file or stdout.
//! Set up once per process, at start (a reload names `[log]` and `[audit]` as needing a restart);
//! every reload reopens the audit file at its path (`reopen_audit_file`), for logrotate.

use crate::config::{AuditConfig, AuditSink, LogConfig, LogFormat};
use std::fmt::Write as _;
use std::fs::File;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer;

/// Why the log could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The `[audit] file` cannot be opened for appending.
    #[error("cannot open the audit file {path}: {reason}")]
    AuditFile { path: String, reason: String },
}

/// The subscriber of a command without a config (the demo): text at `info`, or `RUST_LOG`.
pub fn init_default() {
    let log = LogConfig {
        format: LogFormat::Text,
        level: "info".into(),
    };
    let _ = init(&log, &AuditConfig::default());
}

/// Installs the process-wide subscriber for `log` and `audit`. A second call changes nothing.
pub fn init(log: &LogConfig, audit: &AuditConfig) -> Result<(), LogError> {
    // RUST_LOG wins (DESIGN.md §11); the config's level was checked when it was loaded.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::builder().parse(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let main = match log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // A file or a journal gets no escape codes; a person at a terminal gets colour.
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(JsonLines)
            .with_filter(filter)
            .boxed(),
    };
    let audit_only = || filter_fn(|m| m.target() == "audit");
    let audit = match &audit.file {
        None => None,
        Some(AuditSink::Stdout) => Some(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stdout)
                .event_format(JsonLines)
                .with_filter(audit_only())
                .boxed(),
        ),
        Some(AuditSink::File(path)) => {
            let file = open_append(path).map_err(|e| LogError::AuditFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let sink = Arc::new(AuditFile {
                path: path.clone(),
                file: Mutex::new(file),
            });
            if AUDIT_FILE.set(Arc::clone(&sink)).is_err() {
                // A second `init` installs nothing (see below), so the first file stays.
                return Ok(());
            }
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(AuditWriter(sink))
                    .event_format(JsonLines)
                    .with_filter(audit_only())
                    .boxed(),
            )
        }
    };
    let _ = tracing_subscriber::registry()
        .with(main)
        .with(audit)
        .try_init();
    Ok(())
}

/// Opens `path` for appending, so `logrotate` with `copytruncate` and a SIEM tailing it both work.
fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The `[audit] file` the audit layer writes to, and the path it is reopened at.
struct AuditFile {
    path: PathBuf,
    file: Mutex<File>,
}

/// The process's audit file, once `init` opened one.
static AUDIT_FILE: OnceLock<Arc<AuditFile>> = OnceLock::new();

/// Reopens the `[audit] file` at its path (called at every reload: `SIGHUP`, the admin API).
/// logrotate renames the file and then sends `SIGHUP`; without this the gateway would keep
/// writing to the renamed file. If the path cannot be opened, the old file is kept and
/// the error is logged: audit lines are never dropped for want of a file.
pub fn reopen_audit_file() {
    let Some(sink) = AUDIT_FILE.get() else {
        return;
    };
    match open_append(&sink.path) {
        Ok(new) => *lock(&sink.file) = new,
        Err(e) => {
            tracing::error!(path = %sink.path.display(), error = %e, "cannot reopen the audit file; still writing to the old one")
        }
    }
}

/// The file, even after a panic while it was held (a line may be torn; the file is fine).
fn lock(m: &Mutex<File>) -> MutexGuard<'_, File> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `MakeWriter` over the reopenable audit file: one lock per event, as `Mutex<File>` had.
struct AuditWriter(Arc<AuditFile>);

/// The locked audit file, for one event.
struct AuditLine<'a>(MutexGuard<'a, File>);

impl std::io::Write for AuditLine<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for AuditWriter {
    type Writer = AuditLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        AuditLine(lock(&self.0.file))
    }
}

/// One JSON object per event: `ts` (RFC 3339, milliseconds, UTC), `level`, `target`,
/// `message`, then the event's fields (a field named like one of those gets a `field.` prefix).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        writeln!(writer, "{}", json_line(event, now_rfc3339()))
    }
}

/// The JSON object of one event at time `ts`.
fn json_line(event: &Event<'_>, ts: String) -> serde_json::Value {
    let meta = event.metadata();
    let mut fields = Fields(serde_json::Map::new());
    event.record(&mut fields);
    let mut fields = fields.0;
    let mut line = serde_json::Map::new();
    line.insert("ts".into(), ts.into());
    line.insert(
        "level".into(),
        meta.level().as_str().to_ascii_lowercase().into(),
    );
    line.insert("target".into(), meta.target().into());
    line.insert(
        "message".into(),
        fields.remove("message").unwrap_or_else(|| "".into()),
    );
    for (k, v) in fields {
        if line.contains_key(&k) {
            line.insert(format!("field.{k}"), v);
        } else {
            line.insert(k, v);
        }
    }
    serde_json::Value::Object(line)
}

/// Now as `2026-01-02T03:04:05.678Z`.
fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let mut s = crate::clock::rfc3339(secs);
    s.pop(); // the `Z`
    let _ = write!(s, ".{:03}Z", now.subsec_millis());
    s
}

/// The fields of one event as JSON values: numbers and booleans as such, the rest as text.
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_ts_level_target_message_and_typed_fields() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || out.clone())
                .event_format(JsonLines),
        );
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(target: "audit", kind = "login.failure", n = 3_u64, ok = false, ip = %"192.0.2.1", level = "x", "audit \"quoted\"");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["target"], "audit");
        assert_eq!(v["message"], "audit \"quoted\"");
        assert_eq!(v["kind"], "login.failure");
        assert_eq!(v["n"], 3);
        assert_eq!(v["ok"], false);
        assert_eq!(v["ip"], "192.0.2.1");
        assert_eq!(v["field.level"], "x");
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-01-02T03:04:05.678Z".len());
        assert!(crate::clock::parse_rfc3339(ts).is_some(), "{ts}");
    }
}
