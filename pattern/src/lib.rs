//! weir-pattern: the EventBridge event-pattern language, compiled and matched by hand.
//!
//! ```
//! use weir_pattern::{Pattern, PatternSet};
//!
//! let p = Pattern::compile(r#"{"detail": {"amount": [{"numeric": [">", 100]}]}}"#).unwrap();
//! assert!(p.matches(br#"{"detail": {"amount": 123.45}}"#));
//! assert!(!p.matches(br#"{"detail": {"amount": 5}}"#));
//!
//! let mut set = PatternSet::new();
//! set.add(7, r#"{"source": ["shop.orders"]}"#).unwrap();
//! set.add(9, r#"{"source": [{"prefix": "shop."}]}"#).unwrap();
//! assert_eq!(set.matching(br#"{"source": "shop.orders"}"#), vec![7, 9]);
//! ```
//!
//! The language is the full event-bus one: exact strings, numbers (by value), booleans,
//! null, prefix/suffix (optionally case-insensitive), equals-ignore-case, wildcard,
//! anything-but (value, list, prefix, suffix, equals-ignore-case, wildcard), numeric ranges,
//! exists, cidr, `$or`, dotted keys, and array-consistent matching of event arrays. quamina's
//! `shellstyle` is accepted too.
//!
//! Events are matched from their JSON text (`&[u8]`) without building a tree; see
//! `automaton.rs` for how, and `BENCH.md` for how fast.
//!
//! Semantics where EventBridge's documentation is silent follow event-ruler (the corpus in
//! `shared/conformance` is the reference):
//! - numbers compare as doubles: `300` = `3.0e2`; a `numeric` bound must be a finite double
//!   that does not round to zero unless it is zero (`2.0e422` and `1E-325` are rejected);
//! - a pattern key containing dots names the same field as the nested form (`"a.b"` =
//!   `{"a": {"b": ...}}`), and so does an event key containing dots;
//! - duplicate keys in a pattern, and a `$or` branch repeating an outer field: the later
//!   definition wins;
//! - an exact string that is an IP address also matches other spellings of that address;
//! - `equals-ignore-case` accepts, per pattern character, the character, its lower-case and
//!   its upper-case form (full Unicode mappings);
//! - `exists` and `anything-but` look at leaf values: `{"a": {"b": 1}}` has no value at `a`,
//!   `anything-but` matches `null` but never a missing field;
//! - arrays: a field matches if any element does, and all fields of one pattern object must
//!   be satisfied within one array element (array-consistent matching), `exists: false`
//!   included.
//!
//! An event that is not valid JSON, not an object, or nested deeper than
//! [`limits::MAX_EVENT_DEPTH`] matches nothing (UTF-8 inside strings is not checked).

mod automaton;
mod check;
mod cidr;
mod compile;
mod complexity;
mod error;
mod number;
mod operators;
mod parse;
mod paths;
mod scan;
mod wildcard;

pub use check::check_lines;
pub use error::{Mismatch, PatternError};
pub use scan::{is_json, object_fields, object_tail};

/// Limits that bound the time and memory one pattern or event can cost.
pub mod limits {
    pub use crate::automaton::MAX_ARRAY_SEARCH_STEPS;
    pub use crate::compile::{MAX_PATTERN_LEN, MAX_RULES_PER_PATTERN};
    pub use crate::complexity::MAX_WILDCARD_COMPLEXITY;
    pub use crate::parse::MAX_PATTERN_DEPTH;
    pub use crate::scan::MAX_EVENT_DEPTH;
    pub use crate::wildcard::{MAX_WILDCARD_LEN, MAX_WILDCARD_STARS};
}

use automaton::Index;

/// Pattern text as rules, refusing what EventBridge refuses as too complex (the complexity is
/// measured on the compiled rules, so it is checked after them, here).
fn compile_rules(text: &str) -> Result<Vec<compile::Rule>, PatternError> {
    let rules = compile::compile(text)?;
    complexity::check(&rules)?;
    Ok(rules)
}
use std::sync::OnceLock;

/// One compiled pattern.
#[derive(Debug)]
pub struct Pattern {
    index: Index,
}

impl Pattern {
    /// Compiles pattern text; the error names the place in the pattern and the problem.
    pub fn compile(text: &str) -> Result<Pattern, PatternError> {
        let rules = compile_rules(text)?;
        Ok(Pattern {
            index: Index::build(&[(0, rules)]),
        })
    }

    /// Whether the event (JSON text) matches. False if the event is not a valid JSON object.
    pub fn matches(&self, event_json: &[u8]) -> bool {
        self.index.matches_any(event_json)
    }

    /// Like [`Pattern::matches`] for an event already parsed by serde_json.
    pub fn matches_value(&self, event: &serde_json::Value) -> bool {
        serde_json::to_vec(event).is_ok_and(|b| self.matches(&b))
    }

    /// `None` if the event matches; otherwise the first pattern field that failed and why.
    pub fn explain(&self, event_json: &[u8]) -> Option<Mismatch> {
        self.index.explain(event_json)
    }
}

/// Many patterns compiled into one matcher; an event matches the set if it matches any of
/// them. Adding is cheap; the combined index is built on the first match after a change.
#[derive(Debug, Default)]
pub struct PatternSet {
    patterns: Vec<(usize, Vec<compile::Rule>)>,
    index: OnceLock<Index>,
}

impl PatternSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles and adds a pattern under the caller's `id` (ids need not be unique or dense;
    /// [`PatternSet::matching`] reports them). On error the set is unchanged.
    pub fn add(&mut self, id: usize, pattern_text: &str) -> Result<(), PatternError> {
        let rules = compile_rules(pattern_text)?;
        self.patterns.push((id, rules));
        self.index = OnceLock::new();
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Builds the combined index now instead of on the first match.
    pub fn build(&self) {
        self.index();
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::build(&self.patterns))
    }

    /// How many rules the index selects for full verification on this event: a measure of
    /// the index's selectivity, for benchmarks and tuning.
    #[doc(hidden)]
    pub fn candidate_count(&self, event_json: &[u8]) -> usize {
        if self.patterns.is_empty() {
            0
        } else {
            self.index().candidates(event_json)
        }
    }

    /// Whether any pattern matches. False if the event is not a valid JSON object.
    pub fn matches_any(&self, event_json: &[u8]) -> bool {
        !self.patterns.is_empty() && self.index().matches_any(event_json)
    }

    /// Ids of all matching patterns, ascending (an id added twice appears twice).
    pub fn matching(&self, event_json: &[u8]) -> Vec<usize> {
        if self.patterns.is_empty() {
            return Vec::new();
        }
        self.index().matching(event_json)
    }
}
