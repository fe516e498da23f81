//! The API the host calls, with the messages people see.

use weir_pattern::{Pattern, PatternSet, check_lines};

#[test]
fn explain_names_the_failing_field() {
    let p = Pattern::compile(
        r#"{"data": {"detail": {"department": ["billing"], "amount": [{"numeric": [">", 100]}]}}}"#,
    )
    .unwrap();
    assert_eq!(
        p.explain(br#"{"data": {"detail": {"department": "billing", "amount": 150}}}"#),
        None
    );

    let m = p
        .explain(br#"{"data": {"detail": {"department": "sales", "amount": 150}}}"#)
        .unwrap();
    assert_eq!(m.path, "data.detail.department");
    assert_eq!(m.reason, r#""sales" does not match ["billing"]"#);
    assert_eq!(
        m.to_string(),
        r#"field `data.detail.department`: "sales" does not match ["billing"]"#
    );

    let m = p
        .explain(br#"{"data": {"detail": {"department": "billing"}}}"#)
        .unwrap();
    assert_eq!(m.path, "data.detail.amount");
    assert!(m.reason.starts_with("missing"), "{m}");
    assert!(m.reason.contains(r#"{"numeric": [">", 100]}"#), "{m}");

    let m = p.explain(b"{not json").unwrap();
    assert_eq!(m.path, "");
    assert!(m.reason.contains("not a valid JSON object"));

    let p = Pattern::compile(r#"{"a": [{"exists": false}]}"#).unwrap();
    let m = p.explain(br#"{"a": 1}"#).unwrap();
    assert_eq!(m.reason, "must not exist, but the event has 1");

    let p = Pattern::compile(r#"{"items": {"sku": ["A"], "qty": [2]}}"#).unwrap();
    let m = p
        .explain(br#"{"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]}"#)
        .unwrap();
    assert!(m.reason.contains("same array element"), "{m}");
}

#[test]
fn errors_point_into_the_pattern() {
    let e = Pattern::compile(r#"{"data": {"amount": [{"numeric": [">", "ten"]}]}}"#).unwrap_err();
    assert_eq!(e.pointer, "/data/amount/0");
    assert_eq!(
        e.to_string(),
        r#"at /data/amount/0: numeric: the value after ">" must be a number, found a string"#
    );
    let e = Pattern::compile(r#"{"a": [{"wildcard": "x**y"}]}"#).unwrap_err();
    assert_eq!(e.pointer, "/a/0");
    assert!(e.message.contains("consecutive '*'"), "{e}");
    let e = Pattern::compile(r#"{"a": "x"}"#).unwrap_err();
    assert_eq!(e.pointer, "/a");
    let e = Pattern::compile("{\"a\": [").unwrap_err();
    assert_eq!(e.pointer, "");
    assert!(e.message.starts_with("invalid JSON at byte 7"), "{e}");
}

#[test]
fn semantics_people_rely_on() {
    let m = |p: &str, e: &str| Pattern::compile(p).unwrap().matches(e.as_bytes());
    // numbers by value
    assert!(m(r#"{"n": [300]}"#, r#"{"n": 3.0e2}"#));
    // anything-but matches null and other types, never a missing field
    assert!(m(r#"{"a": [{"anything-but": "x"}]}"#, r#"{"a": null}"#));
    assert!(!m(r#"{"a": [{"anything-but": "x"}]}"#, r#"{"b": 1}"#));
    // exists is about leaf values
    assert!(!m(r#"{"a": [{"exists": true}]}"#, r#"{"a": {"b": 1}}"#));
    assert!(m(r#"{"a": [{"exists": false}]}"#, r#"{"a": {"b": 1}}"#));
    // dotted keys meet nested fields
    assert!(m(r#"{"a.b": [1]}"#, r#"{"a": {"b": 1}}"#));
    // arrays: any element, all fields of one object from the same element
    assert!(m(r#"{"t": ["x"]}"#, r#"{"t": ["y", "x"]}"#));
    assert!(!m(
        r#"{"i": {"a": [1], "b": [2]}}"#,
        r#"{"i": [{"a": 1, "b": 1}, {"a": 2, "b": 2}]}"#
    ));
    assert!(m(
        r#"{"i": {"a": [1], "b": [2]}}"#,
        r#"{"i": [{"a": 2, "b": 1}, {"a": 1, "b": 2}]}"#
    ));
    // $or
    assert!(m(
        r#"{"$or": [{"a": [1]}, {"b": [{"prefix": "x"}]}]}"#,
        r#"{"b": "xy"}"#
    ));
    // invalid events never match
    assert!(!m(r#"{"a": [{"exists": false}]}"#, r#"{"b": 1} trailing"#));
}

#[test]
fn sets_and_values() {
    let mut s = PatternSet::new();
    assert!(!s.matches_any(b"{}"));
    s.add(10, r#"{"a": [1]}"#).unwrap();
    s.add(5, r#"{"a": [{"numeric": [">", 0]}]}"#).unwrap();
    assert!(s.add(7, r#"{"a": []}"#).is_err());
    assert_eq!(s.len(), 2);
    assert_eq!(s.matching(br#"{"a": 1}"#), vec![5, 10]);
    assert_eq!(s.matching(br#"{"a": 2}"#), vec![5]);
    assert!(!s.matches_any(br#"{"a": -1}"#));
    let p = Pattern::compile(r#"{"a": [1]}"#).unwrap();
    assert!(p.matches_value(&serde_json::json!({"a": 1.0})));
}

#[test]
fn check_tool() {
    let input = concat!(
        r#"{"pattern": {"detail": {"n": [{"numeric": [">=", 2.0e2]}]}}, "event": {"detail": {"n": 200}}}"#,
        "\n",
        r#"{"pattern": "{\"a\": [1]", "event": {"a": 1}}"#,
        "\n",
        r#"{"pattern": {"a": [1]}, "event": "not an object"}"#,
        "\n",
    );
    let mut out = Vec::new();
    check_lines(input.as_bytes(), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], r#"{"match": true}"#);
    assert!(
        lines[1].starts_with(r#"{"error": "line 2: invalid pattern"#),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], r#"{"match": false}"#);
}

#[test]
fn shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pattern>();
    assert_send_sync::<PatternSet>();
    let mut s = PatternSet::new();
    s.add(1, r#"{"a": [1]}"#).unwrap();
    let s = std::sync::Arc::new(s);
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || s.matches_any(format!(r#"{{"a": {}}}"#, i % 2).as_bytes()))
        })
        .collect();
    let r: Vec<bool> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(r, vec![false, true, false, true]);
}
