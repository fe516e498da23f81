//! The plugin's `config` table, checked once in `init` so that a mistake stops the pipeline's
//! start with a message rather than failing every event.

use serde_json::Value;

#[derive(Clone)]
pub(crate) struct Config {
    /// The lookup table holding the customers' tiers.
    pub(crate) table: Option<String>,
    /// The event field holding the customer's id: the table's key.
    pub(crate) customer_field: String,
    /// Where rates are: the event's currency code is appended.
    pub(crate) rates_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            table: None,
            customer_field: "customer".into(),
            rates_url: None,
        }
    }
}

impl Config {
    pub(crate) fn parse(text: &str) -> Result<Config, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("config is not JSON: {e}"))?;
        let string = |name: &str| match value.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("config.{name} must be a string")),
        };
        let defaults = Config::default();
        Ok(Config {
            table: string("table")?,
            customer_field: string("customer_field")?.unwrap_or(defaults.customer_field),
            rates_url: string("rates_url")?,
        })
    }
}
