//! The standard `process_*` metrics (resident and virtual memory, CPU
//! seconds, open and maximum file descriptors, start time), read from
//! `/proc/self` when `/metrics` is scraped: no polling thread, no cost
//! between scrapes.
//!
//! Written by hand because prometheus-client has no process collector, and
//! the crates that do (`prometheus` with its `process` feature, `procfs`)
//! would add a second metrics library or a large dependency for five
//! numbers. On other systems than Linux, or when `/proc` cannot be read, the
//! metrics are left out of the exposition rather than reported as 0.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// One reading of the process's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
}

/// The fields of `/proc/self/stat` that matter here, parsed after the
/// command name (which may contain spaces and parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// User and system CPU time, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Start time, in clock ticks after boot.
    pub starttime: u64,
    pub vsize_bytes: u64,
    pub rss_pages: u64,
}

/// Parses `/proc/[pid]/stat` (proc(5)): fields 14, 15, 22, 23 and 24.
pub fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) is in parentheses and may contain ") ".
    let rest = &text[text.rfind(')')? + 1..];
    // Fields from 3 (state) onwards.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The boot time (`btime`) of `/proc/stat`, in seconds since the epoch.
pub fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads the process's figures now; `None` where `/proc` is unavailable.
pub fn sample() -> Option<Sample> {
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let btime = parse_btime(&std::fs::read_to_string("/proc/stat").ok()?)?;
    // SAFETY: sysconf and getrlimit only read process-wide constants and
    // write into the struct passed.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if ticks <= 0 || page <= 0 {
        return None;
    }
    let ticks = ticks as f64;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as i64);
    let max_fds = {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: see above.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
        (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur as i64)
    };
    Some(Sample {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: (stat.rss_pages as f64) * page as f64,
        virtual_bytes: stat.vsize_bytes as f64,
        start_time_seconds: btime as f64 + stat.starttime as f64 / ticks,
        open_fds,
        max_fds,
    })
}

/// Registered on the root registry: encodes a fresh [`sample`] per scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = sample() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Some(s.resident_bytes),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Some(s.virtual_bytes),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                Some(s.start_time_seconds),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds.map(|n| n as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                s.max_fds.map(|n| n as f64),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let line = "4242 (evil) name (x) S 1 4242 4242 0 -1 4194560 300 0 0 0 \
                    25 12 0 0 20 0 3 0 98765 123456789 1100 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 25,
                stime: 12,
                starttime: 98765,
                vsize_bytes: 123456789,
                rss_pages: 1100,
            })
        );
        assert_eq!(parse_stat("12 (short) S 1"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn parses_btime() {
        assert_eq!(
            parse_btime("cpu  1 2 3\nintr 5\nbtime 1764624000\nprocesses 9\n"),
            Some(1764624000)
        );
        assert_eq!(parse_btime("cpu 1\n"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample().expect("/proc is there on Linux");
        assert!(s.resident_bytes > 0.0);
        assert!(s.virtual_bytes >= s.resident_bytes);
        assert!(s.open_fds.unwrap() >= 3, "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86400.0 * 365.0);
    }
}
