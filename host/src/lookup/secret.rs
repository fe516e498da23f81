//! A table's password, read when the table opens from the environment variable or file its
//! `[[table]]` entry names. The value is handed to the client library and nothing else: it is
//! never logged, put in an error, or kept in the configuration.

use crate::http_client::Secret;

/// The password, if the table has one; `Err` says what is missing, never a value.
pub(super) fn resolve(secret: &Option<Secret>) -> Result<Option<String>, String> {
    let Some(secret) = secret else {
        return Ok(None);
    };
    let key = match secret {
        Secret::Env(_) => "password_env",
        Secret::File(_) => "password_file",
    };
    secret.read().map(Some).map_err(|e| format!("{key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_missing_source_is_named_without_any_value() {
        let e = resolve(&Some(Secret::Env("WEIR_TABLES_TEST_NO_SUCH_VAR".into()))).unwrap_err();
        assert!(e.contains("WEIR_TABLES_TEST_NO_SUCH_VAR is not set"), "{e}");
        let e = resolve(&Some(Secret::File(PathBuf::from(
            "/nonexistent/weir-secret",
        ))))
        .unwrap_err();
        assert!(
            e.starts_with("password_file: cannot read /nonexistent/weir-secret"),
            "{e}"
        );
    }

    #[test]
    fn a_file_is_read_without_its_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(
            resolve(&Some(Secret::File(path))).unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(resolve(&None).unwrap(), None);
    }
}
