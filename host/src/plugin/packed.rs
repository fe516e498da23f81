//! `weir:plugin@0.3.0`'s packed batches (wit/v0.3.0/plugin.wit): a batch's events laid end to end
//! one list per field for the call, and the lists a plugin returns read back into the outputs the
//! rest of the host handles.
//!
//! Why packed: each string or list that crosses into a plugin is a call from weir into the
//! plugin's allocator, through wasmtime's trap handling, about 800 instructions; three per event
//! were a tenth of the cost of a plugin that does little per event (docs/performance.md,
//! "Enrichment, fifth pass"). Packed, a batch of any size is seven such calls.
//!
//! What comes back is the plugin's to get right, and a plugin may be hostile: lists that do not
//! fit together are refused with what is wrong ([`unpack`]), never indexed past their ends.

use super::bindings::{Output, v3};
use v3::weir::plugin0_3_0::types::{Events, Outputs};

/// A batch's events, packed; [`Packed::events`] lends them to the call.
pub(crate) struct Packed {
    ids: String,
    id_ends: Vec<u32>,
    keys: String,
    key_ends: Vec<u32>,
    has_key: Vec<bool>,
    payloads: Vec<u8>,
    payload_ends: Vec<u32>,
}

impl Packed {
    /// Packs `events`. Sized once: a batch's fields are copied, never grown into.
    pub(crate) fn new(events: &[super::bindings::Event<'_>]) -> Result<Packed, String> {
        let n = events.len();
        let (mut ids, mut keys, mut payloads) = (0, 0, 0);
        for e in events {
            ids += e.id.len();
            keys += e.key.map_or(0, str::len);
            payloads += e.payload.len();
        }
        // Ends are u32 offsets into the plugin's 32-bit memory: a batch past 4 GiB could not be
        // lent to it anyway (its memory is capped far below), but say so rather than wrap.
        if ids.max(keys).max(payloads) > u32::MAX as usize {
            return Err("the batch is larger than 4 GiB".into());
        }
        let mut p = Packed {
            ids: String::with_capacity(ids),
            id_ends: Vec::with_capacity(n),
            keys: String::with_capacity(keys),
            key_ends: Vec::with_capacity(n),
            has_key: Vec::with_capacity(n),
            payloads: Vec::with_capacity(payloads),
            payload_ends: Vec::with_capacity(n),
        };
        for e in events {
            p.ids.push_str(e.id);
            p.id_ends.push(p.ids.len() as u32);
            if let Some(key) = e.key {
                p.keys.push_str(key);
            }
            p.has_key.push(e.key.is_some());
            p.key_ends.push(p.keys.len() as u32);
            p.payloads.extend_from_slice(e.payload);
            p.payload_ends.push(p.payloads.len() as u32);
        }
        Ok(p)
    }

    /// The batch as the call lends it.
    pub(crate) fn events(&self) -> Events<'_> {
        Events {
            ids: &self.ids,
            id_ends: &self.id_ends,
            keys: &self.keys,
            key_ends: &self.key_ends,
            has_key: &self.has_key,
            payloads: &self.payloads,
            payload_ends: &self.payload_ends,
        }
    }
}

/// The outputs a plugin returned, one by one, or what is wrong with its lists.
pub(crate) fn unpack(o: Outputs) -> Result<Vec<Output>, String> {
    let n = o.inputs.len();
    for (name, len) in [
        ("payload-ends", o.payload_ends.len()),
        ("key-ends", o.key_ends.len()),
        ("has-key", o.has_key.len()),
    ] {
        if len != n {
            return Err(format!(
                "the plugin broke the contract: {n} outputs (`inputs`) but {len} `{name}`"
            ));
        }
    }
    let mut outputs = Vec::with_capacity(n);
    let (mut payload_start, mut key_start) = (0usize, 0usize);
    for j in 0..n {
        let payload_end = o.payload_ends[j] as usize;
        let payload = o
            .payloads
            .get(payload_start..payload_end)
            .ok_or_else(|| cut("payload", j, payload_start, payload_end, o.payloads.len()))?;
        let key_end = o.key_ends[j] as usize;
        let key = if o.has_key[j] {
            let key = o
                .keys
                .get(key_start..key_end)
                .ok_or_else(|| cut("key", j, key_start, key_end, o.keys.len()))?;
            Some(key.to_owned())
        } else if key_end != key_start {
            return Err(format!(
                "the plugin broke the contract: output {j} has no key (`has-key` false) but its key-end moves from {key_start} to {key_end}"
            ));
        } else {
            None
        };
        outputs.push(Output {
            input: o.inputs[j],
            payload: payload.to_vec(),
            key,
        });
        payload_start = payload_end;
        key_start = key_end;
    }
    Ok(outputs)
}

/// Why part `what` of output `j` cannot be cut from its list.
fn cut(what: &str, j: usize, start: usize, end: usize, len: usize) -> String {
    let why = if end < start {
        "ends before the one before it ends"
    } else if end > len {
        "ends past the end of its list"
    } else {
        "is not cut at a character's edge"
    };
    format!(
        "the plugin broke the contract: the {what} of output {j} ({start}..{end} of {len}) {why}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::Event;
    use crate::plugin::instance::{Loaded, Settings};
    use crate::plugin::runner::{Outcome, Runner};
    use serde_json::{Value, json};

    fn outputs(
        inputs: &[u32],
        payloads: &str,
        payload_ends: &[u32],
        keys: &str,
        key_ends: &[u32],
        has_key: &[bool],
    ) -> Outputs {
        Outputs {
            inputs: inputs.to_vec(),
            payloads: payloads.as_bytes().to_vec(),
            payload_ends: payload_ends.to_vec(),
            keys: keys.to_owned(),
            key_ends: key_ends.to_vec(),
            has_key: has_key.to_vec(),
        }
    }

    #[test]
    fn events_are_laid_end_to_end_with_their_ends() {
        let events = [
            Event {
                id: "f:1",
                key: Some("k1"),
                payload: b"{\"a\":1}",
            },
            Event {
                id: "f:2",
                key: None,
                payload: b"",
            },
            Event {
                id: "f:3",
                key: Some("\u{e9}"),
                payload: b"text",
            },
        ];
        let p = Packed::new(&events).unwrap();
        let e = p.events();
        assert_eq!(e.ids, "f:1f:2f:3");
        assert_eq!(e.id_ends, [3, 6, 9]);
        assert_eq!(e.keys, "k1\u{e9}");
        assert_eq!(e.key_ends, [2, 2, 4]);
        assert_eq!(e.has_key, [true, false, true]);
        assert_eq!(e.payloads, b"{\"a\":1}text");
        assert_eq!(e.payload_ends, [7, 7, 11]);
    }

    #[test]
    fn outputs_are_cut_from_their_lists() {
        let o = unpack(outputs(
            &[0, 0, 2],
            "{}xy",
            &[2, 2, 4],
            "k\u{e9}",
            &[0, 3, 3],
            &[false, true, false],
        ))
        .unwrap();
        let got: Vec<(u32, &[u8], Option<&str>)> = o
            .iter()
            .map(|o| (o.input, o.payload.as_slice(), o.key.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (0, &b"{}"[..], None),
                (0, &b""[..], Some("k\u{e9}")),
                (2, &b"xy"[..], None)
            ]
        );
        assert!(
            unpack(outputs(&[], "", &[], "", &[], &[]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn lists_that_do_not_fit_together_are_refused_with_what_is_wrong() {
        let refused = |o: Outputs| unpack(o).expect_err("refused");
        assert!(
            refused(outputs(&[0, 1], "ab", &[1], "", &[0, 0], &[false, false]))
                .contains("2 outputs (`inputs`) but 1 `payload-ends`")
        );
        assert!(
            refused(outputs(&[0], "ab", &[3], "", &[0], &[false]))
                .contains("ends past the end of its list")
        );
        assert!(
            refused(outputs(
                &[0, 1],
                "ab",
                &[2, 1],
                "",
                &[0, 0],
                &[false, false]
            ))
            .contains("the payload of output 1 (2..1 of 2) ends before")
        );
        // Half of a two-byte character.
        assert!(
            refused(outputs(&[0], "", &[0], "\u{e9}", &[1], &[true]))
                .contains("is not cut at a character's edge")
        );
        assert!(
            refused(outputs(&[0], "", &[0], "k", &[1], &[false]))
                .contains("has no key (`has-key` false) but its key-end moves")
        );
        // Ends far past anything, as a hostile plugin may send.
        assert!(
            refused(outputs(&[0], "", &[u32::MAX], "", &[0], &[false]))
                .contains("ends past the end")
        );
    }

    /// The real fixture plugin plugins/fixtures/packed, built against @0.3.0.
    fn packed_fixture() -> Runner {
        let settings = Settings {
            pipeline: "p".into(),
            name: "packed".into(),
            path: crate::plugin::fixture("packed"),
            limits: Default::default(),
            config_json: "{}".into(),
            cache_dir: None,
            grants: Default::default(),
        };
        let (loaded, instance) = Loaded::load(&settings).unwrap_or_else(|e| panic!("{e}"));
        Runner::new(loaded, instance)
    }

    /// One event's outcome: its outputs as (payload as JSON, key), or the failure's message.
    type Got = Result<Vec<(Value, Option<String>)>, String>;

    /// Each event's outcome.
    fn run(events: &[(&str, Option<&str>, &str)]) -> Vec<Got> {
        let events: Vec<Event<'_>> = events
            .iter()
            .map(|(id, key, payload)| Event {
                id,
                key: *key,
                payload: payload.as_bytes(),
            })
            .collect();
        packed_fixture()
            .run(&events, &|_| Vec::new())
            .into_iter()
            .map(|o| match o {
                Outcome::Emitted(list) => Ok(list
                    .into_iter()
                    .map(|o| (serde_json::from_slice(&o.payload).expect("JSON"), o.key))
                    .collect()),
                Outcome::Failed { message, .. } => Err(message),
            })
            .collect()
    }

    #[test]
    fn a_packed_plugin_is_given_each_event_and_its_outputs_come_back_under_their_inputs() {
        let got = run(&[
            ("f:1", Some("k\u{e9}"), r#"{"show": true, "x": "été"}"#),
            ("f:2", None, r#"{"show": true}"#),
            ("f:3", Some("old"), r#"{"set_key": "new"}"#),
            ("f:4", Some("kept"), r#"{"split": 3}"#),
            ("f:5", None, r#"{"fault": "error"}"#),
            ("f:6", Some("kept"), r#"{"echo": 1}"#),
        ]);
        let shown = |id: &str, key: Option<&str>, payload: &str| {
            Ok(vec![(
                json!({"id": id, "key": key, "payload": payload}),
                None,
            )])
        };
        assert_eq!(
            got[0],
            shown("f:1", Some("k\u{e9}"), r#"{"show": true, "x": "été"}"#)
        );
        assert_eq!(got[1], shown("f:2", None, r#"{"show": true}"#));
        assert_eq!(
            got[2],
            Ok(vec![(json!({"set_key": "new"}), Some("new".into()))])
        );
        assert_eq!(
            got[3],
            Ok(vec![
                (json!({"part": 0}), None),
                (json!({"part": 1}), None),
                (json!({"part": 2}), Some("last".into())),
            ])
        );
        assert_eq!(got[4], Err("refused f:5".into()));
        assert_eq!(got[5], Ok(vec![(json!({"echo": 1}), None)]));
    }

    #[test]
    fn a_packed_plugin_that_breaks_the_contract_fails_only_the_event_behind_it() {
        for fault in ["bad-end", "bad-key"] {
            let bad = format!(r#"{{"fault": "{fault}"}}"#);
            let got = run(&[
                ("f:1", None, r#"{"a": 1}"#),
                ("f:2", Some("k"), &bad),
                ("f:3", None, r#"{"set_key": "n"}"#),
                ("f:4", None, r#"{"b": 2}"#),
            ]);
            assert_eq!(got[0], Ok(vec![(json!({"a": 1}), None)]), "{fault}");
            let why = got[1]
                .clone()
                .expect_err("the event behind the broken lists fails");
            assert!(
                why.starts_with("plugin packed trapped: the plugin broke the contract"),
                "{fault}: {why}"
            );
            assert_eq!(
                got[2],
                Ok(vec![(json!({"set_key": "n"}), Some("n".into()))]),
                "{fault}"
            );
            assert_eq!(got[3], Ok(vec![(json!({"b": 2}), None)]), "{fault}");
        }
    }
}
