//! `weir top`: every pipeline's rates, dead letters, errors and lag, refreshed every second
//! (from `GET /pipelines`), as a table fitted to the terminal's width (comfy-table). On a
//! terminal the screen is redrawn; otherwise each refresh is printed after the last
//! (`--iterations N` stops after N). weir going away (a restart, a deploy) does not end it: it
//! says so and keeps asking.

use super::admin_client::{AdminClient, ClientError};
use crate::config::HostSettings;
use crate::exit;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use ureq::http::StatusCode;

pub struct TopArgs {
    pub admin: Option<String>,
    pub interval: Duration,
    pub iterations: Option<u64>,
    /// Columns to fit in; default: the terminal's, else `COLUMNS`, else 120.
    pub width: Option<u16>,
}

/// The width when neither the terminal nor `COLUMNS` tells.
const DEFAULT_WIDTH: u16 = 120;

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
        let width = args.width.unwrap_or_else(|| terminal_width(tty));
        let (text, reached) = match client.json::<Listing>("/pipelines") {
            Ok(listing) => {
                let now = Instant::now();
                let text = render(&listing, &previous, &previous_targets, now, width);
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
                (text, true)
            }
            // A refused token will not be taken on the next try: said once, and the end.
            Err(e @ ClientError::Status { status, .. })
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
            {
                eprintln!("error: {e} (the admin token: admin.token or WEIR_ADMIN__TOKEN)");
                return exit::FAILED;
            }
            // Rates start again from the totals once it answers (a restarted weir counts
            // from zero).
            Err(e) => {
                previous.clear();
                previous_targets.clear();
                let text = format!(
                    "weir top  {}  {e}; trying again every {} ms\n\n",
                    chrono::Utc::now().format("%H:%M:%S"),
                    args.interval.as_millis()
                );
                (text, false)
            }
        };
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
            return if reached { exit::OK } else { exit::FAILED };
        }
        std::thread::sleep(args.interval);
    }
}

/// The terminal's width, else `COLUMNS` (set by shells, and by whoever pipes `weir top`).
fn terminal_width(tty: bool) -> u16 {
    let from_env = || std::env::var("COLUMNS").ok()?.trim().parse::<u16>().ok();
    let from_tty = || if tty { Table::new().width() } else { None };
    from_tty()
        .or_else(from_env)
        .unwrap_or(DEFAULT_WIDTH)
        .max(40)
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
    width: u16,
) -> String {
    let mut s = format!(
        "weir top  {}  ({} pipelines)\n",
        chrono::Utc::now().format("%H:%M:%S"),
        l.pipelines.len()
    );
    let mut rows: Vec<[String; COLUMNS]> = Vec::new();
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
        rows.push([
            clip(&r.name, 32),
            r.state.clone(),
            per_s(rate.received),
            per_s(rate.delivered),
            per_s(rate.filtered),
            per_s(failed),
            r.counts.dead_lettered.to_string(),
            per_s(rate.retried),
            r.in_flight.to_string(),
            r.lag.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            error,
        ]);
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
            rows.push([
                clip(&format!("  -> {}", t.name), 32),
                String::new(),
                String::new(),
                per_s(rate.delivered),
                String::new(),
                per_s(failed),
                t.dead_lettered.to_string(),
                per_s(rate.retried),
                t.in_flight.to_string(),
                String::new(),
                String::new(),
            ]);
        }
    }
    s.push_str(&fit_table(rows, width));
    s.push('\n');
    // Lines of their own below the table, whole up to a point: the terminal wraps them.
    let fit = |text: String| clip(&text, 300);
    for r in &l.pipelines {
        // A refused hot reload stays visible until a version loads: the file on disk is not
        // what runs.
        for p in &r.plugins {
            if let Some(why) = &p.reload_refused {
                s.push_str(&fit(format!("plugin {}: {why}", p.name)));
                s.push('\n');
            }
        }
    }
    for r in &l.rejected {
        s.push_str(&fit(format!("rejected {}: {}", r.file, r.error)));
        s.push('\n');
    }
    s.push('\n');
    s
}

const COLUMNS: usize = 11;
const HEADER: [&str; COLUMNS] = [
    "PIPELINE",
    "STATE",
    "IN/s",
    "OUT/s",
    "FILTER/s",
    "DLQ/s",
    "DLQ",
    "RETRY/s",
    "IN FLIGHT",
    "LAG",
    "LAST ERROR",
];
/// The columns left out first when the width is short, in that order.
const OPTIONAL: [usize; 4] = [7, 4, 5, 9];
const LAST_ERROR: usize = COLUMNS - 1;
/// The least room the last error is given before columns are left out.
const MIN_ERROR: usize = 16;

/// The table within `width` columns, one line per row: the columns that matter least are left
/// out while the rest would leave too little room for the last error, which takes what is left
/// and is cut to it (a wrapped table is hard to scan, and a line per pipeline is what `top`
/// promises).
fn fit_table(rows: Vec<[String; COLUMNS]>, width: u16) -> String {
    let chars = |s: &str| s.chars().count();
    let natural: Vec<usize> = (0..COLUMNS)
        .map(|c| {
            rows.iter()
                .map(|r| chars(&r[c]))
                .chain([chars(HEADER[c])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Two spaces between columns.
    let used = |shown: &[usize]| -> usize {
        shown
            .iter()
            .filter(|&&c| c != LAST_ERROR)
            .map(|&c| natural[c] + 2)
            .sum()
    };
    let width = usize::from(width);
    let mut shown: Vec<usize> = (0..COLUMNS).collect();
    for drop in OPTIONAL {
        if used(&shown) + MIN_ERROR <= width {
            break;
        }
        shown.retain(|&c| c != drop);
    }
    let room = width
        .saturating_sub(used(&shown))
        .max(chars(HEADER[LAST_ERROR]));
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(shown.iter().map(|&c| HEADER[c]));
    for r in rows {
        let cells = shown.iter().map(|&c| match c {
            LAST_ERROR => Cell::new(clip(&r[c], room.saturating_sub(1))),
            _ => Cell::new(&r[c]),
        });
        table.add_row(cells);
    }
    for (i, &c) in shown.iter().enumerate() {
        if let Some(col) = table.column_mut(i) {
            // No padding before the first column, so that each line starts with its pipeline;
            // two spaces between the others; numbers to the right.
            col.set_padding(if i == 0 { (0, 1) } else { (1, 1) });
            if (2..LAST_ERROR).contains(&c) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    // Trailing spaces of the last column are noise on a terminal.
    let text = table.to_string();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
