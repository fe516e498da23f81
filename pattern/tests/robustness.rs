//! No-panic property test that CI runs without the fuzzer: conformance patterns and events,
//! randomly mutated with a seeded PRNG, go through compile + matches + explain + PatternSet.
//! Besides not panicking, the APIs must agree with each other.

use serde_json::value::RawValue;
use std::collections::HashMap;
use weir_pattern::{Pattern, PatternSet};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");
const ITERATIONS: usize = 20_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Fragments that steer mutations towards interesting syntax.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\\",
    b"\\u00e9",
    b"\\ud800",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"2.0e422",
    b"1E-325",
    b"0.000001",
    b"\"$or\"",
    b"\"prefix\"",
    b"\"suffix\"",
    b"\"anything-but\"",
    b"\"numeric\"",
    b"\"exists\"",
    b"\"cidr\"",
    b"\"wildcard\"",
    b"\"equals-ignore-case\"",
    b"\"*\"",
    b"\"a**b\"",
    b"\"10.0.0.0/8\"",
    b"\"::1/128\"",
    b"\">\"",
    b"\"<=\"",
    b"\"=\"",
    b"[[[[[[[[",
    b"]]]]]]]]",
    b"{\"a\":",
    b"\xff",
    b"\x00",
    "ΐ".as_bytes(),
    "ß".as_bytes(),
    b".",
    b"\"a.b\"",
];

fn mutate(r: &mut Rng, src: &[u8]) -> Vec<u8> {
    let mut v = src.to_vec();
    for _ in 0..1 + r.below(4) {
        let at = r.below(v.len() + 1);
        match r.below(7) {
            0 if !v.is_empty() => {
                let i = r.below(v.len());
                v[i] ^= 1 << r.below(8);
            }
            1 => {
                let t = TOKENS[r.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            2 if at < v.len() => {
                let end = (at + 1 + r.below(8)).min(v.len());
                v.drain(at..end);
            }
            3 => v.truncate(at),
            4 if at < v.len() => {
                let end = (at + 1 + r.below(32)).min(v.len());
                let seg: Vec<u8> = v[at..end].to_vec();
                v.splice(at..at, seg);
            }
            5 => {
                let depth = 1 + r.below(300);
                let mut w = b"{\"a\":".repeat(depth);
                w.extend_from_slice(&v);
                w.extend(std::iter::repeat_n(b'}', depth));
                v = w;
            }
            _ => {
                let t = TOKENS[r.below(TOKENS.len())];
                let end = (at + t.len()).min(v.len());
                v.splice(at..end, t.iter().copied());
            }
        }
    }
    v
}

fn check(pattern: &str, event: &[u8]) -> bool {
    let Ok(p) = Pattern::compile(pattern) else {
        return false;
    };
    let m = p.matches(event);
    assert_eq!(
        p.explain(event).is_none(),
        m,
        "explain vs matches: {pattern} / {}",
        String::from_utf8_lossy(event)
    );
    let mut set = PatternSet::new();
    set.add(3, pattern).expect("compiles twice");
    assert_eq!(
        set.matches_any(event),
        m,
        "set vs pattern: {pattern} / {}",
        String::from_utf8_lossy(event)
    );
    assert_eq!(set.matching(event) == [3], m);
    true
}

#[test]
fn mutated_conformance_inputs_never_panic() {
    let text = std::fs::read_to_string(format!("{DIR}/patterns-match.jsonl")).expect("corpus");
    let pairs: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<HashMap<String, Box<RawValue>>>(l).ok())
        .map(|m| (m["pattern"].get().to_string(), m["event"].get().to_string()))
        .collect();
    assert!(!pairs.is_empty());
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compiled = 0;
    for _ in 0..ITERATIONS {
        let (p, e) = &pairs[r.below(pairs.len())];
        let (_, e2) = &pairs[r.below(pairs.len())];
        // Mutate the pattern, the event, or both; sometimes pair with another line's event.
        let which = r.below(3);
        let pat = if which != 1 {
            mutate(&mut r, p.as_bytes())
        } else {
            p.as_bytes().to_vec()
        };
        let ev = if which != 0 {
            mutate(&mut r, e.as_bytes())
        } else {
            e2.as_bytes().to_vec()
        };
        let pat = String::from_utf8_lossy(&pat);
        if check(&pat, &ev) {
            compiled += 1;
        }
    }
    // The mutations must leave enough patterns valid to exercise matching.
    assert!(
        compiled > ITERATIONS / 10,
        "only {compiled} mutated patterns compiled"
    );
}

#[test]
fn hostile_shapes() {
    let deep_event = format!("{{\"a\":{}1{}}}", "[".repeat(200_000), "]".repeat(200_000));
    let p = Pattern::compile(r#"{"a": [1]}"#).unwrap();
    assert!(!p.matches(deep_event.as_bytes()));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    assert!(!p.matches(deep_obj.as_bytes()));
    assert!(Pattern::compile(&"[".repeat(100_000)).is_err());
    assert!(
        Pattern::compile(&format!(
            "{}[1]{}",
            "{\"a\":".repeat(1000),
            "}".repeat(1000)
        ))
        .is_err()
    );
    // The deepest event accepted, along a referenced path (recursive part of the scanner),
    // in a debug build on a test thread's 2 MiB stack.
    let pat = format!("{}[1]{}", "{\"a\":".repeat(60), "}".repeat(60));
    let p = Pattern::compile(&pat).unwrap();
    let ev = format!(
        "{}{}1{}{}",
        "{\"a\":".repeat(60),
        "[".repeat(66),
        "]".repeat(66),
        "}".repeat(60)
    );
    assert!(p.matches(ev.as_bytes()));
    let ev = format!(
        "{}{}1{}{}",
        "{\"a\":".repeat(60),
        "[".repeat(80),
        "]".repeat(80),
        "}".repeat(60)
    );
    assert!(
        !p.matches(ev.as_bytes()),
        "deeper than 128 is invalid, as for serde_json"
    );
    // Huge numbers in events: not comparable, never equal, no panic.
    let p = Pattern::compile(r#"{"a": [{"numeric": [">", 0]}], "b": [{"anything-but": [1]}]}"#)
        .unwrap();
    assert!(!p.matches(br#"{"a": 1e999999999, "b": 2}"#));
    assert!(p.matches(br#"{"a": 1, "b": 1e999999999}"#));
    // Invalid UTF-8 in event strings is compared bytewise.
    let p =
        Pattern::compile(r#"{"a": [{"equals-ignore-case": "ΐ"}, {"wildcard": "*x*"}]}"#).unwrap();
    assert!(!p.matches(b"{\"a\": \"\xff\xfe\"}"));
    // Many array elements against many conditions: the array search is bounded.
    let n = 2000;
    let items: Vec<String> = (0..n)
        .map(|i| format!("{{\"x\":{i},\"y\":{}}}", n - i))
        .collect();
    let ev = format!(
        "{{\"a\":[{}],\"b\":[{}]}}",
        items.join(","),
        items.join(",")
    );
    let p = Pattern::compile(r#"{"a": {"x": [{"numeric": [">", 0]}], "y": [{"numeric": [">", 0]}]}, "b": {"x": [5], "y": [1]}}"#).unwrap();
    let _ = p.matches(ev.as_bytes());
    // $or blow-up is rejected at compile time.
    let or = r#"{"$or": [{"a": [1]}, {"b": [1]}, {"c": [1]}, {"d": [1]}]}"#;
    let t =
        format!("{{\"p\": {or}, \"q\": {or}, \"r\": {or}, \"s\": {or}, \"t\": {or}, \"u\": {or}}}");
    assert!(Pattern::compile(&t).is_err());
}

/// Many rules sharing an anchor value are split by a second field; the set must still agree
/// with the patterns one by one, including rules without that second field, multi-value
/// second conditions, and array events.
#[test]
fn split_postings_agree_with_single_patterns() {
    let mut texts = Vec::new();
    for i in 0..40 {
        let dept = ["billing", "sales", "ops", "hr"][i % 4];
        texts.push(match i % 5 {
            0 => format!(
                r#"{{"acct": ["A1"], "dept": ["{dept}"], "n": [{{"numeric": [">", {i}]}}]}}"#
            ),
            1 => format!(r#"{{"acct": ["A1"], "dept": ["{dept}", "x{i}"], "k": [{i}]}}"#),
            2 => format!(r#"{{"acct": ["A1"], "n": [{{"numeric": ["<", {i}]}}]}}"#),
            3 => format!(
                r#"{{"acct": ["A1"], "dept": [{{"prefix": "{}"}}], "k": [{i}]}}"#,
                &dept[..2]
            ),
            _ => format!(
                r#"{{"acct": ["A1"], "dept": [null, true, {i}], "n": [{{"exists": true}}]}}"#
            ),
        });
    }
    // Rules that make `dept` values common, so that `acct` becomes the cheaper anchor and its
    // 40-rule posting list is split by `dept`.
    for i in 0..60 {
        texts.push(format!(
            r#"{{"dept": ["billing", "sales", "ops", "hr", null, true], "z": [{i}]}}"#
        ));
    }
    let mut set = PatternSet::new();
    let singles: Vec<Pattern> = texts.iter().map(|t| Pattern::compile(t).unwrap()).collect();
    for (i, t) in texts.iter().enumerate() {
        set.add(i, t).unwrap();
    }
    // Kinds 0, 2 and 4 (24 rules) are anchored on acct (kinds 1 and 3 on their rarer `k`);
    // split by dept, an unknown dept selects only the 8 kind-2 rules, which have no dept.
    let c = set.candidate_count(br#"{"acct": "A1", "dept": "zzz"}"#);
    assert_eq!(c, 8, "expected a split posting");
    let mut r = Rng(7);
    for _ in 0..2000 {
        let dept = match r.below(6) {
            0 => "\"billing\"".to_string(),
            1 => "\"sales\"".to_string(),
            2 => "null".to_string(),
            3 => "true".to_string(),
            4 => format!("{}", r.below(40)),
            _ => format!("[\"ops\", \"x{}\"]", r.below(40)),
        };
        let ev = format!(
            r#"{{"acct": "A1", "dept": {dept}, "n": {}, "k": {}, "z": {}}}"#,
            r.below(45),
            r.below(45),
            r.below(70)
        );
        let want: Vec<usize> = (0..singles.len())
            .filter(|&i| singles[i].matches(ev.as_bytes()))
            .collect();
        assert_eq!(set.matching(ev.as_bytes()), want, "{ev}");
    }
}
