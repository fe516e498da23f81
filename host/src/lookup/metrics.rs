//! A table's metrics, labelled `pipeline` and `table`: lookups by result (`hit`: answered from
//! the cache or a file table; `miss`: answered by Redis or PostgreSQL; `error`: not answered),
//! the rows of a file table, and its reloads by outcome (`ok`, `refused`). Handles are made once,
//! when the table opens, so that a lookup only adds to them.

use metrics::{Counter, Gauge};

#[derive(Clone)]
pub(super) struct TableMetrics {
    pub(super) hits: Counter,
    pub(super) misses: Counter,
    pub(super) errors: Counter,
    pub(super) rows: Gauge,
    pub(super) reloads_ok: Counter,
    pub(super) reloads_refused: Counter,
}

impl TableMetrics {
    pub(super) fn new(pipeline: &str, table: &str) -> Self {
        let labels = [
            ("pipeline", pipeline.to_owned()),
            ("table", table.to_owned()),
        ];
        let with = |key: &'static str, value: &'static str| {
            let mut l = labels.to_vec();
            l.push((key, value.to_owned()));
            l
        };
        TableMetrics {
            hits: metrics::counter!("weir_table_lookups_total", &with("result", "hit")),
            misses: metrics::counter!("weir_table_lookups_total", &with("result", "miss")),
            errors: metrics::counter!("weir_table_lookups_total", &with("result", "error")),
            rows: metrics::gauge!("weir_table_rows", &labels),
            reloads_ok: metrics::counter!("weir_table_reloads_total", &with("outcome", "ok")),
            reloads_refused: metrics::counter!(
                "weir_table_reloads_total",
                &with("outcome", "refused")
            ),
        }
    }
}
