use super::*;
use crate::event::{Envelope, Payload};

fn event(data: &str) -> Envelope {
    Envelope {
        id: "orders/3/1187".into(),
        source: "kafka",
        key: Some("C42".into()),
        time: "2026-11-22T10:00:00.000Z".into(),
        received_at: "2026-11-22T10:00:01.000Z".into(),
        data: Payload::decode(data.as_bytes()).payload,
        meta: serde_json::Map::new(),
    }
}

fn render(t: &str, data: &str) -> String {
    Template::parse(t).unwrap().render(&event(data), "billing")
}

const ORDER: &str = r#"{"detail":{"customerId":"C42","amount":12.5,"tags":["a","b"],"addr":{"city":"Köln \"Mitte\""}}}"#;

#[test]
fn plain_text_inserts_strings_raw_and_values_as_json() {
    assert_eq!(render("<$.data.detail.customerId>", ORDER), "C42");
    assert_eq!(
        render(
            "cust-<$.data.detail.customerId>/<$.data.detail.amount>",
            ORDER
        ),
        "cust-C42/12.5"
    );
    assert_eq!(render("<$.data.detail.tags>", ORDER), r#"["a","b"]"#);
    assert_eq!(render("x<$.data.missing>y", ORDER), "xy");
    assert_eq!(
        render("<weir.pipeline>:<$.key>:<$.id>", ORDER),
        "billing:C42:orders/3/1187"
    );
    assert_eq!(
        render("a <b> c", ORDER),
        "a <b> c",
        "other angle brackets stay text"
    );
}

#[test]
fn json_templates_stay_valid_json() {
    let t = r#"{"customer": <$.data.detail.customerId>, "addr": <$.data.detail.addr>, "label": "<$.data.detail.addr> / <$.data.detail.customerId>", "none": <$.data.nope>}"#;
    let out = render(t, ORDER);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    assert_eq!(v["customer"], "C42");
    assert_eq!(v["addr"]["city"], "Köln \"Mitte\"");
    assert_eq!(
        v["label"], r#"{"city":"Köln \"Mitte\""} / C42"#,
        "an object inside a string is escaped"
    );
    assert_eq!(v["none"], serde_json::Value::Null);
}

#[test]
fn reserved_variables() {
    let v: serde_json::Value = serde_json::from_str(&render(
        r#"{"e": <weir.event>, "d": <weir.event.json>, "t": "<weir.event.ingestion-time>"}"#,
        ORDER,
    ))
    .unwrap();
    assert_eq!(v["e"]["id"], "orders/3/1187");
    assert_eq!(v["e"]["data"]["detail"]["amount"], 12.5);
    assert_eq!(v["d"]["detail"]["customerId"], "C42");
    assert_eq!(v["t"], "2026-11-22T10:00:01.000Z");
    // A string payload that holds JSON is decoded for <weir.event.json>.
    let encoded = serde_json::to_string(r#"{"a":1}"#).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&render(r#"{"d": <weir.event.json>}"#, &encoded)).unwrap();
    assert_eq!(v["d"]["a"], 1);
}

#[test]
fn multi_value_paths_give_arrays() {
    assert_eq!(render("<$.data.detail.tags[*]>", ORDER), r#"["a","b"]"#);
    assert_eq!(render("<$.data.detail.tags[0]>", ORDER), "a");
}

#[test]
fn invalid_templates_are_rejected_with_the_reason() {
    let e = Template::parse(r#"{"a": <$.data.x>"#).unwrap_err();
    assert!(e.message.contains("must be JSON"), "{e}");
    let e = Template::parse("<weir.nope>").unwrap_err();
    assert!(e.message.contains("unknown variable <weir.nope>"), "{e}");
    let e = Template::parse("<$.data[>").unwrap_err();
    assert!(e.message.contains("invalid JSONPath"), "{e}");
}

#[test]
fn simple_paths_resolve_without_a_tree_exactly_as_jsonpath_does() {
    // `$['a']['b']` is the same path in a form the fast path does not take.
    let events = [
        ORDER,
        r#"{"detail":{"customerId":{"nested":[1,{"x":"y"}]},"k":"v"}}"#,
        r#"{"detail":"not an object"}"#,
        r#"{"detail":{"customerId":"first","customerId":"last"}}"#,
        r#"{"detail":{"customerId":"\u0041\n\"q\""}}"#,
        r#"[1,2,3]"#,
        "plain text",
        r#"{"detail":{"customerId":null}}"#,
        r#"{"detail":{"customerId":true}}"#,
    ];
    let pairs = [
        (
            "<$.data.detail.customerId>",
            "<$['data']['detail']['customerId']>",
        ),
        (
            "{\"c\": <$.data.detail.customerId>}",
            "{\"c\": <$['data']['detail']['customerId']>}",
        ),
        (
            "\"<$.data.detail.customerId>\"",
            "\"<$['data']['detail']['customerId']>\"",
        ),
        ("<$.data>", "<$['data']>"),
        (
            "<$.id>/<$.key>/<$.source>/<$.time>",
            "<$['id']>/<$['key']>/<$['source']>/<$['time']>",
        ),
        (
            "<$.data.detail.missing.deeper>",
            "<$['data']['detail']['missing']['deeper']>",
        ),
    ];
    for data in events {
        for (fast, tree) in pairs {
            assert!(
                Template::parse(fast)
                    .unwrap()
                    .parts
                    .iter()
                    .any(|p| matches!(
                        p,
                        Part::Var {
                            var: Var::Path {
                                simple: Some(_),
                                ..
                            },
                            ..
                        }
                    ))
            );
            // Objects may differ in key order only (the tree sorts them; the fast path keeps them).
            let (a, b) = (render(fast, data), render(tree, data));
            match (
                serde_json::from_str::<serde_json::Value>(&a),
                serde_json::from_str::<serde_json::Value>(&b),
            ) {
                (Ok(x), Ok(y)) => assert_eq!(x, y, "{fast} on {data}"),
                _ => assert_eq!(a, b, "{fast} on {data}"),
            }
        }
    }
}

#[test]
fn constant_text_is_rendered_once() {
    let t = Template::parse("orders-<weir.pipeline>").unwrap();
    assert_eq!(t.constant("p1").as_deref(), Some("orders-p1"));
    assert_eq!(
        Template::parse("orders").unwrap().constant("p1").as_deref(),
        Some("orders")
    );
    assert_eq!(
        Template::parse("o-<$.data.region>").unwrap().constant("p1"),
        None
    );
    assert_eq!(Template::parse("{\"a\": 1}").unwrap().constant("p1"), None);
}

#[test]
fn names_with_dashes_are_taken_as_pipes_takes_them() {
    let data =
        r#"{"detail-type":"OrderCreated","detail":{"x-id":"X1","2fa":true,"a":{"b-c":[1,2]}}}"#;
    assert_eq!(render("<$.data.detail-type>", data), "OrderCreated");
    assert_eq!(render("<$.data.detail.x-id>", data), "X1");
    assert_eq!(render("<$.data.detail.2fa>", data), "true");
    assert_eq!(render("<$.data.detail.a.b-c[1]>", data), "2");
    assert_eq!(render("<$.data..b-c>", data), "[[1,2]]");
    // The bracket form, for any other character, and the fast path agree.
    assert_eq!(render("<$.data['detail-type']>", data), "OrderCreated");
    let v: serde_json::Value = serde_json::from_str(&render(
        r#"{"type": <$.data.detail-type>, "t": "<$.data.detail-type>"}"#,
        data,
    ))
    .unwrap();
    assert_eq!(v["type"], "OrderCreated");
    assert_eq!(v["t"], "OrderCreated");
    let odd = r#"{"odd key":"k","a.b":"d"}"#;
    assert_eq!(render("<$.data['odd key']>/<$.data['a.b']>", odd), "k/d");
}

#[test]
fn path_errors_point_at_the_byte_at_fault_in_words() {
    // `<` at 4, `$` at 5; `%` is byte 3 of the path, 8 of the template.
    let e = Template::parse("abc <$.a%b>").unwrap_err();
    assert_eq!(e.offset, Some(8), "{e}");
    assert!(e.message.contains("unexpected `%`"), "{e}");
    assert!(e.message.contains("$.data['odd key']"), "{e}");
    for internal in ["Rule", "pest", "-->", "positives", "= expected"] {
        assert!(!e.to_string().contains(internal), "{internal}: {e}");
    }
    // After a rewritten dashed name, offsets still count bytes as written.
    let e = Template::parse("<$.detail-type.x%y>").unwrap_err();
    assert_eq!(e.offset, Some(16), "{e}");
    let e = Template::parse("<$.data[>").unwrap_err();
    assert!(e.message.contains("invalid JSONPath"), "{e}");
    assert!(!e.to_string().contains("Rule"), "{e}");
}

#[test]
fn escaped_rendering_escapes_values_only_and_knows_what_came_before() {
    let t = Template::parse("/a b/<$.data.detail.customerId>?q=<$.data.detail.tags>").unwrap();
    let out = t.render_escaped(&event(ORDER), "billing", |before, value| {
        format!("[{}:{value}]", before.contains('?')).into()
    });
    assert_eq!(out, r#"/a b/[false:C42]?q=[true:["a","b"]]"#);
    // A JSON template is escaped as JSON, whatever the function.
    let t = Template::parse(r#"{"c": "<$.data.detail.customerId>"}"#).unwrap();
    let out = t.render_escaped(&event(ORDER), "billing", |_, _| "X".into());
    assert_eq!(out, r#"{"c": "C42"}"#);
}
