//! The shared conformance corpus (`../shared/conformance`, see its README): every
//! `eventbridge` and `ruler-extension` line must give the expected result; `quamina` lines
//! are reported only.
//!
//! Files are read with serde_json `RawValue`, so each pattern and event reaches weir exactly
//! as written in the file (number literals included).

use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use weir_pattern::{Pattern, PatternSet};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");

type Line = HashMap<String, Box<RawValue>>;

fn lines(file: &str) -> Vec<Line> {
    let path = format!("{DIR}/{file}");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e} (shared/ must sit beside the repo)"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad corpus line {l}: {e}")))
        .collect()
}

fn str_field(l: &Line, k: &str) -> String {
    l.get(k)
        .map(|v| serde_json::from_str::<String>(v.get()).unwrap_or_default())
        .unwrap_or_default()
}

fn notes(l: &Line) -> String {
    l.get("notes")
        .map(|v| v.get().to_string())
        .unwrap_or_default()
}

#[derive(Default)]
struct Tally {
    pass: usize,
    fail: usize,
}

/// Invalid-corpus lines that contradict match-corpus lines: they are rejected by event-ruler
/// only with rule overriding disabled, while the match corpus (event-ruler's default) expects
/// the same patterns to compile with "the later definition of a field wins". weir follows
/// the default.
fn contradicts_match_corpus(l: &Line) -> bool {
    notes(l).contains("rule overriding disabled")
        || notes(l).contains("rule overriding is disabled")
        || notes(l).contains("withOverridesForDuplicateRules(false)")
}

#[test]
fn conformance() {
    let mut by_op: BTreeMap<(String, String), Tally> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut quamina_failures: Vec<String> = Vec::new();

    for l in lines("patterns-match.jsonl") {
        let id = str_field(&l, "id");
        let dialect = str_field(&l, "dialect");
        let op = str_field(&l, "operator");
        let expected: bool = serde_json::from_str(l["match"].get()).expect("match is a boolean");
        let pattern = l["pattern"].get();
        let event = l["event"].get().as_bytes();
        let got = match Pattern::compile(pattern) {
            Ok(p) => {
                let single = p.matches(event);
                // The set matcher must agree with the single-pattern one, and explain with both.
                let mut set = PatternSet::new();
                set.add(id.len(), pattern).expect("compiles in a set too");
                assert_eq!(set.matches_any(event), single, "{id}: set vs single");
                assert_eq!(
                    set.matching(event).is_empty(),
                    !single,
                    "{id}: matching vs single"
                );
                assert_eq!(
                    p.explain(event).is_none(),
                    single,
                    "{id}: explain vs matches"
                );
                Ok(single)
            }
            Err(e) => Err(e.to_string()),
        };
        let ok = got == Ok(expected);
        let t = by_op.entry((dialect.clone(), op)).or_default();
        if ok {
            t.pass += 1;
        } else {
            t.fail += 1;
            let line = format!("{id} (expected {expected}, got {got:?})");
            if dialect == "quamina" {
                quamina_failures.push(line)
            } else {
                failures.push(line)
            }
        }
    }

    let mut skipped = Vec::new();
    for l in lines("patterns-invalid.jsonl") {
        let id = str_field(&l, "id");
        let dialect = str_field(&l, "dialect");
        let raw: bool = l.get("raw").is_some_and(|v| v.get() == "true");
        let text = if raw {
            str_field(&l, "pattern")
        } else {
            l["pattern"].get().to_string()
        };
        if contradicts_match_corpus(&l) {
            skipped.push(id);
            continue;
        }
        let result = Pattern::compile(&text);
        let t = by_op
            .entry((dialect.clone(), "(invalid)".into()))
            .or_default();
        match result {
            Err(e) => {
                t.pass += 1;
                assert!(!e.message.is_empty(), "{id}: empty error message");
            }
            Ok(_) => {
                t.fail += 1;
                let line = format!("{id} (invalid pattern compiled: {text})");
                if dialect == "quamina" {
                    quamina_failures.push(line)
                } else {
                    failures.push(line)
                }
            }
        }
    }

    println!(
        "\n{:<17} {:<40} {:>6} {:>6}",
        "dialect", "operator", "pass", "fail"
    );
    let mut per_dialect: BTreeMap<String, Tally> = BTreeMap::new();
    for ((d, op), t) in &by_op {
        println!("{d:<17} {op:<40} {:>6} {:>6}", t.pass, t.fail);
        let pd = per_dialect.entry(d.clone()).or_default();
        pd.pass += t.pass;
        pd.fail += t.fail;
    }
    println!();
    for (d, t) in &per_dialect {
        println!("{d:<17} total: {} pass, {} fail", t.pass, t.fail);
    }
    println!(
        "skipped (contradict the match corpus, see contradicts_match_corpus): {}",
        skipped.join(", ")
    );
    for f in &quamina_failures {
        println!("quamina (optional) FAIL {f}");
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} required conformance lines failed (listed above)",
        failures.len()
    );
}

/// Many patterns in one set must give, for every event, exactly the patterns that match it
/// one by one (exercises the shared-matcher index and anchors across the whole corpus).
#[test]
fn set_agrees_with_single_patterns() {
    let corpus = lines("patterns-match.jsonl");
    let mut set = PatternSet::new();
    let mut singles = Vec::new();
    for (i, l) in corpus.iter().enumerate() {
        if let Ok(p) = Pattern::compile(l["pattern"].get()) {
            set.add(i, l["pattern"].get()).unwrap();
            singles.push((i, p));
        }
    }
    // Every 20th event keeps the test fast in debug builds while covering every operator.
    for l in corpus.iter().step_by(20) {
        let event = l["event"].get().as_bytes();
        let want: Vec<usize> = singles
            .iter()
            .filter(|(_, p)| p.matches(event))
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(set.matching(event), want, "event {}", l["event"].get());
        assert_eq!(set.matches_any(event), !want.is_empty());
    }
}
