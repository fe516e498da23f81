//! Where a dead-letter record goes when the DLQ refuses it for good (a permanent
//! [`SinkError`]: too large for the topic or queue, invalid, not authorized): retrying cannot
//! change that, and a DLQ write that waits forever would stall its lane and hold the source's
//! commit back. So the record goes whole to a local file, `<state dir>/dlq-fallback.jsonl`
//! (through the file sink: locked, shared by the pipelines of the process, synced before the
//! source commits, like the DLQ), and the DLQ is offered the same record with the event's
//! payload cut to what it takes, saying so (`cut`: the payload's size and sha256, the DLQ's
//! refusal, where the whole record is). The DLQ's readers see every failure; nothing is lost.

use super::slot::{Failure, Slot};
use crate::event::{Envelope, Payload, push_json_string};
use crate::sink::file::FileSinkConfig;
use crate::sink::{Outgoing, Sink, SinkConfig, SinkContext, SinkError};
use std::path::{Path, PathBuf};

/// The fallback file's name in the pipeline's state directory.
pub const FILE: &str = "dlq-fallback.jsonl";

/// The pipeline's fallback file, opened the first time it is needed (most pipelines never
/// need it, and should not lock or create a file for nothing).
pub struct Fallback {
    ctx: SinkContext,
    path: PathBuf,
    file: tokio::sync::OnceCell<Box<dyn Sink>>,
}

impl Fallback {
    pub fn new(ctx: &SinkContext) -> Self {
        Fallback {
            path: ctx.state_dir.join(FILE),
            ctx: ctx.clone(),
            file: tokio::sync::OnceCell::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `records` (whole lines; written, not yet synced).
    pub async fn write(&self, records: &[Outgoing<'_>]) -> Result<(), SinkError> {
        let file = self
            .file
            .get_or_try_init(|| {
                let cfg = SinkConfig::new(FileSinkConfig {
                    path: self.path.clone(),
                });
                async move { cfg.open(&self.ctx).await }
            })
            .await?;
        file.write(records).await.map_err(|e| match e {
            crate::sink::SinkFailure::All(e) => e,
            crate::sink::SinkFailure::Some(mut failed) => failed.swap_remove(0).1,
        })
    }

    /// Makes what was appended durable (nothing to do if nothing was).
    pub async fn sync(&self) -> Result<(), SinkError> {
        match self.file.get() {
            Some(file) => file.sync().await,
            None => Ok(()),
        }
    }
}

/// The DLQ record of `slot` (rendered by `record`) with the event's payload cut so that the
/// whole record takes at most `room` bytes, and a `cut` object: the payload's size in bytes and
/// sha256 (of its text as read: a JSON payload's JSON text, a text payload's text), the bytes
/// kept, the DLQ's `refusal`, and the file that holds the whole record. `None` if the record
/// does not fit even with no payload at all.
pub fn cut_record(
    slot: &Slot,
    failure: &Failure,
    record: impl Fn(&Envelope, &Failure) -> String,
    room: usize,
    refusal: &str,
    whole_in: &Path,
) -> Option<String> {
    let text = match &slot.event.data {
        Payload::Json(raw) => raw.get(),
        Payload::Text(text) => text.as_str(),
    };
    let digest = crate::plugin::cache::sha256_hex(text.as_bytes());
    let mut event = slot.event.clone();
    let mut render = |keep: usize| {
        let kept = &text[..text.floor_char_boundary(keep)];
        event.data = Payload::Text(kept.to_owned());
        let mut out = record(&event, failure);
        out.pop(); // the record's closing brace: `cut` goes last
        out.push_str(&format!(
            ",\"cut\":{{\"data_bytes\":{},\"data_sha256\":\"{digest}\",\"kept_bytes\":{},\"dlq_refused\":",
            text.len(),
            kept.len()
        ));
        push_json_string(&mut out, refusal);
        out.push_str(",\"whole_record_in\":");
        push_json_string(&mut out, &whole_in.display().to_string());
        out.push_str("}}");
        out
    };
    let empty = render(0).len();
    if empty > room {
        return None;
    }
    // Escaping makes the kept text take more room than its bytes: shrink until it fits.
    let mut keep = (room - empty).min(text.len());
    loop {
        let out = render(keep);
        if out.len() <= room || keep == 0 {
            return Some(out).filter(|o| o.len() <= room);
        }
        keep -= (out.len() - room).clamp(1, keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Position;
    use crate::pipeline::slot::Fate;

    fn slot(data: &str) -> Slot {
        let event = Envelope {
            id: "in/0/7".into(),
            source: "kafka",
            key: Some("k".into()),
            time: "2026-12-06T10:00:00.000Z".into(),
            received_at: "2026-12-06T10:00:00.000Z".into(),
            data: Payload::Text(data.into()),
            meta: serde_json::Map::new(),
        };
        let position = Position {
            partition: 0,
            offset: 8,
            ordinal: 7,
        };
        Slot::new(position, event, Fate::Pending)
    }

    fn record(event: &Envelope, _: &Failure) -> String {
        format!("{{\"event\":{},\"pipeline\":\"p\"}}", event.to_json())
    }

    #[test]
    fn a_cut_record_fits_its_room_and_says_what_was_cut() {
        // Multi-byte characters and quotes: the kept text ends on a character, and escaping
        // is counted in the room.
        let data = "é\"x".repeat(1000);
        let slot = slot(&data);
        let failure = Failure::now("sink", "rejected", "too large", 1, None);
        let path = Path::new("/state/p/dlq-fallback.jsonl");
        for room in [400, 1000, 2500] {
            let out =
                cut_record(&slot, &failure, record, room, "MsgSizeTooLarge", path).expect("fits");
            assert!(out.len() <= room, "{} > {room}", out.len());
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let kept = v["event"]["data"].as_str().unwrap();
            assert!(data.starts_with(kept) && !kept.is_empty());
            assert_eq!(v["cut"]["data_bytes"], data.len());
            assert_eq!(v["cut"]["kept_bytes"], kept.len());
            assert_eq!(
                v["cut"]["data_sha256"],
                crate::plugin::cache::sha256_hex(data.as_bytes())
            );
            assert_eq!(v["cut"]["dlq_refused"], "MsgSizeTooLarge");
            assert_eq!(v["cut"]["whole_record_in"], path.display().to_string());
        }
        // Not even the record without its payload fits.
        assert!(cut_record(&slot, &failure, record, 100, "too large", path).is_none());
    }
}
