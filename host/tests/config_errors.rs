//! Golden tests for configuration errors: each `config-errors/NAME.toml` is an invalid pipeline
//! and `NAME.err` the exact message `weir check` prints for it. Run with `WEIR_BLESS=1` to write
//! the `.err` files after a deliberate change (then review the diff).

use std::path::Path;

#[test]
fn config_errors_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config-errors");
    let bless = std::env::var_os("WEIR_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "golden cases are missing from {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = Path::new(case.file_name().unwrap());
        let text = std::fs::read_to_string(case).unwrap();
        let actual = match weir::pipeline::parse_pipeline(name, &text) {
            Ok(_) => "(no error)".to_string(),
            Err(e) => e.to_string(),
        };
        let golden = case.with_extension("err");
        if bless {
            std::fs::write(&golden, format!("{actual}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected.trim_end() != actual {
            failures.push(format!(
                "{}:\n--- expected\n{}\n--- actual\n{actual}\n",
                case.display(),
                expected.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
