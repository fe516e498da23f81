//! Whether what became of an input is what a test expects, and if not, where it differs: one
//! line per difference, naming the field (`body.detail.email: expected "x", got "y"`).

use super::file::{Expect, Expected};
use crate::commands::evaluate::{Line, Outcome};
use serde_json::Value;

/// The differences between `expect` and `outcome` (none: as expected).
pub(super) fn differences(expect: &Expect, outcome: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    let expected = expect.outcome.name();
    if expected != outcome.end.name() {
        out.push(format!(
            "outcome: expected {expected}, got {}{}",
            outcome.end.name(),
            why(outcome)
        ));
        return out;
    }
    match expect.outcome {
        Expected::Delivered => delivered(expect, outcome, &mut out),
        Expected::DeadLettered | Expected::Dropped => {
            let line = outcome.lines.first();
            let field = |f: fn(&Line) -> &Option<String>| line.and_then(|l| f(l).as_deref());
            let stage = field(|l| &l.stage);
            equal("stage", expect.stage.as_deref(), stage, &mut out);
            equal("kind", expect.kind.as_deref(), field(|l| &l.kind), &mut out);
            if let Some(part) = &expect.reason {
                let reason = field(|l| &l.reason).unwrap_or("");
                if !reason.contains(part.as_str()) {
                    out.push(format!(
                        "reason: expected it to contain {part:?}, got {reason:?}"
                    ));
                }
            }
        }
        Expected::Filtered => {}
    }
    out
}

/// Why an input ended as it did, for a wrong outcome: the reason, or the first filter's.
fn why(outcome: &Outcome) -> String {
    let Some(line) = outcome.lines.first() else {
        return String::new();
    };
    if let Some(reason) = &line.reason {
        let stage = line.stage.as_deref().unwrap_or("?");
        return format!(" (at {stage}: {reason})");
    }
    if let Some(stage) = &line.stage {
        return format!(" (at {stage})");
    }
    match line.why.as_deref().and_then(|w| w.first()) {
        Some(w) if w.field.is_empty() => format!(" ({})", w.reason),
        Some(w) => format!(" ({}: {})", w.field, w.reason),
        None => String::new(),
    }
}

fn equal(field: &str, expected: Option<&str>, got: Option<&str>, out: &mut Vec<String>) {
    if let Some(expected) = expected
        && Some(expected) != got
    {
        out.push(format!(
            "{field}: expected {expected:?}, got {}",
            got.map_or("none".to_owned(), |g| format!("{g:?}"))
        ));
    }
}

fn delivered(expect: &Expect, outcome: &Outcome, out: &mut Vec<String>) {
    let lines = &outcome.lines;
    if let Some(key) = &expect.key {
        for (i, line) in lines.iter().enumerate() {
            let at = if lines.len() == 1 {
                String::new()
            } else {
                format!("[{i}]")
            };
            equal(&format!("key{at}"), Some(key), line.key.as_deref(), out);
        }
    }
    let bodies: Vec<Value> = match (&expect.body, &expect.bodies) {
        (Some(one), _) => vec![to_json(one)],
        (None, Some(many)) => many.iter().map(to_json).collect(),
        (None, None) => Vec::new(),
    };
    if expect.body.is_some() || expect.bodies.is_some() {
        if bodies.len() != lines.len() {
            out.push(format!(
                "events: expected {} delivered, got {} (a plugin may split or drop)",
                bodies.len(),
                lines.len()
            ));
            return;
        }
        for (i, (want, line)) in bodies.iter().zip(lines).enumerate() {
            let at = if expect.bodies.is_some() {
                format!("bodies[{i}]")
            } else {
                "body".into()
            };
            match line.sink.as_ref() {
                Some(sink) => compare(&at, want, &body(sink), expect.exact, out),
                None => out.push(format!(
                    "{at}: the pipeline has [[target]]s: expect `targets`"
                )),
            }
        }
    }
    if let Some(targets) = &expect.targets {
        for (i, line) in lines.iter().enumerate() {
            let at = if lines.len() == 1 {
                "targets".into()
            } else {
                format!("targets[{i}]")
            };
            let Some(Value::Object(got)) = &line.targets else {
                out.push(format!(
                    "{at}: the pipeline has a [sink], not [[target]]s: expect `body`"
                ));
                continue;
            };
            let mut want: Vec<&String> = targets.keys().collect();
            let mut reached: Vec<&String> = got.keys().collect();
            want.sort();
            reached.sort();
            if want != reached {
                out.push(format!(
                    "{at}: expected {}, got {}",
                    names(&want),
                    names(&reached)
                ));
                continue;
            }
            for (name, want) in targets {
                let at = format!("{at}.{name}");
                match got.get(name) {
                    Some(sent) if sent.get("refused").is_some() => {
                        out.push(format!("{at}: refused: {}", sent["refused"]));
                    }
                    Some(sent) => compare(
                        &format!("{at}.body"),
                        &to_json(want),
                        &body(sent),
                        expect.exact,
                        out,
                    ),
                    None => {}
                }
            }
        }
    }
}

fn names(list: &[&String]) -> String {
    match list.is_empty() {
        true => "none".into(),
        false => list
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// What a sink would write, as JSON when it is JSON text, else as it is.
fn body(sent: &Value) -> Value {
    match sent.get("body") {
        Some(Value::String(text)) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
        }
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Compares `got` with `want` at `path`: equal when `exact`, else `got` has at least what
/// `want` has (objects may have more keys; arrays and scalars are compared item by item).
pub(super) fn compare(path: &str, want: &Value, got: &Value, exact: bool, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let at = format!("{path}.{k}");
                match g.get(k) {
                    Some(gv) => compare(&at, wv, gv, exact, out),
                    None => out.push(format!("{at}: expected {wv}, missing")),
                }
            }
            if exact {
                for (k, gv) in g.iter().filter(|(k, _)| !w.contains_key(*k)) {
                    out.push(format!("{path}.{k}: not expected, got {gv}"));
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                compare(&format!("{path}[{i}]"), wv, gv, exact, out);
            }
        }
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => {}
        (w, g) if w == g => {}
        (w, g) => out.push(format!("{path}: expected {w}, got {g}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(want: Value, got: Value, exact: bool) -> Vec<String> {
        let mut out = Vec::new();
        compare("body", &want, &got, exact, &mut out);
        out
    }

    #[test]
    fn a_subset_matches_and_a_wrong_field_is_named() {
        let got = json!({"a": 1, "b": {"c": "x", "d": [1, 2]}});
        assert!(diff(json!({"b": {"c": "x"}}), got.clone(), false).is_empty());
        assert_eq!(
            diff(json!({"b": {"c": "y"}}), got.clone(), false),
            ["body.b.c: expected \"y\", got \"x\""]
        );
        assert_eq!(
            diff(json!({"b": {"e": 1}}), got.clone(), false),
            ["body.b.e: expected 1, missing"]
        );
        assert_eq!(
            diff(json!({"a": 1}), got, true),
            ["body.b: not expected, got {\"c\":\"x\",\"d\":[1,2]}"]
        );
        assert!(diff(json!(1.0), json!(1), true).is_empty());
    }
}
