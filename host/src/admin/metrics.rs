//! Prometheus metrics.
//!
//! Two kinds, one exporter:
//! - measured on the hot path through the `metrics` facade, per batch (never per event): stage
//!   times (`weir_stage_seconds{stage="filter"|"sink"|"dlq"}`), batch sizes, plugin call times
//!   and failures by kind;
//! - copied from each pipeline's [`Status`] when scraped: the event counts (kept exact by the
//!   runtime's own counters, which its backpressure and accounting already use), in flight,
//!   source lag, checkpoint age, state. Copying them at scrape time costs the hot path nothing
//!   and cannot disagree with `/pipelines`;
//! - about the process, appended as text (process.rs): `weir_build_info` and the standard
//!   `process_*` metrics.

use crate::observe::status::{State, Status};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;

/// Why the metrics recorder could not be installed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InstallError {
    #[error(transparent)]
    Buckets(BuildError),
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(#[source] BuildError),
}

/// Installs the process-wide recorder. Histograms get buckets (not summaries), so that they
/// can be aggregated across replicas.
pub(crate) fn install() -> Result<PrometheusHandle, InstallError> {
    const SECONDS: &[f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    const SIZES: &[f64] = &[1.0, 4.0, 16.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full("weir_batch_size".into()), SIZES))
        .map_err(InstallError::Buckets)?
        .install_recorder()
        .map_err(InstallError::Recorder)?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("weir_events_received_total", "Events read from the source");
    describe_counter!(
        "weir_events_filtered_total",
        "Events that matched no filter, or that a plugin dropped"
    );
    describe_counter!("weir_events_delivered_total", "Events written to the sink");
    describe_counter!(
        "weir_events_dead_lettered_total",
        "Events written to the dead-letter queue"
    );
    describe_counter!(
        "weir_events_dropped_total",
        "Failed events dropped (on_failure = \"drop\")"
    );
    describe_counter!(
        "weir_events_released_total",
        "Failed events handed back to their source (SQS)"
    );
    describe_counter!(
        "weir_events_failed_total",
        "Failed events by the stage they failed at"
    );
    describe_counter!(
        "weir_target_events_total",
        "Events per target: routed to it, and how they ended there (outcome)"
    );
    describe_counter!(
        "weir_target_retries_total",
        "A target's sink retries, counted as weir_sink_retries_total counts them"
    );
    describe_gauge!(
        "weir_target_in_flight",
        "Events routed to a target and not yet ended there"
    );
    describe_counter!(
        "weir_sink_retries_total",
        "Sink retries: each event of a failed sink write, once per retry (DLQ retries are not counted)"
    );
    describe_counter!(
        "weir_pipeline_runs_total",
        "Starts of the pipeline (a changed file restarts it)"
    );
    describe_counter!("weir_plugin_reloads_total", "Hot reloads of the plugin");
    describe_counter!(
        "weir_dlq_fallback_total",
        "Dead-letter records the DLQ refused for good, kept whole in the fallback file (to=file), and cut in the DLQ when it took that (to=dlq)"
    );
    describe_counter!(
        "weir_file_rotations_lost_total",
        "Files the file source could not read to their end (rotated and deleted before it got to them)"
    );
    describe_counter!(
        "weir_plugin_failures_total",
        "Events a plugin failed, by kind (error, retryable, trap, timeout, memory, io_budget)"
    );
    describe_counter!(
        "weir_plugin_http_requests_total",
        "Requests a plugin made under its HTTP grant, by outcome (ok, denied, invalid, timeout, unavailable, too_large)"
    );
    describe_counter!(
        "weir_plugin_http_cache_total",
        "GET requests answered from the plugin's response cache (hit) or not (miss)"
    );
    describe_counter!(
        "weir_table_lookups_total",
        "Lookups in a table, by result (hit: from the cache or a file table, miss: from the backend, error)"
    );
    describe_counter!(
        "weir_table_reloads_total",
        "Reloads of a file table, by outcome (ok, refused: the new file was broken and the old rows kept)"
    );
    describe_gauge!("weir_table_rows", "Rows of a file table");
    describe_counter!(
        "weir_http_requests_total",
        "Requests to an HTTP source, by status (200, 400, 401, 413, 429, 503, ...)"
    );
    describe_gauge!(
        "weir_http_log_bytes",
        "Bytes in an HTTP source's write-ahead log"
    );
    describe_gauge!("weir_events_in_flight", "Events read and not yet ended");
    describe_gauge!("weir_pipeline_up", "1 while the pipeline runs");
    describe_gauge!(
        "weir_source_lag",
        "Events in the source not yet read (Kafka), by partition"
    );
    describe_gauge!(
        "weir_schedule_next_firing_seconds",
        "Unix time of a schedule source's next firing"
    );
    describe_counter!(
        "weir_schedule_catch_up_total",
        "Firings a schedule source emitted late, missed while weir was stopped"
    );
    describe_counter!(
        "weir_sqs_received_again_total",
        "SQS messages received again while this process held them (visibility ran out): delivered once"
    );
    describe_gauge!(
        "weir_checkpoint_age_seconds",
        "Seconds since the last checkpoint"
    );
    describe_histogram!(
        "weir_stage_seconds",
        "Time per batch in a stage (filter, sink, dlq)"
    );
    describe_histogram!(
        "weir_plugin_call_seconds",
        "Time per batch call of a plugin"
    );
    describe_histogram!(
        "weir_plugin_http_request_seconds",
        "Time per request under a plugin's HTTP grant"
    );
    describe_histogram!(
        "weir_batch_size",
        "Events per batch read from the source or written to the sink"
    );
}

/// Brings the status-derived metrics up to date, then renders everything.
pub(crate) fn render(handle: &PrometheusHandle, statuses: &[Arc<Status>]) -> String {
    for s in statuses {
        let v = s.view();
        let p = v.name.clone();
        let c = &v.counts;
        for (name, value) in [
            ("weir_events_received_total", c.received),
            ("weir_events_filtered_total", c.filtered),
            ("weir_events_delivered_total", c.delivered),
            ("weir_events_dead_lettered_total", c.dead_lettered),
            ("weir_events_dropped_total", c.dropped),
            ("weir_events_released_total", c.released),
            ("weir_sink_retries_total", c.retried),
            ("weir_pipeline_runs_total", v.runs),
            ("weir_file_rotations_lost_total", v.files_lost),
        ] {
            metrics::counter!(name, "pipeline" => p.clone()).absolute(value);
        }
        for (stage, n) in &v.failed_by_stage {
            metrics::counter!("weir_events_failed_total", "pipeline" => p.clone(), "stage" => stage.clone())
                .absolute(*n);
        }
        for t in &v.targets {
            let c = &t.counts;
            for (outcome, value) in [
                ("routed", c.routed),
                ("delivered", c.delivered),
                ("dead_lettered", c.dead_lettered),
                ("dropped", c.dropped),
                ("released", c.released),
            ] {
                metrics::counter!("weir_target_events_total", "pipeline" => p.clone(), "target" => t.name.clone(), "outcome" => outcome)
                    .absolute(value);
            }
            metrics::counter!("weir_target_retries_total", "pipeline" => p.clone(), "target" => t.name.clone())
                .absolute(c.retried);
            metrics::gauge!("weir_target_in_flight", "pipeline" => p.clone(), "target" => t.name.clone())
                .set(t.in_flight as f64);
        }
        for plugin in &v.plugins {
            metrics::counter!("weir_plugin_reloads_total", "pipeline" => p.clone(), "plugin" => plugin.name.clone())
                .absolute(plugin.reloads);
        }
        metrics::gauge!("weir_events_in_flight", "pipeline" => p.clone()).set(v.in_flight as f64);
        let up = matches!(v.state, State::Running);
        metrics::gauge!("weir_pipeline_up", "pipeline" => p.clone()).set(if up {
            1.0
        } else {
            0.0
        });
        for (partition, lag) in &v.lag_by_partition {
            metrics::gauge!("weir_source_lag", "pipeline" => p.clone(), "partition" => partition.clone())
                .set(*lag as f64);
        }
        if let Some(age) = v.checkpoint_age_s {
            metrics::gauge!("weir_checkpoint_age_seconds", "pipeline" => p.clone()).set(age);
        }
    }
    let mut text = handle.render();
    text.push_str(&super::process::render());
    text
}
