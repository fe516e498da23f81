//! Where a newly assigned partition starts reading.
//!
//! A partition with a committed offset resumes there. One without starts where `start` says,
//! and for `latest` and `timestamp:` the answer depends on when it is asked: the end of the log
//! moves on, and records with older timestamps can be appended (a mirror keeps the original
//! times). So weir asks once, at the partition's first assignment, turns the answer into an
//! offset, starts reading exactly there, and commits that offset for the group (consumer.rs)
//! before any record of the partition is read. A process killed before it finished any event
//! then resumes where it began, instead of asking again and skipping what was written while it
//! was down. `earliest` needs none of this: asked again, it names the same records.

use super::Start;
use super::offsets::Partition;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::time::Duration;

/// How long each lookup made during a rebalance (committed offsets, offsets by time) waits.
pub(super) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The partitions of `tpl` (just assigned) without a committed offset, with the offset `start`
/// resolves to for each; `tpl` is set to start them there. A partition whose lookup failed is
/// left out (and left to `auto.offset.reset`, which weir sets from `start`): it is resolved
/// again at its next assignment, the failure logged.
pub(super) fn resolve<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &mut TopicPartitionList,
    start: &Start,
    pipeline: &str,
) -> Vec<(Partition, u64)> {
    let (wanted, text) = match start {
        Start::Earliest => return Vec::new(),
        Start::Latest => (Offset::End, "latest"),
        Start::Timestamp(text, millis) => (Offset::Offset(*millis), text.as_str()),
    };
    // Where librdkafka starts a partition weir could not resolve (mod.rs sets it from `start`).
    let fallback = match start {
        Start::Latest => "latest",
        _ => "earliest",
    };
    let fresh = match uncommitted(consumer, tpl) {
        Ok(fresh) => fresh,
        Err(e) => {
            tracing::error!(pipeline, error = %e, start = text,
                "cannot read the kafka group's committed offsets; partitions without one start as auto.offset.reset says ({fallback}), resolved again if weir stops before their first commit");
            return Vec::new();
        }
    };
    if fresh.is_empty() {
        return Vec::new();
    }
    let mut found = match offsets_at(consumer, &fresh, wanted, pipeline) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(pipeline, error = %e, start = text,
                "cannot look up where kafka partitions start; they start as auto.offset.reset says ({fallback}), resolved again at their next assignment");
            return Vec::new();
        }
    };
    // `timestamp:` after the last record: the partition starts at its end, as an offset too.
    let past_the_end: Vec<Partition> = found
        .iter()
        .filter(|(_, at)| *at == Offset::End)
        .map(|(p, _)| p.clone())
        .collect();
    if !past_the_end.is_empty() {
        match offsets_at(consumer, &past_the_end, Offset::End, pipeline) {
            Ok(ends) => {
                found.retain(|(_, at)| *at != Offset::End);
                found.extend(ends);
            }
            Err(e) => tracing::error!(pipeline, error = %e, start = text,
                "cannot look up the end of kafka partitions without records after the start time; they start at their end, resolved again at their next assignment"),
        }
    }
    let mut starts = Vec::new();
    for ((topic, partition), at) in found {
        // `End` (looked up again in vain) still starts at the end, as librdkafka resolves it.
        let _ = tpl.set_partition_offset(&topic, partition, at);
        if let Offset::Offset(o) = at {
            starts.push(((topic, partition), o.max(0) as u64));
        }
    }
    starts
}

/// The partitions of `tpl` the group has no committed offset for.
fn uncommitted<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
) -> rdkafka::error::KafkaResult<Vec<Partition>> {
    let committed = consumer.committed_offsets(tpl.clone(), LOOKUP_TIMEOUT)?;
    Ok(committed
        .elements()
        .iter()
        .filter(|e| !matches!(e.offset(), Offset::Offset(_)))
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect())
}

/// Each partition's offset at `at`: a time (`Offset::Offset(millis)`: the first record at or
/// after it, `Offset::End` if there is none), or `Offset::End` (the end of the log: Kafka's
/// ListOffsets takes -1 as "latest", which is how librdkafka itself resolves `latest`).
/// Partitions whose lookup failed are left out (logged).
fn offsets_at<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[Partition],
    at: Offset,
    pipeline: &str,
) -> rdkafka::error::KafkaResult<Vec<(Partition, Offset)>> {
    let mut lookup = TopicPartitionList::new();
    for (topic, partition) in partitions {
        lookup.add_partition_offset(topic, *partition, at)?;
    }
    let found = consumer.offsets_for_times(lookup, LOOKUP_TIMEOUT)?;
    let mut offsets = Vec::new();
    for e in found.elements() {
        let partition = (e.topic().to_owned(), e.partition());
        match e.error() {
            Ok(()) => offsets.push((partition, e.offset())),
            Err(error) => {
                tracing::error!(pipeline, partition = %format!("{}/{}", partition.0, partition.1), %error,
                "cannot look up where the kafka partition starts; it starts as auto.offset.reset says, resolved again at its next assignment")
            }
        }
    }
    Ok(offsets)
}
