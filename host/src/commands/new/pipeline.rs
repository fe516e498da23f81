//! `weir new pipeline NAME --source KIND --sink KIND [--dir DIR]`: writes `DIR/NAME.toml`, a
//! commented pipeline from a source of one kind to a sink of another that `weir check` passes,
//! and for a file source a sample of its input (`NAME.events.jsonl`), so that `weir dry-run`
//! and `weir run` work at once.

use super::write_new;
use crate::exit;
use std::path::{Path, PathBuf};

/// The file around the source's and sink's tables.
const PIPELINE: &str = include_str!("templates/pipeline/pipeline.toml");

/// Each source kind's `[source]` table, by the kinds' registration order.
const SOURCES: &[(&str, &str)] = &[
    ("file", include_str!("templates/pipeline/source-file.toml")),
    (
        "kafka",
        include_str!("templates/pipeline/source-kafka.toml"),
    ),
    ("sqs", include_str!("templates/pipeline/source-sqs.toml")),
    ("http", include_str!("templates/pipeline/source-http.toml")),
    (
        "rabbitmq",
        include_str!("templates/pipeline/source-rabbitmq.toml"),
    ),
    ("nats", include_str!("templates/pipeline/source-nats.toml")),
    (
        "schedule",
        include_str!("templates/pipeline/source-schedule.toml"),
    ),
];

/// Each sink kind's `[sink]` table.
const SINKS: &[(&str, &str)] = &[
    (
        "stdout",
        include_str!("templates/pipeline/sink-stdout.toml"),
    ),
    ("file", include_str!("templates/pipeline/sink-file.toml")),
    ("kafka", include_str!("templates/pipeline/sink-kafka.toml")),
    ("sqs", include_str!("templates/pipeline/sink-sqs.toml")),
    ("http", include_str!("templates/pipeline/sink-http.toml")),
    (
        "rabbitmq",
        include_str!("templates/pipeline/sink-rabbitmq.toml"),
    ),
    ("nats", include_str!("templates/pipeline/sink-nats.toml")),
];

/// A file source's sample input: one order.
const SAMPLE_EVENT: &str = "{\"detail-type\":\"OrderCreated\",\"detail\":{\"orderId\":\"O1\",\"customerId\":\"C1\",\"amount\":42}}\n";

pub struct PipelineArgs {
    pub name: String,
    pub source: String,
    pub sink: String,
    /// Where the files go (default: the working directory).
    pub dir: PathBuf,
}

pub fn pipeline(args: &PipelineArgs) -> i32 {
    match write(args) {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}

/// The pipeline's text: the template with the kinds' tables and the names put in.
fn text(args: &PipelineArgs, file: &Path) -> Result<String, String> {
    let table = |what: &str, kinds: &[(&str, &'static str)], kind: &str| {
        kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
                format!(
                    "unknown {what} kind `{kind}`; expected one of {}",
                    names.join(", ")
                )
            })
    };
    let source = table("source", SOURCES, &args.source)?;
    let sink = table("sink", SINKS, &args.sink)?;
    Ok(PIPELINE
        .replace("%SOURCE_TABLE%", source)
        .replace("%SINK_TABLE%", sink)
        .replace("%SOURCE%", &args.source)
        .replace("%SINK%", &args.sink)
        .replace(
            "%FILE%",
            &file.strip_prefix(".").unwrap_or(file).display().to_string(),
        )
        .replace("%NAME%", &args.name))
}

/// Writes the files, none over an existing one: the paths written.
fn write(args: &PipelineArgs) -> Result<Vec<PathBuf>, String> {
    crate::pipeline::config::check_name(&args.name).map_err(|e| e.to_string())?;
    let file = args.dir.join(format!("{}.toml", args.name));
    let text = text(args, &file)?;
    write_new(&file, &text)?;
    let mut written = vec![file];
    if args.source == "file" {
        let sample = args.dir.join(format!("{}.events.jsonl", args.name));
        if !sample.exists() {
            write_new(&sample, SAMPLE_EVENT)?;
            written.push(sample);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template for every kind weir has, and none for a kind it lacks.
    #[test]
    fn every_registered_kind_has_a_template() {
        let names = |kinds: &[(&'static str, &str)]| -> Vec<&'static str> {
            kinds.iter().map(|(k, _)| *k).collect()
        };
        assert_eq!(names(SOURCES), crate::source::kinds());
        let mut sinks = names(SINKS);
        let mut registered = crate::sink::kinds();
        sinks.sort();
        registered.sort();
        assert_eq!(sinks, registered);
    }
}
