//! Routing: which targets each event goes to. Every target's rule (`when`, its patterns OR-ed)
//! is compiled into one pattern set, each pattern under its target's index, so an event is
//! matched once whatever the number of targets; a target without a rule takes every event.
//!
//! Routing runs after the plugins, on what they made of the event: each event a plugin emitted
//! is routed on its own, so a split event's parts may go to different targets. A redriven event
//! (`weir dlq redrive`) that had failed at one target goes to that target only, so the targets
//! that took it the first time do not get it twice (one whose target the file no longer has is
//! routed by the rules, as a new event is).

use super::filter::addresses_only_data;
use super::slot::Slot;
use super::target::TargetConfig;
use crate::dlq_record::REDRIVE_META;
use crate::event::Envelope;
use std::sync::Arc;
use weir_pattern::{PatternError, PatternSet};

/// The targets' rules, shared by the lanes (each lane has its own [`Router`]).
pub(crate) struct Rules {
    /// `None` when no target has a rule: every event goes to every target, unmatched.
    set: Option<PatternSet>,
    /// The targets without a rule: they take every event.
    unruled: Vec<usize>,
    /// Each target's failure stage (`sink`, `target:NAME`), to find a redriven event's target.
    stages: Vec<String>,
    /// Every rule addresses only `data` (match against `{"data": ...}` alone).
    data_only: bool,
}

impl Rules {
    pub(crate) fn new(targets: &[TargetConfig]) -> Result<Self, (String, PatternError)> {
        let mut set = PatternSet::new();
        for (t, target) in targets.iter().enumerate() {
            for pattern in &target.when {
                set.add(t, pattern).map_err(|e| (target.name.clone(), e))?;
            }
        }
        let data_only = targets
            .iter()
            .flat_map(|t| &t.when)
            .all(|p| addresses_only_data(p));
        let set = (!set.is_empty()).then_some(set);
        if let Some(set) = &set {
            set.build(); // now, not on the first event
        }
        Ok(Rules {
            set,
            unruled: (0..targets.len())
                .filter(|&t| targets[t].when.is_empty())
                .collect(),
            stages: targets.iter().map(TargetConfig::stage).collect(),
            data_only,
        })
    }
}

/// One lane's routing: the shared rules and its own scratch space.
pub(crate) struct Router {
    rules: Arc<Rules>,
    scratch: String,
    /// The targets the event being routed goes to, ascending.
    hits: Vec<usize>,
}

/// Where one slot goes: per target (by index), the indexes of the slot's deliverables it takes,
/// for the targets that take any.
pub(crate) type Routed = Vec<(usize, Vec<usize>)>;

impl Router {
    pub(crate) fn new(rules: Arc<Rules>) -> Self {
        Router {
            rules,
            scratch: String::new(),
            hits: Vec::new(),
        }
    }

    /// The targets `slot`'s events go to. Empty: none of them matches any rule (filtered).
    /// Costs what matching the event once costs, plus its hits: never a pass over every
    /// target (a pipeline may have a thousand).
    pub(crate) fn route(&mut self, slot: &Slot) -> Routed {
        let events = slot.deliverables();
        // With one target there is nothing to choose (and the look into `meta` would cost a
        // map lookup per event).
        let only = match self.rules.stages.len() {
            0 | 1 => None,
            _ => self.redriven_to(&slot.event),
        };
        let mut routed: Routed = Vec::new();
        for (k, event) in events.iter().enumerate() {
            self.matching(event);
            for &t in &self.hits {
                if only.is_some_and(|o| o != t) {
                    continue;
                }
                match routed.iter_mut().find(|(target, _)| *target == t) {
                    Some((_, ks)) => ks.push(k),
                    None => routed.push((t, vec![k])),
                }
            }
        }
        routed.sort_by_key(|(t, _)| *t);
        routed
    }

    /// Sets `hits` for `event`: the targets whose rule it matches, and those without a rule.
    fn matching(&mut self, event: &Envelope) {
        self.hits.clear();
        self.hits.extend_from_slice(&self.rules.unruled);
        let Some(set) = &self.rules.set else { return };
        self.scratch.clear();
        if self.rules.data_only {
            self.scratch.push_str("{\"data\":");
            event.data.write_json(&mut self.scratch);
            self.scratch.push('}');
        } else {
            event.write_json(&mut self.scratch);
        }
        // A target with several patterns may be matched by several of them.
        self.hits.extend(set.matching(self.scratch.as_bytes()));
        self.hits.sort_unstable();
        self.hits.dedup();
    }

    /// The target a redriven event failed at, if it is one of this pipeline's.
    fn redriven_to(&self, event: &Envelope) -> Option<usize> {
        let stage = event.meta.get(REDRIVE_META)?.get("stage")?.as_str()?;
        self.rules.stages.iter().position(|s| s == stage)
    }
}
