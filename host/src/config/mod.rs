//! Configuration: how a TOML file is read and its mistakes reported ([`diagnostic`], [`component`]),
//! and the host's own settings ([`host`]). A pipeline file's model is the pipeline's own
//! (`crate::pipeline::config`): it is made of the source, sink and plugin settings, which live
//! with their connectors.
//!
//! Mistakes are reported as [`ConfigError`]s that name the file, line, column and key, and what
//! was expected; nothing here panics on input. `${VAR}` and `${file:...}` references in string
//! values are resolved as a file is loaded ([`interpolate`]).

pub(crate) mod component;
pub mod diagnostic;
pub mod host;
pub(crate) mod interpolate;
pub(crate) mod schema;

pub use diagnostic::{ConfigError, ConfigErrors, KeyPath, SourceText};
pub use host::HostSettings;
