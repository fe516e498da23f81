//! Plugin throughput, side by side with native code in the same run.
//!
//! `redact` (plugins/redact) runs through the real host (the same Runner a pipeline uses: batch
//! of 256, Store limits, epoch deadline) and, natively, as the very same source file compiled
//! into this benchmark (`plugins/redact/src/redact.rs`), so the ratio is the cost of the sandbox
//! and the boundary, not of different code. Every other built example plugin (JavaScript,
//! Python) is measured through the host too, and each plugin's compile, cached-load and
//! instantiate times are reported.
//!
//! Both rows run on the allocators they have in production: the native row and the host side of
//! the Wasm row on mimalloc, the allocator of weir's binary (host/src/main.rs), so the native row
//! is the transform as it would run compiled into weir; the plugin on weir-plugin-alloc, the
//! allocator the Rust plugins ship with (plugins/alloc).
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p weir --bench plugins` (`-- EVENTS` to change
//! the number of events, default 200000; `-- --rust` for the Rust rows only; `-- --redact=PATH`
//! to measure another build of the redact plugin, e.g. one built with `--features
//! system-allocator`; `-- --no-deadline` to compile plugins without the epoch checks that
//! enforce `timeout_ms`, which weir never does, to see what they cost). To see where a plugin
//! spends its time: `WEIR_PLUGIN_PROFILER=perfmap perf record` on the bench binary (the host
//! setting `plugin_profiler`, read here as `weir` reads it) with a plugin built without `strip`.

#[path = "../../plugins/redact/src/redact.rs"]
mod redact_native;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::config::host::HostSettings;
use weir::plugin::config::Limits;
use weir::plugin::instance::{Event, Loaded, Settings};
use weir::plugin::runner::{Outcome, Runner};

const BATCH: usize = 256;

/// weir's own allocator (see the header).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    // `--rust`: the Rust rows only (seconds instead of a minute; what a profiler should watch).
    let only_rust = std::env::args().any(|a| a == "--rust");
    // `--no-deadline`: plugins compiled without epoch checks (so without deadlines), to measure
    // what the deadlines cost. Never how weir runs.
    let no_deadline = std::env::args().any(|a| a == "--no-deadline");
    if no_deadline {
        weir::plugin::engine::measure_without_deadlines();
    }
    let host = HostSettings::load(None).unwrap_or_else(|e| panic!("{e}"));
    weir::plugin::engine::set_profiler(host.plugin_profiler);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let payloads = orders(n);
    let avg = payloads.iter().map(Vec::len).sum::<usize>() / n;
    println!("{n} order events, ~{avg} bytes each, batches of {BATCH}, one thread\n");

    let fields = vec!["email".to_owned(), "phone".to_owned()];
    let redact = std::env::args()
        .find_map(|a| a.strip_prefix("--redact=").map(PathBuf::from))
        .unwrap_or_else(|| root.join("plugins/redact/redact.wasm"));
    assert!(
        redact.is_file(),
        "{} missing: scripts/build-plugins.sh builds the default one",
        redact.display()
    );

    // Untimed first: the plugin's output must be the native function's, byte for byte. This pass
    // also warms both up, so the timed passes below measure the steady state a running pipeline
    // is in (each keeps nothing: a pipeline frees a batch's outputs once they are delivered;
    // keeping 200,000 of them had the timings measure the kernel zeroing fresh pages).
    let expected: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| redact_native::redact(p.clone(), &fields))
        .collect();
    let expected_bytes: usize = expected.iter().map(Vec::len).sum();
    let config = r#"{"fields":["email","phone"]}"#;
    let (mut runner, times) = load(&redact, config);
    let mut outputs = Vec::with_capacity(n);
    run(&mut runner, &payloads, |o| outputs.push(o));
    assert_eq!(outputs.len(), n, "one output per event");
    assert!(
        outputs == expected,
        "the Wasm plugin's output differs from the native function's"
    );
    drop((outputs, expected));

    let start = Instant::now();
    let mut native_bytes = 0usize;
    for p in &payloads {
        native_bytes += redact_native::redact(p.clone(), &fields).len();
    }
    let native = rate(n, start.elapsed());
    let mut wasm_bytes = 0usize;
    let wasm = run(&mut runner, &payloads, |o| wasm_bytes += o.len());
    assert_eq!((native_bytes, wasm_bytes), (expected_bytes, expected_bytes));

    println!("| transform | events/s | vs native |");
    println!("|---|---:|---:|");
    println!(
        "| redact, native Rust (same source, same settings, mimalloc) | {} | 1.00x |",
        thousands(native)
    );
    println!(
        "| redact, Rust plugin (Wasm{}) | {} | {:.2}x |",
        if no_deadline { ", no deadline" } else { "" },
        thousands(wasm),
        wasm / native
    );
    let mut load_rows = vec![("redact (Rust)".to_owned(), times)];

    for (label, path, config) in others(&root) {
        if only_rust {
            break;
        }
        let (mut runner, times) = load(&path, &config);
        // The interpreted runtimes are slower: a tenth of the events gives a stable figure.
        let sample = &payloads[..(n / 10).max(BATCH)];
        let mut emitted = 0usize;
        run(&mut runner, sample, |_| emitted += 1); // warm-up
        let rate = run(&mut runner, sample, |_| {});
        assert!(emitted > 0, "{label} emitted nothing");
        println!(
            "| {label} (Wasm) | {} | {:.2}x |",
            thousands(rate),
            rate / native
        );
        load_rows.push((label, times));
    }

    println!("\n| plugin | compile | load from cache | instantiate + init |");
    println!("|---|---:|---:|---:|");
    for (label, t) in load_rows {
        println!(
            "| {label} | {} | {} | {} |",
            ms(t.compile),
            ms(t.cached),
            ms(t.instantiate)
        );
    }
}

struct LoadTimes {
    compile: Duration,
    cached: Duration,
    instantiate: Duration,
}

/// Loads a plugin twice through a fresh cache directory (compile, then cached load) and times
/// instantiation; returns a runner on the loaded plugin.
fn load(path: &Path, config: &str) -> (Runner, LoadTimes) {
    let cache = std::env::temp_dir().join(format!("weir-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let settings = Settings {
        pipeline: "bench".into(),
        name: path.file_stem().unwrap().to_string_lossy().as_ref().into(),
        path: path.to_owned(),
        limits: Limits {
            timeout: Duration::from_secs(10),
            init_timeout: Duration::from_secs(10),
            memory_mb: 256,
        },
        config_json: config.to_owned(),
        cache_dir: Some(cache.clone()),
        grants: Default::default(),
    };
    let start = Instant::now();
    let (loaded, instance) = Loaded::load(&settings).unwrap_or_else(|e| panic!("{e}"));
    let compile = start.elapsed();
    let start = Instant::now();
    let again = Loaded::load(&settings).unwrap_or_else(|e| panic!("{e}"));
    let cached = start.elapsed();
    drop(again);
    let _ = std::fs::remove_dir_all(&cache);
    // The runner keeps the compiled version, not the cached one (the same code): perf names a
    // plugin's functions only in code compiled in the process, not in a mapped cache file.

    let rounds = 50;
    let start = Instant::now();
    for _ in 0..rounds {
        loaded.instantiate().unwrap_or_else(|e| panic!("{e}"));
    }
    let instantiate = start.elapsed() / rounds;
    (
        Runner::new(Arc::clone(&loaded), instance),
        LoadTimes {
            compile,
            cached,
            instantiate,
        },
    )
}

/// Runs every payload through the plugin in batches, as the pipeline's plugin stage does: the
/// events are borrowed from what the pipeline holds (ids and payloads, made before the clock
/// starts, as a source would have made them), and metadata is built only if the plugin asks for
/// it. Each emitted payload goes to `emitted`; returns events/s.
fn run(runner: &mut Runner, payloads: &[Vec<u8>], mut emitted: impl FnMut(Vec<u8>)) -> f64 {
    let ids: Vec<String> = (0..payloads.len()).map(|i| format!("bench:{i}")).collect();
    let metadata = |_: usize| {
        vec![
            ("source".to_owned(), "file".to_owned()),
            ("time".to_owned(), "2026-11-22T10:00:00Z".to_owned()),
        ]
    };
    let start = Instant::now();
    for (ids, chunk) in ids.chunks(BATCH).zip(payloads.chunks(BATCH)) {
        let events: Vec<Event> = ids
            .iter()
            .zip(chunk)
            .map(|(id, p)| Event {
                id,
                key: None,
                payload: p,
            })
            .collect();
        for outcome in runner.run(&events, &metadata) {
            match outcome {
                Outcome::Emitted(list) => list.into_iter().for_each(|o| emitted(o.payload)),
                Outcome::Failed { message, .. } => panic!("event failed: {message}"),
            }
        }
    }
    rate(payloads.len(), start.elapsed())
}

/// The other example plugins that are built: `(label, path, config)`.
fn others(root: &Path) -> Vec<(String, PathBuf, String)> {
    let mut found = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root.join("plugins")) else {
        return found;
    };
    let mut dirs: Vec<PathBuf> = dirs.filter_map(|d| Some(d.ok()?.path())).collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let language = if name.ends_with("-js") {
            "JavaScript"
        } else if name.ends_with("-py") {
            "Python"
        } else {
            continue; // Rust plugins other than redact are examples, not benchmarks
        };
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for f in files.filter_map(|f| Some(f.ok()?.path())) {
            if f.extension().is_some_and(|e| e == "wasm") {
                let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
                found.push((format!("{stem} ({language})"), f, "{}".to_owned()));
            }
        }
    }
    found
}

/// ~400-byte order events like the pipeline benchmark's, with fields to redact.
fn orders(n: usize) -> Vec<Vec<u8>> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let depts = ["billing", "shipping", "support", "returns"];
    (0..n)
        .map(|i| {
            let amount = (next() % 50_000) as f64 / 100.0;
            format!(
                concat!(
                    r#"{{"version":"0","id":"ev-{i:012}","detail-type":"OrderCreated","source":"shop.orders","#,
                    r#""time":"2026-11-22T10:00:00Z","region":"eu-west-1","detail":{{"orderId":"O{i}","#,
                    r#""customer":{{"id":"C{c:05}","email":"c{c}@example.org","phone":"+33 6 12 34 {p:02} {q:02}"}},"#,
                    r#""department":"{d}","amount":{amount},"currency":"EUR","items":[{{"sku":"SKU-{s1:03}","qty":{q1}}},"#,
                    r#"{{"sku":"SKU-{s2:03}","qty":{q2}}}]}}}}"#
                ),
                i = i,
                c = i % 5000,
                p = next() % 100,
                q = next() % 100,
                d = depts[i % 4],
                amount = amount,
                s1 = next() % 1000,
                q1 = next() % 5 + 1,
                s2 = next() % 1000,
                q2 = next() % 5 + 1,
            )
            .into_bytes()
        })
        .collect()
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

fn thousands(rate: f64) -> String {
    format!("{:.0}k", rate / 1000.0)
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}
