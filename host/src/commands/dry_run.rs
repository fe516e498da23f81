//! `weir dry-run PIPELINE.toml --input events.jsonl`: runs a pipeline's filters, plugins and
//! templates on sample events without touching its source, sink, DLQ or state directory, and
//! prints what would become of each input, one JSON line per outcome:
//!
//! ```text
//! {"input":0,"id":"events.jsonl:1","outcome":"delivered","key":"C1","sink":{"body":"...",...}}
//! {"input":1,"id":"events.jsonl:2#0","outcome":"delivered","sink":{...}}      one line per event
//! {"input":1,"id":"events.jsonl:2#1","outcome":"delivered","sink":{...}}      a plugin emitted
//! {"input":2,"id":"events.jsonl:3","outcome":"filtered","why":[{"filter":0,"field":"data.dept","reason":"\"sales\" does not match [\"billing\"]"}]}
//! {"input":3,"id":"events.jsonl:4","outcome":"dead-lettered","stage":"plugin:redact","kind":"trap","reason":"plugin redact trapped: called `Option::unwrap()` on a `None` value (lib.rs, line 31)"}
//! {"input":4,"id":"events.jsonl:5","outcome":"dropped","stage":"plugin:split-order"}
//! ```
//!
//! - The input is read as the file source reads its file: one record per line (blank lines
//!   skipped), decoded with the pipeline's source `format`, lines longer than a file source's
//!   `max_line_bytes` cut; ids are `PATH:LINE` with PATH as given to `--input`. Whatever the
//!   source kind, events look like a file source's (`"source": "file"`, `meta.path`,
//!   `meta.line`, `meta.offset`). A record that does not decode is dead-lettered at stage
//!   `source`, kind `malformed`.
//! - `filtered`: no `[[filter]]` matched; `why` says, for each filter (by index), the first
//!   field that failed, as `weir pattern test` does (`field` is absent when the event as a
//!   whole is at fault).
//! - Then `[ordering] key` and `[pipeline] correlation_id` are applied, and the plugins run in
//!   order, as a lane runs them (same limits and failure isolation). `dropped`: the plugin
//!   named by `stage` emitted nothing (`weir run` counts such an event as filtered).
//! - `delivered`: one line per event that reaches the sink, with its ordering `key` if it has
//!   one, and `sink`: what the sink would send, its body (`body`, the text as written; bytes
//!   that are not UTF-8 as `{"base64": ...}`; a Kafka sink's tombstone as `null`) and, by
//!   kind, `path` (file); `topic`, `key`, `partition`, `headers` (`[name, value]` pairs) (Kafka);
//!   `message_group_id`, `message_deduplication_id`, `delay_seconds`, `attributes`, `bytes`
//!   (SQS). Nothing connects: an SQS queue is taken to be FIFO if its name ends in `.fifo`, and
//!   to take 256 KiB messages.
//! - `dead-lettered`: `stage` (`source`, `plugin:NAME`, `sink`), `kind` and `reason`, as the
//!   DLQ record would say; for `sink`, what the sink refuses before sending (a partition
//!   template that is not a number, an empty SQS body, a message too large, ...), and `output`:
//!   the id of the refused event when a plugin split the input. Failures that only sending
//!   reveals (a broker's refusal) cannot be foreseen. With `[retry] on_failure = "drop"` or
//!   `"block"`, `weir run` would drop or retry such an event instead of dead-lettering it.
//!
//! - With `[[target]]` entries instead of `[sink]`, each event a plugin left is routed by the
//!   targets' rules as `weir run` routes it: a `delivered` line has `targets` instead of
//!   `sink`, an object with what each target it reaches would send (`{"billing": {...},
//!   "audit": {...}}`), and a target that refuses the event has `{"refused": "why", "stage":
//!   "target:NAME"}` there (the input then counts as dead-lettered). An event no target's rule
//!   matches is `filtered`, its `why` saying per target (`"target": NAME`) the first field
//!   that failed.
//!
//! A summary goes to stderr: `N inputs: a delivered, b filtered, c dead-lettered, d dropped`.
//! Exit 0 if nothing would be dead-lettered, 1 otherwise, 2 if the pipeline is invalid, a
//! plugin does not load, or the input cannot be read.

use super::evaluate::{End, Line, Outcome, Stages};
use crate::exit;
use crate::pipeline::load_pipeline;
use crate::source::ReadSettings;
use crate::source::file::ReadOnce;
use serde::Serialize;
use std::io::{BufWriter, Write};
use std::path::Path;

/// One output line: the input's number, and what became of one event it became.
#[derive(Serialize)]
struct Printed<'a> {
    input: usize,
    #[serde(flatten)]
    line: &'a Line,
}

#[derive(Default)]
struct Totals {
    inputs: usize,
    delivered: usize,
    filtered: usize,
    dead_lettered: usize,
    dropped: usize,
}

pub fn dry_run(pipeline: &Path, input: &Path) -> i32 {
    let cfg = match load_pipeline(pipeline) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.0.len();
            eprintln!("\n{n} error{} found", if n == 1 { "" } else { "s" });
            return exit::USAGE;
        }
    };
    let ReadSettings {
        format,
        batch_size,
        max_record_bytes: max_line_bytes,
    } = cfg.source.read_settings();
    let mut reader = match ReadOnce::open(input, format, max_line_bytes) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --input: {e}");
            return exit::USAGE;
        }
    };
    let mut stages = match Stages::load(cfg) {
        Ok(s) => s,
        Err(e) => {
            let said = format!("{}: {e}", pipeline.display());
            eprintln!("error: {}", crate::redact::redact(&said));
            return exit::USAGE;
        }
    };

    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let mut totals = Totals::default();
    let mut code = None;
    loop {
        let batch = match reader.next_batch(batch_size) {
            Ok(b) if b.is_empty() => break,
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: --input: {e}");
                code = Some(exit::USAGE);
                break;
            }
        };
        let outcomes = stages.evaluate(batch);
        if let Err(e) = print(&mut stdout, &outcomes, &mut totals) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("error: {e}");
                code = Some(exit::FAILED);
            }
            break;
        }
    }
    if let Err(e) = stdout.flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: {e}");
        code.get_or_insert(exit::FAILED);
    }
    eprintln!(
        "{} input{}: {} delivered, {} filtered, {} dead-lettered, {} dropped",
        totals.inputs,
        if totals.inputs == 1 { "" } else { "s" },
        totals.delivered,
        totals.filtered,
        totals.dead_lettered,
        totals.dropped
    );
    code.unwrap_or(if totals.dead_lettered > 0 {
        exit::FAILED
    } else {
        exit::OK
    })
}

/// Writes the lines of a batch and counts its outcomes.
fn print(out: &mut impl Write, outcomes: &[Outcome], totals: &mut Totals) -> std::io::Result<()> {
    for outcome in outcomes {
        let input = totals.inputs;
        totals.inputs += 1;
        *match outcome.end {
            End::Delivered => &mut totals.delivered,
            End::Filtered => &mut totals.filtered,
            End::DeadLettered => &mut totals.dead_lettered,
            End::Dropped => &mut totals.dropped,
        } += 1;
        for line in &outcome.lines {
            let text =
                serde_json::to_string(&Printed { input, line }).map_err(std::io::Error::other)?;
            // What a sink would send may hold a `${VAR}` secret (a header, a URL): masked.
            writeln!(out, "{}", crate::redact::redact(&text))?;
        }
    }
    Ok(())
}
