//! The grants of `weir plugin test`: `--allow-http PREFIX` (with `--http-method`) and
//! `--table NAME=FILE` (keyed by `--table-key`), turned into the `[plugin.http]` and `[[table]]`
//! tables a pipeline file would hold and read by the same parsers, so that the plugin runs
//! under exactly the grants, limits and checks it would get in a pipeline.

use crate::config::{KeyPath, SourceText};
use crate::lookup::{TableConfig, Tables};
use crate::plugin::config::DEFAULT_IO_BUDGET;
use crate::plugin::grants::Grants;
use crate::plugin::http::{HttpAccess, HttpGrant};
use std::path::Path;

pub struct GrantArgs {
    /// URL prefixes the plugin may request.
    pub allow_http: Vec<String>,
    /// Methods it may use (none given: GET).
    pub http_methods: Vec<String>,
    /// `NAME=FILE` file tables it may look up.
    pub tables: Vec<String>,
    /// The key column of every `--table`.
    pub table_key: String,
}

/// The grants the flags describe, or what is wrong with them.
pub(crate) fn grants(args: &GrantArgs, plugin: &str) -> Result<Grants, String> {
    let mut doc = String::new();
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut names = Vec::new();
    for t in &args.tables {
        let Some((name, file)) = t.split_once('=') else {
            return Err(format!("--table {t:?}: write NAME=FILE"));
        };
        names.push(name.to_owned());
        doc.push_str(&format!(
            "[[table]]\nname = {}\ntype = \"file\"\npath = {}\nkey = {}\n",
            quote(name),
            quote(file),
            quote(&args.table_key)
        ));
    }
    if !args.allow_http.is_empty() {
        let list = |v: &[String]| v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
        let methods = match args.http_methods.is_empty() {
            true => "\"GET\"".to_owned(),
            false => list(&args.http_methods),
        };
        doc.push_str(&format!(
            "[http]\nallow = [{}]\nmethods = [{methods}]\n",
            list(&args.allow_http)
        ));
    }
    let file = Path::new("<command line>");
    let src = SourceText::parse(file, &doc).map_err(|e| e.to_string())?;
    let mut document: toml::Table = toml::from_str(&doc).map_err(|e| e.to_string())?;
    let root = KeyPath::default();
    let errors = |e: Vec<crate::config::ConfigError>| {
        e.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };

    let mut configs = Vec::new();
    if let Some(toml::Value::Array(list)) = document.remove("table") {
        for (i, t) in list.into_iter().enumerate() {
            let toml::Value::Table(t) = t else { continue };
            configs.push(TableConfig::parse(&src, &root.key("table").index(i), t).map_err(errors)?);
        }
    }
    let tables = match configs.is_empty() {
        true => None,
        false => Some((
            Tables::open(&configs, "plugin-test").map_err(|e| e.to_string())?,
            names,
        )),
    };
    let http = match document.remove("http") {
        Some(toml::Value::Table(t)) => {
            let grant = HttpGrant::parse(&src, &root.key("http"), t).map_err(errors)?;
            Some(HttpAccess::new(grant, "plugin-test", plugin).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let any = http.is_some() || tables.is_some();
    Ok(Grants {
        http,
        tables,
        io_budget: if any {
            DEFAULT_IO_BUDGET
        } else {
            Default::default()
        },
    })
}
