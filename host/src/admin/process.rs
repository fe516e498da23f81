//! `/metrics` lines about the process itself: which build it is (`weir_build_info`), and the
//! standard process metrics every Prometheus client library exports (CPU seconds, resident
//! memory, open and allowed file descriptors, start time).
//!
//! Read from `/proc/self` at each scrape, by hand: four small files, where a crate for it
//! (`procfs`, `metrics-process`) would bring dozens of types and dependencies for five numbers.
//! The CPU counter is fractional, which the `metrics` facade's integer counters cannot hold, so
//! these lines are written as text after the exporter's. Where there is no `/proc` (not Linux)
//! the process metrics are left out; the build info is always there.

use std::fmt::Write;

/// The lines to append to the exporter's text.
pub(crate) fn render() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP weir_build_info The version and commit of this weir (always 1)\n\
         # TYPE weir_build_info gauge\n\
         weir_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        env!("WEIR_GIT_COMMIT")
    );
    if let Some(p) = Process::read() {
        for (name, kind, help, value) in [
            (
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds",
                p.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes",
                p.resident_bytes,
            ),
            (
                "process_open_fds",
                "gauge",
                "Number of open file descriptors",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors",
                p.max_fds,
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds",
                p.start_time_seconds,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
    out
}

/// What `/proc/self` says of the process.
#[derive(Debug, PartialEq)]
struct Process {
    cpu_seconds: f64,
    resident_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    start_time_seconds: f64,
}

impl Process {
    fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        // Counting /proc/self/fd lists it through a descriptor of its own: not counted.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()?
            .count()
            .saturating_sub(1);
        // SAFETY: sysconf and getrlimit only read the system's values into what they are given.
        let (ticks, page, max_fds) = unsafe {
            let mut limit: libc::rlimit = std::mem::zeroed();
            let max = match libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) {
                0 => limit.rlim_cur as f64,
                _ => return None,
            };
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
                max,
            )
        };
        parse(
            &stat,
            &boot,
            ticks as f64,
            page as f64,
            open_fds as f64,
            max_fds,
        )
    }
}

/// The numbers from `/proc/self/stat` and `/proc/stat` (`btime`), by proc(5).
fn parse(
    stat: &str,
    proc_stat: &str,
    ticks_per_s: f64,
    page_bytes: f64,
    open_fds: f64,
    max_fds: f64,
) -> Option<Process> {
    if ticks_per_s <= 0.0 || page_bytes <= 0.0 {
        return None;
    }
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself:
    // the fields counted here start after the last `)`, with field 3 (state) at index 0.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let (utime, stime, start_ticks, rss_pages) = (field(14)?, field(15)?, field(22)?, field(24)?);
    let boot_time: f64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(Process {
        cpu_seconds: (utime + stime) / ticks_per_s,
        resident_bytes: rss_pages * page_bytes,
        open_fds,
        max_fds,
        start_time_seconds: boot_time + start_ticks / ticks_per_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (weir (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 \
                    123400 800000000 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let p = parse(
            stat,
            "cpu 1 2 3\nbtime 1700000000\n",
            100.0,
            4096.0,
            7.0,
            1024.0,
        )
        .unwrap();
        assert_eq!(
            p,
            Process {
                cpu_seconds: 3.0,
                resident_bytes: 2048.0 * 4096.0,
                open_fds: 7.0,
                max_fds: 1024.0,
                start_time_seconds: 1_700_001_234.0,
            }
        );
        assert_eq!(parse("garbage", "btime 1", 100.0, 4096.0, 1.0, 1.0), None);
    }

    #[test]
    fn this_process_is_read() {
        let text = render();
        assert!(text.contains("weir_build_info{version=\""), "{text}");
        if cfg!(target_os = "linux") {
            let p = Process::read().expect("/proc/self");
            assert!(p.resident_bytes > 0.0 && p.open_fds > 0.0 && p.max_fds >= p.open_fds);
        }
    }
}
