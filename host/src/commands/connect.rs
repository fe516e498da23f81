//! `weir check --connect`: after the offline checks, reach every broker and queue a pipeline
//! names, as `weir run` would at start, and report what would stop it there: brokers out of
//! reach or refusing the client's settings (TLS, SASL), topics that do not exist, queues that do
//! not exist or refuse these credentials, and AWS credentials that cannot be found. It reads
//! metadata and queue attributes only: it joins no consumer group, commits nothing, sends and
//! receives no message.

use crate::config::{ConfigError, KeyPath, SourceText};
use crate::kafka::{Names, Properties, client_config};
use crate::pipeline::PipelineConfig;
use crate::sink::{SinkConfig, SinkKind};
use crate::source::SourceConfig;
use crate::sqs::{AwsError, QueueRef};
use crate::template::Template;
use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// How long one broker or queue may take to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What stops `p` at start when its brokers and queues are reached, as errors at the keys that
/// name them; and, for the report, what was reached.
pub fn connect(p: &PipelineConfig, src: &SourceText<'_>) -> (Vec<ConfigError>, Vec<String>) {
    let root = KeyPath::default();
    let mut errors = Vec::new();
    let mut reached = Vec::new();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errors.push(src.error(&root, format!("cannot start the async runtime: {e}")));
            return (errors, reached);
        }
    };
    let at = root.key("source");
    match &p.source {
        SourceConfig::Kafka(c) => {
            let topics: Vec<String> = c.topics.list().iter().map(|t| t.to_string()).collect();
            let client = client_config(&c.brokers, &[], &c.properties, &[]);
            match client.create_with_context::<_, BaseConsumer<DefaultConsumerContext>>(
                DefaultConsumerContext,
            ) {
                Ok(consumer) => kafka(consumer.client(), &c.brokers, &topics, &at, "topics", src)
                    .map(|r| reached.push(format!("source: {r}")))
                    .unwrap_or_else(|e| errors.push(e)),
                Err(e) => errors.push(src.error(&at.key("properties"), e.to_string())),
            }
        }
        SourceConfig::Sqs(c) => match runtime.block_on(sqs(c.queue(), &at, src)) {
            Ok(r) => reached.push(format!("source: {r}")),
            Err(e) => errors.push(e),
        },
        SourceConfig::File(_) => {}
    }
    for (key, cfg) in [("sink", Some(&p.sink)), ("dlq", p.dlq.as_ref())] {
        let Some(cfg) = cfg else { continue };
        match sink(cfg, &p.name, &root.key(key), src, &runtime) {
            Ok(Some(r)) => reached.push(format!("{key}: {r}")),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    (errors, reached)
}

/// Reaches a sink's (or DLQ's) brokers or queue. `None` for sinks with nothing to reach.
fn sink(
    cfg: &SinkConfig,
    pipeline: &str,
    at: &KeyPath,
    src: &SourceText<'_>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Option<String>, ConfigError> {
    match &cfg.kind {
        SinkKind::Kafka(c) => {
            // The topic as the sink renders it when it does not depend on the event (as the
            // sink checks it at start); one that does cannot be checked before there is one.
            let fixed = Template::parse(&c.topic)
                .ok()
                .and_then(|t| t.constant(pipeline));
            let topics: Vec<String> = fixed.iter().cloned().collect();
            let producer = producer(&c.brokers, &c.properties)
                .map_err(|e| src.error(&at.key("properties"), e))?;
            let mut report = kafka(producer.client(), &c.brokers, &topics, at, "topic", src)?;
            if fixed.is_none() {
                report.push_str(&format!(" (topic `{}` is rendered per event)", c.topic));
            }
            Ok(Some(report))
        }
        SinkKind::Sqs(c) => runtime.block_on(sqs(c.queue(), at, src)).map(Some),
        SinkKind::File(_) | SinkKind::Stdout(_) => Ok(None),
    }
}

fn producer(
    brokers: &Names,
    properties: &Properties,
) -> Result<BaseProducer<DefaultProducerContext>, String> {
    client_config(brokers, &[], properties, &[])
        .create_with_context(DefaultProducerContext)
        .map_err(|e| e.to_string())
}

/// Reads the cluster's metadata and checks that each of `topics` exists.
fn kafka<C: ClientContext>(
    client: &Client<C>,
    brokers: &Names,
    topics: &[String],
    at: &KeyPath,
    topic_key: &str,
    src: &SourceText<'_>,
) -> Result<String, ConfigError> {
    let metadata = client.fetch_metadata(None, CONNECT_TIMEOUT).map_err(|e| {
        src.error(
            &at.key("brokers"),
            format!(
                "cannot reach the kafka brokers {} within {} s: {e} (check the address, \
                     and TLS/SASL settings in `properties`)",
                brokers.joined(),
                CONNECT_TIMEOUT.as_secs()
            ),
        )
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
                return Err(src.error(
                    &at.key(topic_key),
                    format!(
                        "kafka topic `{topic}` is not available: {:?}",
                        t.error().map(RDKafkaErrorCode::from)
                    ),
                ));
            }
            _ => {
                return Err(src.error(
                    &at.key(topic_key),
                    format!(
                        "kafka topic `{topic}` does not exist on {} (weir does not create topics)",
                        brokers.joined()
                    ),
                ));
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

/// Finds credentials and reads the queue's attributes, as opening a source or sink does.
async fn sqs(q: QueueRef<'_>, at: &KeyPath, src: &SourceText<'_>) -> Result<String, ConfigError> {
    let client = crate::sqs::client(q, CONNECT_TIMEOUT)
        .await
        .map_err(|e| src.error(&at.key("queue_url"), e))?;
    let answer = client
        .get_queue_attributes()
        .queue_url(q.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await;
    match answer {
        Ok(_) => Ok(format!("sqs queue {}", q.url)),
        Err(e) => {
            let e = AwsError::from_sdk("GetQueueAttributes", &e);
            Err(src.error(
                &at.key("queue_url"),
                format!("sqs queue {}: {}", q.url, e.message),
            ))
        }
    }
}
