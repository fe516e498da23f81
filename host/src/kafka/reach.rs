//! What `weir check --connect` reads of a Kafka cluster: its metadata, through a client built as
//! the source's or the sink's, and whether their topics exist. It joins no group, commits
//! nothing and produces nothing.

use super::{Names, Properties, client_config};
use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// The client that reaches the cluster: a consumer for a source, a producer for a sink (each
/// takes its own properties, and refuses some of the other's).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    Consumer,
    Producer,
}

/// What would stop a source or sink at start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReachError {
    /// The client cannot be made with these properties.
    #[error("{0}")]
    Client(#[source] KafkaError),
    #[error(
        "cannot reach the kafka brokers {brokers} within {} s: {source} (check the address, \
         and TLS/SASL settings in `properties`)",
        .timeout.as_secs()
    )]
    Brokers {
        brokers: String,
        timeout: Duration,
        source: KafkaError,
    },
    #[error("kafka topic `{topic}` is not available: {code:?}")]
    Unavailable {
        topic: String,
        code: Option<RDKafkaErrorCode>,
    },
    #[error("kafka topic `{topic}` does not exist on {brokers} (weir does not create topics)")]
    Missing { topic: String, brokers: String },
}

impl ReachError {
    /// The key of the source's or sink's table at fault; `topics` is the one naming its topics.
    pub(crate) fn key(&self, topics: &'static str) -> &'static str {
        match self {
            ReachError::Client(_) => "properties",
            ReachError::Brokers { .. } => "brokers",
            ReachError::Unavailable { .. } | ReachError::Missing { .. } => topics,
        }
    }
}

/// Reads the cluster's metadata through a `role` client and checks that each of `topics`
/// exists: what was reached (`kafka BROKERS (N brokers), topics ...`). Blocks its thread while
/// it waits for the cluster, `timeout` at most.
pub(crate) fn reach(
    role: Role,
    brokers: &Names,
    properties: &Properties,
    topics: &[String],
    timeout: Duration,
) -> Result<String, ReachError> {
    let config = client_config(brokers, &[], properties, &[]);
    match role {
        Role::Consumer => {
            let consumer: BaseConsumer<DefaultConsumerContext> = config
                .create_with_context(DefaultConsumerContext)
                .map_err(ReachError::Client)?;
            read_metadata(consumer.client(), brokers, topics, timeout)
        }
        Role::Producer => {
            let producer: BaseProducer<DefaultProducerContext> = config
                .create_with_context(DefaultProducerContext)
                .map_err(ReachError::Client)?;
            read_metadata(producer.client(), brokers, topics, timeout)
        }
    }
}

fn read_metadata<C: ClientContext>(
    client: &Client<C>,
    brokers: &Names,
    topics: &[String],
    timeout: Duration,
) -> Result<String, ReachError> {
    let metadata = client
        .fetch_metadata(None, timeout)
        .map_err(|source| ReachError::Brokers {
            brokers: brokers.joined(),
            timeout,
            source,
        })?;
    let mut found = Vec::new();
    for topic in topics {
        let t = metadata.topics().iter().find(|t| t.name() == topic);
        match t {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                found.push(format!("`{topic}` ({} partitions)", t.partitions().len()))
            }
            Some(t)
                if t.error().map(RDKafkaErrorCode::from)
                    != Some(RDKafkaErrorCode::UnknownTopicOrPartition) =>
            {
                return Err(ReachError::Unavailable {
                    topic: topic.clone(),
                    code: t.error().map(RDKafkaErrorCode::from),
                });
            }
            _ => {
                return Err(ReachError::Missing {
                    topic: topic.clone(),
                    brokers: brokers.joined(),
                });
            }
        }
    }
    let mut report = format!(
        "kafka {} ({} brokers)",
        brokers.joined(),
        metadata.brokers().len()
    );
    if !found.is_empty() {
        report.push_str(&format!(", topics {}", found.join(", ")));
    }
    Ok(report)
}
