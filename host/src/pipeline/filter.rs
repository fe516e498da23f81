//! The filter stage: `[[filter]]` patterns, OR-ed, over the envelope's JSON.

use super::slot::{Fate, Slot};
use weir_pattern::{PatternError, PatternSet};

pub(crate) struct FilterStage {
    patterns: PatternSet,
    /// Every pattern addresses only `data`: match against `{"data": ...}` alone instead of
    /// writing out the whole envelope for each event.
    data_only: bool,
    /// Reused for each event's JSON text.
    scratch: String,
}

impl FilterStage {
    /// `None` when there are no filters: every event is kept.
    pub(crate) fn new(patterns: &[String]) -> Result<Option<Self>, PatternError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut set = PatternSet::new();
        for (i, p) in patterns.iter().enumerate() {
            set.add(i, p)?;
        }
        let data_only = patterns.iter().all(|p| addresses_only_data(p));
        Ok(Some(FilterStage {
            patterns: set,
            data_only,
            scratch: String::new(),
        }))
    }

    /// Marks the pending events that match no pattern as filtered.
    pub(crate) fn apply(&mut self, slots: &mut [Slot]) {
        for slot in slots.iter_mut().filter(|s| matches!(s.fate, Fate::Pending)) {
            self.scratch.clear();
            if self.data_only {
                self.scratch.push_str("{\"data\":");
                slot.event.data.write_json(&mut self.scratch);
                self.scratch.push('}');
            } else {
                slot.event.write_json(&mut self.scratch);
            }
            if !self.patterns.matches_any(self.scratch.as_bytes()) {
                slot.fate = Fate::Filtered;
            }
        }
    }
}

/// Whether the pattern's only top-level field is `data` (so nothing else of the envelope can
/// change its result).
pub(super) fn addresses_only_data(pattern: &str) -> bool {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(pattern) {
        Ok(top) => top.keys().all(|k| k == "data"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Envelope, Payload, Position};

    fn slot(data: &str, source: &'static str) -> Slot {
        Slot::new(
            Position {
                partition: 0,
                offset: 1,
                ordinal: 1,
            },
            Envelope {
                id: "f:1".into(),
                source,
                key: None,
                time: "t".into(),
                received_at: "t".into(),
                data: Payload::decode(data.as_bytes()).payload,
                meta: serde_json::Map::new(),
            },
            Fate::Pending,
        )
    }

    fn kept(patterns: &[&str], slots: &mut [Slot]) -> Vec<bool> {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        FilterStage::new(&patterns).unwrap().unwrap().apply(slots);
        slots
            .iter()
            .map(|s| matches!(s.fate, Fate::Pending))
            .collect()
    }

    #[test]
    fn filters_are_ored_over_the_envelope() {
        let mut slots = [
            slot(r#"{"k": "a"}"#, "file"),
            slot(r#"{"k": "b"}"#, "kafka"),
            slot(r#"{"k": "c"}"#, "file"),
        ];
        let got = kept(
            &[r#"{"data": {"k": ["a"]}}"#, r#"{"source": ["kafka"]}"#],
            &mut slots,
        );
        assert_eq!(got, [true, true, false]);
    }

    #[test]
    fn data_only_patterns_see_the_same_result() {
        assert!(addresses_only_data(r#"{"data": {"k": ["a"]}}"#));
        assert!(!addresses_only_data(
            r#"{"data": {"k": ["a"]}, "source": ["file"]}"#
        ));
        assert!(!addresses_only_data(r#"{"$or": [{"data": {"k": ["a"]}}]}"#));
        let mut slots = [
            slot(r#"{"k": "a"}"#, "file"),
            slot("not json", "file"),
            slot(r#"{"k": "b"}"#, "file"),
        ];
        let got = kept(&[r#"{"data": {"k": ["a"]}}"#], &mut slots);
        assert_eq!(got, [true, false, false]);
    }
}
