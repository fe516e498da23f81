//! Input templates, in EventBridge Pipes' input-transformer syntax: `<$.data.detail.id>` JSONPath
//! references and reserved variables, inside plain text or inside a JSON document.
//!
//! - In a JSON template, a reference that stands as a value (`{"d": <$.data.detail>}`) is
//!   replaced by the JSON value whole; one inside a string (`"id-<$.data.id>"`) is replaced by
//!   its text, escaped for the string. Unlike Pipes, an object or array inserted inside a string
//!   is escaped too, so the result is always valid JSON.
//! - In a plain template (anything that does not start with `{` or `[`), strings are inserted as
//!   they are and other values as JSON text.
//!
//! Reserved variables: `<weir.pipeline>` (the pipeline's name), `<weir.event>` (the whole
//! envelope), `<weir.event.json>` (the event's data as JSON, a string payload that holds JSON
//! being decoded), `<weir.event.ingestion-time>` (when weir read it). A path that matches nothing
//! gives `null` as a JSON value and an empty string in text; one that can match several values
//! (`[*]`, `..`, filters, slices, unions) gives an array.

mod path;
mod render;

use jsonpath_rust::parser::model::JpQuery;

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    json: bool,
    /// Whether any reference needs the event as a JSON tree (parsing it is the expensive part).
    needs_tree: bool,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Var { var: Var, in_string: bool },
}

#[derive(Debug, Clone)]
enum Var {
    Path {
        query: Box<JpQuery>,
        many: bool,
        /// `$.a.b.c` with plain names only: resolved by scanning the event's text for those
        /// keys, without building a tree (ordering keys and group ids are rendered per event).
        simple: Option<Vec<String>>,
    },
    Pipeline,
    Event,
    EventJson,
    IngestionTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset of the reference at fault, when it is one reference.
    pub offset: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{} (at byte {o} of the template)", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Whether the template refers to the event at all (a template without references renders
    /// the same text for every event).
    pub fn references_event(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var { var, .. } if !matches!(var, Var::Pipeline)))
    }

    /// What a text template renders for every event, when it does not refer to the event
    /// (settings rendered once, like a Kafka sink's fixed topic). `None` otherwise, and for
    /// JSON templates.
    pub fn constant(&self, pipeline: &str) -> Option<String> {
        if self.json || self.references_event() {
            return None;
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                // The only variable left once the event is not referred to.
                Part::Var { .. } => out.push_str(pipeline),
            }
        }
        Some(out)
    }

    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let json = matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['));
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut in_string = false;
        let mut escaped = false;
        let mut rest = text;
        let mut offset = 0;
        while let Some(c) = rest.chars().next() {
            if c == '<'
                && !escaped
                && let Some(end) = rest.find('>')
            {
                let name = &rest[1..end];
                if let Some(var) = variable(name, offset)? {
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var {
                        var,
                        in_string: json && in_string,
                    });
                    offset += end + 1;
                    rest = &rest[end + 1..];
                    continue;
                }
            }
            if json {
                if in_string {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => in_string = false,
                        _ => {}
                    }
                } else if c == '"' {
                    in_string = true;
                }
            }
            literal.push(c);
            offset += c.len_utf8();
            rest = &rest[c.len_utf8()..];
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        let needs_tree = parts.iter().any(|p| {
            matches!(
                p,
                Part::Var {
                    var: Var::Path { simple: None, .. } | Var::EventJson,
                    ..
                }
            )
        });
        let template = Template {
            parts,
            json,
            needs_tree,
        };
        if json {
            template.check_json()?;
        }
        Ok(template)
    }

    /// A JSON template must be valid JSON whatever its references give: try it with `null` in
    /// place of every value reference and nothing in place of those inside strings.
    fn check_json(&self) -> Result<(), TemplateError> {
        let mut probe = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => probe.push_str(t),
                Part::Var {
                    in_string: false, ..
                } => probe.push_str("null"),
                Part::Var {
                    in_string: true, ..
                } => {}
            }
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&probe)
            .map(|_| ())
            .map_err(|e| TemplateError {
                offset: None,
                message: format!("a template that starts with `{{` or `[` must be JSON: {e}"),
            })
    }
}

/// The variable `name` (between `<` and `>`), or `None` if it is not one (then the text stays
/// literal: `<` is common in plain text).
fn variable(name: &str, offset: usize) -> Result<Option<Var>, TemplateError> {
    Ok(Some(match name {
        "weir.pipeline" => Var::Pipeline,
        "weir.event" => Var::Event,
        "weir.event.json" => Var::EventJson,
        "weir.event.ingestion-time" => Var::IngestionTime,
        n if n.starts_with("weir.") => {
            return Err(TemplateError {
                offset: Some(offset),
                message: format!(
                    "unknown variable <{n}>; expected <weir.pipeline>, <weir.event>, <weir.event.json> or <weir.event.ingestion-time>"
                ),
            });
        }
        n if n.starts_with('$') => {
            let query = path::parse(n).map_err(|(at, message)| TemplateError {
                // The reference starts after its `<`.
                offset: Some(offset + 1 + at),
                message: format!("invalid JSONPath <{n}>: {message}"),
            })?;
            // A path with wildcards, descent, filters, slices or unions can match several values.
            let many = n.contains('*')
                || n.contains("..")
                || n.contains('?')
                || n.contains(':')
                || n.contains(',');
            Var::Path {
                query: Box::new(query),
                many,
                simple: simple_path(n),
            }
        }
        _ => return Ok(None),
    }))
}

/// The names of a path made only of `.name` steps (`$.data.detail.customerId`).
fn simple_path(path: &str) -> Option<Vec<String>> {
    let names: Vec<String> = path
        .strip_prefix("$.")?
        .split('.')
        .map(str::to_owned)
        .collect();
    let plain = |n: &String| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    names.iter().all(plain).then_some(names)
}

#[cfg(test)]
mod tests;
