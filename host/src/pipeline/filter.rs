//! The filter stage: `[[filter]]` patterns, OR-ed, over the envelope's JSON.

use super::slot::{Fate, Slot};
use weir_pattern::{PatternError, PatternSet};

pub struct FilterStage {
    patterns: PatternSet,
    /// Reused for each event's JSON text.
    scratch: String,
}

impl FilterStage {
    /// `None` when there are no filters: every event is kept.
    pub fn new(patterns: &[String]) -> Result<Option<Self>, PatternError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut set = PatternSet::new();
        for (i, p) in patterns.iter().enumerate() {
            set.add(i, p)?;
        }
        Ok(Some(FilterStage { patterns: set, scratch: String::new() }))
    }

    /// Marks the pending events that match no pattern as filtered.
    pub fn apply(&mut self, slots: &mut [Slot]) {
        for slot in slots.iter_mut().filter(|s| matches!(s.fate, Fate::Pending)) {
            self.scratch.clear();
            slot.event.write_json(&mut self.scratch);
            if !self.patterns.matches_any(self.scratch.as_bytes()) {
                slot.fate = Fate::Filtered;
            }
        }
    }
}
