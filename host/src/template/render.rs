//! Rendering a [`Template`] for one event.

use super::{Part, Template, Var};
use crate::event::{Envelope, Payload, push_json_string};
use serde_json::Value;

impl Template {
    /// Renders the template for `event` in pipeline `pipeline`.
    pub fn render(&self, event: &Envelope, pipeline: &str) -> String {
        self.render_escaped(event, pipeline, |_, value| value.into())
    }

    /// Renders a plain template with each inserted value's text passed through `escape`, which
    /// is given the text rendered so far (to tell where the value lands: in a URL's path or its
    /// query) and the value; the template's own text is kept as written. A JSON template's
    /// values are escaped as JSON, and `escape` is not called.
    pub fn render_escaped(
        &self,
        event: &Envelope,
        pipeline: &str,
        escape: impl for<'v> Fn(&str, &'v str) -> std::borrow::Cow<'v, str>,
    ) -> String {
        let tree = self.needs_tree.then(|| envelope_tree(event));
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var { var, .. } if !self.json => {
                    let text = resolve(var, event, pipeline, tree.as_ref()).text();
                    let escaped = escape(&out, &text);
                    out.push_str(&escaped);
                }
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
        Var::Path {
            simple: Some(names),
            many: false,
            ..
        } => resolve_simple(event, names),
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

/// `$.a.b.c` without a tree: the envelope's own fields directly, `data` and `meta` by scanning
/// their JSON for one key per level. Same results as JSONPath on the tree.
fn resolve_simple(event: &Envelope, names: &[String]) -> Resolved {
    let (first, rest) = match names.split_first() {
        Some(x) => x,
        None => return Resolved::Value(Value::Null),
    };
    let leaf = |s: &str| Resolved::Str(s.to_owned());
    match (first.as_str(), rest) {
        ("id", []) => leaf(&event.id),
        ("source", []) => leaf(event.source),
        ("time", []) => leaf(&event.time),
        ("key", []) => event
            .key
            .as_deref()
            .map_or(Resolved::Value(Value::Null), leaf),
        ("data", _) => match &event.data {
            Payload::Json(raw) => descend(raw.get(), rest),
            Payload::Text(t) if rest.is_empty() => leaf(t),
            Payload::Text(_) => Resolved::Value(Value::Null),
        },
        ("meta", _) => {
            let mut at = match rest.split_first() {
                None => return Resolved::Value(Value::Object(event.meta.clone())),
                Some((name, _)) => event.meta.get(name.as_str()),
            };
            for name in rest.iter().skip(1) {
                at = at.and_then(|v| v.get(name.as_str()));
            }
            Resolved::Value(at.cloned().unwrap_or(Value::Null))
        }
        _ => Resolved::Value(Value::Null),
    }
}

/// Follows `names` through the JSON text `json`, one object level each.
fn descend(json: &str, names: &[String]) -> Resolved {
    let mut at: &str = json;
    for name in names {
        match find_key(at, name) {
            Some(inner) => at = inner,
            None => return Resolved::Value(Value::Null),
        }
    }
    if at.starts_with('"') {
        match serde_json::from_str::<String>(at) {
            Ok(s) => Resolved::Str(s),
            Err(_) => Resolved::Value(Value::Null),
        }
    } else if at.starts_with(['{', '[']) {
        // Kept as written (a tree would sort object keys).
        Resolved::Json(at.trim().to_owned())
    } else {
        // Scalars as JSONPath gives them: `null` renders as nothing in text, numbers canonical.
        Resolved::Value(serde_json::from_str(at).unwrap_or(Value::Null))
    }
}

/// The raw JSON text of member `key` of the object `json`, if it is an object holding it.
fn find_key<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::borrow::Cow;
    struct Find<'k>(&'k str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<&'de serde_json::value::RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if k == self.0 {
                    // The last of duplicate keys wins, as in a parsed tree.
                    found = Some(map.next_value::<&'de serde_json::value::RawValue>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    // Not an object (or not JSON): the path matches nothing, as JSONPath says.
    de.deserialize_any(Find(key))
        .ok()
        .flatten()
        .map(|raw| raw.get())
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
