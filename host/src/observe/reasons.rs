//! Why events were dead-lettered, counted by reason, for the status page and `/pipelines`
//! (`dlq_reasons`): the few reasons that make up most of a DLQ are what an operator looks for
//! first.
//!
//! A reason is the failure's stage, kind and message. Messages can carry an event's own
//! details, so the distinct reasons are bounded: past [`MAX_REASONS`], new ones are counted
//! together as one "other reasons" entry, and the memory stays small whatever the events say.

use serde::Serialize;

/// Distinct reasons kept (beyond them, new reasons are counted as one).
pub(crate) const MAX_REASONS: usize = 100;
/// The longest message kept for a reason, in characters.
const MAX_MESSAGE: usize = 200;
/// What stands for the reasons not kept apart.
const OTHER: &str = "(other reasons)";

/// One reason and how many events were dead-lettered for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    pub stage: String,
    pub kind: String,
    pub message: String,
    pub count: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Reasons {
    /// At most [`MAX_REASONS`], searched in turn: a reason already counted is found without
    /// making its strings again (a DLQ that fills up repeats a few reasons many times).
    counts: Vec<ReasonCount>,
    other: u64,
}

impl Reasons {
    pub(crate) fn add(&mut self, stage: &str, kind: &str, message: &str) {
        // The message as kept: its first MAX_MESSAGE characters, then `…` if it was longer.
        let cut = message.char_indices().nth(MAX_MESSAGE).map(|(i, _)| i);
        let kept = &message[..cut.unwrap_or(message.len())];
        let same = |r: &ReasonCount| {
            r.stage == stage
                && r.kind == kind
                && match cut {
                    Some(_) => r.message.strip_suffix('…') == Some(kept),
                    None => r.message == kept,
                }
        };
        if let Some(r) = self.counts.iter_mut().find(|r| same(r)) {
            r.count += 1;
        } else if self.counts.len() < MAX_REASONS {
            self.counts.push(ReasonCount {
                stage: stage.to_owned(),
                kind: kind.to_owned(),
                message: match cut {
                    Some(_) => format!("{kept}…"),
                    None => kept.to_owned(),
                },
                count: 1,
            });
        } else {
            self.other += 1;
        }
    }

    /// The `n` most frequent reasons, most frequent first (ties in order of stage, kind and
    /// message, so that the page does not shuffle them); the reasons not kept apart count as one.
    pub(crate) fn top(&self, n: usize) -> Vec<ReasonCount> {
        let mut all: Vec<ReasonCount> = self.counts.clone();
        if self.other > 0 {
            all.push(ReasonCount {
                stage: String::new(),
                kind: String::new(),
                message: OTHER.to_owned(),
                count: self.other,
            });
        }
        all.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.stage, &a.kind, &a.message).cmp(&(&b.stage, &b.kind, &b.message)))
        });
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_frequent_reasons_come_first_and_distinct_ones_are_bounded() {
        let mut r = Reasons::default();
        for _ in 0..20 {
            r.add("plugin:p", "error", "no customer");
        }
        r.add("sink", "rejected", "too large");
        for i in 0..MAX_REASONS + 10 {
            r.add("plugin:p", "error", &format!("bad field {i}"));
        }
        let top = r.top(2);
        assert_eq!(top[0].message, "no customer");
        assert_eq!(top[0].count, 20);
        // 2 kept before, so MAX_REASONS - 2 of the numbered ones were kept apart.
        assert_eq!(top[1].message, OTHER);
        assert_eq!(top[1].count, 12);
        assert_eq!(r.counts.len(), MAX_REASONS);
    }

    #[test]
    fn long_messages_are_cut() {
        let mut r = Reasons::default();
        r.add("s", "k", &"é".repeat(500));
        assert_eq!(r.top(1)[0].message.chars().count(), MAX_MESSAGE + 1);
        // Messages alike in their first MAX_MESSAGE characters are one reason; a message of
        // exactly those characters is another.
        r.add("s", "k", &"é".repeat(300));
        r.add("s", "k", &"é".repeat(MAX_MESSAGE));
        let top = r.top(3);
        assert_eq!(top.len(), 2);
        assert_eq!(
            (top[0].count, top[0].message.chars().count()),
            (2, MAX_MESSAGE + 1)
        );
        assert_eq!(
            (top[1].count, top[1].message.chars().count()),
            (1, MAX_MESSAGE)
        );
    }
}
