//! `enrich-rs`: fills in orders from the systems that know (weir example plugin in Rust).
//!
//! For each event (a JSON object), with config `{"table": "customers", "customer_field":
//! "customer", "rates_url": "http://127.0.0.1:8080/rates/"}` (every key optional):
//! 1. `table`: looks up `event[customer_field]` (default field `customer`) in that lookup table,
//!    with one `lookup.get-many` call for the whole batch, and adds `"tier"`: the row's `tier`, or
//!    `null` when there is no row.
//! 2. `rates_url`: GETs `rates_url + event.currency` for every event of the batch, all under way
//!    at once, through the standard wasi:http with an ordinary client (`wstd`), and adds `"rate"`
//!    and `"amount_eur": amount * rate` from a `{"rate": number}` answer.
//!
//! Failures: a lookup or request that failed for now (`unavailable`, `timeout`, a 429 or 5xx) is a
//! retryable failure, so the pipeline's `[retry]` policy tries the event again later; anything
//! that will not get better (`denied`, a 404, a body that is not `{"rate": number}`, a payload that
//! is not a JSON object) is permanent and dead-letters the event with the reason. The pipeline
//! must grant the table (`tables = ["customers"]`) and the URL prefix (`[plugin.http] allow`).
//!
//! The added fields follow the event's own, which keep their bytes and order (order.rs); with no
//! step configured, events are handed back as they came.
//!
//! Built against `weir:plugin@0.3.0` (wit/v0.3.0/plugin.wit), whose batches cross as a few packed
//! lists: this plugin does little per event, and a record per event cost it about a tenth of its
//! throughput in crossing alone. batch.rs cuts the events out and packs the outputs.

// `generate_all`: the imports are @0.2.0's interfaces, from wit/v0.3.0/deps.
wit_bindgen::generate!({ world: "transform", path: "../../wit/v0.3.0", generate_all });

mod batch;
mod config;
mod customers;
mod order;
mod rates;

// Size-class free lists in front of wasi-libc's malloc (plugins/alloc/src/lib.rs).
#[global_allocator]
static ALLOC: weir_plugin_alloc::SizeClasses = weir_plugin_alloc::SizeClasses::new();

use config::Config;
use order::{Failed, Order};
use std::cell::RefCell;
use weir::plugin0_3_0::types::Failure;

struct Enrich;

/// Where each field the steps read is in `Order`'s reads (`process`).
const CUSTOMER: usize = 0;
const CURRENCY: usize = 1;
const AMOUNT: usize = 2;

thread_local! {
    // Set by `init`, once per instance. Wasm instances are single-threaded.
    static CONFIG: RefCell<Config> = RefCell::new(Config::default());
}

impl Guest for Enrich {
    fn init(config: String) -> Result<(), String> {
        let config = Config::parse(&config)?;
        CONFIG.with(|c| *c.borrow_mut() = config);
        Ok(())
    }

    fn process(events: Events) -> BatchResult {
        let config = CONFIG.with(|c| c.borrow().clone());
        // The fields the steps read, at the indexes below.
        let reads: [&str; order::READS] = [config.customer_field.as_str(), "currency", "amount"];
        let mut orders: Vec<Result<Order, Failed>> = batch::payloads(&events)
            .map(|payload| Order::parse(payload, &reads))
            .collect();
        if let Some(table) = &config.table {
            customers::add_tiers(table, &config.customer_field, &mut orders);
        }
        if let Some(rates_url) = &config.rates_url {
            rates::add_rates(rates_url, &mut orders);
        }
        // Each event grows by a few fields: room for them at once.
        let mut outputs = batch::Packer::with_capacity(orders.len(), events.payloads.len() * 5 / 4);
        let mut failures = Vec::new();
        for (input, order) in (0u32..).zip(orders) {
            match order {
                Ok(order) => outputs.push(input, |payload| order.write_to(payload)),
                Err(failed) => failures.push(Failure {
                    input,
                    message: failed.message,
                    retryable: failed.retryable,
                }),
            }
        }
        BatchResult {
            outputs: outputs.into_outputs(),
            failures,
        }
    }
}

export!(Enrich);
