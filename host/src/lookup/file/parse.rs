//! A table file read into rows, each kept as the JSON text a lookup answers, by key. Any mistake
//! refuses the whole file, naming `file:line`: a table half loaded would answer "no row" for keys
//! it has.
//!
//! CSV: the first row names the columns. A column whose every non-empty cell is a number, as
//! JSON writes numbers (`42`, `-3.5`, `1e6`; not `007`, `1.`, `+1`), gives JSON numbers, with
//! `null` for its empty cells; every other column gives strings (`""` for an empty cell). So an
//! id with leading zeros, or a column with one word among numbers, stays text throughout.
//!
//! JSON lines: one object per line (blank lines skipped), answered as the line holds it. The key
//! field is a string or a number (then looked up by its text: `42`).

use super::super::config::FileFormat;
use super::super::json;
use std::collections::HashMap;
use std::path::Path;

/// The rows of one version of the file.
#[derive(Default)]
pub(super) struct Rows {
    pub(super) by_key: HashMap<String, Box<str>>,
}

/// Reads `text`, the contents of `path` (named in errors), keyed on `key`.
pub(super) fn parse(
    path: &Path,
    text: &[u8],
    format: FileFormat,
    key: &str,
) -> Result<Rows, String> {
    let at = |line: u64, why: String| format!("{}:{line}: {why}", path.display());
    match format {
        FileFormat::Csv => csv(text, key).map_err(|(line, why)| at(line, why)),
        FileFormat::Jsonl => jsonl(text, key).map_err(|(line, why)| at(line, why)),
    }
}

type Located<T> = Result<T, (u64, String)>;

fn csv(text: &[u8], key: &str) -> Located<Rows> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text);
    let header = reader.headers().map_err(|e| csv_error(&e, 1))?.clone();
    if header.is_empty() {
        return Err((
            1,
            "no header row: the first row names the columns".to_owned(),
        ));
    }
    let mut seen = HashMap::new();
    for name in &header {
        if seen.insert(name, ()).is_some() {
            return Err((1, format!("column {name:?} named twice in the header")));
        }
    }
    let key_column = header.iter().position(|c| c == key).ok_or_else(|| {
        (
            1,
            format!(
                "no key column {key:?} in the header (columns: {})",
                header.iter().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&e, 0))?;
        let line = record.position().map_or(0, ::csv::Position::line);
        records.push((line, record));
    }
    // A column is numbers when it has one and every non-empty cell is one.
    let numeric: Vec<bool> = (0..header.len())
        .map(|c| {
            let cells = || records.iter().filter_map(|(_, r)| r.get(c));
            cells().any(|v| !v.is_empty()) && cells().all(|v| v.is_empty() || json::is_number(v))
        })
        .collect();
    let mut rows = Rows::default();
    let mut first_line = HashMap::new();
    for (line, record) in &records {
        let k = record.get(key_column).unwrap_or_default();
        claim(&mut first_line, k, *line)?;
        let fields =
            header
                .iter()
                .zip(record.iter())
                .zip(&numeric)
                .map(|((name, value), &number)| {
                    let value = match (number, value.is_empty()) {
                        (true, true) => "null".to_owned(),
                        (true, false) => value.to_owned(),
                        (false, _) => json::string(value),
                    };
                    (name, value)
                });
        rows.by_key
            .insert(k.to_owned(), json::object(fields).into_boxed_str());
    }
    Ok(rows)
}

/// The csv crate's error, at its line when it knows it (else `line`).
fn csv_error(e: &::csv::Error, line: u64) -> (u64, String) {
    let at = e.position().map_or(line, ::csv::Position::line);
    let why = match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        ::csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        _ => e.to_string(),
    };
    (at, why)
}

fn jsonl(text: &[u8], key: &str) -> Located<Rows> {
    let mut rows = Rows::default();
    let mut first_line = HashMap::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let n = i as u64 + 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let line = std::str::from_utf8(line).map_err(|_| (n, "not valid UTF-8".to_owned()))?;
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| (n, format!("not JSON: {e}")))?;
        let serde_json::Value::Object(object) = value else {
            return Err((n, "not a JSON object".to_owned()));
        };
        let k = match object.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(number)) => number.to_string(),
            Some(other) => {
                return Err((
                    n,
                    format!("key field {key:?} is {other}: expected a string or a number"),
                ));
            }
            None => return Err((n, format!("no key field {key:?}"))),
        };
        claim(&mut first_line, &k, n)?;
        rows.by_key.insert(k, line.into());
    }
    Ok(rows)
}

/// Notes that `key` is at `line`; refuses an empty key, or one already seen.
fn claim(first_line: &mut HashMap<String, u64>, key: &str, line: u64) -> Located<()> {
    if key.is_empty() {
        return Err((line, "empty key".to_owned()));
    }
    if let Some(first) = first_line.insert(key.to_owned(), line) {
        return Err((line, format!("key {key:?} again (first at line {first})")));
    }
    Ok(())
}
