//! One event of the batch as it is being enriched, or why it failed.

use serde_json::{Map, Value};

/// An event's payload: a JSON object, to which the steps add fields.
pub(crate) struct Order(pub(crate) Map<String, Value>);

/// Why an event failed, and whether trying it again later may succeed.
pub(crate) struct Failed {
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

impl Failed {
    pub(crate) fn permanent(message: String) -> Failed {
        Failed {
            message,
            retryable: false,
        }
    }

    pub(crate) fn retryable(message: String) -> Failed {
        Failed {
            message,
            retryable: true,
        }
    }
}

impl Order {
    pub(crate) fn parse(payload: &[u8]) -> Result<Order, Failed> {
        match serde_json::from_slice(payload) {
            Ok(Value::Object(fields)) => Ok(Order(fields)),
            _ => Err(Failed::permanent("payload is not a JSON object".into())),
        }
    }

    /// The text of a string or number field, as a table key or a URL part.
    pub(crate) fn text(&self, field: &str) -> Result<String, Failed> {
        match self.0.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(Failed::permanent(format!(
                "no `{field}` (a string or a number) in the event"
            ))),
        }
    }

    pub(crate) fn into_payload(self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
}
