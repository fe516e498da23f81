//! The matcher for a set of compiled patterns: path trie + per-path value index + rules.
//!
//! How one event is matched (cost grows with what the event touches, not with the number of
//! patterns):
//!
//! 1. **Scan** ([`crate::scan`]): one pass over the event text, following the trie of
//!    referenced paths; unreferenced subtrees are skipped. The result is a short list of leaf
//!    values.
//! 2. **Anchor lookup**: each rule has one *anchor* condition, chosen when the set is built as
//!    its most selective one (an exact value shared by the fewest rules; failing that, "any
//!    value at this path"). Every leaf is looked up in its path's hash tables of exact
//!    strings/numbers/literals, prefixes and suffixes, which yields the rules whose anchor it
//!    satisfies; a long list of rules sharing one anchor value is split once more by a second
//!    field's value ([`Posting`]). Only those rules are candidates. This is event-ruler's and
//!    quamina's idea of walking a value automaton per field instead of looping over patterns,
//!    specialised to hashing because exact values are what large rule sets are mostly made of.
//! 3. **Verify** each candidate: every other condition is checked against the leaves at its
//!    path, with each shared matcher evaluated at most once per event (memoised). If the
//!    event has arrays, a candidate is then checked array-consistently: a bounded
//!    backtracking search for one leaf per condition such that no two come from different
//!    elements of the same array, and no `exists: false` path has a leaf compatible with them.
//!
//! Per-event state lives in a thread-local scratch whose buffers are reused and whose
//! "seen" marks are generation-stamped, so `matches_any` on events without arrays allocates
//! nothing in the steady state.

use crate::compile::{Rule, Test};
use crate::error::Mismatch;
use crate::operators::{Matcher, Scalar, Shown};
use crate::paths::{FxMap, NONE, PathTrie};
use crate::scan::{KIND_FALSE, KIND_NULL, KIND_NUM, KIND_STR, KIND_TRUE, Leaf, Scan};
use std::cell::RefCell;

/// Most leaf/condition pairings the array-consistent search may try for one rule and one
/// event before it gives up (and reports no match); bounds time on adversarial events.
pub const MAX_ARRAY_SEARCH_STEPS: u32 = 200_000;

#[derive(Debug)]
struct PathIdx {
    name: String,
    by_str: FxMap<Box<[u8]>, Posting>,
    by_num: FxMap<u64, Posting>,
    /// true, false, null
    by_lit: [Posting; 3],
    /// Prefix and suffix anchors, with the distinct lengths present so that a lookup costs
    /// one hash probe per distinct length, not one per byte of the value.
    by_prefix: FxMap<Box<[u8]>, Posting>,
    prefix_lens: Vec<usize>,
    by_suffix: FxMap<Box<[u8]>, Posting>,
    suffix_lens: Vec<usize>,
    /// Rules anchored on "some value here" (their anchor has no exact value).
    on_any: Vec<u32>,
}

/// The rules one anchor value selects. When many rules share an anchor value (say 25
/// patterns on one account, each for another department), they are split once more by the
/// exact value of a second field, so that an event only selects the rules whose second value
/// it also has: a two-level decision tree where it pays, plain lists elsewhere.
#[derive(Debug, Default)]
struct Posting {
    rules: Vec<u32>,
    second: Option<Box<Second>>,
}

#[derive(Debug, Default)]
struct Second {
    path: u32,
    by_str: FxMap<Box<[u8]>, Vec<u32>>,
    by_num: FxMap<u64, Vec<u32>>,
    by_lit: [Vec<u32>; 3],
}

/// Split a posting list longer than this by a second field.
const SPLIT_AT: usize = 8;

#[derive(Debug)]
struct CondC {
    path: u32,
    /// Shared matcher ids; the condition holds if one of them accepts a leaf.
    preds: Vec<u32>,
    absent: bool,
}

#[derive(Debug)]
struct RuleC {
    pattern: u32,
    /// Checked in this order: rarest first (fail fast), `exists: false` last.
    conds: Vec<CondC>,
    /// Index in `conds` of the anchor if a hit on it already proves the condition (an exact,
    /// prefix or suffix value looked up in the anchor tables), else NONE.
    proven: u32,
}

/// The hot-path copy of a rule: conditions and matcher ids in flat arrays, so verifying a
/// candidate touches a few contiguous words instead of chasing per-rule allocations (with
/// 10,000 rules those misses dominated verification).
#[derive(Debug, Clone, Copy)]
struct FlatRule {
    pattern: u32,
    /// Index in `Index::rules` (the build-time form, used by the cold paths).
    orig: u32,
    start: u32,
    len: u32,
    proven: u32,
}

#[derive(Debug, Clone, Copy)]
struct FlatCond {
    path: u32,
    absent: bool,
    start: u32,
    len: u32,
}

#[derive(Debug)]
pub(crate) struct Index {
    trie: PathTrie,
    flat_rules: Vec<FlatRule>,
    flat_conds: Vec<FlatCond>,
    flat_preds: Vec<u32>,
    /// Whether a matcher is used by more than one condition; only those are memoised.
    pred_shared: Vec<bool>,
    paths: Vec<PathIdx>,
    preds: Vec<(u32, Matcher)>,
    rules: Vec<RuleC>,
    /// Rules with no positive condition (only `exists: false`): always verified.
    always: Vec<u32>,
    /// Caller's ids, by internal pattern number.
    ids: Vec<usize>,
}

#[derive(Hash, PartialEq, Eq, Clone)]
enum ExactKey {
    Str(Box<[u8]>),
    Num(u64),
    Lit(u8),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
}

fn exact_key(m: &Matcher) -> Option<ExactKey> {
    match m {
        Matcher::Str(s) => Some(ExactKey::Str(s.clone())),
        Matcher::Num(k) => Some(ExactKey::Num(*k)),
        Matcher::Bool(true) => Some(ExactKey::Lit(0)),
        Matcher::Bool(false) => Some(ExactKey::Lit(1)),
        Matcher::Null => Some(ExactKey::Lit(2)),
        Matcher::Prefix(p) => Some(ExactKey::Prefix(p.clone())),
        Matcher::Suffix(p) => Some(ExactKey::Suffix(p.clone())),
        _ => None,
    }
}

impl Index {
    pub(crate) fn build(patterns: &[(usize, Vec<Rule>)]) -> Index {
        let mut trie = PathTrie::default();
        let mut paths: Vec<PathIdx> = Vec::new();
        let mut preds: Vec<(u32, Matcher)> = Vec::new();
        let mut pred_ids: FxMap<(u32, Matcher), u32> = FxMap::default();
        let mut rules = Vec::new();
        let mut ids = Vec::with_capacity(patterns.len());

        let path_id = |trie: &mut PathTrie, paths: &mut Vec<PathIdx>, name: &str| -> u32 {
            let next = paths.len() as u32;
            let id = trie.insert(name, next);
            if id == next {
                paths.push(PathIdx {
                    name: name.to_string(),
                    by_str: FxMap::default(),
                    by_num: FxMap::default(),
                    by_lit: Default::default(),
                    by_prefix: FxMap::default(),
                    prefix_lens: Vec::new(),
                    by_suffix: FxMap::default(),
                    suffix_lens: Vec::new(),
                    on_any: Vec::new(),
                });
            }
            id
        };

        for (pn, (id, prules)) in patterns.iter().enumerate() {
            ids.push(*id);
            for r in prules {
                let mut conds = Vec::with_capacity(r.conds.len());
                for c in &r.conds {
                    let path = path_id(&mut trie, &mut paths, &c.path);
                    match &c.test {
                        Test::Absent => conds.push(CondC {
                            path,
                            preds: Vec::new(),
                            absent: true,
                        }),
                        Test::AnyOf(ms) => {
                            let mut ps = Vec::with_capacity(ms.len());
                            for m in ms {
                                let key = (path, m.clone());
                                let p = *pred_ids.entry(key).or_insert_with(|| {
                                    preds.push((path, m.clone()));
                                    (preds.len() - 1) as u32
                                });
                                ps.push(p);
                            }
                            conds.push(CondC {
                                path,
                                preds: ps,
                                absent: false,
                            });
                        }
                    }
                }
                rules.push(RuleC {
                    pattern: pn as u32,
                    conds,
                    proven: NONE,
                });
            }
        }

        // Selectivity: how many rules name each exact (path, value), and how many rules have a
        // non-exact condition on each path.
        let mut refs: FxMap<(u32, ExactKey), u32> = FxMap::default();
        let mut loose = vec![0u32; paths.len()];
        for r in &rules {
            for c in r.conds.iter().filter(|c| !c.absent) {
                let keys: Option<Vec<ExactKey>> = c
                    .preds
                    .iter()
                    .map(|&p| exact_key(&preds[p as usize].1))
                    .collect();
                match keys {
                    Some(keys) => {
                        for k in keys {
                            *refs.entry((c.path, k)).or_default() += 1;
                        }
                    }
                    None => loose[c.path as usize] += 1,
                }
            }
        }
        // Order each rule's conditions for verification: a condition whose values few rules
        // share is the likeliest to fail, so it goes first; shared ones (`source`) and
        // `exists: false` go last.
        let mut pred_refs = vec![0u32; preds.len()];
        for r in &rules {
            for c in &r.conds {
                for &p in &c.preds {
                    pred_refs[p as usize] += 1;
                }
            }
        }
        for r in &mut rules {
            r.conds.sort_by_key(|c| {
                if c.absent {
                    u64::MAX
                } else {
                    c.preds
                        .iter()
                        .map(|&p| pred_refs[p as usize] as u64)
                        .sum::<u64>()
                }
            });
        }
        let mut always = Vec::new();
        for (ri, r) in rules.iter_mut().enumerate() {
            let ri = ri as u32;
            let mut best: Option<(u64, usize)> = None;
            for (ci, c) in r.conds.iter().enumerate().filter(|(_, c)| !c.absent) {
                let cost = match c
                    .preds
                    .iter()
                    .map(|&p| exact_key(&preds[p as usize].1))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(keys) => keys
                        .into_iter()
                        .map(|k| refs.get(&(c.path, k)).copied().unwrap_or(0) as u64)
                        .sum::<u64>(),
                    None => (1u64 << 32) + loose[c.path as usize] as u64,
                };
                if best.is_none_or(|(b, _)| cost < b) {
                    best = Some((cost, ci));
                }
            }
            let Some((_, ci)) = best else {
                always.push(ri);
                continue;
            };
            let c = &r.conds[ci];
            let pi = &mut paths[c.path as usize];
            // A hit in an exact/prefix/suffix table proves the anchor condition (a hit on any
            // of its values proves the OR), so verification skips it.
            let keys: Option<Vec<ExactKey>> = c
                .preds
                .iter()
                .map(|&p| exact_key(&preds[p as usize].1))
                .collect();
            let keys_are_exact = keys.is_some();
            match keys {
                Some(keys) => {
                    for k in keys {
                        let list = match k {
                            ExactKey::Str(s) => &mut pi.by_str.entry(s).or_default().rules,
                            ExactKey::Num(n) => &mut pi.by_num.entry(n).or_default().rules,
                            ExactKey::Lit(l) => &mut pi.by_lit[l as usize].rules,
                            ExactKey::Prefix(p) => {
                                if !pi.prefix_lens.contains(&p.len()) {
                                    pi.prefix_lens.push(p.len());
                                }
                                &mut pi.by_prefix.entry(p).or_default().rules
                            }
                            ExactKey::Suffix(p) => {
                                if !pi.suffix_lens.contains(&p.len()) {
                                    pi.suffix_lens.push(p.len());
                                }
                                &mut pi.by_suffix.entry(p).or_default().rules
                            }
                        };
                        if list.last() != Some(&ri) {
                            list.push(ri);
                        }
                    }
                }
                None => pi.on_any.push(ri),
            }
            if keys_are_exact {
                r.proven = ci as u32;
            }
        }
        // Memory layout: number rules in the order the anchor tables list them, and matchers
        // in the order those rules use them, so that the candidates one anchor value yields,
        // and their matchers, sit next to each other (with 10,000 rules, cache misses on
        // scattered rules were most of the verification cost).
        for (pn, pi) in paths.iter_mut().enumerate() {
            let pn = pn as u32;
            let split = |p: &mut Posting| split_posting(p, pn, &rules, &preds);
            pi.by_str.values_mut().for_each(split);
            pi.by_num.values_mut().for_each(split);
            pi.by_lit.iter_mut().for_each(split);
            pi.by_prefix.values_mut().for_each(split);
            pi.by_suffix.values_mut().for_each(split);
        }

        let mut order: Vec<u32> = Vec::with_capacity(rules.len());
        let mut placed = vec![false; rules.len()];
        {
            let mut place = |list: &[u32]| {
                for &r in list {
                    if !std::mem::replace(&mut placed[r as usize], true) {
                        order.push(r);
                    }
                }
            };
            let mut place_posting = |p: &Posting| {
                place(&p.rules);
                if let Some(sec) = &p.second {
                    sec.by_str.values().for_each(|v| place(v));
                    sec.by_num.values().for_each(|v| place(v));
                    sec.by_lit.iter().for_each(|v| place(v));
                }
            };
            for pi in &paths {
                pi.by_str.values().for_each(&mut place_posting);
                pi.by_num.values().for_each(&mut place_posting);
                pi.by_lit.iter().for_each(&mut place_posting);
                pi.by_prefix.values().for_each(&mut place_posting);
                pi.by_suffix.values().for_each(&mut place_posting);
            }
            for pi in &paths {
                place_posting(&Posting {
                    rules: pi.on_any.clone(),
                    second: None,
                });
            }
            place_posting(&Posting {
                rules: always.clone(),
                second: None,
            });
        }
        let mut new_id = vec![0u32; rules.len()];
        for (n, &o) in order.iter().enumerate() {
            new_id[o as usize] = n as u32;
        }
        let renumber = |v: &mut Vec<u32>| v.iter_mut().for_each(|r| *r = new_id[*r as usize]);
        let renumber_posting = |p: &mut Posting| {
            renumber(&mut p.rules);
            if let Some(sec) = &mut p.second {
                sec.by_str.values_mut().for_each(renumber);
                sec.by_num.values_mut().for_each(renumber);
                sec.by_lit.iter_mut().for_each(renumber);
            }
        };
        for pi in &mut paths {
            pi.by_str.values_mut().for_each(renumber_posting);
            pi.by_num.values_mut().for_each(renumber_posting);
            pi.by_lit.iter_mut().for_each(renumber_posting);
            pi.by_prefix.values_mut().for_each(renumber_posting);
            pi.by_suffix.values_mut().for_each(renumber_posting);
            renumber(&mut pi.on_any);
        }
        renumber(&mut always);
        let mut pred_new = vec![NONE; preds.len()];
        let mut new_preds = Vec::with_capacity(preds.len());
        let mut new_refs = Vec::with_capacity(preds.len());
        for &o in &order {
            for c in &rules[o as usize].conds {
                for &p in &c.preds {
                    if pred_new[p as usize] == NONE {
                        pred_new[p as usize] = new_preds.len() as u32;
                        new_preds.push(preds[p as usize].clone());
                        new_refs.push(pred_refs[p as usize]);
                    }
                }
            }
        }
        for r in &mut rules {
            for c in &mut r.conds {
                c.preds.iter_mut().for_each(|p| *p = pred_new[*p as usize]);
            }
        }
        let preds = new_preds;
        let pred_refs = new_refs;

        let mut flat_rules = Vec::with_capacity(rules.len());
        let mut flat_conds = Vec::new();
        let mut flat_preds = Vec::new();
        for &o in &order {
            let r = &rules[o as usize];
            flat_rules.push(FlatRule {
                pattern: r.pattern,
                orig: o,
                start: flat_conds.len() as u32,
                len: r.conds.len() as u32,
                proven: r.proven,
            });
            for c in &r.conds {
                flat_conds.push(FlatCond {
                    path: c.path,
                    absent: c.absent,
                    start: flat_preds.len() as u32,
                    len: c.preds.len() as u32,
                });
                flat_preds.extend_from_slice(&c.preds);
            }
        }
        let pred_shared = pred_refs.iter().map(|&n| n > 1).collect();
        Index {
            trie,
            flat_rules,
            flat_conds,
            flat_preds,
            pred_shared,
            paths,
            preds,
            rules,
            always,
            ids,
        }
    }

    pub(crate) fn matches_any(&self, event: &[u8]) -> bool {
        with_scratch(|s| self.run(s, event, None))
    }

    /// Number of candidate rules the anchors select for an event (diagnostics for benches).
    pub(crate) fn candidates(&self, event: &[u8]) -> usize {
        with_scratch(|s| {
            if s.prepare(self, event) {
                s.cands.len()
            } else {
                0
            }
        })
    }

    pub(crate) fn matching(&self, event: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        with_scratch(|s| self.run(s, event, Some(&mut out)));
        out.sort_unstable();
        out
    }

    /// Scans and collects candidates; verifies them. With `all`, collects every matching
    /// pattern's id; without, stops at the first match.
    fn run(&self, s: &mut Scratch, event: &[u8], mut all: Option<&mut Vec<usize>>) -> bool {
        if !s.prepare(self, event) {
            return false;
        }
        let mut found = false;
        let mut k = 0;
        while k < s.cands.len() {
            let r = s.cands[k];
            k += 1;
            let rule = self.flat_rules[r as usize];
            if let Some(out) = all.as_deref_mut() {
                if s.pat_gen[rule.pattern as usize] == s.epoch {
                    continue; // this pattern already matched through another rule
                }
                if self.verify(s, event, r) {
                    s.pat_gen[rule.pattern as usize] = s.epoch;
                    out.push(self.ids[rule.pattern as usize]);
                    found = true;
                }
            } else if self.verify(s, event, r) {
                return true;
            }
        }
        found
    }

    fn verify(&self, s: &mut Scratch, event: &[u8], r: u32) -> bool {
        let rule = self.flat_rules[r as usize];
        let conds = &self.flat_conds[rule.start as usize..(rule.start + rule.len) as usize];
        let arrays = s.scan.has_arrays();
        for (ci, c) in conds.iter().enumerate() {
            if ci as u32 == rule.proven {
                continue;
            }
            if c.absent {
                // Without arrays, "absent" means no leaf at all; with arrays it may still hold
                // relative to the chosen array elements, decided below.
                if !arrays && s.path_gen[c.path as usize] == s.epoch {
                    return false;
                }
            } else {
                let preds = &self.flat_preds[c.start as usize..(c.start + c.len) as usize];
                if !preds.iter().any(|&p| self.pred(s, event, p)) {
                    return false;
                }
            }
        }
        if arrays {
            self.verify_arrays(s, event, &self.rules[rule.orig as usize])
        } else {
            true
        }
    }

    /// Whether shared matcher `p` accepts some leaf at its path (memoised per event).
    #[inline]
    fn pred(&self, s: &mut Scratch, event: &[u8], p: u32) -> bool {
        let pu = p as usize;
        let shared = self.pred_shared[pu];
        if shared && s.pred_gen[pu] == s.epoch {
            return s.pred_val[pu];
        }
        let (path, m) = &self.preds[pu];
        let mut l = s.head(*path);
        let mut v = false;
        while l != NONE {
            let leaf = &s.scan.leaves[l as usize];
            if m.matches(s.scan.scalar(leaf, event)) {
                v = true;
                break;
            }
            l = leaf.next;
        }
        if shared {
            s.pred_gen[pu] = s.epoch;
            s.pred_val[pu] = v;
        }
        v
    }

    fn leaf_ok(&self, s: &Scratch, event: &[u8], c: &CondC, leaf: &Leaf) -> bool {
        let v = s.scan.scalar(leaf, event);
        c.preds.iter().any(|&p| self.preds[p as usize].1.matches(v))
    }

    /// Array-consistent check: an iterative backtracking search choosing one leaf for each
    /// positive condition, all pairwise compatible, such that no `exists: false` path has a
    /// leaf compatible with all of them. Bounded by `MAX_ARRAY_SEARCH_STEPS`.
    fn verify_arrays(&self, s: &mut Scratch, event: &[u8], rule: &RuleC) -> bool {
        let pos: Vec<&CondC> = rule.conds.iter().filter(|c| !c.absent).collect();
        let absent: Vec<&CondC> = rule.conds.iter().filter(|c| c.absent).collect();
        let mut chosen: Vec<u32> = Vec::with_capacity(pos.len()); // trails
        let mut next_try: Vec<u32> = Vec::with_capacity(pos.len() + 1);
        let mut steps = 0u32;
        next_try.push(pos.first().map_or(NONE, |c| s.head(c.path)));
        loop {
            let level = chosen.len();
            if level == pos.len() {
                let ok = absent.iter().all(|a| {
                    let mut l = s.head(a.path);
                    while l != NONE {
                        let leaf = &s.scan.leaves[l as usize];
                        if chosen.iter().all(|&t| s.scan.compatible(t, leaf.trail)) {
                            return false;
                        }
                        l = leaf.next;
                    }
                    true
                });
                if ok {
                    return true;
                }
                if level == 0 {
                    return false;
                }
                chosen.pop();
                next_try.pop();
                continue;
            }
            let mut l = next_try[level];
            let mut picked = None;
            while l != NONE {
                steps += 1;
                if steps > MAX_ARRAY_SEARCH_STEPS {
                    return false;
                }
                let leaf = &s.scan.leaves[l as usize];
                let nl = leaf.next;
                if chosen.iter().all(|&t| s.scan.compatible(t, leaf.trail))
                    && self.leaf_ok(s, event, pos[level], leaf)
                {
                    picked = Some((l, nl));
                    break;
                }
                l = nl;
            }
            match picked {
                Some((l, nl)) => {
                    next_try[level] = nl;
                    chosen.push(s.scan.leaves[l as usize].trail);
                    next_try.push(pos.get(level + 1).map_or(NONE, |c| s.head(c.path)));
                }
                None => {
                    if level == 0 {
                        return false;
                    }
                    chosen.pop();
                    next_try.pop();
                }
            }
        }
    }

    /// Why the event does not match (None if it does). Reports, of the rule that got
    /// furthest, the first condition that failed.
    pub(crate) fn explain(&self, event: &[u8]) -> Option<Mismatch> {
        with_scratch(|s| {
            if !s.prepare(self, event) {
                return Some(Mismatch {
                    path: String::new(),
                    reason: "the event is not a valid JSON object".into(),
                });
            }
            let cands = std::mem::take(&mut s.cands);
            let matched = cands.iter().any(|&r| self.verify(s, event, r));
            s.cands = cands;
            if matched {
                return None;
            }
            let mut best: Option<(usize, Mismatch)> = None;
            for rule in &self.rules {
                let mut failed = None;
                for (ci, c) in rule.conds.iter().enumerate() {
                    let pi = &self.paths[c.path as usize];
                    let values = self.values_at(s, event, c.path);
                    let ok = if c.absent {
                        values.is_empty()
                    } else {
                        c.preds.iter().any(|&p| self.pred(s, event, p))
                    };
                    if ok {
                        continue;
                    }
                    let reason = if c.absent {
                        format!("must not exist, but the event has {}", values.join(", "))
                    } else {
                        let wanted: Vec<String> = c
                            .preds
                            .iter()
                            .map(|&p| self.preds[p as usize].1.to_string())
                            .collect();
                        let wanted = format!("[{}]", wanted.join(", "));
                        if values.is_empty() {
                            format!("missing (or not a single value); the pattern expects {wanted}")
                        } else {
                            format!("{} does not match {wanted}", values.join(", "))
                        }
                    };
                    failed = Some((
                        ci,
                        Mismatch {
                            path: pi.name.clone(),
                            reason,
                        },
                    ));
                    break;
                }
                let (ci, m) = failed.unwrap_or_else(|| {
                    (
                        rule.conds.len(),
                        Mismatch {
                            path: rule
                                .conds
                                .iter()
                                .map(|c| self.paths[c.path as usize].name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            reason: "each field matches on its own, but not within the same array element".into(),
                        },
                    )
                });
                if best.as_ref().is_none_or(|(b, _)| ci > *b) {
                    best = Some((ci, m));
                }
            }
            best.map(|(_, m)| m)
        })
    }

    fn values_at(&self, s: &Scratch, event: &[u8], path: u32) -> Vec<String> {
        let mut out = Vec::new();
        let mut l = s.head(path);
        while l != NONE && out.len() < 5 {
            let leaf = &s.scan.leaves[l as usize];
            out.push(match s.scan.scalar(leaf, event) {
                Scalar::Str(b) => Shown(b).to_string(),
                Scalar::Num(t, _) => String::from_utf8_lossy(t).into_owned(),
                Scalar::Bool(b) => b.to_string(),
                Scalar::Null => "null".into(),
            });
            l = leaf.next;
        }
        out
    }
}

/// Per-thread, per-event working memory (see the module comment).
#[derive(Default)]
struct Scratch {
    epoch: u32,
    scan: Scan,
    path_gen: Vec<u32>,
    path_head: Vec<u32>,
    pred_gen: Vec<u32>,
    pred_val: Vec<bool>,
    rule_gen: Vec<u32>,
    pat_gen: Vec<u32>,
    cands: Vec<u32>,
}

impl Scratch {
    #[inline]
    fn head(&self, path: u32) -> u32 {
        if self.path_gen[path as usize] == self.epoch {
            self.path_head[path as usize]
        } else {
            NONE
        }
    }

    fn next_gen(&mut self, idx: &Index) {
        if self.path_gen.len() < idx.paths.len() {
            self.path_gen.resize(idx.paths.len(), 0);
            self.path_head.resize(idx.paths.len(), NONE);
        }
        if self.pred_gen.len() < idx.preds.len() {
            self.pred_gen.resize(idx.preds.len(), 0);
            self.pred_val.resize(idx.preds.len(), false);
        }
        if self.rule_gen.len() < idx.rules.len() {
            self.rule_gen.resize(idx.rules.len(), 0);
        }
        if self.pat_gen.len() < idx.ids.len() {
            self.pat_gen.resize(idx.ids.len(), 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: forget every stamp so that no stale one can equal a new generation.
            for v in [
                &mut self.path_gen,
                &mut self.pred_gen,
                &mut self.rule_gen,
                &mut self.pat_gen,
            ] {
                v.iter_mut().for_each(|x| *x = 0);
            }
            self.epoch = 1;
        }
    }

    /// Scans the event, links leaves by path and collects candidate rules. False if the
    /// event is not a valid JSON object.
    fn prepare(&mut self, idx: &Index, event: &[u8]) -> bool {
        self.next_gen(idx);
        self.cands.clear();
        if !self.scan.run(event, &idx.trie) {
            return false;
        }
        let epoch = self.epoch;
        // Link in reverse so that each path's list is in document order.
        for i in (0..self.scan.leaves.len()).rev() {
            let p = self.scan.leaves[i].path as usize;
            let prev = if self.path_gen[p] == epoch {
                self.path_head[p]
            } else {
                NONE
            };
            self.scan.leaves[i].next = prev;
            self.path_head[p] = i as u32;
            self.path_gen[p] = epoch;
        }
        for i in 0..self.scan.leaves.len() {
            let leaf = self.scan.leaves[i];
            let pi = &idx.paths[leaf.path as usize];
            let hits: Option<&Posting> = match leaf.kind {
                KIND_STR if !pi.by_str.is_empty() => {
                    let src: &[u8] = if leaf.in_arena {
                        &self.scan.arena
                    } else {
                        event
                    };
                    src.get(leaf.start as usize..leaf.end as usize)
                        .and_then(|b| pi.by_str.get(b))
                }
                KIND_NUM if !pi.by_num.is_empty() && !leaf.num.is_nan() => {
                    pi.by_num.get(&crate::number::key(leaf.num))
                }
                KIND_TRUE => Some(&pi.by_lit[0]),
                KIND_FALSE => Some(&pi.by_lit[1]),
                KIND_NULL => Some(&pi.by_lit[2]),
                _ => None,
            };
            if let Some(p) = hits {
                self.collect(event, p);
            }
            if leaf.kind == KIND_STR && !(pi.prefix_lens.is_empty() && pi.suffix_lens.is_empty()) {
                let (st, en) = (leaf.start as usize, leaf.end as usize);
                for &n in &pi.prefix_lens {
                    let hit = {
                        let src: &[u8] = if leaf.in_arena {
                            &self.scan.arena
                        } else {
                            event
                        };
                        let s = src.get(st..en).unwrap_or(&[]);
                        s.get(..n).and_then(|p| pi.by_prefix.get(p))
                    };
                    if let Some(p) = hit {
                        self.collect(event, p);
                    }
                }
                for &n in &pi.suffix_lens {
                    let hit = {
                        let src: &[u8] = if leaf.in_arena {
                            &self.scan.arena
                        } else {
                            event
                        };
                        let s = src.get(st..en).unwrap_or(&[]);
                        s.len()
                            .checked_sub(n)
                            .and_then(|at| pi.by_suffix.get(&s[at..]))
                    };
                    if let Some(p) = hit {
                        self.collect(event, p);
                    }
                }
            }
            if !pi.on_any.is_empty() && self.path_head[leaf.path as usize] == i as u32 {
                for &r in &pi.on_any {
                    if self.rule_gen[r as usize] != epoch {
                        self.rule_gen[r as usize] = epoch;
                        self.cands.push(r);
                    }
                }
            }
        }
        self.cands.extend_from_slice(&idx.always);
        true
    }
}

impl Scratch {
    /// Adds the rules of an anchor hit; for a split posting, only those whose second field
    /// has a value the event has.
    #[inline]
    fn collect(&mut self, event: &[u8], p: &Posting) {
        let epoch = self.epoch;
        push_cands(&mut self.rule_gen, &mut self.cands, epoch, &p.rules);
        let Some(sec) = &p.second else { return };
        let mut l = self.head(sec.path);
        while l != NONE {
            let leaf = self.scan.leaves[l as usize];
            let rs = match leaf.kind {
                KIND_STR => {
                    let src: &[u8] = if leaf.in_arena {
                        &self.scan.arena
                    } else {
                        event
                    };
                    src.get(leaf.start as usize..leaf.end as usize)
                        .and_then(|b| sec.by_str.get(b))
                }
                KIND_NUM if !leaf.num.is_nan() => sec.by_num.get(&crate::number::key(leaf.num)),
                KIND_TRUE => Some(&sec.by_lit[0]),
                KIND_FALSE => Some(&sec.by_lit[1]),
                KIND_NULL => Some(&sec.by_lit[2]),
                _ => None,
            };
            if let Some(rs) = rs {
                push_cands(&mut self.rule_gen, &mut self.cands, epoch, rs);
            }
            l = leaf.next;
        }
    }
}

/// The exact values (strings, numbers, literals) a condition accepts, if that is all it
/// accepts.
fn value_keys(c: &CondC, preds: &[(u32, Matcher)]) -> Option<Vec<ExactKey>> {
    if c.absent {
        return None;
    }
    c.preds
        .iter()
        .map(|&p| match exact_key(&preds[p as usize].1) {
            Some(k @ (ExactKey::Str(_) | ExactKey::Num(_) | ExactKey::Lit(_))) => Some(k),
            _ => None,
        })
        .collect()
}

/// Splits a long posting list by the field (other than the anchor's) on which most of its
/// rules have an exact-value condition, if at least half of them have one.
fn split_posting(p: &mut Posting, anchor_path: u32, rules: &[RuleC], preds: &[(u32, Matcher)]) {
    if p.rules.len() <= SPLIT_AT {
        return;
    }
    let mut count: FxMap<u32, usize> = FxMap::default();
    for &r in &p.rules {
        for c in &rules[r as usize].conds {
            if c.path != anchor_path && value_keys(c, preds).is_some() {
                *count.entry(c.path).or_default() += 1;
            }
        }
    }
    let Some((path, n)) = count
        .into_iter()
        .max_by_key(|&(path, n)| (n, std::cmp::Reverse(path)))
    else {
        return;
    };
    if n * 2 < p.rules.len() {
        return;
    }
    let mut sec = Second {
        path,
        ..Second::default()
    };
    let mut keep = Vec::new();
    for &r in &p.rules {
        let keys = rules[r as usize]
            .conds
            .iter()
            .find(|c| c.path == path)
            .and_then(|c| value_keys(c, preds));
        match keys {
            Some(keys) => {
                for k in keys {
                    let list = match k {
                        ExactKey::Str(s) => sec.by_str.entry(s).or_default(),
                        ExactKey::Num(n) => sec.by_num.entry(n).or_default(),
                        ExactKey::Lit(l) => &mut sec.by_lit[l as usize],
                        ExactKey::Prefix(_) | ExactKey::Suffix(_) => continue,
                    };
                    if list.last() != Some(&r) {
                        list.push(r);
                    }
                }
            }
            None => keep.push(r),
        }
    }
    p.rules = keep;
    p.second = Some(Box::new(sec));
}

#[inline]
fn push_cands(rule_gen: &mut [u32], cands: &mut Vec<u32>, epoch: u32, rules: &[u32]) {
    for &r in rules {
        if rule_gen[r as usize] != epoch {
            rule_gen[r as usize] = epoch;
            cands.push(r);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        // Only reachable if matching re-entered itself on this thread; stay correct.
        Err(_) => f(&mut Scratch::default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index of `patterns`, each under its position as id.
    fn index<S: AsRef<str>>(patterns: &[S]) -> Index {
        let compiled: Vec<(usize, Vec<Rule>)> = patterns
            .iter()
            .map(|text| {
                crate::compile::compile(text.as_ref())
                    .unwrap_or_else(|e| panic!("{}: {e}", text.as_ref()))
            })
            .enumerate()
            .collect();
        Index::build(&compiled)
    }

    fn path<'a>(idx: &'a Index, name: &str) -> &'a PathIdx {
        idx.paths
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no path {name}"))
    }

    #[test]
    fn the_anchor_is_the_value_fewest_rules_share() {
        // Every rule names the same source and its own detail-type: anchored on the rare one,
        // an event selects only the rule of its own type, not all fifty.
        let patterns: Vec<String> = (0..50)
            .map(|i| format!(r#"{{"source": ["shop"], "detail-type": ["T{i}"]}}"#))
            .collect();
        let idx = index(&patterns);
        let event = br#"{"source": "shop", "detail-type": "T7"}"#;
        assert_eq!(idx.candidates(event), 1);
        assert_eq!(idx.matching(event), vec![7]);
        assert_eq!(
            idx.candidates(br#"{"source": "shop", "detail-type": "T99"}"#),
            0
        );
        assert!(path(&idx, "source").by_str.is_empty(), "never an anchor");
        // The anchor's hit proves its condition, so verification skips it; the rarer condition
        // is also the one checked first.
        for rule in &idx.flat_rules {
            assert_ne!(rule.proven, NONE);
            let anchor = idx.flat_conds[(rule.start + rule.proven) as usize];
            assert_eq!(idx.paths[anchor.path as usize].name, "detail-type");
            assert_eq!(rule.proven, 0, "the rarest condition goes first");
        }
    }

    #[test]
    fn numbers_are_looked_up_by_value_not_by_spelling() {
        let idx = index(&[r#"{"n": [300]}"#, r#"{"n": [1.5]}"#]);
        assert_eq!(idx.candidates(br#"{"n": 3.0e2}"#), 1);
        assert_eq!(idx.matching(br#"{"n": 3.0e2}"#), vec![0]);
        assert_eq!(idx.matching(br#"{"n": 300.0}"#), vec![0]);
        assert_eq!(idx.matching(br#"{"n": 15e-1}"#), vec![1]);
        assert_eq!(idx.candidates(br#"{"n": 301}"#), 0);
        assert_eq!(
            idx.candidates(br#"{"n": "300"}"#),
            0,
            "a string is not a number"
        );
    }

    #[test]
    fn literals_have_their_own_tables() {
        let idx = index(&[r#"{"v": [true]}"#, r#"{"v": [false]}"#, r#"{"v": [null]}"#]);
        assert_eq!(idx.matching(br#"{"v": true}"#), vec![0]);
        assert_eq!(idx.matching(br#"{"v": false}"#), vec![1]);
        assert_eq!(idx.matching(br#"{"v": null}"#), vec![2]);
        assert_eq!(idx.candidates(br#"{"v": "true"}"#), 0);
    }

    #[test]
    fn prefixes_and_suffixes_cost_one_probe_per_distinct_length() {
        let idx = index(&[
            r#"{"s": [{"prefix": "ab"}]}"#,
            r#"{"s": [{"prefix": "abc"}]}"#,
            r#"{"s": [{"prefix": "xy"}]}"#,
            r#"{"s": [{"suffix": ".png"}]}"#,
            r#"{"s": [{"suffix": ".jpeg"}]}"#,
        ]);
        let s = path(&idx, "s");
        let mut prefix_lens = s.prefix_lens.clone();
        prefix_lens.sort_unstable();
        assert_eq!(prefix_lens, vec![2, 3], "one entry per distinct length");
        let mut suffix_lens = s.suffix_lens.clone();
        suffix_lens.sort_unstable();
        assert_eq!(suffix_lens, vec![4, 5]);
        assert_eq!(idx.matching(br#"{"s": "abcd"}"#), vec![0, 1]);
        assert_eq!(idx.matching(br#"{"s": "xyz.png"}"#), vec![2, 3]);
        assert_eq!(idx.matching(br#"{"s": "photo.jpeg"}"#), vec![4]);
        // Shorter than every prefix and suffix: no probe finds anything, and none reads past it.
        assert_eq!(idx.candidates(br#"{"s": "a"}"#), 0);
        assert_eq!(idx.candidates(br#"{"s": ""}"#), 0);
    }

    #[test]
    fn a_rule_without_an_exact_value_is_a_candidate_only_where_its_path_has_a_value() {
        let idx = index(&[r#"{"n": [{"numeric": [">", 5]}]}"#]);
        assert_eq!(path(&idx, "n").on_any.len(), 1);
        assert_eq!(idx.candidates(br#"{"m": 10}"#), 0);
        // A candidate, refused when verified.
        assert_eq!(idx.candidates(br#"{"n": 1}"#), 1);
        assert!(idx.matching(br#"{"n": 1}"#).is_empty());
        assert_eq!(idx.matching(br#"{"n": 6}"#), vec![0]);
        assert_eq!(idx.candidates(br#"{"n": [1, 6, 9]}"#), 1, "selected once");
    }

    #[test]
    fn a_rule_of_absent_fields_only_is_verified_for_every_event() {
        let idx = index(&[r#"{"a": [{"exists": false}]}"#, r#"{"b": ["x"]}"#]);
        assert_eq!(idx.always.len(), 1);
        assert_eq!(idx.candidates(br#"{"c": 1}"#), 1);
        assert_eq!(idx.matching(br#"{"c": 1}"#), vec![0]);
        assert_eq!(idx.matching(br#"{"b": "x"}"#), vec![0, 1]);
        assert_eq!(idx.matching(br#"{"a": 1, "b": "x"}"#), vec![1]);
    }

    #[test]
    fn each_candidate_is_selected_once_however_many_values_select_it() {
        let idx = index(&[r#"{"tags": ["a", "b", "c"]}"#]);
        assert_eq!(idx.candidates(br#"{"tags": ["a", "b", "c", "a"]}"#), 1);
        assert_eq!(idx.matching(br#"{"tags": ["c", "a"]}"#), vec![0]);
    }

    #[test]
    fn a_pattern_that_matches_through_several_rules_is_reported_once() {
        // `$or` compiles to one rule per branch, all of pattern 0.
        let idx = index(&[
            r#"{"$or": [{"a": ["x"]}, {"b": ["y"]}]}"#,
            r#"{"a": ["x"]}"#,
        ]);
        assert_eq!(idx.rules.len(), 3);
        assert_eq!(idx.matching(br#"{"a": "x", "b": "y"}"#), vec![0, 1]);
        assert_eq!(idx.matching(br#"{"b": "y"}"#), vec![0]);
        assert!(idx.matches_any(br#"{"b": "y"}"#));
        assert!(!idx.matches_any(br#"{"b": "x"}"#));
    }

    #[test]
    fn a_long_posting_list_is_split_by_a_second_field() {
        // Twenty rules on account A, each for its own department among two values every rule
        // lists (which makes their department dearer than their account), and two rules on A
        // with no department: A's list of 22 is split by department.
        let mut patterns: Vec<String> = (0..20)
            .map(|i| format!(r#"{{"acct": ["A"], "dept": ["D{i}", "s1", "s2"]}}"#))
            .collect();
        for _ in 0..2 {
            patterns.push(r#"{"acct": ["A"], "n": [{"numeric": [">", 0]}]}"#.into());
        }
        let idx = index(&patterns);
        let posting = &path(&idx, "acct").by_str[b"A".as_slice()];
        let second = posting.second.as_ref().expect("split");
        assert_eq!(idx.paths[second.path as usize].name, "dept");
        assert_eq!(
            posting.rules.len(),
            2,
            "the rules without a department stay"
        );
        // Selected: the two without a department, and D3's rule; not the other nineteen.
        assert_eq!(idx.candidates(br#"{"acct": "A", "dept": "D3"}"#), 3);
        assert_eq!(
            idx.matching(br#"{"acct": "A", "dept": "D3", "n": 1}"#),
            vec![3, 20, 21]
        );
        assert_eq!(idx.candidates(br#"{"acct": "A", "dept": "zzz"}"#), 2);
        assert_eq!(idx.candidates(br#"{"acct": "A", "dept": "s1"}"#), 22);
        assert_eq!(idx.candidates(br#"{"acct": "B", "dept": "s1"}"#), 0);
    }

    #[test]
    fn stamps_from_before_the_generation_counter_wrapped_are_not_taken_for_new_ones() {
        let idx = index(&[
            r#"{"d": ["w"]}"#,
            r#"{"c": ["y"], "d": [{"exists": false}]}"#,
        ]);
        with_scratch(|s| *s = Scratch::default());
        // Generation 1 stamps path d (and rule 0) as seen.
        assert_eq!(idx.matching(br#"{"d": "w"}"#), vec![0]);
        with_scratch(|s| s.epoch = u32::MAX - 1);
        for _ in 0..2 {
            assert!(idx.matching(br#"{"z": 1}"#).is_empty());
        }
        // Past the wrap the generations count from 1 again: a stamp left from the first
        // generation 1 would say d has a value here.
        assert_eq!(idx.matching(br#"{"c": "y"}"#), vec![1]);
        assert_eq!(idx.matching(br#"{"d": "w"}"#), vec![0]);
    }

    #[test]
    fn explain_names_the_first_failed_condition_of_the_rule_that_got_furthest() {
        let idx = index(&[r#"{"a": ["x"]}"#, r#"{"a": ["y"], "b": ["z"]}"#]);
        assert!(idx.explain(br#"{"a": "y", "b": "z"}"#).is_none());
        let m = idx.explain(br#"{"a": "y", "b": "q"}"#).expect("no match");
        assert_eq!(m.path, "b");
        assert!(m.reason.contains("does not match"), "{}", m.reason);
        let m = idx.explain(br#"{"a": "y"}"#).expect("no match");
        assert_eq!(m.path, "b");
        assert!(m.reason.starts_with("missing"), "{}", m.reason);
        let m = idx.explain(b"[1]").expect("not an object");
        assert_eq!(m.reason, "the event is not a valid JSON object");
    }
}
