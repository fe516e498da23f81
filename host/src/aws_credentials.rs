//! AWS credentials, checked once when an SQS source, sink or DLQ opens.
//!
//! Without this check a machine with no credentials starts "running" and its SQS calls fail
//! one by one, each as a dispatch error ("failed to load IMDS session token", "no providers in
//! chain provided credentials") that looks like the network and is retried forever. So the
//! chain is asked once, at open, and if it finds nothing the pipeline does not start: the error
//! says that no credentials were found and everywhere the AWS chain looked, in its order.

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use std::time::Duration;

/// How long the chain may take: the instance-metadata provider alone may try for a few
/// seconds off EC2 before it says it found nothing.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no credentials came.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Problem {
    /// No place in the chain had any ([`where_looked`] says what each had).
    #[error("no AWS credentials found; {}", where_looked())]
    NotFound,
    /// A place had some but could not load them (an expired SSO session, a refused role).
    #[error("cannot load AWS credentials")]
    Failed(#[source] CredentialsError),
    /// The chain did not answer within [`RESOLVE_TIMEOUT`].
    #[error(
        "cannot load AWS credentials: no answer within {} s; {}",
        RESOLVE_TIMEOUT.as_secs(),
        where_looked()
    )]
    TimedOut,
}

impl Problem {
    /// The message for the operator, with the cause's own causes; `chain` formats an error with
    /// its causes.
    pub(crate) fn message(&self, chain: impl Fn(&dyn std::error::Error) -> String) -> String {
        match self {
            Problem::Failed(e) => format!("{self}: {}", chain(e)),
            Problem::NotFound | Problem::TimedOut => self.to_string(),
        }
    }
}

/// Resolves `config`'s credentials once (the SDK caches them for the client's calls).
pub(crate) async fn check(config: &SdkConfig) -> Result<(), Problem> {
    let Some(provider) = config.credentials_provider() else {
        return Err(Problem::NotFound);
    };
    match tokio::time::timeout(RESOLVE_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(CredentialsError::CredentialsNotLoaded(_))) => Err(Problem::NotFound),
        Ok(Err(e)) => Err(Problem::Failed(e)),
        Err(_) => Err(Problem::TimedOut),
    }
}

/// Where the AWS default chain looks, in its order, with what this process's environment says
/// of each place (so that the reader sees which one they meant to use and why it was empty).
pub(crate) fn where_looked() -> String {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let said = |name: &str| if set(name) { "set" } else { "not set" };
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| -> String {
        let path = match std::env::var_os(var) {
            Some(p) => std::path::PathBuf::from(p),
            None => match &home {
                Some(h) => h.join(default),
                None => return format!("{default} (no HOME)"),
            },
        };
        let there = if path.exists() { "present" } else { "absent" };
        format!("{} ({there})", path.display())
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let imds = match std::env::var("AWS_EC2_METADATA_DISABLED") {
        Ok(v) if v.eq_ignore_ascii_case("true") => "disabled by AWS_EC2_METADATA_DISABLED",
        _ => "not reachable or no instance role",
    };
    format!(
        "looked at, in order: the environment (AWS_ACCESS_KEY_ID {}, AWS_SECRET_ACCESS_KEY {}); \
         profile `{profile}` in {} and {}; web identity (AWS_WEB_IDENTITY_TOKEN_FILE {}); \
         the ECS container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI {}, \
         AWS_CONTAINER_CREDENTIALS_FULL_URI {}); the EC2 instance metadata service ({imds}). \
         Set one of them (README, \"Running against AWS\"); a local server such as moto takes \
         any AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        said("AWS_ACCESS_KEY_ID"),
        said("AWS_SECRET_ACCESS_KEY"),
        file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
        file("AWS_CONFIG_FILE", ".aws/config"),
        said("AWS_WEB_IDENTITY_TOKEN_FILE"),
        said("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        said("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    )
}
