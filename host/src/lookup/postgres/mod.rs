//! `type = "postgres"`: the table's one query, `$1` the key, run on a pool of `pool_size`
//! connections (deadpool-postgres), prepared once per connection. The pool connects on demand:
//! a pipeline starts while PostgreSQL is down, and a connection that broke is replaced. The
//! first row the query returns is the answer, as a JSON object of its columns (row.rs); no row:
//! none.
//!
//! The key is sent as the type the query's `$1` has (key.rs): text, or an integer or uuid
//! parsed from the key, so `WHERE id = $1` works for an `int` id too. A key that cannot be one
//! (`abc` for an integer) has no row, and is answered so without asking. TLS is not supported
//! yet: connections are plain.

mod key;
mod row;

use super::TableError;
use deadpool_postgres::{Manager, Pool};
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

pub(super) struct PostgresTable {
    pool: Pool,
    query: String,
    address: String,
}

impl PostgresTable {
    /// Reads the connection string (checked already by config.rs) and sets the password;
    /// connects nowhere.
    pub(super) fn open(
        connection: &str,
        query: &str,
        pool_size: usize,
        password: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut config: tokio_postgres::Config = connection
            .parse()
            .map_err(|e| format!("invalid connection string: {e}"))?;
        if let Some(password) = password {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        config.application_name("weir");
        let address = address(&config);
        let pool = Pool::builder(Manager::new(config, NoTls))
            .max_size(pool_size)
            .build()
            .map_err(|e| format!("postgres {address}: {e}"))?;
        Ok(PostgresTable {
            pool,
            query: query.to_owned(),
            address,
        })
    }

    /// `host:port/dbname`, for messages: never the password.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    /// The row at `key`.
    pub(super) async fn get(&self, key: &str) -> Result<Option<String>, TableError> {
        let (client, statement) = self.prepared().await?;
        let Some(param) = statement
            .params()
            .first()
            .and_then(|ty| key::KeyParam::new(key, ty))
        else {
            return Ok(None);
        };
        let rows = client
            .query_raw(&statement, [param])
            .await
            .map_err(unavailable)?;
        futures_util::pin_mut!(rows);
        let first = futures_util::TryStreamExt::try_next(&mut rows)
            .await
            .map_err(unavailable)?;
        first
            .map(|r| row::to_json(&r).map_err(TableError::Unknown))
            .transpose()
    }

    /// For `weir check --connect`: a connection, and the query prepared and checked.
    pub(super) async fn check(&self) -> Result<(), TableError> {
        self.prepared().await.map(drop)
    }

    /// A pooled connection and the query prepared on it, with its parameter and columns checked.
    async fn prepared(
        &self,
    ) -> Result<(deadpool_postgres::Object, tokio_postgres::Statement), TableError> {
        let client = self.pool.get().await.map_err(|e| {
            TableError::Unavailable(match e {
                deadpool_postgres::PoolError::Backend(e) => describe(&e),
                other => other.to_string(),
            })
        })?;
        let statement = client
            .prepare_cached(&self.query)
            .await
            .map_err(unavailable)?;
        match statement.params() {
            [param] => key::check(param).map_err(TableError::Unknown)?,
            params => {
                return Err(TableError::Unknown(format!(
                    "the query takes {} parameters: it must take one, `$1`, the key",
                    params.len()
                )));
            }
        }
        row::check(statement.columns()).map_err(TableError::Unknown)?;
        Ok((client, statement))
    }
}

fn unavailable(e: tokio_postgres::Error) -> TableError {
    TableError::Unavailable(describe(&e))
}

/// The error with the server's own message when there is one (`relation "x" does not exist`):
/// tokio-postgres's Display says only "db error".
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            text
        }
    }
}

/// The hosts, ports and database of a connection, for messages.
fn address(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "{}/{}",
        hosts.join(","),
        config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests;
