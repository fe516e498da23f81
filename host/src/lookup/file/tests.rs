//! File tables: CSV and JSON lines answers, the mistakes that refuse a file (at open, or on
//! reload with the old rows kept), and reloads of files written over or renamed into place.

use super::super::config::FileFormat;
use super::super::metrics::TableMetrics;
use super::FileTable;
use super::parse::parse;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

fn open(path: &Path, key: &str, format: FileFormat) -> Result<FileTable, String> {
    FileTable::open(
        "test",
        "t",
        path,
        key,
        format,
        TableMetrics::new("test", "t"),
    )
}

fn row(table: &FileTable, key: &str) -> Option<Value> {
    table
        .get(key)
        .map(|text| serde_json::from_str(&text).expect("rows are JSON"))
}

/// Waits (a long while at most: the watcher polls every second) until `table` has tried more
/// than `seen` reloads.
fn wait_for_reload(table: &FileTable, seen: u64) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while table.reloads() <= seen {
        assert!(Instant::now() < give_up, "the table file was not reloaded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn csv_columns_are_numbers_only_when_every_cell_is_one() {
    let text =
        b"id,tier,score,zip,note\nc1,gold,1.5,007,\nc2,silver,,10115,\"a, b\"\n42,bronze,-3,12,x\n";
    let rows = parse(Path::new("t.csv"), text, FileFormat::Csv, "id").unwrap();
    let get = |k: &str| -> Value { serde_json::from_str(&rows.by_key[k]).unwrap() };
    assert_eq!(
        get("c1"),
        json!({"id": "c1", "tier": "gold", "score": 1.5, "zip": "007", "note": ""})
    );
    assert_eq!(
        get("c2"),
        json!({"id": "c2", "tier": "silver", "score": null, "zip": "10115", "note": "a, b"})
    );
    assert_eq!(get("42")["score"], json!(-3));
    assert_eq!(rows.by_key.len(), 3);
}

#[test]
fn jsonl_lines_are_answered_as_written() {
    let text = b"{\"id\": \"c1\", \"tier\": \"gold\", \"n\": 12345678901234567890123}\n\n{\"id\": 7, \"tier\": null}\r\n";
    let rows = parse(Path::new("t.jsonl"), text, FileFormat::Jsonl, "id").unwrap();
    assert_eq!(
        &*rows.by_key["c1"],
        "{\"id\": \"c1\", \"tier\": \"gold\", \"n\": 12345678901234567890123}"
    );
    assert_eq!(&*rows.by_key["7"], "{\"id\": 7, \"tier\": null}");
}

#[test]
fn mistakes_refuse_the_file_naming_its_line() {
    let cases: &[(FileFormat, &[u8], &str)] = &[
        (
            FileFormat::Csv,
            b"name,tier\nc1,gold\n",
            "t:1: no key column \"id\" in the header (columns: name, tier)",
        ),
        (
            FileFormat::Csv,
            b"id,tier\nc1,gold\nc2\n",
            "t:3: 1 fields where the header has 2",
        ),
        (
            FileFormat::Csv,
            b"id,tier\nc1,gold\nc1,silver\n",
            "t:3: key \"c1\" again (first at line 2)",
        ),
        (FileFormat::Csv, b"id,tier\n,gold\n", "t:2: empty key"),
        (
            FileFormat::Csv,
            b"id,id\n",
            "t:1: column \"id\" named twice in the header",
        ),
        (
            FileFormat::Jsonl,
            b"{\"id\":\"a\"}\n{\"id\":\n",
            "t:2: not JSON",
        ),
        (FileFormat::Jsonl, b"[1]\n", "t:1: not a JSON object"),
        (
            FileFormat::Jsonl,
            b"{\"id\":\"a\"}\n{\"x\":1}\n",
            "t:2: no key field \"id\"",
        ),
        (
            FileFormat::Jsonl,
            b"{\"id\":true}\n",
            "t:1: key field \"id\" is true: expected a string or a number",
        ),
    ];
    for (format, text, want) in cases {
        let e = parse(Path::new("t"), text, *format, "id")
            .err()
            .unwrap_or_default();
        assert!(e.starts_with(want), "{e:?} should start with {want:?}");
    }
}

#[test]
fn a_broken_file_at_open_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    std::fs::write(&path, "id,tier\nc1,gold\nc2,silver,extra\n").unwrap();
    let e = open(&path, "id", FileFormat::Csv).err().unwrap_or_default();
    assert!(e.starts_with(&format!("{}:3: ", path.display())), "{e}");
    let e = open(&dir.path().join("none.csv"), "id", FileFormat::Csv)
        .err()
        .unwrap_or_default();
    assert!(e.contains("cannot read") && e.contains("none.csv"), "{e}");
}

#[test]
fn a_file_written_over_is_reloaded_and_a_broken_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("customers.csv");
    std::fs::write(&path, "id,tier\nc1,gold\n").unwrap();
    let table = open(&path, "id", FileFormat::Csv).unwrap();
    assert_eq!(row(&table, "c1").unwrap()["tier"], "gold");
    assert_eq!(row(&table, "c2"), None);

    let seen = table.reloads();
    std::fs::write(&path, "id,tier\nc1,platinum\nc2,silver\n").unwrap();
    wait_for_reload(&table, seen);
    assert_eq!(row(&table, "c1").unwrap()["tier"], "platinum");
    assert_eq!(row(&table, "c2").unwrap()["tier"], "silver");

    // A duplicate key: refused whole, the old rows kept.
    let seen = table.reloads();
    std::fs::write(&path, "id,tier\nc1,x\nc1,y\nc3,z\n").unwrap();
    wait_for_reload(&table, seen);
    assert_eq!(row(&table, "c1").unwrap()["tier"], "platinum");
    assert_eq!(row(&table, "c3"), None);
    assert_eq!(table.len(), 2);

    // Mended: loaded.
    let seen = table.reloads();
    std::fs::write(&path, "id,tier\nc3,z\n").unwrap();
    wait_for_reload(&table, seen);
    assert_eq!(row(&table, "c3").unwrap()["tier"], "z");
    assert_eq!(row(&table, "c1"), None);
}

#[test]
fn a_file_renamed_into_place_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("customers.jsonl");
    std::fs::write(&path, "{\"id\":\"c1\",\"tier\":\"gold\"}\n").unwrap();
    let table = open(&path, "id", FileFormat::Jsonl).unwrap();
    assert_eq!(row(&table, "c1").unwrap()["tier"], "gold");

    // The usual atomic write: a temporary file beside it, renamed over it.
    let seen = table.reloads();
    let temporary = dir.path().join(".customers.jsonl.tmp");
    std::fs::write(&temporary, "{\"id\":\"c1\",\"tier\":\"silver\"}\n").unwrap();
    std::fs::rename(&temporary, &path).unwrap();
    wait_for_reload(&table, seen);
    assert_eq!(row(&table, "c1").unwrap()["tier"], "silver");

    // A broken one renamed into place is refused just the same.
    let seen = table.reloads();
    std::fs::write(&temporary, "{\"id\":\"c1\",\"tier\":\n").unwrap();
    std::fs::rename(&temporary, &path).unwrap();
    wait_for_reload(&table, seen);
    assert_eq!(row(&table, "c1").unwrap()["tier"], "silver");
}
