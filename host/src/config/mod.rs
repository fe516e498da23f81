//! Configuration: pipeline files ([`pipeline`]) and the host's own settings ([`host`]).
//!
//! Mistakes are reported as [`ConfigError`]s that name the file, line, column and key, and what
//! was expected; nothing here panics on input.

pub mod component;
pub mod diagnostic;
pub mod host;
pub mod pipeline;

pub use diagnostic::{ConfigError, ConfigErrors, KeyPath, SourceText};
pub use host::HostSettings;
pub use pipeline::{PipelineConfig, load_pipeline, load_pipelines, parse_pipeline};
