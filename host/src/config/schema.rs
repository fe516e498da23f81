//! Pieces of the pipeline file's JSON Schema (`weir schema pipeline`) that serde's derive cannot
//! say. Each table is described by the `JsonSchema` derive of the type it is read into, beside
//! that type; but a component table (`[source]`, `[sink]`, `[[table]]`, ...) is read by hand: its
//! `type` picks the kind whose struct reads the rest. Here such a table becomes a `oneOf` over the
//! kinds, each the kind's own object with `type` fixed to its name and the keys every kind takes.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value};

/// How the schema of a kind's own keys (an object) is made: [`keys_of`] its table's type.
pub(crate) type KeysSchema = fn(&mut SchemaGenerator) -> Schema;

/// One kind of a component table: its name and the schema of its own keys.
pub(crate) struct KindSchema {
    pub(crate) kind: &'static str,
    pub(crate) keys: KeysSchema,
}

/// A table of one of `kinds`, chosen by its `type` key, which also takes the keys of `common`
/// (an object schema: every kind's keys besides its own). `what` names the table in `type`'s
/// description (`source`, `sink`).
pub(crate) fn one_of_kinds(
    generator: &mut SchemaGenerator,
    what: &str,
    kinds: impl IntoIterator<Item = KindSchema>,
    common: &[&Schema],
) -> Schema {
    let kinds: Vec<KindSchema> = kinds.into_iter().collect();
    let names: Vec<&str> = kinds.iter().map(|k| k.kind).collect();
    let variants: Vec<Value> = kinds
        .iter()
        .map(|k| {
            let mut variant = (k.keys)(generator);
            for keys in common {
                add_keys(&mut variant, keys);
            }
            let type_key = json_schema!({
                "description": format!("The kind of {what}: `{}`.", k.kind),
                "const": k.kind,
            });
            insert_key(&mut variant, "type", type_key.to_value(), true);
            variant.insert(
                "title".into(),
                Value::String(format!("{what} `{}`", k.kind)),
            );
            variant.to_value()
        })
        .collect();
    json_schema!({
        "type": "object",
        "description": format!("A {what}: `type` is one of {}, and the other keys are that kind's.", names.join(", ")),
        "required": ["type"],
        "properties": { "type": { "enum": names } },
        "oneOf": variants,
    })
}

/// A reference to the definition `name`, which `make` makes the first time: a table that
/// several keys take (`[sink]`, `[dlq]`, `[target.dlq]`) is described once.
pub(crate) fn defined(
    generator: &mut SchemaGenerator,
    name: &str,
    make: impl FnOnce(&mut SchemaGenerator) -> Schema,
) -> Schema {
    if !generator.definitions().contains_key(name) {
        let schema = make(generator);
        generator
            .definitions_mut()
            .insert(name.to_owned(), schema.to_value());
    }
    let path = generator.settings().definitions_path.clone();
    json_schema!({ "$ref": format!("#{path}/{name}") })
}

/// `schema` without `null`: TOML has none, so an optional key is left out, never null; the
/// derive's `Option` allows null, which an editor would offer.
pub(crate) fn without_null(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if object.get("default") == Some(&Value::Null) {
                object.remove("default");
            }
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if let [one] = types.as_slice() {
                    let one = one.clone();
                    object.insert("type".into(), one);
                }
            }
            // `{"anyOf": [X, {"type": "null"}]}` is X.
            if let Some(Value::Array(any)) = object.get_mut("anyOf") {
                any.retain(|s| s.get("type") != Some(&Value::String("null".into())));
                if any.len() == 1 {
                    let only = any.remove(0);
                    object.remove("anyOf");
                    if let Value::Object(only) = only {
                        for (k, v) in only {
                            object.entry(k).or_insert(v);
                        }
                    }
                }
            }
            object.values_mut().for_each(without_null);
        }
        Value::Array(items) => items.iter_mut().for_each(without_null),
        _ => {}
    }
}

/// The object schema of `T`'s own keys, inline (not a reference), as [`one_of_kinds`] takes it.
pub(crate) fn keys_of<T: schemars::JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

/// Adds the properties (and required keys) of the object schema `keys` to `schema`.
pub(crate) fn add_keys(schema: &mut Schema, keys: &Schema) {
    let required: Vec<&str> = keys
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = keys.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        insert_key(
            schema,
            name,
            property.clone(),
            required.contains(&name.as_str()),
        );
    }
}

fn insert_key(schema: &mut Schema, name: &str, property: Value, required: bool) {
    let object = schema.ensure_object();
    let properties = object
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(properties) = properties.as_object_mut() {
        properties.insert(name.to_owned(), property);
    }
    if required {
        let list = object
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = list.as_array_mut()
            && !list.iter().any(|r| r == name)
        {
            list.push(Value::String(name.to_owned()));
        }
    }
}
