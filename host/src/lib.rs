//! weir: self-hosted event pipelines.
//!
//! A pipeline reads a [`source`], keeps the events that match its filters
//! ([`weir_pattern`]), and delivers them to a [`sink`]; the [`pipeline`] runtime sees that every
//! event ends delivered, filtered out or dead-lettered before its source position is committed.
//! Pipelines are declared in TOML ([`config`]).

// The binary (main.rs), the plugin benchmark and the golden config-error tests use the `pub`
// modules, and only the items of them they name are `pub` (`unreachable_pub` says which); the
// rest of the crate is its own.
pub(crate) mod admin;
pub(crate) mod aws_credentials;
pub(crate) mod backoff;
pub mod commands;
pub mod config;
pub(crate) mod dlq_record;
pub(crate) mod durable;
pub(crate) mod event;
pub mod exit;
pub(crate) mod http_client;
pub(crate) mod kafka;
pub mod logging;
pub(crate) mod lookup;
pub(crate) mod nats;
pub(crate) mod observe;
pub mod pipeline;
pub mod plugin;
pub(crate) mod rabbitmq;
pub(crate) mod redact;
pub(crate) mod service;
pub(crate) mod shutdown;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod sqs;
pub(crate) mod template;

pub use weir_pattern as pattern;
