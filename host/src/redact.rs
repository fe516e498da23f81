//! Secret values, masked wherever weir shows text: its log, `weir check` and `weir dry-run`, the
//! admin API (`/pipelines`, `/reload`, tap lines, `/metrics`).
//!
//! Which values are secret: every value a `${VAR}` or `${file:...}` reference in a
//! configuration file resolved to (config/interpolate.rs), and every `{ env = ... }` /
//! `{ file = ... }` secret read (http_client/secret.rs). weir cannot tell a password from a
//! host name, so it treats them all alike; a `${VAR:-default}` that fell back to its default
//! is not secret (the default is written in the file for anyone to read).
//!
//! Masking is done on the text as it goes out rather than at each place a value could be
//! quoted (an error message of a library, a URL in a log line, a Debug print of a config): a
//! new message cannot forget it. The registry only grows, so that a value rotated out by a
//! reload stays masked in what is still printed about the old run.

use std::borrow::Cow;
use std::sync::RwLock;

/// Shown instead of a secret.
pub(crate) const MASK: &str = "***";

/// Values shorter than this are not masked: masking every `1` or `on` of the log would make it
/// unreadable, and so short a value protects nothing (README, "Environment variables and
/// secrets").
const MIN_LEN: usize = 4;

/// Every form a secret may take in output, longest first (so that a secret containing another
/// is masked whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value: from now on it is masked in every output.
pub(crate) fn register(value: &str) {
    if value.chars().count() < MIN_LEN {
        return;
    }
    let mut forms = vec![value.to_owned()];
    // As JSON strings, Debug prints (`?` fields of the log) and URLs (percent-encoded) show it.
    if let Ok(json) = serde_json::to_string(value) {
        forms.push(json[1..json.len() - 1].to_owned());
    }
    let debug = format!("{value:?}");
    forms.push(debug[1..debug.len() - 1].to_owned());
    forms.push(percent_encoded(value));
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`MASK`].
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

/// Every byte but RFC 3986's unreserved characters as `%XX`.
fn percent_encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A log writer that masks secrets in each line before it goes out (the formatter hands over a
/// whole event at once).
pub(crate) struct Redacting<W>(pub(crate) W);

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(redact(text).as_bytes()),
            Err(_) => self.0.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_masked_and_short_values_are_not() {
        register("pa\"ss w0rd-redact-test");
        register("abc");
        let json = serde_json::json!({ "v": "x pa\"ss w0rd-redact-test y" }).to_string();
        assert_eq!(redact(&json), r#"{"v":"x *** y"}"#);
        assert_eq!(
            redact("u=pa%22ss%20w0rd-redact-test; d=\"pa\\\"ss w0rd-redact-test\""),
            "u=***; d=\"***\""
        );
        assert_eq!(redact("abc stays"), "abc stays");
    }
}
