//! `[ordering]` and `[retry]`: how events are spread over lanes, and what happens when one fails.
//! Two sections of the pipeline file (config.rs reads the file and hands each its table): parsed
//! here and nowhere else, read by the router, the lanes and delivery. The pace of retries is a
//! [`Backoff`], the one every retry loop uses.

use crate::backoff::Backoff;
use crate::config::component::deserialize_table;
use crate::config::{ConfigError, KeyPath, SourceText};
use crate::template::Template;
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

/// Lanes are tokio tasks with their own plugin instances: cheap, but not free (a JavaScript or
/// Python plugin instance holds megabytes). More than this is a typo.
const MAX_LANES: usize = 1024;

/// `[ordering]`.
#[derive(Debug, Clone)]
pub struct Ordering {
    /// Where an event's ordering key comes from when the source gives none (`None`: the events
    /// without a source key share one lane, so a keyless stream keeps its order).
    pub key: Option<Template>,
    /// How many lanes run side by side (default: 2 × cores).
    pub lanes: usize,
    /// At most this many events are between the source and their end (delivered, filtered,
    /// dead-lettered): the bound on memory, and the backpressure on the source.
    pub max_in_flight: usize,
}

/// `[ordering]` as written.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Ordering")]
pub(super) struct RawOrdering {
    /// Where an event's ordering key comes from when the source gives none, a template
    /// (`<$.data.customerId>`): events of one key keep their order.
    #[serde(default)]
    key: Option<String>,
    /// How many lanes run side by side (default: 2 x cores).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_LANES))]
    lanes: Option<usize>,
    /// Events between the source and their end at most (default: 512 per lane, at least 2048).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_in_flight: Option<usize>,
}

/// Events in flight per lane by default: two batches at each of a lane's stages (plugins, then
/// each target's write), with room to spare. Each event in flight holds about 2 KB (its
/// envelope), so the default is also the pipeline's footprint: 10,000 cost 17 MB more peak
/// memory than 2,048, for no gain in speed (docs/performance.md, "Memory").
const IN_FLIGHT_PER_LANE: usize = 512;
/// Events in flight at least by default, however few the lanes.
const MIN_IN_FLIGHT: usize = 2048;

fn default_max_in_flight(lanes: usize) -> usize {
    (IN_FLIGHT_PER_LANE * lanes).max(MIN_IN_FLIGHT)
}

impl Default for Ordering {
    fn default() -> Self {
        let lanes = default_lanes();
        Ordering {
            key: None,
            lanes,
            max_in_flight: default_max_in_flight(lanes),
        }
    }
}

fn default_lanes() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Ordering {
    pub fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        table: toml::Table,
    ) -> Result<Self, Vec<ConfigError>> {
        let raw: RawOrdering = deserialize_table(src, at, table, &[]).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let key = match raw.key.as_deref().map(Template::parse) {
            None => None,
            Some(Ok(t)) if t.references_event() => Some(t),
            Some(Ok(_)) => {
                errors.push(src.error(
                    &at.key("key"),
                    "the key template refers to nothing of the event (write `<$.data.field>`): every event would get the same key",
                ));
                None
            }
            Some(Err(e)) => {
                errors.push(src.error(&at.key("key"), format!("invalid key template: {e}")));
                None
            }
        };
        let lanes = raw.lanes.unwrap_or_else(default_lanes);
        if !(1..=MAX_LANES).contains(&lanes) {
            errors.push(src.error(
                &at.key("lanes"),
                format!("must be between 1 and {MAX_LANES}"),
            ));
        }
        let max_in_flight = raw
            .max_in_flight
            .unwrap_or_else(|| default_max_in_flight(lanes));
        if max_in_flight == 0 {
            errors.push(src.error(&at.key("max_in_flight"), "must be at least 1"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Ordering {
            key,
            lanes,
            max_in_flight,
        })
    }
}

/// What becomes of an event whose retries are exhausted, or that failed for good at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Written to the dead-letter queue with the reason; the key's next events go on.
    #[default]
    Dlq,
    /// Retried without end (at the longest backoff), halting its lane and so its key, until the
    /// cause goes away: a sink that comes back, a fixed plugin hot-reloaded.
    Block,
    /// Counted as dropped and logged; the key's next events go on.
    Drop,
}

/// `[retry]`.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts in all (the first one included); `None`: no limit.
    pub max_attempts: Option<u32>,
    /// The pause between attempts (`backoff_ms`), jittered.
    pub backoff: Backoff,
    /// Give up on an event this long after weir received it; `None`: no limit.
    pub max_record_age: Option<Duration>,
    pub on_failure: OnFailure,
}

/// `[retry]` as written.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Retry")]
pub(super) struct RawRetry {
    /// Attempts in all, the first one included (default: no limit).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_attempts: Option<u32>,
    /// `[min, max]` milliseconds between attempts: exponential, jittered.
    #[serde(default = "default_backoff_ms")]
    backoff_ms: [u64; 2],
    /// Give up on an event this many seconds after weir received it (default: no limit).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_record_age_s: Option<u64>,
    /// What becomes of an event whose retries are exhausted.
    #[serde(default)]
    on_failure: OnFailure,
}

fn default_backoff_ms() -> [u64; 2] {
    [100, 10_000]
}

/// `backoff_ms = [min, max]` as the pace of retries: jittered, so that lanes that failed together
/// (a sink down for all of them) do not retry together.
fn backoff([min, max]: [u64; 2]) -> Backoff {
    Backoff {
        min: Duration::from_millis(min),
        max: Duration::from_millis(max),
        jitter: true,
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: None,
            backoff: backoff(default_backoff_ms()),
            max_record_age: None,
            on_failure: OnFailure::Dlq,
        }
    }
}

impl Retry {
    pub fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        table: toml::Table,
    ) -> Result<Self, Vec<ConfigError>> {
        let raw: RawRetry = deserialize_table(src, at, table, &[]).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        if raw.max_attempts == Some(0) {
            errors.push(src.error(
                &at.key("max_attempts"),
                "must be at least 1 (leave it out for no limit)",
            ));
        }
        let [min, max] = raw.backoff_ms;
        if min == 0 || min > max {
            errors.push(src.error(
                &at.key("backoff_ms"),
                "must be [min, max] with 1 <= min <= max (milliseconds)",
            ));
        }
        if raw.max_record_age_s == Some(0) {
            errors.push(src.error(
                &at.key("max_record_age_s"),
                "must be at least 1 (leave it out for no limit)",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Retry {
            max_attempts: raw.max_attempts,
            backoff: backoff(raw.backoff_ms),
            max_record_age: raw.max_record_age_s.map(Duration::from_secs),
            on_failure: raw.on_failure,
        })
    }

    /// Whether an event that failed `attempts` times, received `age` ago, may be tried again.
    /// `block` never gives up.
    pub fn may_retry(&self, attempts: u32, age: Duration) -> bool {
        if self.on_failure == OnFailure::Block {
            return true;
        }
        self.max_attempts.is_none_or(|max| attempts < max)
            && self.max_record_age.is_none_or(|max| age < max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ms_is_a_jittered_backoff() {
        let r = Retry::default();
        assert_eq!(
            r.backoff,
            Backoff {
                min: Duration::from_millis(100),
                max: Duration::from_secs(10),
                jitter: true
            }
        );
    }

    #[test]
    fn limits_end_retries_unless_blocking() {
        let mut r = Retry {
            max_attempts: Some(3),
            max_record_age: Some(Duration::from_secs(10)),
            ..Retry::default()
        };
        assert!(r.may_retry(2, Duration::from_secs(1)));
        assert!(!r.may_retry(3, Duration::from_secs(1)));
        assert!(!r.may_retry(1, Duration::from_secs(10)));
        r.on_failure = OnFailure::Block;
        assert!(r.may_retry(100, Duration::from_secs(100)));
    }
}
