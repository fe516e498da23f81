//! The whole-pipeline benchmark's reference (scripts/bench-w1.sh): a single-purpose native
//! program doing exactly what the benchmarked pipelines do, on one core, with no framework.
//! Reads JSON lines, keeps `detail.department` in {billing, fulfillment} with `detail.amount`
//! > 10, reshapes each to 7 fields (`dept` upper-cased), and writes JSON lines.
//!
//! Usage: w1-native IN OUT

use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, BufWriter, Write};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: w1-native IN OUT");
        std::process::exit(2);
    };
    let input = BufReader::with_capacity(1 << 16, std::fs::File::open(input)?);
    let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(output)?);
    for line in input.lines() {
        let line = line?;
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(shaped) = reshape(&event) {
            serde_json::to_writer(&mut out, &shaped)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    out.into_inner()?.sync_all()
}

/// The event's 7-field form, if it passes the filter.
fn reshape(event: &Value) -> Option<Value> {
    let detail = event.get("detail")?;
    let dept = detail.get("department")?.as_str()?;
    let amount = detail.get("amount")?.as_f64()?;
    if !(dept == "billing" || dept == "fulfillment") || amount <= 10.0 {
        return None;
    }
    let mut shaped = Map::with_capacity(7);
    shaped.insert("id".into(), event.get("id").cloned().unwrap_or(Value::Null));
    shaped.insert(
        "type".into(),
        event.get("detail-type").cloned().unwrap_or(Value::Null),
    );
    shaped.insert(
        "customer".into(),
        detail.get("customer").cloned().unwrap_or(Value::Null),
    );
    shaped.insert("dept".into(), json!(dept.to_uppercase()));
    shaped.insert("amount".into(), detail["amount"].clone());
    shaped.insert("email".into(), json!("***"));
    shaped.insert(
        "seq".into(),
        detail.get("seq").cloned().unwrap_or(Value::Null),
    );
    Some(Value::Object(shaped))
}
