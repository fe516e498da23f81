//! What a plugin may reach beyond its sandbox, as its `[[plugin]]` entry grants: HTTP (plugin/http)
//! and lookup tables (crate::lookup). Built once per plugin and shared by all its instances in
//! every lane, so that its limits (concurrency, rate) and caches are the plugin's, not an
//! instance's. Nothing granted: both `None`, and every call is denied.

use crate::lookup::Tables;
use std::sync::Arc;
use std::time::Duration;

#[derive(Default, Clone)]
pub struct Grants {
    /// The `http` grant, with its client, limits and cache.
    pub http: Option<Arc<super::http::HttpAccess>>,
    /// The pipeline's tables, and the names of those granted to this plugin.
    pub tables: Option<(Arc<Tables>, Vec<String>)>,
    /// Time a batch call may spend waiting on HTTP and lookups, on top of `timeout_ms` (which
    /// bounds the plugin's own work): see plugin/io_clock.rs.
    pub io_budget: Duration,
}

impl Grants {
    /// Whether the plugin may wait on anything (any grant at all).
    pub fn any(&self) -> bool {
        self.http.is_some() || self.tables.is_some()
    }
}
