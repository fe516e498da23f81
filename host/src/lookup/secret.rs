//! A table's password, read when the table opens from the environment variable or file its
//! `[[table]]` entry names. The value is handed to the client library and nothing else: it is
//! never logged, put in an error, or kept in the configuration.

use super::config::Secret;

/// The password, if the table has one; `Err` says what is missing, never a value.
pub(super) fn resolve(secret: &Secret) -> Result<Option<String>, String> {
    match secret {
        Secret::None => Ok(None),
        Secret::Env(var) => match std::env::var(var) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Err(format!(
                "password_env: environment variable {var} is not set"
            )),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                "password_env: environment variable {var} is not valid UTF-8"
            )),
        },
        Secret::File(path) => match std::fs::read_to_string(path) {
            // A file written by `echo` or an editor ends with a newline that is no part of it.
            Ok(text) => Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned())),
            Err(e) => Err(format!(
                "password_file: cannot read {}: {e}",
                path.display()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_missing_source_is_named_without_any_value() {
        let e = resolve(&Secret::Env("WEIR_TABLES_TEST_NO_SUCH_VAR".into())).unwrap_err();
        assert!(e.contains("WEIR_TABLES_TEST_NO_SUCH_VAR is not set"), "{e}");
        let e = resolve(&Secret::File(PathBuf::from("/nonexistent/weir-secret"))).unwrap_err();
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
            resolve(&Secret::File(path)).unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(resolve(&Secret::None).unwrap(), None);
    }
}
