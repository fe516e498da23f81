//! The host functions a plugin may import, for every contract version (@0.3.0 imports @0.2.0's), bound to the files that
//! implement them: `log` in stdio.rs (a plugin's log lines go where its stdout and stderr go),
//! `metadata` in metadata.rs, `lookup` in tables.rs, `http` in requests.rs (through http/). This is only the table
//! that binds them to the Store.

use super::bindings::{v1, v2, v3};
use super::store::StoreData;
use v2::weir::plugin::http::{HttpError, Request, Response};
use v2::weir::plugin::lookup::LookupError;

// The shared types interfaces have no functions, but bindgen still asks for their (empty) traits.
impl v2::weir::plugin::types::Host for StoreData {}
impl v1::weir::plugin::types::Host for StoreData {}
impl v3::weir::plugin0_3_0::types::Host for StoreData {}

impl v2::weir::plugin::host::Host for StoreData {
    fn log(&mut self, level: v2::weir::plugin::host::Level, message: String) {
        self.stdio.log(level, &message);
    }

    fn metadata(&mut self, input: u32) -> Vec<(String, String)> {
        self.metadata.get(input)
    }
}

impl v1::weir::plugin::host::Host for StoreData {
    fn log(&mut self, level: v1::weir::plugin::host::Level, message: String) {
        use v1::weir::plugin::host::Level as L1;
        use v2::weir::plugin::host::Level as L2;
        let level = match level {
            L1::Trace => L2::Trace,
            L1::Debug => L2::Debug,
            L1::Info => L2::Info,
            L1::Warn => L2::Warn,
            L1::Error => L2::Error,
        };
        self.stdio.log(level, &message);
    }

    fn metadata(&mut self, input: u32) -> Vec<(String, String)> {
        self.metadata.get(input)
    }
}

impl v2::weir::plugin::lookup::Host for StoreData {
    async fn get(&mut self, table: String, key: String) -> Result<Option<String>, LookupError> {
        let mut answers = super::tables::get_many(self, &table, vec![key]).await;
        answers
            .pop()
            .unwrap_or_else(|| Err(LookupError::Unavailable("no answer".into())))
    }

    async fn get_many(
        &mut self,
        table: String,
        keys: Vec<String>,
    ) -> Vec<Result<Option<String>, LookupError>> {
        super::tables::get_many(self, &table, keys).await
    }
}

impl v2::weir::plugin::http::Host for StoreData {
    async fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let mut answers = super::requests::send_all(self, vec![request]).await;
        answers
            .pop()
            .unwrap_or_else(|| Err(HttpError::Unavailable("no answer".into())))
    }

    async fn send_all(&mut self, requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
        super::requests::send_all(self, requests).await
    }
}
