//! The `lookup` import: a plugin's lookups, checked against its `tables` grant, then answered by
//! the pipeline's tables (crate::lookup) before the call's deadline (io_clock.rs).

use super::bindings::v2::weir::plugin::lookup::LookupError;
use super::store::StoreData;
use crate::lookup::TableError;

/// One answer per key, in order.
pub(crate) async fn get_many(
    data: &mut StoreData,
    table: &str,
    keys: Vec<String>,
) -> Vec<Result<Option<String>, LookupError>> {
    let denied = |why: String| {
        keys.iter()
            .map(|_| Err(LookupError::Denied(why.clone())))
            .collect()
    };
    let Some((tables, granted)) = &data.grants.tables else {
        return denied(format!(
            "plugin {} has no lookup tables granted (`tables = [...]` in its [[plugin]] entry)",
            data.plugin
        ));
    };
    if !granted.iter().any(|t| t == table) {
        return denied(format!(
            "plugin {} is not granted table {table:?} (granted: {})",
            data.plugin,
            granted.join(", ")
        ));
    }
    let deadline = data.io.deadline();
    let tables = tables.clone();
    tables
        .get_many(table, keys, deadline)
        .await
        .into_iter()
        .map(|answer| {
            answer.map_err(|e| match e {
                TableError::Unknown(why) => LookupError::Denied(why),
                TableError::Unavailable(why) => LookupError::Unavailable(why),
            })
        })
        .collect()
}
