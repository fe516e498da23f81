//! The `weir` command line: parses arguments and calls the library.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use weir::commands;
use weir::config::HostSettings;
use weir::config::host::LogFormat;
use weir::exit;

/// mimalloc rather than glibc's malloc: measured faster on weir's per-event allocations, and it
/// does not return memory to the kernel batch after batch (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own settings (mimalloc.h): `mi_option_t` is a C enum, and this is the only one weir
// changes. The test below checks that the number still names it.
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// mimalloc 3 gives freed memory back to the system a second after it was freed (its
/// `purge_delay`): a pipeline that streams events frees as fast as it allocates, and holding a
/// second of them cost 10-20 MB of peak memory. A tenth of a second costs no measurable CPU
/// (docs/performance.md, "Memory"). `MIMALLOC_PURGE_DELAY` in the environment still decides.
fn allocator_settings() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a value in mimalloc's option table, which it reads atomically.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 100) };
    }
}

/// `weir --version`: the version and the commit it was built from (build.rs: `unknown` without
/// git, `-dirty` when the tree had changes).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("WEIR_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "weir",
    version = VERSION,
    about = "Self-hosted event pipelines: sources, EventBridge pattern filters, Wasm plugins, sinks"
)]
struct Cli {
    /// Host settings file [default: weir.toml if present]; for `plugin test`: the plugin's
    /// config, JSON text or a file holding it
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `weir=debug,warn` (overrides settings and WEIR_LOG_LEVEL)
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format (overrides settings and WEIR_LOG_FORMAT)
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run pipelines (files, or directories of *.toml files) until they end or SIGINT/SIGTERM
    Run {
        #[arg(required = true, value_name = "PIPELINE")]
        paths: Vec<PathBuf>,
        /// Root of per-pipeline state: checkpoints, default DLQ [default: var/state]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Print events passing one stage of a running pipeline, one JSON line each (via the admin
    /// API of `weir run`)
    Tap {
        #[arg(value_name = "PIPELINE")]
        pipeline: String,
        /// `source` (as read), `filter` (kept by the filters), `plugin:NAME` (emitted by that
        /// plugin), `sink` (delivered)
        #[arg(long, default_value = "sink")]
        stage: String,
        /// Stop after N events
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// The admin API: host:port or URL [default: admin.address of the settings]
        #[arg(long, value_name = "ADDRESS")]
        admin: Option<String>,
    },
    /// Every running pipeline's rates, errors and lag, refreshed every second (via the admin
    /// API of `weir run`)
    Top {
        /// The admin API: host:port or URL [default: admin.address of the settings]
        #[arg(long, value_name = "ADDRESS")]
        admin: Option<String>,
        /// Refresh interval
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after N refreshes [default: run until interrupted]; exit 1 if weir did not
        /// answer the last one
        #[arg(long, value_name = "N")]
        iterations: Option<u64>,
        /// Columns to fit the table in [default: the terminal's width, else COLUMNS, else 120]
        #[arg(long, value_name = "COLUMNS")]
        width: Option<u16>,
    },
    /// Validate pipeline files without running them (exit 0 valid, 1 invalid)
    Check {
        #[arg(required = true, value_name = "PIPELINE")]
        paths: Vec<PathBuf>,
        /// Root of per-pipeline state, where the plugins' compile cache is [default: var/state]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Also reach each pipeline's Kafka brokers and SQS queues (metadata and queue
        /// attributes only; 10 s each): unreachable brokers, missing topics and queues, and AWS
        /// credentials that cannot be found are errors
        #[arg(long)]
        connect: bool,
    },
    /// Run a pipeline's filters, plugins and templates on sample events, touching neither its
    /// source, sink, DLQ nor state; print what would be delivered, filtered or dead-lettered and
    /// why (exit 0 nothing dead-lettered, 1 some, 2 invalid pipeline or input)
    DryRun {
        #[arg(value_name = "PIPELINE.toml")]
        pipeline: PathBuf,
        /// Sample events, one record per line (read as the file source reads its file)
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
    },
    /// Run pipelines' tests (`*.test.toml` files, or folders of them): input events and what
    /// each must become, through the filters, plugins and templates as `weir dry-run` runs them
    /// (exit 0 all pass, 1 some fail, 2 a test file, pipeline or plugin cannot be loaded)
    Test {
        #[arg(required = true, value_name = "TESTS")]
        paths: Vec<PathBuf>,
        /// Also write the results as JUnit XML to FILE
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// EventBridge event patterns
    #[command(subcommand)]
    Pattern(PatternCommand),
    /// Start a pipeline file or a plugin project from a template
    #[command(subcommand)]
    New(NewCommand),
    /// JSON Schemas of weir's files, for editors and CI
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Wasm plugins
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// A pipeline's dead-letter queue
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Print a shell completion script on stdout (README: "Shell completions and man page")
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, or write one page per command into a directory
    Man {
        /// Write weir.1, weir-run.1, weir-dlq-redrive.1, ... into DIR instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Count the dead-lettered events by stage, kind and reason
    Inspect {
        #[arg(value_name = "PIPELINE.toml")]
        pipeline: PathBuf,
        /// Root of per-pipeline state [default: var/state]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Run dead-lettered events through the pipeline again; remove those that then end
    /// (delivered, filtered, or dead-lettered anew with the new reason). The pipeline must not
    /// be running. An interrupted redrive is resumed where it stopped.
    Redrive {
        #[arg(value_name = "PIPELINE.toml")]
        pipeline: PathBuf,
        #[command(flatten)]
        select: DlqSelect,
        /// Root of per-pipeline state [default: var/state]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Remove the selected records (all of the pipeline's without a selection) from the DLQ,
    /// for good. Asks first on a terminal; `--yes` otherwise.
    Purge {
        #[arg(value_name = "PIPELINE.toml")]
        pipeline: PathBuf,
        #[command(flatten)]
        select: DlqSelect,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        /// Root of per-pipeline state [default: var/state]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Write the selected records as JSON lines, leaving the DLQ as it is
    Export {
        #[arg(value_name = "PIPELINE.toml")]
        pipeline: PathBuf,
        #[command(flatten)]
        select: DlqSelect,
        /// Only the original events (each record's `event`), not the whole records
        #[arg(long)]
        events: bool,
        /// Write to FILE (whole or not at all) instead of stdout
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Root of per-pipeline state [default: var/state]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
}

/// Which DLQ records a `weir dlq` command acts on (all of the pipeline's if none is given).
#[derive(clap::Args)]
struct DlqSelect {
    /// Only records of this stage: `plugin:NAME`, `plugin` (any plugin), `sink`, `source`
    #[arg(long)]
    stage: Option<String>,
    /// Only records of this error kind: `error`, `trap`, `timeout`, `rejected`, `malformed`, ...
    #[arg(long)]
    kind: Option<String>,
    /// Only records matching this event pattern, over the record
    /// (`{"event": {...}, "error": {"kind": ...}}`)
    #[arg(long, visible_alias = "filter", value_name = "PATTERN")]
    pattern: Option<String>,
}

impl DlqSelect {
    fn args(&self) -> commands::dlq::SelectArgs {
        commands::dlq::SelectArgs {
            stage: self.stage.clone(),
            kind: self.kind.clone(),
            pattern: self.pattern.clone(),
        }
    }
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run a plugin on JSON-lines events and print what it emits, drops and fails (exit 0 all
    /// processed, 1 some failed, 2 the plugin did not load)
    Test {
        /// The plugin component (.wasm)
        #[arg(value_name = "PLUGIN.wasm")]
        plugin: PathBuf,
        /// Events, one payload per line (as the file source reads them)
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Deadline per batch call [default: 1000]
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
        /// Memory limit per instance [default: 64]
        #[arg(long, value_name = "MIB")]
        memory_mb: Option<u64>,
        /// Events per call
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// Cache compiled plugins in DIR/.plugin-cache [default: none, compile every time]
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Grant HTTP requests to URLs under PREFIX (repeatable), as `[plugin.http] allow`
        #[arg(long, value_name = "PREFIX")]
        allow_http: Vec<String>,
        /// Methods the HTTP grant allows (repeatable) [default: GET]
        #[arg(long, value_name = "METHOD")]
        http_method: Vec<String>,
        /// Grant a lookup table NAME read from a CSV or JSON-lines FILE (repeatable)
        #[arg(long, value_name = "NAME=FILE")]
        table: Vec<String>,
        /// The key column of the `--table` files
        #[arg(long, value_name = "COLUMN", default_value = "id")]
        table_key: String,
    },
}

#[derive(Subcommand)]
enum NewCommand {
    /// Write NAME.toml: a commented pipeline from a source to a sink that `weir check` passes
    /// (and NAME.events.jsonl, a sample input, for a file source)
    Pipeline {
        #[arg(value_name = "NAME")]
        name: String,
        /// The source kind: file, kafka, sqs, http, rabbitmq, nats, schedule
        #[arg(long, value_name = "KIND")]
        source: String,
        /// The sink kind: stdout, file, kafka, sqs, http, rabbitmq, nats
        #[arg(long, value_name = "KIND")]
        sink: String,
        /// Where to write the files
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Write NAME/: a plugin project that builds on its own (build.sh), with sample events and a
    /// config that `weir plugin test` passes on
    Plugin {
        #[arg(value_name = "NAME")]
        name: String,
        /// The plugin's language: rust, javascript or python
        #[arg(long, value_name = "LANG", default_value = "rust")]
        lang: String,
        /// Where to write the project's folder
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// A checkout of weir: the plugin then uses weir's allocator for plugins
        /// (plugins/alloc) and the versions weir's own plugins are built with
        #[arg(long, value_name = "DIR")]
        weir_repo: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// The pipeline file's JSON Schema (draft-07), on stdout
    Pipeline,
}

#[derive(Subcommand)]
enum PatternCommand {
    /// Read {"pattern": P, "event": E} JSON lines on stdin; write {"match": true|false} or {"error": "..."} per line
    Check,
    /// Test one pattern against one event: exit 0 match, 1 no match (and why), 2 invalid
    Test {
        /// The pattern: JSON text, or a file holding it
        #[arg(long, value_name = "FILE|JSON")]
        pattern: String,
        /// The event: JSON text, or a file holding it
        #[arg(long, value_name = "FILE|JSON")]
        event: String,
    },
}

fn main() {
    allocator_settings();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "weir", &mut script);
            print_out(&script)
        }
        Command::Man { ref dir } => {
            let mut page = Vec::new();
            let written = match dir {
                Some(dir) => clap_mangen::generate_to(Cli::command(), dir)
                    .map_err(|e| format!("cannot write the man pages into {}: {e}", dir.display())),
                None => clap_mangen::Man::new(Cli::command())
                    .render(&mut page)
                    .map_err(|e| format!("cannot render the man page: {e}")),
            };
            match written {
                Ok(()) => print_out(&page),
                Err(e) => {
                    weir::logging::error(&e, None);
                    exit::FAILED
                }
            }
        }
        Command::Check {
            ref paths,
            ref state_dir,
            connect,
        } => {
            // The settings are checked too; logging stays off (the report is the output).
            let settings = HostSettings::load_to_serve(cli.config.as_deref()).map(|mut s| {
                if let Some(dir) = state_dir {
                    s.state_dir = dir.clone();
                }
                s
            });
            commands::check::check(paths, settings, connect)
        }
        Command::Pattern(PatternCommand::Check) => commands::pattern::check(),
        Command::Schema(SchemaCommand::Pipeline) => commands::schema::pipeline(),
        Command::New(NewCommand::Plugin {
            ref name,
            ref lang,
            ref dir,
            ref weir_repo,
        }) => commands::new::plugin(&commands::new::PluginArgs {
            name: name.clone(),
            lang: lang.clone(),
            dir: dir.clone(),
            weir_repo: weir_repo.clone(),
        }),
        Command::New(NewCommand::Pipeline {
            ref name,
            ref source,
            ref sink,
            ref dir,
        }) => commands::new::pipeline(&commands::new::PipelineArgs {
            name: name.clone(),
            source: source.clone(),
            sink: sink.clone(),
            dir: dir.clone(),
        }),
        Command::Pattern(PatternCommand::Test {
            ref pattern,
            ref event,
        }) => commands::pattern::test(pattern, event),
        Command::Plugin(PluginCommand::Test {
            ref plugin,
            ref input,
            timeout_ms,
            memory_mb,
            batch_size,
            ref state_dir,
            ref allow_http,
            ref http_method,
            ref table,
            ref table_key,
        }) => {
            // `--config` is the plugin's config here (`weir plugin test X.wasm --config '{...}'`),
            // so host settings come from weir.toml and the environment only.
            let plugin_config = cli
                .config
                .as_ref()
                .map(|c| c.to_string_lossy().into_owned());
            // Plugin `log` calls and load messages go to stderr like the other commands' logs.
            if settings(&cli, None, None, false).is_none() {
                std::process::exit(exit::USAGE);
            }
            commands::plugin::test(&commands::plugin::TestArgs {
                plugin: plugin.clone(),
                input: input.clone(),
                config: plugin_config,
                timeout_ms,
                memory_mb,
                batch_size,
                state_dir: state_dir.clone(),
                grants: commands::plugin::GrantArgs {
                    allow_http: allow_http.clone(),
                    http_methods: http_method.clone(),
                    tables: table.clone(),
                    table_key: table_key.clone(),
                },
            })
        }
        Command::DryRun {
            ref pipeline,
            ref input,
        } => match settings(&cli, cli.config.as_deref(), None, false) {
            Some(_) => commands::dry_run::dry_run(pipeline, input),
            None => exit::USAGE,
        },
        Command::Test {
            ref paths,
            ref junit,
        } => match settings(&cli, cli.config.as_deref(), None, false) {
            Some(_) => commands::test::test(&commands::test::TestArgs {
                paths: paths.clone(),
                junit: junit.clone(),
            }),
            None => exit::USAGE,
        },
        Command::Dlq(DlqCommand::Inspect {
            ref pipeline,
            ref state_dir,
        }) => match settings(&cli, cli.config.as_deref(), state_dir.clone(), false) {
            Some(s) => commands::dlq::inspect(pipeline, &s),
            None => exit::USAGE,
        },
        Command::Dlq(DlqCommand::Redrive {
            ref pipeline,
            ref select,
            ref state_dir,
        }) => match settings(&cli, cli.config.as_deref(), state_dir.clone(), false) {
            Some(s) => commands::dlq::redrive(
                &commands::dlq::RedriveArgs {
                    pipeline: pipeline.clone(),
                    select: select.args(),
                },
                &s,
            ),
            None => exit::USAGE,
        },
        Command::Dlq(DlqCommand::Purge {
            ref pipeline,
            ref select,
            yes,
            ref state_dir,
        }) => match settings(&cli, cli.config.as_deref(), state_dir.clone(), false) {
            Some(s) => commands::dlq::purge(
                &commands::dlq::PurgeArgs {
                    pipeline: pipeline.clone(),
                    select: select.args(),
                    yes,
                },
                &s,
            ),
            None => exit::USAGE,
        },
        Command::Dlq(DlqCommand::Export {
            ref pipeline,
            ref select,
            events,
            ref output,
            ref state_dir,
        }) => match settings(&cli, cli.config.as_deref(), state_dir.clone(), false) {
            Some(s) => commands::dlq::export(
                &commands::dlq::ExportArgs {
                    pipeline: pipeline.clone(),
                    select: select.args(),
                    events,
                    output: output.clone(),
                },
                &s,
            ),
            None => exit::USAGE,
        },
        Command::Tap {
            ref pipeline,
            ref stage,
            limit,
            ref admin,
        } => match settings(&cli, cli.config.as_deref(), None, false) {
            Some(s) => commands::tap::tap(
                &commands::tap::TapArgs {
                    pipeline: pipeline.clone(),
                    stage: stage.clone(),
                    limit,
                    admin: admin.clone(),
                },
                &s,
            ),
            None => exit::USAGE,
        },
        Command::Top {
            ref admin,
            interval_ms,
            iterations,
            width,
        } => match settings(&cli, cli.config.as_deref(), None, false) {
            Some(s) => commands::top::top(
                &commands::top::TopArgs {
                    admin: admin.clone(),
                    interval: std::time::Duration::from_millis(interval_ms.max(100)),
                    iterations,
                    width,
                },
                &s,
            ),
            None => exit::USAGE,
        },
        Command::Run {
            ref paths,
            ref state_dir,
        } => match settings(&cli, cli.config.as_deref(), state_dir.clone(), true) {
            Some(s) => commands::run::run(paths, &s),
            None => exit::USAGE,
        },
    };
    std::process::exit(code);
}

/// Writes generated text to stdout: a closed pipe (`weir man | head`) is no error.
fn print_out(text: &[u8]) -> i32 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            weir::logging::error(&format!("cannot write to stdout: {e}"), None);
            exit::FAILED
        }
    }
}

/// Loads host settings (`serve`: for `weir run`, checking the admin address too), applies the
/// flags over them and starts logging.
fn settings(
    cli: &Cli,
    host_file: Option<&std::path::Path>,
    state_dir: Option<PathBuf>,
    serve: bool,
) -> Option<HostSettings> {
    let loaded = match serve {
        true => HostSettings::load_to_serve(host_file),
        false => HostSettings::load(host_file),
    };
    let mut s = match loaded {
        Ok(s) => s,
        Err(e) => {
            let format = cli
                .log_format
                .or_else(|| HostSettings::log_format_hint(host_file));
            weir::logging::error(&format!("invalid host settings:\n{e}"), format);
            return None;
        }
    };
    if let Some(level) = &cli.log_level {
        s.log_level = level.clone();
    }
    if let Some(format) = cli.log_format {
        s.log_format = format;
    }
    if let Some(dir) = state_dir {
        s.state_dir = dir;
    }
    weir::plugin::engine::set_profiler(s.plugin_profiler);
    if let Err(e) = weir::logging::init(&s.log_level, s.log_format) {
        weir::logging::error(&e.to_string(), Some(s.log_format));
        return None;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    /// `MI_OPTION_PURGE_DELAY` names the purge delay: it is the option whose default is mimalloc
    /// 3's 1000 ms (its neighbours default to 0 and 1), and setting it sets that.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads mimalloc's option table.
        let before = unsafe { mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, 1000, "mimalloc's default purge delay");
        super::allocator_settings();
        assert_eq!(unsafe { mi_option_get(super::MI_OPTION_PURGE_DELAY) }, 100);
    }
}
