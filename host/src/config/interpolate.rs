//! `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and `${file:PATH}` in configuration files
//! (pipeline files and weir.toml), resolved when a file is loaded (and so again at each reload).
//!
//! References are resolved inside string values after the file is parsed, not in its text
//! before: a value with `"` or `\` (a password) then cannot break the TOML or add keys to it, a
//! `${` in a comment or a key is left alone, and an error is still placed at its line and
//! column (the value's span, from [`SourceText`]). The price: only strings are interpolated, so
//! a number or a boolean is written as such (settings that take numbers from the environment,
//! weir.toml's, take them as text too). `$${` is a literal `${`.
//!
//! Every value a reference resolved to is registered as a secret ([`crate::redact`]); a
//! default written in the file is not.

use super::diagnostic::{ConfigError, KeyPath, SourceText};
use sha2::{Digest, Sha256};

/// What resolving a file's references gave, besides the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// A digest of the values references resolved to: a reload compares it, so that a changed
    /// secret restarts a pipeline whose file did not change.
    pub(crate) digest: [u8; 32],
    /// The files `${file:...}` read: `weir run` watches them as it watches pipeline files.
    pub(crate) files: Vec<std::path::PathBuf>,
}

/// Resolves the references of every string value of `table` (at any depth). Every mistake of
/// the file is reported, each at its value's line and column.
pub(crate) fn resolve_table(
    src: &SourceText<'_>,
    table: &mut toml::Table,
) -> Result<Resolved, Vec<ConfigError>> {
    let mut walk = Walk {
        src,
        errors: Vec::new(),
        digest: Sha256::new(),
        files: Vec::new(),
    };
    walk.table(&KeyPath::default(), table);
    match walk.errors.is_empty() {
        true => Ok(Resolved {
            digest: walk.digest.finalize().into(),
            files: walk.files,
        }),
        false => Err(walk.errors),
    }
}

struct Walk<'s, 'a> {
    src: &'s SourceText<'a>,
    errors: Vec<ConfigError>,
    digest: Sha256,
    files: Vec<std::path::PathBuf>,
}

impl Walk<'_, '_> {
    fn table(&mut self, at: &KeyPath, table: &mut toml::Table) {
        for (key, value) in table.iter_mut() {
            self.value(&at.key(key), value);
        }
    }

    fn value(&mut self, at: &KeyPath, value: &mut toml::Value) {
        match value {
            toml::Value::String(s) if s.contains('$') => {
                let env = |name: &str| std::env::var(name);
                match expand(s, &env, &read_file) {
                    Ok(expanded) => {
                        for v in &expanded.secrets {
                            crate::redact::register(v);
                            self.digest.update((v.len() as u64).to_le_bytes());
                            self.digest.update(v.as_bytes());
                        }
                        self.files
                            .extend(expanded.files.into_iter().map(Into::into));
                        *s = expanded.text;
                    }
                    Err(found) => {
                        for e in found {
                            let located = self.locate(at, s, e);
                            self.errors.push(located);
                        }
                    }
                }
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(&at.index(i), item);
                }
            }
            toml::Value::Table(t) => self.table(at, t),
            _ => {}
        }
    }

    /// Places an error at its reference: the value's span, then the `${` inside it. The value
    /// as written may hold escapes, so the reference is found as the same `${` by count.
    fn locate(&self, at: &KeyPath, value: &str, e: RefError) -> ConfigError {
        let Some(span) = self.src.value_span_of(at) else {
            let mut err = self.src.error(at, e.message);
            err.help = e.help;
            return err;
        };
        let nth = value[..e.offset].matches("${").count();
        let raw = &self.src.text[span.clone()];
        let start = raw
            .match_indices("${")
            .nth(nth)
            .map_or(span.start, |(i, _)| span.start + i);
        let mut err = self
            .src
            .error_at(Some(start..start + 2), at.clone(), e.message);
        err.help = e.help;
        err
    }
}

/// A string with its references resolved, and the values they resolved to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Expanded {
    pub(crate) text: String,
    /// The values read from the environment or files (defaults are not among them).
    pub(crate) secrets: Vec<String>,
    /// The files `${file:...}` references read.
    pub(crate) files: Vec<String>,
}

/// A reference that cannot be resolved: where it starts in the string (the `$`), and why.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RefError {
    pub(crate) offset: usize,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

/// Reads `${file:PATH}`: the content without one trailing newline, or the OS's reason.
fn read_file(path: &str) -> Result<String, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let text = String::from_utf8(text).map_err(|_| "it is not UTF-8 text".to_owned())?;
    let trimmed = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(trimmed.to_owned())
}

/// Resolves the references of one string: `env` gives a variable's value, `file` a file's
/// content. Every bad reference of the string is an error.
pub(crate) fn expand(
    s: &str,
    env: &dyn Fn(&str) -> Result<String, std::env::VarError>,
    file: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Expanded, Vec<RefError>> {
    let mut text = String::with_capacity(s.len());
    let mut secrets = Vec::new();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(dollar) = rest.find('$') {
        let offset = s.len() - rest.len() + dollar;
        text.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(tail) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix("${") else {
            text.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(close) = body.find('}') else {
            errors.push(RefError {
                offset,
                message: "`${` is never closed with `}`".into(),
                help: Some("write `$${` for a literal `${`".into()),
            });
            break;
        };
        rest = &body[close + 1..];
        let inner = &body[..close];
        if let Some(path) = inner.strip_prefix("file:") {
            files.push(path.to_owned());
        }
        match reference(inner, env, file) {
            Ok(Value::Secret(v)) => {
                text.push_str(&v);
                secrets.push(v);
            }
            Ok(Value::Default(v)) => text.push_str(&v),
            Err((message, help)) => errors.push(RefError {
                offset,
                message,
                help,
            }),
        }
    }
    text.push_str(rest);
    match errors.is_empty() {
        true => Ok(Expanded {
            text,
            secrets,
            files,
        }),
        false => Err(errors),
    }
}

enum Value {
    /// Read from the environment or a file.
    Secret(String),
    /// A default written in the file.
    Default(String),
}

/// One reference, the text between `${` and `}`.
fn reference(
    inner: &str,
    env: &dyn Fn(&str) -> Result<String, std::env::VarError>,
    file: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Value, (String, Option<String>)> {
    if let Some(path) = inner.strip_prefix("file:") {
        if path.is_empty() {
            return Err(("`${file:}` names no file".into(), None));
        }
        return file(path)
            .map(Value::Secret)
            .map_err(|why| (format!("${{file:{path}}}: cannot read {path}: {why}"), None));
    }
    let (name, op) = match inner.find(':') {
        Some(i) => (&inner[..i], Some(&inner[i..])),
        None => (inner, None),
    };
    if !valid_name(name) {
        return Err((
            format!("malformed reference `${{{inner}}}`"),
            Some(
                "write `${VAR}`, `${VAR:-default}`, `${VAR:?message}` or `${file:PATH}`; a \
                 variable's name is letters, digits and `_`, not starting with a digit"
                    .into(),
            ),
        ));
    }
    let value = match env(name) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err((format!("${{{name}}} is not valid UTF-8"), None));
        }
    };
    let not_set = || format!("${{{name}}} is not set");
    match op {
        None => value.map(Value::Secret).ok_or_else(|| {
            (
                not_set(),
                Some(format!(
                    "set it in weir's environment, or give a default: `${{{name}:-value}}`"
                )),
            )
        }),
        // As in a shell, `:-` and `:?` take an empty value for an unset one.
        Some(op) => match (op.strip_prefix(":-"), op.strip_prefix(":?")) {
            (Some(default), _) => Ok(match value.filter(|v| !v.is_empty()) {
                Some(v) => Value::Secret(v),
                None => Value::Default(default.to_owned()),
            }),
            (_, Some(message)) => match value.filter(|v| !v.is_empty()) {
                Some(v) => Ok(Value::Secret(v)),
                None if message.is_empty() => Err((not_set(), None)),
                None => Err((format!("{}: {message}", not_set()), None)),
            },
            _ => Err((
                format!("malformed reference `${{{inner}}}`"),
                Some("after the name: `:-default` or `:?message`".into()),
            )),
        },
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::env::VarError;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "USER_NAME" => Ok("weir".into()),
            "EMPTY" => Ok(String::new()),
            _ => Err(VarError::NotPresent),
        }
    }

    fn file(path: &str) -> Result<String, String> {
        match path {
            "/run/secrets/pw" => Ok("s3cret".into()),
            _ => Err("No such file or directory (os error 2)".into()),
        }
    }

    fn ok(s: &str) -> Expanded {
        expand(s, &env, &file).unwrap()
    }

    fn err(s: &str) -> Vec<RefError> {
        expand(s, &env, &file).unwrap_err()
    }

    #[test]
    fn references_defaults_files_and_escapes() {
        assert_eq!(
            ok("u=${USER_NAME} p=${file:/run/secrets/pw} $${X} $5 ${NOPE:-d} ${EMPTY:-e}${EMPTY}"),
            Expanded {
                text: "u=weir p=s3cret ${X} $5 d e".into(),
                secrets: vec!["weir".into(), "s3cret".into(), String::new()],
                files: vec!["/run/secrets/pw".into()],
            }
        );
        assert_eq!(ok("${USER_NAME:?needed}").text, "weir");
        assert_eq!(ok("no references").text, "no references");
    }

    #[test]
    fn errors_are_placed_at_the_reference_as_written_past_escapes_and_in_arrays() {
        let text = "# ${IN_A_COMMENT}\n[a]\nb = \"q\\\"$${x} ${WEIR_INTERPOLATE_TEST_UNSET}\"\n\
                    c = [1, 'x', ' ${WEIR_INTERPOLATE_TEST_UNSET:?why}']\n";
        let file = std::path::Path::new("p.toml");
        let src = SourceText::parse(file, text).unwrap();
        let mut table: toml::Table = toml::from_str(text).unwrap();
        let errors = resolve_table(&src, &mut table).unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "p.toml:3:15: `a.b`: ${WEIR_INTERPOLATE_TEST_UNSET} is not set\n  help: set it in \
                 weir's environment, or give a default: `${WEIR_INTERPOLATE_TEST_UNSET:-value}`",
                "p.toml:4:16: `a.c[2]`: ${WEIR_INTERPOLATE_TEST_UNSET} is not set: why",
            ]
        );
    }

    #[test]
    fn every_bad_reference_is_an_error_at_its_offset() {
        let found =
            err("a ${NOPE} b ${NEEDED:?set it to the broker's password} ${file:/x} ${1X} ${A:+b}");
        let said: Vec<(usize, &str)> = found
            .iter()
            .map(|e| (e.offset, e.message.as_str()))
            .collect();
        assert_eq!(
            said,
            [
                (2, "${NOPE} is not set"),
                (12, "${NEEDED} is not set: set it to the broker's password"),
                (
                    55,
                    "${file:/x}: cannot read /x: No such file or directory (os error 2)"
                ),
                (66, "malformed reference `${1X}`"),
                (72, "malformed reference `${A:+b}`"),
            ]
        );
        let unclosed = err("x ${OPEN");
        assert_eq!(unclosed[0].offset, 2);
        assert!(unclosed[0].message.contains("never closed"));
        assert!(err("${}")[0].message.contains("malformed"));
        assert!(err("${file:}")[0].message.contains("names no file"));
        assert!(err("${EMPTY:?}")[0].message.contains("${EMPTY} is not set"));
    }
}
