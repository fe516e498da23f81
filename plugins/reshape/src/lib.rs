//! `reshape`: the whole-pipeline benchmark's transform (scripts/bench-w1.sh), the same as its
//! native reference program (host/examples/w1-native.rs): each order event becomes 7 fields,
//! `id`, `type` (its `detail-type`), `customer`, `dept` (upper-cased), `amount`, `email`
//! ("***") and `seq`. An event that is not such an order fails (to the dead-letter queue).

wit_bindgen::generate!({ world: "transform", path: "../../wit" });

#[global_allocator]
static ALLOC: weir_plugin_alloc::SizeClasses = weir_plugin_alloc::SizeClasses::new();

use serde_json::{Map, Value};
use weir::plugin::types::{Failure, Output};

struct Reshape;

impl Guest for Reshape {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(events: Vec<Event>) -> BatchResult {
        let mut outputs = Vec::with_capacity(events.len());
        let mut failures = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            match reshape(&event.payload) {
                Ok(payload) => outputs.push(Output {
                    input: i as u32,
                    payload,
                    key: None,
                }),
                Err(message) => failures.push(Failure {
                    input: i as u32,
                    message,
                    retryable: false,
                }),
            }
        }
        BatchResult { outputs, failures }
    }
}

fn reshape(payload: &[u8]) -> Result<Vec<u8>, String> {
    let event: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let detail = event.get("detail").ok_or("no detail")?;
    let dept = detail
        .get("department")
        .and_then(Value::as_str)
        .ok_or("no detail.department")?;
    let field = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
    let mut shaped = Map::with_capacity(7);
    shaped.insert("id".into(), field(event.get("id")));
    shaped.insert("type".into(), field(event.get("detail-type")));
    shaped.insert("customer".into(), field(detail.get("customer")));
    shaped.insert("dept".into(), Value::String(dept.to_uppercase()));
    shaped.insert("amount".into(), field(detail.get("amount")));
    shaped.insert("email".into(), Value::String("***".into()));
    shaped.insert("seq".into(), field(detail.get("seq")));
    serde_json::to_vec(&Value::Object(shaped)).map_err(|e| e.to_string())
}

export!(Reshape);
