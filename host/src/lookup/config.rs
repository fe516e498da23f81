//! `[[table]]`: one lookup table of the pipeline file, read into a [`TableConfig`] with every
//! mistake named at its key. Credentials are never part of it: only where to read them
//! (`password_env`, `password_file`), resolved when the table opens (secret.rs).

use crate::config::component::{deserialize_table, take_key, take_kind};
use crate::config::schema::{KeysSchema, KindSchema, keys_of, one_of_kinds};
use crate::config::{ConfigError, KeyPath, SourceText};
use crate::http_client::Secret;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The kinds of table, as `type` names them.
const KINDS: &[&str] = &["file", "redis", "postgres"];

/// Keys every kind takes, read before the kind's own.
const COMMON_KEYS: &[&str] = &[
    "name",
    "cache_ttl_s",
    "cache_max_entries",
    "max_concurrency",
    "timeout_ms",
    "password_env",
    "password_file",
];

/// Bounds of the limits: past them a value is a typo, not a setting.
const MAX_TTL_S: u64 = 30 * 24 * 3600;
const MAX_CACHE_ENTRIES: u64 = 10_000_000;
const MAX_CONCURRENCY: u64 = 1024;
const MAX_TIMEOUT_MS: u64 = 600_000;
const MAX_POOL_SIZE: u64 = 64;

/// One `[[table]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableConfig {
    /// What plugins' `tables` grants and their lookups name it by.
    pub(crate) name: String,
    pub(crate) backend: Backend,
    pub(crate) limits: TableLimits,
}

/// Where a table's rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A CSV or JSON lines file, loaded whole and reloaded when it changes.
    File {
        path: PathBuf,
        /// The key column (CSV) or field (JSON lines).
        key: String,
        format: FileFormat,
    },
    Redis {
        /// `redis://host:port/db`, with no password in it.
        url: String,
        key_prefix: String,
        command: RedisCommand,
        /// Where the password is read from when the table opens (`password_env`,
        /// `password_file`): never the pipeline file itself.
        password: Option<Secret>,
    },
    Postgres {
        /// libpq's `key=value` form or a `postgresql://` URL, with no password in it.
        connection: String,
        /// One statement with `$1`, the key.
        query: String,
        pool_size: usize,
        password: Option<Secret>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RedisCommand {
    /// `GET prefix+key` (MGET for many keys): the value, as it is if it is JSON, else as a string.
    #[default]
    Get,
    /// `HGETALL prefix+key` (pipelined for many keys): the hash as an object of strings.
    Hgetall,
}

/// `cache_ttl_s`, `cache_max_entries`, `max_concurrency` and `timeout_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableLimits {
    /// How long an answer (a row or none) is kept; zero: no cache.
    pub(crate) cache_ttl: Duration,
    pub(crate) cache_max_entries: usize,
    /// Backend calls under way at once, for all plugins and lanes together.
    pub(crate) max_concurrency: usize,
    /// Bound of one backend call (the plugin's I/O deadline may cut it shorter).
    pub(crate) timeout: Duration,
}

impl Default for TableLimits {
    fn default() -> Self {
        TableLimits {
            cache_ttl: Duration::from_secs(60),
            cache_max_entries: 10_000,
            max_concurrency: 16,
            timeout: Duration::from_millis(1000),
        }
    }
}

/// `type = "file"`'s own keys.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// A CSV or JSON lines file (.csv, .jsonl, .ndjson), loaded whole and reloaded when it
    /// changes.
    path: String,
    /// The key column (CSV) or field (JSON lines).
    key: String,
    /// `csv` or `jsonl` (default: by the file's extension).
    #[serde(default)]
    format: Option<FileFormat>,
}

/// `type = "redis"`'s own keys.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    /// `redis://host:port/db`, with no password in it.
    url: String,
    /// Put before each key.
    #[serde(default)]
    key_prefix: String,
    /// How a key is read.
    #[serde(default)]
    command: RedisCommand,
}

/// `type = "postgres"`'s own keys.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    /// libpq's `key=value` form or a `postgresql://` URL, with no password in it.
    connection: String,
    /// One statement with `$1`, the key (`SELECT tier FROM customers WHERE id = $1`).
    query: String,
    /// Connections at most (default 4).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_POOL_SIZE))]
    pool_size: Option<u64>,
}

/// The schema of [`COMMON_KEYS`] but `type` (read one by one by [`TableConfig::parse`]).
#[derive(JsonSchema)]
#[allow(dead_code)] // a schema only
struct CommonKeys {
    /// What plugins' `tables` grants and their lookups name the table by.
    name: String,
    /// How long an answer (a row or none) is kept, in seconds; 0: no cache (default 60).
    #[serde(default)]
    #[schemars(range(max = MAX_TTL_S))]
    cache_ttl_s: Option<u64>,
    /// Answers kept at most (default 10000).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_CACHE_ENTRIES))]
    cache_max_entries: Option<u64>,
    /// Backend calls under way at once, for all plugins and lanes together (default 16).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_CONCURRENCY))]
    max_concurrency: Option<u64>,
    /// Bound of one backend call (default 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    timeout_ms: Option<u64>,
    /// Redis and PostgreSQL: the environment variable that holds the password.
    #[serde(default)]
    password_env: Option<String>,
    /// Redis and PostgreSQL: the file that holds the password.
    #[serde(default)]
    password_file: Option<String>,
}

/// The schema of the `[[table]]` entries (`weir schema pipeline`).
pub(crate) fn tables_schema(generator: &mut SchemaGenerator) -> Schema {
    let common = keys_of::<CommonKeys>(generator);
    let kinds = [
        ("file", keys_of::<RawFile> as KeysSchema),
        ("redis", keys_of::<RawRedis>),
        ("postgres", keys_of::<RawPostgres>),
    ]
    .map(|(kind, keys)| KindSchema { kind, keys });
    let table = one_of_kinds(generator, "table", kinds, &[&common]);
    schemars::json_schema!({ "type": "array", "items": table })
}

impl TableConfig {
    /// Parses one `[[table]]` table that sits at `at`.
    pub(crate) fn parse(
        src: &SourceText<'_>,
        at: &KeyPath,
        mut table: toml::Table,
    ) -> Result<Self, Vec<ConfigError>> {
        let kind = take_kind(src, at, &mut table, "table", KINDS).map_err(|e| vec![e])?;
        let mut r = Reader {
            src,
            at,
            errors: Vec::new(),
        };
        let name: Option<String> = r.take(&mut table, "name");
        let ttl = r.limit(&mut table, "cache_ttl_s", 0, MAX_TTL_S);
        let max_entries = r.limit(&mut table, "cache_max_entries", 1, MAX_CACHE_ENTRIES);
        let concurrency = r.limit(&mut table, "max_concurrency", 1, MAX_CONCURRENCY);
        let timeout_ms = r.limit(&mut table, "timeout_ms", 1, MAX_TIMEOUT_MS);
        let password = r.secret(&mut table, &kind);
        let name = match name {
            Some(name) if valid_name(&name) => name,
            Some(name) => {
                r.error(
                    "name",
                    format!(
                        "invalid table name {name:?}: use 1 to 100 letters, digits, `-`, `_` or `.`"
                    ),
                );
                String::new()
            }
            None => {
                r.errors.push(src.error(
                    at,
                    "missing required key `name`: what plugins' `tables` grants call this table",
                ));
                String::new()
            }
        };
        let backend = match kind.as_str() {
            "file" => r.file(table),
            "redis" => r.redis(table, password),
            _ => r.postgres(table, password),
        };
        let (Some(backend), true) = (backend, r.errors.is_empty()) else {
            return Err(r.errors);
        };
        let default = TableLimits::default();
        let limits = TableLimits {
            cache_ttl: ttl.map_or(default.cache_ttl, Duration::from_secs),
            cache_max_entries: max_entries.map_or(default.cache_max_entries, to_usize),
            max_concurrency: concurrency.map_or(default.max_concurrency, to_usize),
            timeout: timeout_ms.map_or(default.timeout, Duration::from_millis),
        };
        Ok(TableConfig {
            name,
            backend,
            limits,
        })
    }
}

/// Reads one `[[table]]`, gathering its mistakes.
struct Reader<'s, 't> {
    src: &'s SourceText<'t>,
    at: &'s KeyPath,
    errors: Vec<ConfigError>,
}

impl Reader<'_, '_> {
    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(self.src.error(&self.at.key(key), message));
    }

    fn take<T: serde::de::DeserializeOwned + Default>(
        &mut self,
        table: &mut toml::Table,
        key: &str,
    ) -> T {
        take_key(self.src, self.at, table, key).unwrap_or_else(|e| {
            self.errors.push(e);
            T::default()
        })
    }

    /// An optional whole number in `min..=max`.
    fn limit(&mut self, table: &mut toml::Table, key: &str, min: u64, max: u64) -> Option<u64> {
        let value: Option<u64> = self.take(table, key);
        match value {
            Some(v) if v < min || v > max => {
                let mut e = self.src.error(
                    &self.at.key(key),
                    format!("must be between {min} and {max}"),
                );
                if key == "cache_max_entries" && v == 0 {
                    e.help = Some("to turn the cache off, set `cache_ttl_s = 0`".to_owned());
                }
                self.errors.push(e);
                None
            }
            v => v,
        }
    }

    /// `password_env` or `password_file`, for the kinds that connect to a server.
    fn secret(&mut self, table: &mut toml::Table, kind: &str) -> Option<Secret> {
        let env: Option<String> = self.take(table, "password_env");
        let file: Option<String> = self.take(table, "password_file");
        if kind == "file" {
            for (key, given) in [
                ("password_env", env.is_some()),
                ("password_file", file.is_some()),
            ] {
                if given {
                    self.error(key, "a file table needs no password: it reads a local file");
                }
            }
            return None;
        }
        let problem = match (&env, &file) {
            (Some(_), Some(_)) => Some((
                "password_file",
                "give `password_env` or `password_file`, not both",
            )),
            (Some(var), None) if var.is_empty() => {
                Some(("password_env", "must name an environment variable"))
            }
            (None, Some(path)) if path.is_empty() => Some(("password_file", "must name a file")),
            _ => None,
        };
        if let Some((key, message)) = problem {
            self.error(key, message);
            return None;
        }
        match (env, file) {
            (Some(var), _) => Some(Secret::Env(var)),
            (None, Some(path)) => Some(Secret::File(PathBuf::from(path))),
            (None, None) => None,
        }
    }

    fn file(&mut self, table: toml::Table) -> Option<Backend> {
        let raw: RawFile = self.kind_table(table)?;
        let path = PathBuf::from(&raw.path);
        if raw.path.is_empty() {
            self.error("path", "must name a .csv, .jsonl or .ndjson file");
        }
        if raw.key.is_empty() {
            self.error(
                "key",
                "must name the key column (CSV) or field (JSON lines)",
            );
        }
        let by_extension = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Some(FileFormat::Csv),
            Some(e) if e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson") => {
                Some(FileFormat::Jsonl)
            }
            _ => None,
        };
        let format = raw.format.or(by_extension).unwrap_or_else(|| {
            if !raw.path.is_empty() {
                let mut e = self.src.error(
                    &self.at.key("path"),
                    format!("cannot tell the format of {} from its extension", path.display()),
                );
                e.help = Some(
                    "name a .csv, .jsonl or .ndjson file, or set `format = \"csv\"` or `format = \"jsonl\"`"
                        .to_owned(),
                );
                self.errors.push(e);
            }
            FileFormat::Csv
        });
        Some(Backend::File {
            path,
            key: raw.key,
            format,
        })
    }

    fn redis(&mut self, table: toml::Table, password: Option<Secret>) -> Option<Backend> {
        let raw: RawRedis = self.kind_table(table)?;
        if let Err(why) = check_redis_url(&raw.url) {
            self.address_error("url", why);
        }
        Some(Backend::Redis {
            url: raw.url,
            key_prefix: raw.key_prefix,
            command: raw.command,
            password,
        })
    }

    fn postgres(&mut self, table: toml::Table, password: Option<Secret>) -> Option<Backend> {
        let raw: RawPostgres = self.kind_table(table)?;
        if let Err(why) = check_connection(&raw.connection) {
            self.address_error("connection", why);
        }
        if let Err(why) = check_query(&raw.query) {
            self.error("query", why);
        }
        let pool_size = match raw.pool_size {
            None => 4,
            Some(n) if (1..=MAX_POOL_SIZE).contains(&n) => to_usize(n),
            Some(_) => {
                self.error(
                    "pool_size",
                    format!("must be between 1 and {MAX_POOL_SIZE}"),
                );
                4
            }
        };
        Some(Backend::Postgres {
            connection: raw.connection,
            query: raw.query,
            pool_size,
            password,
        })
    }

    /// The rest of the table, after the common keys, as the kind's own struct.
    fn kind_table<T: serde::de::DeserializeOwned>(&mut self, table: toml::Table) -> Option<T> {
        deserialize_table(self.src, self.at, table, COMMON_KEYS)
            .map_err(|e| self.errors.push(e))
            .ok()
    }

    /// A mistake in a server's address; one that holds a password says where a password goes.
    fn address_error(&mut self, key: &str, why: String) {
        let mut e = self.src.error(&self.at.key(key), why);
        if e.message.contains("password") {
            e.help = Some(USE_SECRET.to_owned());
        }
        self.errors.push(e);
    }
}

const USE_SECRET: &str =
    "use password_env or password_file: a password is never written in the pipeline file";

/// A Redis URL weir can connect with, and that holds no password.
fn check_redis_url(url: &str) -> Result<(), String> {
    let parsed = redis::parse_redis_url(url)
        // The URL is not repeated: it might hold a password.
        .ok_or_else(|| "not a Redis URL: expected redis://host:port/db".to_owned())?;
    match parsed.scheme() {
        "redis" | "redis+unix" | "unix" => {}
        "rediss" => return Err("TLS to Redis (rediss://) is not supported yet".to_owned()),
        other => {
            return Err(format!(
                "unknown scheme `{other}`: expected redis://host:port/db"
            ));
        }
    }
    if parsed.password().is_some() {
        return Err("the URL holds a password".to_owned());
    }
    if parsed
        .query_pairs()
        .any(|(k, _)| k == "password" || k == "pass")
    {
        return Err("the URL holds a password".to_owned());
    }
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(drop)
        .map_err(|e| format!("invalid Redis URL: {e}"))
}

/// A PostgreSQL connection string that names a host and a user, and holds no password.
fn check_connection(connection: &str) -> Result<(), String> {
    let config: tokio_postgres::Config = connection
        .parse()
        .map_err(|e| format!("invalid connection string: {e}"))?;
    if config.get_password().is_some() {
        return Err("the connection string holds a password".to_owned());
    }
    if config.get_hosts().is_empty() {
        return Err("names no host: add `host=...`".to_owned());
    }
    if config.get_user().is_none() {
        return Err("names no user: add `user=...`".to_owned());
    }
    Ok(())
}

/// One statement whose only parameter is `$1`, the key.
fn check_query(query: &str) -> Result<(), String> {
    let mut seen_one = false;
    let bytes = query.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'$' {
            continue;
        }
        let digits: String = query[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        match digits.as_str() {
            "" => {}
            "1" => seen_one = true,
            n => {
                return Err(format!(
                    "uses `${n}`: the query takes one parameter, `$1`, the key"
                ));
            }
        }
    }
    if !seen_one {
        return Err("has no `$1`: the query is run with the key as `$1`, e.g. `SELECT tier FROM customers WHERE id = $1`".to_owned());
    }
    Ok(())
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn valid_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The schema is written beside the hand-read keys: it must name the same ones.
    #[test]
    fn the_schema_has_every_kind_and_common_key() {
        let schema = tables_schema(&mut schemars::SchemaGenerator::default()).to_value();
        let table = &schema["items"];
        assert_eq!(
            table["properties"]["type"]["enum"],
            serde_json::json!(KINDS)
        );
        for variant in table["oneOf"].as_array().unwrap() {
            let keys = variant["properties"].as_object().unwrap();
            for key in COMMON_KEYS {
                assert!(keys.contains_key(*key), "{key} in {variant}");
            }
        }
    }

    fn parse(text: &str) -> Result<TableConfig, Vec<ConfigError>> {
        let src = SourceText::parse(Path::new("p.toml"), text).map_err(|e| vec![e])?;
        let doc: toml::Table = toml::from_str(text).expect("valid TOML");
        let Some(toml::Value::Array(tables)) = doc.get("table") else {
            panic!("no [[table]]");
        };
        let Some(toml::Value::Table(table)) = tables.first() else {
            panic!("no [[table]]");
        };
        TableConfig::parse(
            &src,
            &KeyPath::default().key("table").index(0),
            table.clone(),
        )
    }

    /// Each error as `line:key: message`, and its help if any.
    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .expect_err("invalid")
            .iter()
            .map(|e| {
                let line = e.at.map_or(0, |(l, _)| l);
                let help = e
                    .help
                    .as_deref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                format!("{line}:{}: {}{help}", e.key, e.message)
            })
            .collect()
    }

    #[test]
    fn each_kind_with_its_defaults() {
        let file = parse(
            "[[table]]\nname = \"c\"\ntype = \"file\"\npath = \"data/c.ndjson\"\nkey = \"id\"\n",
        )
        .unwrap();
        assert_eq!(
            file,
            TableConfig {
                name: "c".into(),
                backend: Backend::File {
                    path: "data/c.ndjson".into(),
                    key: "id".into(),
                    format: FileFormat::Jsonl
                },
                limits: TableLimits::default(),
            }
        );
        let redis = parse(
            "[[table]]\nname = \"r\"\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\n\
             key_prefix = \"cust:\"\ncommand = \"hgetall\"\npassword_env = \"REDIS_PW\"\n\
             cache_ttl_s = 0\nmax_concurrency = 4\ntimeout_ms = 250\n",
        )
        .unwrap();
        assert_eq!(
            redis.backend,
            Backend::Redis {
                url: "redis://127.0.0.1:6379/0".into(),
                key_prefix: "cust:".into(),
                command: RedisCommand::Hgetall,
                password: Some(Secret::Env("REDIS_PW".into())),
            }
        );
        assert_eq!(redis.limits.cache_ttl, Duration::ZERO);
        assert_eq!(redis.limits.max_concurrency, 4);
        assert_eq!(redis.limits.timeout, Duration::from_millis(250));
        let pg = parse(
            "[[table]]\nname = \"p\"\ntype = \"postgres\"\n\
             connection = \"host=127.0.0.1 port=5432 user=postgres dbname=test\"\n\
             query = \"SELECT tier FROM customers WHERE id = $1\"\npassword_file = \"/run/secrets/pg\"\n",
        )
        .unwrap();
        let Backend::Postgres {
            pool_size,
            password,
            ..
        } = pg.backend
        else {
            panic!("postgres");
        };
        assert_eq!(
            (pool_size, password),
            (4, Some(Secret::File("/run/secrets/pg".into())))
        );
    }

    #[test]
    fn an_unknown_type_gets_a_suggestion() {
        assert_eq!(
            errors("[[table]]\nname = \"c\"\ntype = \"postgress\"\n"),
            [
                "3:table[0].type: unknown table type `postgress`; expected one of `file`, `redis`, `postgres` (did you mean `postgres`?)"
            ]
        );
    }

    #[test]
    fn missing_and_misspelt_keys_are_named() {
        assert_eq!(
            errors("[[table]]\ntype = \"file\"\npath = \"c.csv\"\n"),
            [
                "1:table[0]: missing required key `name`: what plugins' `tables` grants call this table",
                "1:table[0]: missing required key `key`",
            ]
        );
        let e = errors(
            "[[table]]\nname = \"c\"\ntype = \"redis\"\nurl = \"redis://h/0\"\nkey_prefx = \"x\"\n",
        );
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("5:table[0].key_prefx: unknown key `key_prefx`"),
            "{e:?}"
        );
        assert!(e[0].ends_with("(did you mean `key_prefix`?)"), "{e:?}");
    }

    #[test]
    fn passwords_in_urls_are_refused() {
        let e = errors(
            "[[table]]\nname = \"r\"\ntype = \"redis\"\nurl = \"redis://:s3cret@h:6379/0\"\n",
        );
        assert_eq!(
            e,
            [format!(
                "4:table[0].url: the URL holds a password ({USE_SECRET})"
            )]
        );
        let e = errors(
            "[[table]]\nname = \"p\"\ntype = \"postgres\"\n\
             connection = \"host=h user=u password=s3cret dbname=d\"\nquery = \"SELECT 1 WHERE $1 = 'a'\"\n",
        );
        assert_eq!(
            e,
            [format!(
                "4:table[0].connection: the connection string holds a password ({USE_SECRET})"
            )]
        );
        let e = errors(
            "[[table]]\nname = \"p\"\ntype = \"postgres\"\n\
             connection = \"postgresql://u:s3cret@h/d\"\nquery = \"SELECT 1 WHERE $1 = 'a'\"\n",
        );
        assert!(
            e[0].contains("holds a password") && !e[0].contains("s3cret"),
            "{e:?}"
        );
    }

    #[test]
    fn queries_take_exactly_dollar_one() {
        let query = |q: &str| {
            errors(&format!(
                "[[table]]\nname = \"p\"\ntype = \"postgres\"\nconnection = \"host=h user=u\"\nquery = \"{q}\"\n"
            ))
        };
        assert!(query("SELECT tier FROM c")[0].contains("has no `$1`"));
        assert!(query("SELECT tier FROM c WHERE a = $1 AND b = $2")[0].contains("uses `$2`"));
    }

    #[test]
    fn limits_and_names_are_checked_each_at_its_key() {
        let e = errors(
            "[[table]]\nname = \"a b\"\ntype = \"file\"\npath = \"c.txt\"\nkey = \"\"\n\
             cache_max_entries = 0\nmax_concurrency = 0\ntimeout_ms = 0\npassword_env = \"X\"\n",
        );
        assert_eq!(
            e,
            [
                "6:table[0].cache_max_entries: must be between 1 and 10000000 (to turn the cache off, set `cache_ttl_s = 0`)",
                "7:table[0].max_concurrency: must be between 1 and 1024",
                "8:table[0].timeout_ms: must be between 1 and 600000",
                "9:table[0].password_env: a file table needs no password: it reads a local file",
                "2:table[0].name: invalid table name \"a b\": use 1 to 100 letters, digits, `-`, `_` or `.`",
                "5:table[0].key: must name the key column (CSV) or field (JSON lines)",
                "4:table[0].path: cannot tell the format of c.txt from its extension (name a .csv, .jsonl or .ndjson file, or set `format = \"csv\"` or `format = \"jsonl\"`)",
            ]
        );
        let e = errors(
            "[[table]]\nname = \"p\"\ntype = \"postgres\"\nconnection = \"host=h user=u\"\n\
             query = \"SELECT 1 WHERE $1 = 'a'\"\npool_size = 0\npassword_env = \"A\"\npassword_file = \"b\"\n",
        );
        assert_eq!(
            e,
            [
                "8:table[0].password_file: give `password_env` or `password_file`, not both",
                "6:table[0].pool_size: must be between 1 and 64",
            ]
        );
    }
}
