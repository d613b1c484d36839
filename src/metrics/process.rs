//! The standard `process_*` metrics of a Prometheus client, read from `/proc/self` at each
//! scrape (Linux only; elsewhere they are left out, as the client libraries do). A file that
//! cannot be read leaves its metric out of that scrape rather than reporting a made-up zero.

/// Appends `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
/// `process_max_fds` and `process_start_time_seconds`.
pub fn render(o: &mut String) {
    #[cfg(target_os = "linux")]
    linux::render(o);
    #[cfg(not(target_os = "linux"))]
    let _ = o;
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fmt::Write as _;

    /// `/proc` counts CPU time and start time in USER_HZ ticks, which the kernel ABI fixes at
    /// 100 per second on every architecture Linux exposes to user space (`man 5 proc`).
    const TICKS_PER_SECOND: f64 = 100.0;

    /// One metric with its `# HELP` and `# TYPE` lines.
    fn metric(o: &mut String, name: &str, kind: &str, help: &str, value: f64) {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        let _ = writeln!(o, "{name} {value}");
    }

    pub fn render(o: &mut String) {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        // The fields after the command name, which is in parentheses and may hold spaces:
        // index 0 is field 3 (`state`) of `man 5 proc`.
        let fields: Vec<&str> = stat
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_ascii_whitespace().collect())
            .unwrap_or_default();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        // Fields 14 and 15: utime and stime.
        if let (Some(user), Some(system)) = (field(11), field(12)) {
            let secs = user.saturating_add(system) as f64 / TICKS_PER_SECOND;
            metric(
                o,
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                secs,
            );
        }
        if let Some(kib) = status_kib("VmRSS:") {
            metric(
                o,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                kib.saturating_mul(1024) as f64,
            );
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle being read is one of the entries; it is not the process's.
            let open = dir.count().saturating_sub(1);
            metric(
                o,
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                open as f64,
            );
        }
        if let Some(max) = max_open_files() {
            metric(
                o,
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max as f64,
            );
        }
        // Field 22: starttime, in ticks since boot; boot time is `btime` in /proc/stat.
        if let (Some(ticks), Some(boot)) = (field(19), boot_time()) {
            metric(
                o,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + ticks as f64 / TICKS_PER_SECOND,
            );
        }
    }

    /// A `kB` value of `/proc/self/status`.
    fn status_kib(key: &str) -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find_map(|l| l.strip_prefix(key))?;
        line.split_ascii_whitespace().next()?.parse().ok()
    }

    /// The soft limit of `Max open files` in `/proc/self/limits` (`unlimited` is left out).
    fn max_open_files() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = s.lines().find_map(|l| l.strip_prefix("Max open files"))?;
        line.split_ascii_whitespace().next()?.parse().ok()
    }

    /// Boot time, seconds since the epoch (`btime` in `/proc/stat`).
    fn boot_time() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        let line = s.lines().find_map(|l| l.strip_prefix("btime "))?;
        line.trim().parse().ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_read_from_proc_self_and_are_plausible() {
        let mut o = String::new();
        super::render(&mut o);
        let value = |name: &str| -> f64 {
            o.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{name} missing in {o}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        let open = value("process_open_fds");
        assert!(open >= 3.0, "{open}");
        assert!(value("process_max_fds") >= open);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        // This test process started within the last day, and not in the future.
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }
}
