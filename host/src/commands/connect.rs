//! `weir check --connect`: after the offline checks, reach every broker, queue and lookup table a pipeline
//! names, as `weir run` would at start, and report what would stop it there: brokers out of
//! reach or refusing the client's settings (TLS, SASL), topics that do not exist, queues that do
//! not exist or refuse these credentials, and AWS credentials that cannot be found. It reads
//! metadata and queue attributes only: it joins no consumer group, commits nothing, sends and
//! receives no message.

use crate::config::component::KeyError;
use crate::config::{ConfigError, KeyPath, SourceText};
use crate::pipeline::PipelineConfig;
use std::time::Duration;

/// How long one broker or queue may take to answer.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What stops `p` at start when its brokers and queues are reached, as errors at the keys that
/// name them; and, for the report, what was reached.
pub(crate) fn connect(p: &PipelineConfig, src: &SourceText<'_>) -> (Vec<ConfigError>, Vec<String>) {
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
    let mut report = |what: &str, at: KeyPath, found: Result<Option<String>, KeyError>| match found
    {
        Ok(Some(r)) => reached.push(format!("{what}: {r}")),
        Ok(None) => {}
        Err((key, e)) => errors.push(src.error(&at.key(key), e.to_string())),
    };
    let source = p.source.reach(CONNECT_TIMEOUT);
    report("source", root.key("source"), runtime.block_on(source));
    for t in &p.targets {
        let what = match t.is_shorthand() {
            true => "sink".to_owned(),
            false => format!("target {}", t.name),
        };
        let reach = t.sink.reach(&p.name, CONNECT_TIMEOUT);
        report(&what, t.at.clone(), runtime.block_on(reach));
        if let Some(dlq) = &t.dlq {
            let reach = dlq.reach(&p.name, CONNECT_TIMEOUT);
            report(
                &format!("{what} dlq"),
                t.at.key("dlq"),
                runtime.block_on(reach),
            );
        }
    }
    if let Some(dlq) = &p.dlq {
        let reach = dlq.reach(&p.name, CONNECT_TIMEOUT);
        report("dlq", root.key("dlq"), runtime.block_on(reach));
    }
    // Lookup tables: Redis answers a PING, PostgreSQL prepares the query. (A file table that
    // cannot be read fails the offline check already.)
    match p.open_tables() {
        Ok(None) => {}
        Ok(Some(tables)) => {
            for (name, answer) in runtime.block_on(tables.reach()) {
                let at = match p.tables.iter().position(|t| t.name == name) {
                    Some(i) => root.key("table").index(i),
                    None => root.key("table"),
                };
                match answer {
                    Ok(()) => reached.push(format!("table {name}: answers")),
                    Err(e) => errors.push(src.error(&at, format!("table {name}: {e}"))),
                }
            }
        }
        Err(e) => errors.push(src.error(&root.key("table"), e.to_string())),
    }
    (errors, reached)
}
