//! A secret referred to, never written: `{ env = "VAR" }` (an environment variable) or
//! `{ file = "/run/secrets/name" }` (a file), read when what needs it opens. The value goes to
//! the request and nowhere else: never to a log, an error, `weir dry-run` or the status.

use serde::Deserialize;
use std::path::PathBuf;

/// Where a secret's value is read from. Holds no value, so it may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Secret {
    Env(String),
    File(PathBuf),
}

/// Why a secret could not be read: names the variable or file, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SecretError {
    #[error("environment variable {0} is not set")]
    NotSet(String),
    #[error("environment variable {0} is not valid UTF-8")]
    NotUnicode(String),
    #[error("cannot read {path}: {message}")]
    File { path: String, message: String },
}

impl Secret {
    /// Reads the value. A file's final newline (`echo`, editors) is not part of it.
    pub(crate) fn read(&self) -> Result<String, SecretError> {
        match self {
            Secret::Env(var) => std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => SecretError::NotSet(var.clone()),
                std::env::VarError::NotUnicode(_) => SecretError::NotUnicode(var.clone()),
            }),
            Secret::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => Ok(text.trim_end_matches(['\n', '\r']).to_owned()),
                Err(e) => Err(SecretError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                }),
            },
        }
    }

    /// Where it comes from, for messages: `environment variable K`, `file /run/secrets/k`.
    pub(crate) fn origin(&self) -> String {
        match self {
            Secret::Env(var) => format!("environment variable {var}"),
            Secret::File(path) => format!("file {}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_source_is_named_without_any_value() {
        let e = Secret::Env("WEIR_HTTP_CLIENT_TEST_NO_SUCH_VAR".into())
            .read()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable WEIR_HTTP_CLIENT_TEST_NO_SUCH_VAR is not set"
        );
        let e = Secret::File("/nonexistent/weir-secret".into())
            .read()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/weir-secret"),
            "{e}"
        );
    }

    #[test]
    fn a_file_is_read_without_its_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(Secret::File(path).read().unwrap(), "s3cret");
    }

    #[test]
    fn parses_from_a_table_of_one_key() {
        let s: Secret = toml::from_str::<toml::Value>("env = \"K\"")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(s, Secret::Env("K".into()));
    }
}
