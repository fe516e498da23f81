//! Lookup tables: the pipeline's `[[table]]` entries (config.rs), each a file (file/), a Redis
//! (redis.rs) or a PostgreSQL (postgres/) table, answering the `lookup` import of the plugins
//! they are granted to (plugin/tables.rs) with rows as JSON text.
//!
//! One [`Tables`] per pipeline, shared by every plugin and lane: its caches (cache.rs) and its
//! bounds on backend calls (limit.rs) are the table's, whoever asks. File tables are loaded when
//! the pipeline opens them and a mistake in one stops it there; Redis and PostgreSQL connect on
//! the first lookup, so a pipeline starts while they are down and its lookups say `Unavailable`
//! until they are back.
//!
//! cache.rs     answers kept for `cache_ttl_s` (rows and "no row" alike), oldest evicted first
//! config.rs    `[[table]]` read into [`TableConfig`], mistakes named at their key
//! file/        CSV and JSON lines files: parsed, watched, reloaded whole or refused whole
//! json.rs      rows written as JSON text
//! limit.rs     `max_concurrency` and `timeout_ms` around each backend call, and the deadline
//! metrics.rs   `weir_table_lookups_total`, `weir_table_rows`, `weir_table_reloads_total`
//! postgres/    one parameterised query over a small pool, rows as JSON objects
//! redis.rs     GET (MGET) or HGETALL (pipelined), through a reconnecting connection
//! secret.rs    `password_env` / `password_file`, read at open and never shown

mod cache;
pub(crate) mod config;
mod file;
mod json;
mod limit;
mod metrics;
mod postgres;
mod redis;
mod secret;

use cache::Cache;
use config::Backend as Configured;
pub(crate) use config::{TableConfig, tables_schema};
use file::FileTable;
use limit::CallLimit;
use metrics::TableMetrics;
use postgres::PostgresTable;
use redis::RedisTable;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Why a lookup has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// No such table, or one that cannot answer as it is configured (a query whose columns weir
    /// cannot read): permanent.
    #[error("{0}")]
    Unknown(String),
    /// The backend did not answer in time, or failed: transient.
    #[error("{0}")]
    Unavailable(String),
}

/// Why the tables could not be opened: a file table's file (naming `file:line`), a password's
/// variable or file, a connection setting.
#[derive(Debug, Clone, thiserror::Error)]
#[error("table {table}: {reason}")]
pub(crate) struct OpenError {
    pub(crate) table: String,
    pub(crate) reason: String,
}

/// The pipeline's tables, by name.
pub struct Tables {
    tables: HashMap<String, Table>,
}

struct Table {
    name: String,
    backend: Backend,
    /// Redis and PostgreSQL only: a file table is its own cache.
    cache: Option<Cache>,
    limit: CallLimit,
    metrics: TableMetrics,
}

enum Backend {
    File(FileTable),
    // Boxed: the client's connection settings are large, and a table is made once.
    Redis(Box<RedisTable>),
    Postgres(PostgresTable),
}

impl Tables {
    /// Opens the tables of `pipeline` (which labels their metrics and logs): file tables are
    /// loaded now, Redis and PostgreSQL connect on their first lookup.
    pub(crate) fn open(configs: &[TableConfig], pipeline: &str) -> Result<Arc<Tables>, OpenError> {
        let mut tables = HashMap::new();
        for config in configs {
            let table = Table::open(config, pipeline).map_err(|reason| OpenError {
                table: config.name.clone(),
                reason,
            })?;
            tables.insert(config.name.clone(), table);
        }
        Ok(Arc::new(Tables { tables }))
    }

    /// The row of `table` at each key, as JSON text; answered by `deadline`.
    pub async fn get_many(
        &self,
        table: &str,
        keys: Vec<String>,
        deadline: Instant,
    ) -> Vec<Result<Option<String>, TableError>> {
        match self.tables.get(table) {
            Some(t) => t.get_many(keys, deadline).await,
            None => {
                let mut names: Vec<&str> = self.tables.keys().map(String::as_str).collect();
                names.sort_unstable();
                let why = if names.is_empty() {
                    format!("no table {table:?}: the pipeline has no [[table]]")
                } else {
                    format!("no table {table:?} (tables: {})", names.join(", "))
                };
                keys.iter()
                    .map(|_| Err(TableError::Unknown(why.clone())))
                    .collect()
            }
        }
    }

    /// For `weir check --connect`: each table by name, and whether its backend answers (Redis:
    /// a PING; PostgreSQL: the query prepared, its parameter and columns checked; a file: loaded).
    pub(crate) async fn reach(&self) -> Vec<(String, Result<(), String>)> {
        let mut names: Vec<&String> = self.tables.keys().collect();
        names.sort_unstable();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let table = &self.tables[name];
            let deadline = Instant::now() + table.limit.timeout();
            let reached = match &table.backend {
                Backend::File(_) => Ok(()),
                Backend::Redis(r) => table.limit.run(deadline, r.ping()).await,
                Backend::Postgres(p) => table.limit.run(deadline, p.check()).await,
            };
            // The caller names the table; the reason alone, without its `table NAME: `.
            let prefix = format!("table {name}: ");
            let reached = reached.map_err(|e| {
                let text = e.to_string();
                text.strip_prefix(&prefix)
                    .map_or(text.clone(), str::to_owned)
            });
            out.push((name.clone(), reached));
        }
        out
    }
}

impl Table {
    fn open(config: &TableConfig, pipeline: &str) -> Result<Table, String> {
        let metrics = TableMetrics::new(pipeline, &config.name);
        let limits = &config.limits;
        let (backend, what) = match &config.backend {
            Configured::File { path, key, format } => {
                let file =
                    FileTable::open(pipeline, &config.name, path, key, *format, metrics.clone())?;
                (Backend::File(file), format!("file {}", path.display()))
            }
            Configured::Redis {
                url,
                key_prefix,
                command,
                password,
            } => {
                let password = secret::resolve(password)?;
                let redis = RedisTable::open(url, key_prefix, *command, password, limits.timeout)?;
                let what = format!("redis {}", redis.address());
                (Backend::Redis(Box::new(redis)), what)
            }
            Configured::Postgres {
                connection,
                query,
                pool_size,
                password,
            } => {
                let password = secret::resolve(password)?;
                let pg =
                    PostgresTable::open(connection, query, *pool_size, password, limits.timeout)?;
                let what = format!("postgres {}", pg.address());
                (Backend::Postgres(pg), what)
            }
        };
        let cache = match backend {
            Backend::File(_) => None,
            _ => Cache::new(limits.cache_ttl, limits.cache_max_entries),
        };
        Ok(Table {
            name: config.name.clone(),
            backend,
            cache,
            limit: CallLimit::new(
                format!("table {}: {what}", config.name),
                limits.max_concurrency,
                limits.timeout,
            ),
            metrics,
        })
    }

    async fn get_many(
        &self,
        keys: Vec<String>,
        deadline: Instant,
    ) -> Vec<Result<Option<String>, TableError>> {
        if let Backend::File(file) = &self.backend {
            self.metrics.hits.increment(keys.len() as u64);
            return keys.iter().map(|k| Ok(file.get(k))).collect();
        }
        // The cache first; the keys it lacks go to the backend once each, however often the
        // batch names them.
        let now = Instant::now();
        let mut answers: Vec<Option<Result<Option<String>, TableError>>> = match &self.cache {
            Some(cache) => cache
                .get_many(&keys, now)
                .into_iter()
                .map(|hit| hit.map(Ok))
                .collect(),
            None => vec![None; keys.len()],
        };
        let mut wanted: Vec<String> = Vec::new();
        let mut places: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            if answers[i].is_some() {
                continue;
            }
            let at = places.entry(key.as_str()).or_default();
            if at.is_empty() {
                wanted.push(key.clone());
            }
            at.push(i);
        }
        let hits = keys.len() - places.values().map(Vec::len).sum::<usize>();
        self.metrics.hits.increment(hits as u64);
        if !wanted.is_empty() {
            let fetched = self.fetch(&wanted, deadline).await;
            let now = Instant::now();
            for (key, answer) in wanted.iter().zip(fetched) {
                let at = places.get(key.as_str()).map_or(&[][..], Vec::as_slice);
                match &answer {
                    Ok(row) => {
                        if let Some(cache) = &self.cache {
                            cache.put(key, row.clone(), now);
                        }
                        self.metrics.misses.increment(at.len() as u64);
                    }
                    Err(_) => self.metrics.errors.increment(at.len() as u64),
                }
                for &i in at {
                    answers[i] = Some(answer.clone());
                }
            }
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(TableError::Unavailable(format!(
                        "table {}: no answer",
                        self.name
                    )))
                })
            })
            .collect()
    }

    /// The rows of `keys` from Redis or PostgreSQL, one answer per key.
    async fn fetch(
        &self,
        keys: &[String],
        deadline: Instant,
    ) -> Vec<Result<Option<String>, TableError>> {
        match &self.backend {
            Backend::File(file) => keys.iter().map(|k| Ok(file.get(k))).collect(),
            Backend::Redis(redis) => redis.fetch(keys, &self.limit, deadline).await,
            Backend::Postgres(pg) => {
                let calls = keys.iter().map(|key| self.limit.run(deadline, pg.get(key)));
                futures_util::future::join_all(calls).await
            }
        }
    }
}

#[cfg(test)]
mod tests;
