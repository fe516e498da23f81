//! Compiles arbitrary bytes as a pattern and matches it against arbitrary bytes as an event.
//!
//! Input layout: the first byte chooses where the pattern ends (as a fraction of the rest),
//! so the fuzzer can grow both halves independently. Besides "never panics", it checks
//! invariants that tie the APIs together: `explain` is `None` exactly when `matches` is
//! true, and a one-pattern `PatternSet` agrees with `Pattern`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_pattern::{Pattern, PatternSet};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = rest.len() * split as usize / 255;
    let (pattern, event) = rest.split_at(at.min(rest.len()));
    let pattern = String::from_utf8_lossy(pattern);
    let Ok(p) = Pattern::compile(&pattern) else {
        return;
    };
    let m = p.matches(event);
    assert_eq!(
        p.explain(event).is_none(),
        m,
        "explain disagrees with matches"
    );
    let mut set = PatternSet::new();
    set.add(1, &pattern).expect("compiled once, compiles again");
    assert_eq!(set.matches_any(event), m, "set disagrees with pattern");
    assert_eq!(
        set.matching(event) == [1],
        m,
        "matching disagrees with pattern"
    );
});
