//! Why a plugin's HTTP access could not be set up: its secrets, its CA file, its TLS.

/// Why a plugin's HTTP access could not be set up. Never holds a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error(
        "plugin {plugin}: http header {header}: environment variable {var} is not set or not UTF-8"
    )]
    SecretEnv {
        plugin: String,
        header: String,
        var: String,
    },
    #[error("plugin {plugin}: http header {header}: cannot read {path}: {message}")]
    SecretFile {
        plugin: String,
        header: String,
        path: String,
        message: String,
    },
    #[error(
        "plugin {plugin}: http header {header}: the value from {from} is not a valid header value"
    )]
    SecretValue {
        plugin: String,
        header: String,
        from: String,
    },
    #[error("plugin {plugin}: http ca_file {path}: {message}")]
    CaFile {
        plugin: String,
        path: String,
        message: String,
    },
    #[error("plugin {plugin}: http TLS set-up: {message}")]
    Tls { plugin: String, message: String },
}
