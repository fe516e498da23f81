//! The plugin stage over real slots, with the fault fixture plugin (which hands text back as it
//! got it and adds `"seen_by"` to a JSON object): what each slot delivers, and what a tap of the
//! stage sees.

use super::PluginSet;
use crate::event::{Envelope, JsonText, Payload, Position};
use crate::observe::tap::Tap;
use crate::pipeline::slot::{Fate, Slot};
use crate::plugin::config::{Limits, PluginConfig};
use std::sync::Arc;
use std::time::Duration;

fn faults() -> PluginConfig {
    PluginConfig {
        path: crate::plugin::faults_fixture(),
        name: "faults".into(),
        limits: Limits {
            init_timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        config_json: "{}".into(),
        tables: Vec::new(),
        http: None,
        io_budget: Duration::ZERO,
    }
}

fn slot(n: u64, data: Payload) -> Slot {
    let event = Envelope {
        id: format!("in:{n}"),
        source: "file",
        key: Some(format!("k{n}")),
        time: "2026-12-07T10:00:00.000Z".into(),
        received_at: "2026-12-07T10:00:00.000Z".into(),
        data,
        meta: serde_json::Map::from_iter([("line".to_owned(), n.into())]),
    };
    let position = Position {
        partition: 0,
        offset: n + 1,
        ordinal: n,
    };
    Slot::new(position, event, Fate::Pending)
}

fn json(text: &str) -> Payload {
    Payload::Json(JsonText::parse(text).expect("JSON"))
}

#[test]
fn events_handed_back_unchanged_are_delivered_as_they_came_and_tapped() {
    let set = PluginSet::load("p", &[faults()], None, None, false)
        .expect("the fixture loads")
        .expect("one plugin");
    let tap = Arc::new(Tap::default());
    let mut watch = tap.watch("plugin:faults");
    let mut stage = set.with_tap(tap).stage();
    let mut slots = vec![
        slot(0, Payload::Text("plain text".into())),
        slot(1, json(r#"{"a":1}"#)),
        slot(2, Payload::Text("more text".into())),
    ];
    stage.apply(&mut slots);

    let delivered: Vec<Vec<String>> = slots
        .iter()
        .map(|s| {
            assert!(matches!(s.fate, Fate::Pending), "{:?}", s.fate);
            s.deliverables().iter().map(Envelope::to_json).collect()
        })
        .collect();
    // Unchanged: the slot's own event, not a copy of it; changed: an output of its own.
    assert!(slots[0].outputs.is_none() && slots[2].outputs.is_none());
    assert_eq!(delivered[0], [slots[0].event.to_json()]);
    assert_eq!(delivered[2], [slots[2].event.to_json()]);
    let changed: serde_json::Value = serde_json::from_str(&delivered[1][0]).expect("JSON");
    assert_eq!(
        changed["data"],
        serde_json::json!({"a": 1, "seen_by": "faults"})
    );
    assert_eq!(changed["id"], "in:1");
    assert_eq!(changed["meta"]["line"], 1);

    // The tap sees every event the plugin emitted, in order, unchanged ones included.
    let tapped: Vec<String> = std::iter::from_fn(|| watch.rx.try_recv().ok()).collect();
    assert_eq!(tapped, delivered.concat());

    // A second plugin run over the outputs: a carried event handed back unchanged moves on.
    stage.apply(&mut slots);
    let again: Vec<Vec<String>> = slots
        .iter()
        .map(|s| s.deliverables().iter().map(Envelope::to_json).collect())
        .collect();
    assert_eq!(again[0], delivered[0]);
    let twice: serde_json::Value = serde_json::from_str(&again[1][0]).expect("JSON");
    assert_eq!(
        twice["data"],
        serde_json::json!({"a": 1, "seen_by": "faults"})
    );
}
