//! EventBridge's wildcard complexity limit: a pattern whose `wildcard` values could keep too
//! many partial matches alive at once is refused, as EventBridge refuses it at `PutRule`.
//!
//! weir's own wildcard matcher is linear and does not need the limit; it is enforced so that a
//! pattern weir accepts is one EventBridge accepts too (a pipeline moved either way keeps
//! working). The measure is event-ruler's `MachineComplexityEvaluator`, which EventBridge uses:
//! the most wildcard *prefixes* that one input value can match at the same time. For `a*bb`,
//! the value `abb` is matched by the prefixes `a*`, `a*b` and `a*bb`: complexity 3. Patterns
//! on one field that share the same preceding conditions sit in one of event-ruler's byte
//! machines and count together; strings are matched with their quotes, as event-ruler does.
//!
//! How it is computed: every wildcard is a chain of states (one per character or star, a star
//! looping on any byte); the sets of states one input can reach are explored breadth-first
//! over the bytes the wildcards use plus one byte they do not, and the largest set counts.

use crate::compile::{Rule, Test};
use crate::error::PatternError;
use crate::operators::{AnythingBut, Matcher};
use crate::wildcard::Wildcard;
use std::collections::{BTreeMap, HashSet, VecDeque};

/// The most wildcard prefixes one value may match at once. EventBridge checks each rule on
/// its own against this threshold (event-ruler's "individual complexity" strategy).
pub const MAX_WILDCARD_COMPLEXITY: usize = 10;

/// Sets of states explored before the evaluation gives up and calls the pattern too complex;
/// only reached by patterns far past the limit, so that no pattern costs unbounded time here.
const MAX_STATE_SETS: usize = 20_000;

/// EventBridge's message for a pattern over the limit.
const TOO_COMPLEX: &str = "Rule is too complex - try using fewer wildcard characters or fewer \
                           repeating character sequences after a wildcard character";

/// Refuses the pattern if the wildcards of one field, under the same preceding conditions,
/// exceed [`MAX_WILDCARD_COMPLEXITY`].
pub(crate) fn check(rules: &[Rule]) -> Result<(), PatternError> {
    // event-ruler orders a rule's fields by name; a field's byte machine is shared by the
    // rules whose earlier fields carry the same conditions.
    let mut machines: BTreeMap<(String, &str), Vec<&Wildcard>> = BTreeMap::new();
    for rule in rules {
        let mut conds: Vec<_> = rule.conds.iter().collect();
        conds.sort_by(|a, b| a.path.cmp(&b.path));
        for (i, cond) in conds.iter().enumerate() {
            let Test::AnyOf(matchers) = &cond.test else {
                continue;
            };
            let wildcards: Vec<&Wildcard> = matchers.iter().flat_map(wildcards_of).collect();
            if wildcards.is_empty() {
                continue;
            }
            let before = format!("{:?}", &conds[..i]);
            let machine = machines.entry((before, cond.path.as_str())).or_default();
            for w in wildcards {
                // The same wildcard twice is one pattern in event-ruler's machine.
                if !machine.contains(&w) {
                    machine.push(w);
                }
            }
        }
    }
    for ((_, path), wildcards) in &machines {
        let found = complexity(&chains(wildcards, true), MAX_WILDCARD_COMPLEXITY);
        if found > MAX_WILDCARD_COMPLEXITY {
            return Err(PatternError::whole(format!(
                "{TOO_COMPLEX} (the wildcards on field `{path}` can match {} prefixes of one \
                 value at once; EventBridge allows at most {MAX_WILDCARD_COMPLEXITY})",
                if found == usize::MAX {
                    "too many".to_string()
                } else {
                    found.to_string()
                }
            )));
        }
    }
    Ok(())
}

fn wildcards_of(m: &Matcher) -> Vec<&Wildcard> {
    match m {
        Matcher::Wildcard(w) => vec![w],
        Matcher::AnythingBut(AnythingBut::Wildcards(ws)) => ws.iter().collect(),
        _ => Vec::new(),
    }
}

/// One step of a wildcard as event-ruler's byte machine sees it.
#[derive(Clone, Copy, PartialEq)]
enum Token {
    Byte(u8),
    Star,
}

/// Each wildcard as a chain of tokens, with the quotes event-ruler matches JSON strings with
/// (`"a*b"`) when `quoted`.
fn chains(wildcards: &[&Wildcard], quoted: bool) -> Vec<Vec<Token>> {
    let quote = quoted.then_some(Token::Byte(b'"'));
    wildcards
        .iter()
        .map(|w| {
            let mut t: Vec<Token> = quote.into_iter().collect();
            for (i, seg) in w.segments().iter().enumerate() {
                if i > 0 {
                    t.push(Token::Star);
                }
                t.extend(seg.iter().map(|&b| Token::Byte(b)));
            }
            t.extend(quote);
            t
        })
        .collect()
}

/// The largest number of wildcard prefixes one input can match at once; stops counting past
/// `limit` (returns a number above it) and returns `usize::MAX` if the exploration is cut off.
fn complexity(chains: &[Vec<Token>], limit: usize) -> usize {
    // A state is (chain, position): position k means k tokens consumed; position 0 is the
    // start, not a prefix.
    let mut alphabet: Vec<u8> = chains
        .iter()
        .flatten()
        .filter_map(|t| match t {
            Token::Byte(b) => Some(*b),
            Token::Star => None,
        })
        .collect();
    alphabet.sort_unstable();
    alphabet.dedup();
    // One byte that no wildcard names stands for all of them.
    if let Some(other) = (0..=255u8).find(|b| alphabet.binary_search(b).is_err()) {
        alphabet.push(other);
    }

    let start = closure(
        chains,
        (0..chains.len()).map(|c| (c as u32, 0u32)).collect(),
    );
    let mut seen: HashSet<Vec<(u32, u32)>> = HashSet::new();
    let mut queue = VecDeque::from([start]);
    let mut worst = 0;
    while let Some(set) = queue.pop_front() {
        if !seen.insert(set.clone()) {
            continue;
        }
        if seen.len() > MAX_STATE_SETS {
            return usize::MAX;
        }
        let prefixes = set.iter().filter(|&&(_, k)| k > 0).count();
        worst = worst.max(prefixes);
        if worst > limit {
            return worst;
        }
        for &b in &alphabet {
            let next = step(chains, &set, b);
            if !next.is_empty() && !seen.contains(&next) {
                queue.push_back(next);
            }
        }
    }
    worst
}

/// The states reached from `set` by the byte `b`.
fn step(chains: &[Vec<Token>], set: &[(u32, u32)], b: u8) -> Vec<(u32, u32)> {
    let mut next = Vec::new();
    for &(c, k) in set {
        let chain = &chains[c as usize];
        // A star state loops on any byte.
        if k > 0 && chain[k as usize - 1] == Token::Star {
            next.push((c, k));
        }
        if chain.get(k as usize) == Some(&Token::Byte(b)) {
            next.push((c, k + 1));
        }
    }
    closure(chains, next)
}

/// Adds the star states reachable without input (a star matches nothing too), sorted and
/// without duplicates so that equal sets compare equal.
fn closure(chains: &[Vec<Token>], mut set: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut i = 0;
    while i < set.len() {
        let (c, k) = set[i];
        if chains[c as usize].get(k as usize) == Some(&Token::Star) {
            set.push((c, k + 1));
        }
        i += 1;
    }
    set.sort_unstable();
    set.dedup();
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The complexity of wildcards on one field, without the quotes event-ruler adds for JSON
    /// strings: event-ruler's own unit tests (MachineComplexityEvaluatorTest) measure bare
    /// values, and these expectations are theirs.
    fn bare(patterns: &[&str]) -> usize {
        let ws: Vec<Wildcard> = patterns
            .iter()
            .map(|p| Wildcard::parse(p).unwrap())
            .collect();
        let refs: Vec<&Wildcard> = ws.iter().collect();
        complexity(&chains(&refs, false), 100)
    }

    #[test]
    fn agrees_with_event_rulers_own_measurements() {
        for (patterns, want) in [
            (&["*"][..], 1),
            (&["*", "ab*c"], 3),
            (&["abc"], 1),
            (&["*ab"], 2),
            (&["*aa"], 3),
            (&["a*b"], 2),
            (&["aa*"], 2),
            (&["a*bc"], 2),
            (&["a*bb"], 3),
            (&["a*bcb"], 3),
            (&["a*bbb"], 4),
            (&["*ab*ad"], 4),
            (&["*ab*d"], 3),
            (&["*aba*"], 4),
            (&["a*b*bb"], 5),
            (&["a*b*cb"], 4),
            (&["a*b*cd"], 3),
            (&["a*b*b"], 4),
            (&["a*bb*"], 4),
            (&["ab*b*"], 3),
            (&["ab*c", "x*xx"], 3),
            (&["*abc", "*abcde"], 4),
            (&["a*bcd", "ab*cd"], 4),
            (&["a*bc", "a*bcde"], 4),
            (&["a*aaa", "aa*aa"], 7),
            (&["a*bc", "abc*d"], 4),
            (&["a*aaa", "aaa*a"], 6),
        ] {
            assert_eq!(bare(patterns), want, "{patterns:?}");
        }
    }

    fn check_text(p: &str) -> Result<(), PatternError> {
        check(&crate::compile::compile(p)?)
    }

    #[test]
    fn ordinary_wildcards_pass() {
        for p in [
            r#"{"a": [{"wildcard": "*.png"}]}"#,
            r#"{"a": [{"wildcard": "arn:aws:s3:::bucket/*/2024-*.json"}]}"#,
            r#"{"a": [{"wildcard": "*Title*"}], "b": [{"wildcard": "x*y*z"}]}"#,
            r#"{"a": [{"anything-but": {"wildcard": ["*.tmp", "*.bak"]}}]}"#,
        ] {
            check_text(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn repeated_sequences_after_a_star_are_refused() {
        let p = r#"{"a": [{"wildcard": "*a*a*a*a*a*a*a*a*a*a*a*"}]}"#;
        let e = check_text(p).unwrap_err();
        assert!(e.message.starts_with("Rule is too complex"), "{e}");
        assert!(e.message.contains("field `a`"), "{e}");
        // Wildcards on one field add up: each `"x*N"` is matched by two prefixes of `"x`
        // (`"x` and `"x*`), so five fit and six do not ...
        let many: Vec<String> = (0..6)
            .map(|i| format!(r#"{{"wildcard": "x*{i}"}}"#))
            .collect();
        let p = format!(r#"{{"a": [{}]}}"#, many[..5].join(","));
        check_text(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let p = format!(r#"{{"a": [{}]}}"#, many.join(","));
        assert!(check_text(&p).is_err());
        // ... but not across fields, nor under different earlier conditions.
        let p = format!(
            r#"{{"$or": [{{"k": ["1"], "z": [{}]}}, {{"k": ["2"], "z": [{}]}}]}}"#,
            many[..3].join(","),
            many[3..].join(",")
        );
        check_text(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    }

    #[test]
    fn evaluation_is_bounded() {
        let w = "*ab".repeat(30) + "*";
        let p = format!(r#"{{"a": [{{"wildcard": "{w}"}}]}}"#);
        assert!(check_text(&p).is_err());
    }
}
