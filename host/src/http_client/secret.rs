//! A secret referred to, never written: `{ env = "VAR" }` (an environment variable) or
//! `{ file = "/run/secrets/name" }` (a file), read when what needs it opens. The value goes to
//! the request and nowhere else: never to a log, an error, `weir dry-run` or the status.

use serde::Deserialize;
use std::path::PathBuf;

/// Where a secret's value is read from. Holds no value, so it may be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Secret {
    Env(String),
    File(PathBuf),
}

/// What a secret setting must look like.
pub(crate) const SECRET_SHAPE: &str = "give `{ env = \"VAR\" }` (an environment variable) or \
    `{ file = \"/run/secrets/name\" }` (a file) to read the value from";

/// `{ env = "VAR" }` or `{ file = "path" }`, each a non-empty string; nothing else.
impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = |key: &str, what: &str| {
            serde_json::json!({
                "type": "object",
                "properties": { key: { "type": "string", "minLength": 1, "description": what } },
                "required": [key],
                "additionalProperties": false,
            })
        };
        schemars::json_schema!({
            "description": format!("A secret, referred to and never written here: {SECRET_SHAPE}."),
            "oneOf": [
                one("env", "The environment variable that holds the value."),
                one("file", "The file that holds the value."),
            ],
        })
    }
}

/// From `{ env = "VAR" }` or `{ file = "path" }`. Whatever else is written there is never
/// echoed in the error: it may be the very secret that must not be in the file.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(SECRET_SHAPE)
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Secret, E> {
                Err(E::custom(format!(
                    "a secret is never written in the pipeline file; {SECRET_SHAPE}"
                )))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Secret, A::Error> {
                let shape = || serde::de::Error::custom(SECRET_SHAPE);
                let Some(key) = map.next_key::<String>()? else {
                    return Err(shape());
                };
                let secret = match key.as_str() {
                    "env" => Secret::Env(map.next_value()?),
                    "file" => Secret::File(PathBuf::from(map.next_value::<String>()?)),
                    _ => return Err(shape()),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(shape());
                }
                match &secret {
                    Secret::Env(v) if v.is_empty() => Err(shape()),
                    Secret::File(p) if p.as_os_str().is_empty() => Err(shape()),
                    _ => Ok(secret),
                }
            }
        }
        d.deserialize_any(Shape)
    }
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
        let value = self.read_value()?;
        // Masked in every output from now on, as `${...}` values are.
        crate::redact::register(&value);
        Ok(value)
    }

    fn read_value(&self) -> Result<String, SecretError> {
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
        for wrong in [
            "\"s3cret-value\"",
            "{ env = \"\" }",
            "{ env = \"A\", file = \"/f\" }",
            "{ path = \"/f\" }",
        ] {
            let text = format!("k = {wrong}");
            // The message alone: TOML's own display quotes the line, as for any mistake.
            let e = toml::from_str::<std::collections::BTreeMap<String, Secret>>(&text)
                .expect_err("not a secret")
                .message()
                .to_owned();
            assert!(e.contains(SECRET_SHAPE) && !e.contains("s3cret"), "{e}");
        }
    }
}
