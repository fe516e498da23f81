//! The host functions a plugin may import (the WIT's `host` interface). Each is implemented in the
//! file named for it: `log` in stdio.rs (a plugin's log lines go where its stdout and stderr
//! go), `metadata` in metadata.rs. This is only the table that binds them to the Store.

use super::bindings::{Host, Level};
use super::store::StoreData;

// The shared types interface has no functions, but bindgen still asks for its (empty) host trait.
impl super::bindings::weir::plugin::types::Host for StoreData {}

impl Host for StoreData {
    fn log(&mut self, level: Level, message: String) {
        self.stdio.log(level, &message);
    }

    fn metadata(&mut self, input: u32) -> Vec<(String, String)> {
        self.metadata.get(input)
    }
}
