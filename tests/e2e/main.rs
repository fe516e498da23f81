//! End-to-end tests: the real `weir` binary on real files (and, in later suites, real brokers).

mod cli;
mod connect;
mod delivery;
mod dlq;
mod dlq_edit;
mod dlq_fallback;
mod dlq_resume;
mod dry_run;
mod fidelity;
mod file_pipeline;
mod follow;
mod hostile_patterns;
mod kafka;
mod kafka_broker;
mod kafka_sink;
mod kill_restart;
mod logs;
mod pattern_cli;
mod plugin_deadlines;
mod plugin_files;
mod plugin_output;
mod plugins;
mod service;
mod sqs;
mod sqs_server;
mod support;
