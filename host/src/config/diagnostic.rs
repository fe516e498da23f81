//! Configuration errors that point at the file, line, column and key, and say what was expected.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

/// One mistake in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column of the key (or value) at fault, when it could be located.
    pub at: Option<(usize, usize)>,
    /// Dotted key path, e.g. `source.batch_size` or `filter[1].pattern`; empty for the whole file.
    pub key: String,
    pub message: String,
    pub help: Option<String>,
}

impl ConfigError {
    /// An error about a whole file (it cannot be read, it names no pipeline), or, with an empty
    /// `file`, about no file at all (an environment variable: the message says which).
    pub fn of_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            at: None,
            key: String::new(),
            message: message.into(),
            help: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An error that comes from no file (an environment variable) says where it comes from
        // in its message.
        if !self.file.as_os_str().is_empty() {
            write!(f, "{}", self.file.display())?;
            if let Some((line, col)) = self.at {
                write!(f, ":{line}:{col}")?;
            }
            write!(f, ": ")?;
        }
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        // A message may quote a value that came from a secret (`${VAR}`): never shown.
        write!(f, "{}", crate::redact::redact(&self.message))?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {}", crate::redact::redact(help))?;
        }
        Ok(())
    }
}

/// Every mistake found in one or more files; `Display` lists them one after another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// A step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A key path into a TOML document, e.g. `filter[1].pattern`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    pub fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Segment::Key(k.to_owned()));
        p
    }

    /// The key `dotted` names below this one, a dot going down a table: `auth.password` is the
    /// `password` key of the `auth` table (what a component's checks name).
    pub fn dotted(&self, dotted: &str) -> KeyPath {
        dotted.split('.').fold(self.clone(), |p, k| p.key(k))
    }

    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    /// Appends the path that serde_path_to_error recorded inside a value found at `self`.
    pub fn join_serde(&self, inner: &serde_path_to_error::Path) -> KeyPath {
        let mut p = self.clone();
        for seg in inner.iter() {
            match seg {
                serde_path_to_error::Segment::Map { key } => p.0.push(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => p.0.push(Segment::Index(*index)),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => {}
            }
        }
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The text of one configuration file, with its parsed spans, used to place errors.
pub struct SourceText<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    doc: Option<DeTable<'a>>,
}

impl<'a> SourceText<'a> {
    /// Parses `text` for its spans. A syntax error is returned as a located [`ConfigError`].
    pub fn parse(file: &'a Path, text: &'a str) -> Result<Self, ConfigError> {
        match DeTable::parse(text) {
            Ok(doc) => Ok(SourceText {
                file,
                text,
                doc: Some(doc.into_inner()),
            }),
            Err(e) => {
                let this = SourceText {
                    file,
                    text,
                    doc: None,
                };
                let message = e.message().trim_end().to_owned();
                Err(this.error_at(
                    e.span(),
                    KeyPath::default(),
                    format!("invalid TOML: {message}"),
                ))
            }
        }
    }

    /// An error about `key`, located at that key in the file (or its nearest existing parent).
    pub fn error(&self, key: &KeyPath, message: impl Into<String>) -> ConfigError {
        self.error_at(self.span_of(key), key.clone(), message.into())
    }

    pub fn error_at(
        &self,
        span: Option<Range<usize>>,
        key: KeyPath,
        message: String,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            at: span.map(|s| line_col(self.text, s.start)),
            key: key.to_string(),
            message,
            help: None,
        }
    }

    /// The span of the deepest part of `key` that exists in the file: the key itself when it is
    /// there, else the table that should have held it.
    pub fn span_of(&self, key: &KeyPath) -> Option<Range<usize>> {
        self.walk(key).0
    }

    /// The span of the value at `key` as written (quotes and escapes included), if the file
    /// has that key.
    pub fn value_span_of(&self, key: &KeyPath) -> Option<Range<usize>> {
        self.walk(key).1
    }

    /// Follows `key` down the file: the span of its deepest part that exists (see
    /// [`SourceText::span_of`]), and the span of its value if the whole key exists.
    fn walk(&self, key: &KeyPath) -> (Option<Range<usize>>, Option<Range<usize>>) {
        let Some(doc) = self.doc.as_ref() else {
            return (None, None);
        };
        let mut table = doc;
        let mut array: Option<&toml::de::DeArray<'_>> = None;
        let mut best: Option<Range<usize>> = None;
        let mut found: Option<Range<usize>> = None;
        for seg in &key.0 {
            let value = match (seg, array) {
                (Segment::Index(i), Some(arr)) => match arr.get(*i) {
                    Some(v) => v,
                    None => return (best, None),
                },
                (Segment::Key(k), None) => {
                    let Some((kspan, v)) = table
                        .iter()
                        .find(|(name, _)| name.get_ref().as_ref() == k.as_str())
                    else {
                        return (best, None);
                    };
                    best = Some(kspan.span());
                    v
                }
                _ => return (best, None),
            };
            if matches!(seg, Segment::Index(_)) {
                best = Some(value.span());
            }
            found = Some(value.span());
            array = None;
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                DeValue::Array(a) => array = Some(a),
                _ => {}
            }
        }
        (best, found)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// "did you mean `batch_size`?" for a name close to one of `candidates`.
pub fn did_you_mean<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// The names between backticks in a serde message, e.g. the expected fields of
/// "unknown field `x`, expected one of `a`, `b`".
pub fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_keys_and_array_tables() {
        let text = "[pipeline]\nname = \"a\"\n\n[[filter]]\npattern = \"1\"\n[[filter]]\n  pattern = \"2\"\n";
        let src = SourceText::parse(Path::new("p.toml"), text).unwrap();
        let e = src.error(
            &KeyPath::default().key("filter").index(1).key("pattern"),
            "bad",
        );
        assert_eq!(e.at, Some((7, 3)));
        assert_eq!(e.key, "filter[1].pattern");
        // A missing key is placed at its parent table.
        let e = src.error(&KeyPath::default().key("pipeline").key("nope"), "missing");
        assert_eq!(e.at, Some((1, 2)));
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = SourceText::parse(Path::new("p.toml"), "[a]\nb = \n")
            .err()
            .unwrap();
        assert_eq!(e.at.map(|(line, _)| line), Some(2));
        assert!(e.message.starts_with("invalid TOML"), "{}", e.message);
    }

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(
            did_you_mean("batch_sise", ["path", "batch_size"]).unwrap(),
            "did you mean `batch_size`?"
        );
        assert_eq!(did_you_mean("zzz", ["path", "batch_size"]), None);
    }
}
