//! `type = "redis"`: `GET key_prefix+key` (one MGET for the keys of a batch) or `HGETALL`
//! (pipelined), through redis-rs's `ConnectionManager`, which reconnects by itself after Redis
//! restarts. It is made on the first lookup, not at open, and connects lazily: a pipeline starts
//! while Redis is down, and its lookups say `Unavailable` until Redis is back.
//!
//! Answers (as the `lookup` WIT says): for GET, the value as it is when it is JSON, else as a
//! JSON string; for HGETALL, an object of the hash's fields as strings, or none for an empty or
//! missing hash. Bytes that are not UTF-8 are read lossily.

use super::TableError;
use super::config::RedisCommand;
use super::json;
use super::limit::CallLimit;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, Value};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Keys per MGET or pipeline: a batch bigger than this goes as several calls, each its own turn
/// under `max_concurrency`.
const KEYS_PER_CALL: usize = 256;

pub(super) struct RedisTable {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    key_prefix: String,
    command: RedisCommand,
    timeout: Duration,
    address: String,
}

impl RedisTable {
    /// Reads the URL (checked already by config.rs) and sets the password; connects nowhere.
    pub(super) fn open(
        url: &str,
        key_prefix: &str,
        command: RedisCommand,
        password: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut info = url
            .into_connection_info()
            .map_err(|e| format!("invalid Redis URL: {e}"))?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let address = info.addr().to_string();
        let client = redis::Client::open(info).map_err(|e| format!("redis {address}: {e}"))?;
        Ok(RedisTable {
            client,
            connection: OnceCell::new(),
            key_prefix: key_prefix.to_owned(),
            command,
            timeout,
            address,
        })
    }

    /// `host:port` (or the socket's path), for messages: never the password.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    /// The answers for `keys`, in order.
    pub(super) async fn fetch(
        &self,
        keys: &[String],
        limit: &CallLimit,
        deadline: Instant,
    ) -> Vec<Result<Option<String>, TableError>> {
        let calls = keys
            .chunks(KEYS_PER_CALL)
            .map(|chunk| limit.run(deadline, self.fetch_chunk(chunk)));
        let mut answers = Vec::with_capacity(keys.len());
        for (chunk, result) in keys
            .chunks(KEYS_PER_CALL)
            .zip(futures_util::future::join_all(calls).await)
        {
            match result {
                Ok(rows) => answers.extend(rows.into_iter().map(Ok)),
                Err(e) => answers.extend(chunk.iter().map(|_| Err(e.clone()))),
            }
        }
        answers
    }

    /// One MGET, or one pipeline of HGETALLs.
    async fn fetch_chunk(&self, keys: &[String]) -> Result<Vec<Option<String>>, TableError> {
        let mut connection = self.connection().await?;
        let full: Vec<String> = keys
            .iter()
            .map(|k| format!("{}{k}", self.key_prefix))
            .collect();
        let values: Vec<Value> = match self.command {
            RedisCommand::Get => {
                // MGET answers one value per key, so the arity is right even for one key.
                redis::cmd("MGET")
                    .arg(&full)
                    .query_async(&mut connection)
                    .await
            }
            RedisCommand::Hgetall => {
                let mut pipe = redis::pipe();
                for key in &full {
                    pipe.cmd("HGETALL").arg(key);
                }
                pipe.query_async(&mut connection).await
            }
        }
        .map_err(unavailable)?;
        if values.len() != keys.len() {
            return Err(TableError::Unavailable(format!(
                "{} answers for {} keys",
                values.len(),
                keys.len()
            )));
        }
        Ok(values
            .into_iter()
            .map(|v| match self.command {
                RedisCommand::Get => value_answer(v),
                RedisCommand::Hgetall => hash_answer(v),
            })
            .collect())
    }

    /// For `weir check --connect`: a PING.
    pub(super) async fn ping(&self) -> Result<(), TableError> {
        let mut connection = self.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn connection(&self) -> Result<ConnectionManager, TableError> {
        self.connection
            .get_or_try_init(|| async {
                // Calls are bounded from outside (limit.rs); these keep a dead socket from
                // holding the manager's own reconnection longer than a call may wait.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(self.timeout);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .cloned()
            .map_err(unavailable)
    }
}

fn unavailable(e: redis::RedisError) -> TableError {
    TableError::Unavailable(e.to_string())
}

/// A GET's value: none for a missing key, JSON as it is, anything else as a JSON string.
fn value_answer(value: Value) -> Option<String> {
    let text = match value {
        Value::Nil => return None,
        Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Value::SimpleString(s) => s,
        Value::Int(n) => n.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    };
    let is_json = serde_json::from_str::<&serde_json::value::RawValue>(&text).is_ok();
    Some(if is_json {
        text.trim().to_owned()
    } else {
        json::string(&text)
    })
}

/// An HGETALL's hash as an object of strings: none when it is empty (Redis has no empty hash:
/// the key does not exist).
fn hash_answer(value: Value) -> Option<String> {
    let text = |v: &Value| match v {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    };
    let pairs: Vec<(String, String)> = match &value {
        // RESP2: field, value, field, value ...
        Value::Array(items) => items
            .chunks_exact(2)
            .map(|p| (text(&p[0]), text(&p[1])))
            .collect(),
        // RESP3
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
        _ => Vec::new(),
    };
    if pairs.is_empty() {
        return None;
    }
    Some(json::object(
        pairs.iter().map(|(k, v)| (k.as_str(), json::string(v))),
    ))
}
