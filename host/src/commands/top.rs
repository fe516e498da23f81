//! `weir top`: every pipeline's rates, errors and lag, refreshed every second (from
//! `GET /pipelines`). On a terminal the screen is redrawn; otherwise each refresh is printed
//! after the last (`--iterations N` stops after N).

use super::admin_client::AdminClient;
use crate::config::HostSettings;
use crate::exit;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct TopArgs {
    pub admin: Option<String>,
    pub interval: Duration,
    pub iterations: Option<u64>,
}

/// The part of `/pipelines` shown.
#[derive(Deserialize)]
struct Listing {
    pipelines: Vec<Row>,
    #[serde(default)]
    rejected: Vec<Rejected>,
}

#[derive(Deserialize)]
struct Row {
    name: String,
    state: String,
    counts: Counts,
    in_flight: u64,
    lag: Option<i64>,
    last_error: Option<LastError>,
    #[serde(default)]
    plugins: Vec<Plugin>,
    #[serde(default)]
    targets: Vec<Target>,
}

/// One target of a pipeline (`[[target]]`; the `[sink]` shorthand's is not shown apart).
#[derive(Deserialize)]
struct Target {
    name: String,
    delivered: u64,
    dead_lettered: u64,
    dropped: u64,
    released: u64,
    retried: u64,
    in_flight: u64,
}

#[derive(Deserialize)]
struct Plugin {
    name: String,
    #[serde(default)]
    reload_refused: Option<String>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct Counts {
    received: u64,
    filtered: u64,
    delivered: u64,
    dead_lettered: u64,
    dropped: u64,
    released: u64,
    retried: u64,
}

#[derive(Deserialize)]
struct LastError {
    stage: String,
    message: String,
}

#[derive(Deserialize)]
struct Rejected {
    file: String,
    error: String,
}

pub fn top(args: &TopArgs, settings: &HostSettings) -> i32 {
    let client = AdminClient::new(
        args.admin.as_deref(),
        settings,
        Some(Duration::from_secs(5)),
    );
    let tty = std::io::stdout().is_terminal();
    let mut previous: HashMap<String, (Counts, Instant)> = HashMap::new();
    let mut previous_targets: HashMap<(String, String), Counts> = HashMap::new();
    let mut frame = 0u64;
    loop {
        let listing = match client.json::<Listing>("/pipelines") {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        };
        let now = Instant::now();
        let text = render(&listing, &previous, &previous_targets, now);
        previous_targets = listing
            .pipelines
            .iter()
            .flat_map(|r| {
                let at = |t: &Target| ((r.name.clone(), t.name.clone()), t.counts());
                r.targets.iter().map(at)
            })
            .collect();
        previous = listing
            .pipelines
            .iter()
            .map(|r| (r.name.clone(), (r.counts, now)))
            .collect();
        let mut out = std::io::stdout().lock();
        let clear = if tty { "\x1b[H\x1b[2J" } else { "" };
        if write!(out, "{clear}{text}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return exit::OK; // the reader went away
        }
        frame += 1;
        if args.iterations.is_some_and(|n| frame >= n) {
            return exit::OK;
        }
        std::thread::sleep(args.interval);
    }
}

impl Target {
    /// As a pipeline's counts, for the same columns.
    fn counts(&self) -> Counts {
        Counts {
            delivered: self.delivered,
            dead_lettered: self.dead_lettered,
            dropped: self.dropped,
            released: self.released,
            retried: self.retried,
            ..Counts::default()
        }
    }
}

fn render(
    l: &Listing,
    previous: &HashMap<String, (Counts, Instant)>,
    previous_targets: &HashMap<(String, String), Counts>,
    now: Instant,
) -> String {
    let mut s = format!(
        "weir top  {}  ({} pipelines)\n",
        chrono::Utc::now().format("%H:%M:%S"),
        l.pipelines.len()
    );
    s.push_str(&format!(
        "{:<24} {:<9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>10}  {}\n",
        "PIPELINE",
        "STATE",
        "IN/s",
        "OUT/s",
        "FILTER/s",
        "DLQ/s",
        "RETRY/s",
        "IN FLIGHT",
        "LAG",
        "LAST ERROR"
    ));
    for r in &l.pipelines {
        // Rates from the change since the last refresh; totals on the first.
        let (rate, per) = match previous.get(&r.name) {
            Some((before, at)) => (
                diff(&r.counts, before),
                now.duration_since(*at).as_secs_f64().max(0.001),
            ),
            None => (Counts::default(), 1.0),
        };
        let per_s = |n: u64| format!("{:.0}", n as f64 / per);
        let failed = rate.dead_lettered + rate.dropped + rate.released;
        let error = r
            .last_error
            .as_ref()
            .map(|e| format!("{}: {}", e.stage, e.message))
            .unwrap_or_default();
        s.push_str(&format!(
            "{:<24} {:<9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>10}  {}\n",
            clip(&r.name, 24),
            r.state,
            per_s(rate.received),
            per_s(rate.delivered),
            per_s(rate.filtered),
            per_s(failed),
            per_s(rate.retried),
            r.in_flight,
            r.lag.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            clip(&error, 80),
        ));
        // Each target on a line of its own (`-> NAME`), when the pipeline has `[[target]]`s:
        // a target that is down shows as its in-flight count growing while the others deliver.
        let named = r
            .targets
            .iter()
            .filter(|t| !(r.targets.len() == 1 && t.name == "sink"));
        for t in named {
            let now_counts = t.counts();
            let rate = match (
                previous.get(&r.name),
                previous_targets.get(&(r.name.clone(), t.name.clone())),
            ) {
                (Some(_), Some(before)) => diff(&now_counts, before),
                _ => Counts::default(),
            };
            let failed = rate.dead_lettered + rate.dropped + rate.released;
            s.push_str(&format!(
                "{:<24} {:<9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>10}\n",
                clip(&format!("  -> {}", t.name), 24),
                "",
                "",
                per_s(rate.delivered),
                "",
                per_s(failed),
                per_s(rate.retried),
                t.in_flight,
                "",
            ));
        }
        // A refused hot reload stays visible until a version loads: the file on disk is not
        // what runs.
        for p in &r.plugins {
            if let Some(why) = &p.reload_refused {
                s.push_str(&format!("  plugin {}: {}\n", p.name, clip(why, 160)));
            }
        }
    }
    for r in &l.rejected {
        s.push_str(&format!("rejected {}: {}\n", r.file, clip(&r.error, 160)));
    }
    s.push('\n');
    s
}

fn diff(now: &Counts, before: &Counts) -> Counts {
    // A restart in between can make a total smaller: count from zero then.
    let d = |a: u64, b: u64| a.saturating_sub(b);
    Counts {
        received: d(now.received, before.received),
        filtered: d(now.filtered, before.filtered),
        delivered: d(now.delivered, before.delivered),
        dead_lettered: d(now.dead_lettered, before.dead_lettered),
        dropped: d(now.dropped, before.dropped),
        released: d(now.released, before.released),
        retried: d(now.retried, before.retried),
    }
}

fn clip(s: &str, n: usize) -> String {
    let s = s.replace('\n', " ");
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}
