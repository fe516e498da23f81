//! `weir schema pipeline`: the pipeline file's JSON Schema on stdout, for editors (taplo, Even
//! Better TOML) and CI. Generated from the types the file is read into
//! ([`crate::pipeline::config::schema`]); docs/pipeline.schema.json is a copy, checked by a test.

use crate::exit;

/// Prints the pipeline file's schema (pretty JSON, one newline at the end).
pub fn pipeline() -> i32 {
    match serde_json::to_string_pretty(&crate::pipeline::config::schema()) {
        Ok(text) => {
            println!("{text}");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot write the schema: {e}");
            exit::FAILED
        }
    }
}
