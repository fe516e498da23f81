//! weir: self-hosted event pipelines.
//!
//! A pipeline reads a [`source`], keeps the events that match its filters
//! ([`weir_pattern`]), and delivers them to a [`sink`]; the [`pipeline`] runtime sees that every
//! event ends delivered, filtered out or dead-lettered before its source position is committed.
//! Pipelines are declared in TOML ([`config`]).

pub mod admin;
pub mod aws_credentials;
pub mod backoff;
pub mod commands;
pub mod config;
pub mod dlq_record;
pub mod durable;
pub mod event;
pub mod exit;
pub mod kafka;
pub mod logging;
pub mod observe;
pub mod pipeline;
pub mod plugin;
pub mod service;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod sqs;
pub mod template;

pub use weir_pattern as pattern;
