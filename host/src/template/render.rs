//! Rendering a [`Template`] for one event.

use super::{Part, Template, Var};
use crate::event::{Envelope, Payload, push_json_string};
use serde_json::Value;

impl Template {
    /// Renders the template for `event` in pipeline `pipeline`.
    pub fn render(&self, event: &Envelope, pipeline: &str) -> String {
        let tree = self.needs_tree.then(|| envelope_tree(event));
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var { var, in_string } => {
                    let value = resolve(var, event, pipeline, tree.as_ref());
                    self.insert(&mut out, value, *in_string);
                }
            }
        }
        out
    }

    fn insert(&self, out: &mut String, value: Resolved, in_string: bool) {
        match (self.json, in_string) {
            // A JSON value in value position: as JSON.
            (true, false) => value.write_json(out),
            // Inside a JSON string: its text, escaped (objects as their JSON text, escaped).
            (true, true) => {
                let quoted = {
                    let mut s = String::new();
                    push_json_string(&mut s, &value.text());
                    s
                };
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
            // Plain text: strings as they are, everything else as JSON text.
            (false, _) => out.push_str(&value.text()),
        }
    }
}

/// A resolved reference: JSON text that is already at hand, or a value.
enum Resolved {
    Json(String),
    Str(String),
    Value(Value),
}

impl Resolved {
    fn write_json(&self, out: &mut String) {
        match self {
            Resolved::Json(j) => out.push_str(j),
            Resolved::Str(s) => push_json_string(out, s),
            Resolved::Value(v) => out.push_str(&v.to_string()),
        }
    }

    fn text(&self) -> String {
        match self {
            Resolved::Json(j) => j.clone(),
            Resolved::Str(s) => s.clone(),
            Resolved::Value(Value::String(s)) => s.clone(),
            Resolved::Value(Value::Null) => String::new(),
            Resolved::Value(v) => v.to_string(),
        }
    }
}

fn resolve(var: &Var, event: &Envelope, pipeline: &str, tree: Option<&Value>) -> Resolved {
    match var {
        Var::Pipeline => Resolved::Str(pipeline.to_owned()),
        Var::IngestionTime => Resolved::Str(event.received_at.clone()),
        Var::Event => Resolved::Json(event.to_json()),
        Var::EventJson => match &event.data {
            // A JSON string that holds JSON (an encoded body) is decoded, as Pipes does.
            Payload::Json(raw) if raw.get().starts_with('"') => {
                match serde_json::from_str::<String>(raw.get()) {
                    Ok(s) => decode_embedded(s),
                    Err(_) => Resolved::Json(raw.get().to_owned()),
                }
            }
            Payload::Json(raw) => Resolved::Json(raw.get().to_owned()),
            Payload::Text(t) => decode_embedded(t.clone()),
        },
        Var::Path { query, many, .. } => {
            let Some(tree) = tree else {
                return Resolved::Value(Value::Null);
            };
            let found: Vec<&Value> = jsonpath_rust::query::js_path_process(query, tree)
                .map(|refs| refs.into_iter().map(|r| r.val()).collect())
                .unwrap_or_default();
            Resolved::Value(match (many, found.as_slice()) {
                (true, _) => Value::Array(found.into_iter().cloned().collect()),
                (false, []) => Value::Null,
                (false, [one, ..]) => (*one).clone(),
            })
        }
    }
}

/// A string that may hold a JSON document.
fn decode_embedded(s: String) -> Resolved {
    match serde_json::from_str::<Value>(&s) {
        Ok(v) => Resolved::Value(v),
        Err(_) => Resolved::Str(s),
    }
}

/// The envelope as a JSON tree, for JSONPath.
fn envelope_tree(event: &Envelope) -> Value {
    serde_json::from_str(&event.to_json()).unwrap_or(Value::Null)
}
