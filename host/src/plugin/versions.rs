//! The contract versions a component may be built against (bindings.rs): which one a component
//! exports, and its calls in @0.2.0's terms, which the rest of the host speaks. A @0.3.0
//! component's batch is packed for it and its outputs read back (packed.rs); a @0.1.0
//! component's events are lent as they are, and its results come back with every failure
//! permanent, as they always were.

use super::bindings::{BatchResult, Event, Failure, Output, v1, v2, v3};
use super::packed::{self, Packed};
use super::store::StoreData;
use wasmtime::Store;

/// The contract version a component was built against, ready to instantiate.
pub(super) enum Pre {
    V3(v3::TransformPre<StoreData>),
    V2(v2::TransformPre<StoreData>),
    V1(v1::TransformPre<StoreData>),
}

/// An instance's exports, of its version.
pub(super) enum Exports {
    V3(v3::Transform),
    V2(v2::Transform),
    V1(v1::Transform),
}

impl Pre {
    /// The version whose exports the component has: @0.3.0, @0.2.0 or @0.1.0.
    pub(super) fn new(pre: wasmtime::component::InstancePre<StoreData>) -> wasmtime::Result<Pre> {
        if let Ok(v3) = v3::TransformPre::new(pre.clone()) {
            return Ok(Pre::V3(v3));
        }
        match v2::TransformPre::new(pre.clone()) {
            Ok(v2) => Ok(Pre::V2(v2)),
            Err(e2) => match v1::TransformPre::new(pre) {
                Ok(v1) => Ok(Pre::V1(v1)),
                // None: say what @0.2.0, the contract most plugins follow, lacks.
                Err(_) => Err(e2),
            },
        }
    }

    pub(super) async fn instantiate(
        &self,
        store: &mut Store<StoreData>,
    ) -> wasmtime::Result<Exports> {
        Ok(match self {
            Pre::V3(pre) => Exports::V3(pre.instantiate_async(store).await?),
            Pre::V2(pre) => Exports::V2(pre.instantiate_async(store).await?),
            Pre::V1(pre) => Exports::V1(pre.instantiate_async(store).await?),
        })
    }
}

impl Exports {
    pub(super) async fn init(
        &self,
        store: &mut Store<StoreData>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Exports::V3(b) => b.call_init(store, config).await,
            Exports::V2(b) => b.call_init(store, config).await,
            Exports::V1(b) => b.call_init(store, config).await,
        }
    }

    pub(super) async fn process(
        &self,
        store: &mut Store<StoreData>,
        events: &[Event<'_>],
    ) -> wasmtime::Result<BatchResult> {
        match self {
            Exports::V3(b) => {
                let packed = Packed::new(events).map_err(wasmtime::Error::msg)?;
                let r = b.call_process(store, packed.events()).await?;
                // Lists that do not fit together fail the call as a trap would (instance.rs
                // names it), and the event behind it is isolated.
                let outputs = packed::unpack(r.outputs).map_err(wasmtime::Error::msg)?;
                let failures = r
                    .failures
                    .into_iter()
                    .map(|f| Failure {
                        input: f.input,
                        message: f.message,
                        retryable: f.retryable,
                    })
                    .collect();
                Ok(BatchResult { outputs, failures })
            }
            Exports::V2(b) => b.call_process(store, events).await,
            Exports::V1(b) => {
                let events: Vec<v1::weir::plugin::types::Event<'_>> = events
                    .iter()
                    .map(|e| v1::weir::plugin::types::Event {
                        id: e.id,
                        key: e.key,
                        payload: e.payload,
                    })
                    .collect();
                let r = b.call_process(store, &events).await?;
                // @0.1.0 knows no retryable failures: each is for good, as it always was.
                Ok(BatchResult {
                    outputs: r
                        .outputs
                        .into_iter()
                        .map(|o| Output {
                            input: o.input,
                            payload: o.payload,
                            key: o.key,
                        })
                        .collect(),
                    failures: r
                        .failures
                        .into_iter()
                        .map(|f| Failure {
                            input: f.input,
                            message: f.message,
                            retryable: false,
                        })
                        .collect(),
                })
            }
        }
    }
}
