//! Throughput of weir-pattern against quamina-rs on the same events and patterns.
//!
//! Run: `CARGO_TARGET_DIR=target/pattern cargo bench -j 1 -p weir-pattern`
//! (plain `harness = false` binary; one thread; prints a table). Results go in BENCH.md.
//!
//! Events are ~400-byte EventBridge-shaped order events with varied values; patterns are
//! distinct, mix exact, prefix, numeric, anything-but and exists, and some of them match.

use std::hint::black_box;
use std::time::{Duration, Instant};
use weir_pattern::{Pattern, PatternSet};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const DEPTS: &[&str] = &[
    "billing",
    "sales",
    "support",
    "logistics",
    "returns",
    "marketing",
    "finance",
    "ops",
];
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "CHF"];
const REGIONS: &[&str] = &[
    "eu-west-1",
    "eu-central-1",
    "us-east-1",
    "us-west-2",
    "ap-southeast-1",
];
const TYPES: &[&str] = &["OrderCreated", "OrderUpdated", "OrderCancelled"];
const CHANNELS: &[&str] = &["web", "mobile", "store", "partner"];

fn account(i: u64) -> String {
    format!("{:012}", 111_111_111_111u64 + i * 7_919)
}

fn event(r: &mut Rng, n: u64) -> String {
    let items: Vec<String> = (0..1 + r.below(3))
        .map(|_| {
            format!(
                "{{\"sku\":\"SKU-{:05}\",\"qty\":{}}}",
                r.below(100_000),
                1 + r.below(5)
            )
        })
        .collect();
    let coupon = if r.below(4) == 0 {
        format!(",\"coupon\":\"SAVE{}\"", r.below(50))
    } else {
        String::new()
    };
    let priority = if r.below(3) == 0 {
        ",\"priority\":\"high\""
    } else {
        ""
    };
    format!(
        concat!(
            "{{\"version\":\"0\",\"id\":\"{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}\",\"detail-type\":\"{}\",",
            "\"source\":\"shop.orders\",\"account\":\"{}\",\"time\":\"2026-11-22T10:{:02}:{:02}Z\",",
            "\"region\":\"{}\",\"resources\":[],\"detail\":{{\"orderId\":\"O-{:06}\",",
            "\"customerId\":\"C{:05}\",\"amount\":{}.{:02},\"currency\":\"{}\",\"items\":[{}],",
            "\"department\":\"{}\",\"channel\":\"{}\"{}{}}}}}"
        ),
        r.below(1 << 32),
        r.below(1 << 16),
        r.below(1 << 12),
        r.below(1 << 12),
        n,
        r.pick(TYPES),
        account(r.below(50)),
        r.below(60),
        r.below(60),
        r.pick(REGIONS),
        r.below(1_000_000),
        r.below(20_000),
        r.below(1000),
        r.below(100),
        r.pick(CURRENCIES),
        items.join(","),
        r.pick(DEPTS),
        r.pick(CHANNELS),
        coupon,
        priority
    )
}

/// Distinct events cycled through; 500 × ~400 bytes stay in L2 cache, as an event that a
/// source has just decoded would be.
const EVENTS: u64 = 500;

const SINGLE: &str = r#"{"source":["shop.orders"],"detail":{"department":["billing"],"amount":[{"numeric":[">",100]}]}}"#;

fn pattern(i: u64, r: &mut Rng) -> String {
    let k = i; // distinct per pattern
    match i % 8 {
        0 => format!(
            r#"{{"source":["shop.orders"],"detail":{{"customerId":["C{:05}"]}}}}"#,
            k % 20_000
        ),
        1 => format!(
            r#"{{"detail-type":["OrderCreated"],"detail":{{"customerId":["C{:05}"],"items":{{"qty":[{{"numeric":[">",{}]}}]}}}}}}"#,
            k % 20_000,
            r.below(5)
        ),
        2 => format!(
            r#"{{"detail":{{"orderId":[{{"prefix":"O-{:04}"}}]}}}}"#,
            k % 10_000
        ),
        3 => format!(
            r#"{{"detail":{{"customerId":["C{:05}"],"department":[{{"anything-but":["sales"]}}]}}}}"#,
            k % 20_000
        ),
        4 => format!(
            r#"{{"detail":{{"customerId":["C{:05}"],"coupon":[{{"exists":true}}]}}}}"#,
            k % 20_000
        ),
        5 => format!(
            r#"{{"region":["eu-west-1"],"detail":{{"department":["billing"],"customerId":["C{:05}","C{:05}"]}}}}"#,
            k % 20_000,
            (k + 1) % 20_000
        ),
        6 => format!(
            r#"{{"detail":{{"customerId":["C{:05}"],"priority":[{{"exists":false}}]}}}}"#,
            k % 20_000
        ),
        _ => {
            let lo = r.below(900);
            format!(
                r#"{{"account":["{}"],"detail":{{"amount":[{{"numeric":[">=",{},"<",{}]}}],"department":["{}"],"channel":[{{"anything-but":["partner"]}}],"refund":[{{"exists":false}}]}}}}"#,
                account(r.below(50)),
                lo,
                lo + 1 + r.below(100),
                DEPTS[(i / 8 % 8) as usize]
            )
        }
    }
}

fn rate(events: &[Vec<u8>], mut f: impl FnMut(&[u8]) -> usize) -> (f64, usize) {
    let mut matched = 0;
    for e in events {
        matched += f(e);
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(1500) {
        for e in events {
            black_box(f(black_box(e)));
        }
        n += events.len() as u64;
    }
    (n as f64 / start.elapsed().as_secs_f64(), matched)
}

fn main() {
    let mut r = Rng(0x5eed_1234_abcd_ef01);
    let events: Vec<Vec<u8>> = (0..EVENTS).map(|n| event(&mut r, n).into_bytes()).collect();
    if std::env::var_os("BENCH_SINGLE").is_some() {
        // For profilers: only the single-pattern loop.
        let single = Pattern::compile(SINGLE).expect("single pattern compiles");
        let (r, _) = rate(&events, |e| single.matches(e) as usize);
        println!("single: {:.2} M/s", r / 1e6);
        let (r, _) = rate(&events, |e| {
            serde_json::from_slice::<serde::de::IgnoredAny>(e).is_ok() as usize
        });
        println!("serde_json validate (IgnoredAny): {:.2} M/s", r / 1e6);
        let (r, _) = rate(&events, |e| e.iter().filter(|&&c| c == b'"').count());
        println!("count quotes byte loop: {:.2} M/s", r / 1e6);
        return;
    }
    if std::env::var_os("BENCH_PROBE").is_some() {
        probe(&events);
        return;
    }
    let avg = events.iter().map(|e| e.len()).sum::<usize>() / events.len();
    println!(
        "{} events, average {avg} bytes; one thread; each rate measured over >= 1.5 s\n",
        events.len()
    );
    println!(
        "| patterns | weir matches_any | weir matching | cost vs 1 pattern | quamina matches_for_event | weir/quamina | events matched (weir / quamina) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut base_rate = None;

    let single = Pattern::compile(SINGLE).expect("single pattern compiles");
    let (single_rate, single_matched) = rate(&events, |e| single.matches(e) as usize);

    let only: Option<u64> = std::env::var("BENCH_SETSIZE")
        .ok()
        .and_then(|v| v.parse().ok());
    for &count in &[1u64, 100, 10_000] {
        if only.is_some_and(|o| o != count) {
            continue;
        }
        let mut pr = Rng(42);
        let mut seen = std::collections::HashSet::new();
        let mut texts = vec![SINGLE.to_string()];
        seen.insert(SINGLE.to_string());
        let mut i = 1;
        while (texts.len() as u64) < count {
            let t = pattern(i, &mut pr);
            i += 1;
            if seen.insert(t.clone()) {
                texts.push(t);
            }
        }
        let mut set = PatternSet::new();
        let mut q = quamina::Quamina::<usize>::new();
        for (i, t) in texts.iter().enumerate() {
            set.add(i, t).expect("weir compiles");
            q.add_pattern(i, t).expect("quamina compiles");
        }
        set.build();
        if only.is_some() {
            // For profilers: weir only.
            let cands: usize = events.iter().map(|e| set.candidate_count(e)).sum();
            println!(
                "candidate rules per event: {:.1}",
                cands as f64 / events.len() as f64
            );
            let (all_rate, _) = rate(&events, |e| set.matching(e).len());
            println!("weir matching, {count} patterns: {:.2} M/s", all_rate / 1e6);
            continue;
        }
        let (any_rate, any_matched) = rate(&events, |e| set.matches_any(e) as usize);
        let (all_rate, _) = rate(&events, |e| !set.matching(e).is_empty() as usize);
        let (q_rate, q_matched) = rate(&events, |e| {
            q.matches_for_event(e)
                .map(|m| !m.is_empty() as usize)
                .unwrap_or(0)
        });
        // Same answers, not just the same count: compare the matched pattern ids.
        let mut disagree = 0;
        for e in &events {
            let mut qm = q.matches_for_event(e).unwrap_or_default();
            qm.sort_unstable();
            if set.matching(e) != qm {
                disagree += 1;
            }
        }
        let base = *base_rate.get_or_insert(all_rate);
        println!(
            "| {count} | {:.2} M/s | {:.2} M/s | {:.2}x | {:.2} M/s | {:.1}x | {any_matched} / {q_matched}{} |",
            any_rate / 1e6,
            all_rate / 1e6,
            base / all_rate,
            q_rate / 1e6,
            all_rate / q_rate,
            if disagree > 0 {
                format!(" ({disagree} events with different id sets!)")
            } else {
                String::new()
            }
        );
    }
    println!(
        "\nsingle `Pattern::matches`: {:.2} M events/s ({single_matched} of {} events match)",
        single_rate / 1e6,
        events.len()
    );
    // Reference point: a validating pass over the same events that extracts nothing.
    let (serde_rate, _) = rate(&events, |e| {
        serde_json::from_slice::<serde::de::IgnoredAny>(e).is_ok() as usize
    });
    println!(
        "reference, serde_json validation only (IgnoredAny): {:.2} M events/s",
        serde_rate / 1e6
    );
}

/// Diagnostics (BENCH_PROBE=1): which pattern kinds quamina can take 10,000 of, and the
/// first pattern/event pairs on which weir and quamina disagree.
fn probe(events: &[Vec<u8>]) {
    for kind in 0..8u64 {
        let ok = std::panic::catch_unwind(|| {
            let mut pr = Rng(42);
            let mut q = quamina::Quamina::<usize>::new();
            for i in 0..10_000u64 {
                q.add_pattern(i as usize, &pattern(i * 8 + kind, &mut pr))
                    .unwrap();
            }
            q.matches_for_event(&events[0]).is_ok()
        });
        println!(
            "kind {kind}: quamina 10k {}",
            if ok.is_ok() { "ok" } else { "PANICS" }
        );
    }
    let mut pr = Rng(42);
    let texts: Vec<String> = std::iter::once(SINGLE.to_string())
        .chain((1..100).map(|i| pattern(i, &mut pr)))
        .collect();
    let mut shown = 0;
    for t in &texts {
        let p = Pattern::compile(t).unwrap();
        let mut q = quamina::Quamina::<usize>::new();
        q.add_pattern(0, t).unwrap();
        for e in events {
            let qm = !q.matches_for_event(e).unwrap().is_empty();
            if qm != p.matches(e) && shown < 5 {
                shown += 1;
                println!(
                    "disagree: weir {} quamina {qm}\n  {t}\n  {}",
                    p.matches(e),
                    String::from_utf8_lossy(e)
                );
            }
        }
    }
}
