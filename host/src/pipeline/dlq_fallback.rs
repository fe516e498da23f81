//! Where a dead-letter record goes when the DLQ refuses it for good (a permanent
//! [`SinkError`]: too large for the topic or queue, invalid, not authorized): retrying cannot
//! change that, and a DLQ write that waits forever would stall its lane and hold the source's
//! commit back. So the record goes whole to a local file, `<state dir>/dlq-fallback.jsonl`
//! (through the file sink: locked, shared by the pipelines of the process, synced before the
//! source commits, like the DLQ), and the DLQ is offered the same record with the event's
//! payload cut to what it takes, saying so (`cut`: the payload's size and sha256, the DLQ's
//! refusal, where the whole record is). The DLQ's readers see every failure; nothing is lost.

use crate::dlq_record::{Cut, DlqRecord};
use crate::event::Payload;
use crate::sink::file::FileSinkConfig;
use crate::sink::{Outgoing, Sink, SinkConfig, SinkContext, SinkError};
use std::path::{Path, PathBuf};

/// The fallback file's name in the pipeline's state directory.
pub(super) const FILE: &str = "dlq-fallback.jsonl";

/// The pipeline's fallback file, opened the first time it is needed (most pipelines never
/// need it, and should not lock or create a file for nothing).
pub(super) struct Fallback {
    ctx: SinkContext,
    path: PathBuf,
    file: tokio::sync::OnceCell<Box<dyn Sink>>,
}

impl Fallback {
    pub(super) fn new(ctx: &SinkContext) -> Self {
        Fallback {
            path: ctx.state_dir.join(FILE),
            ctx: ctx.clone(),
            file: tokio::sync::OnceCell::new(),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `records` (whole lines; written, not yet synced).
    pub(super) async fn write(&self, records: &[Outgoing<'_>]) -> Result<(), SinkError> {
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
    pub(super) async fn sync(&self) -> Result<(), SinkError> {
        match self.file.get() {
            Some(file) => file.sync().await,
            None => Ok(()),
        }
    }
}

/// `record` with the event's payload cut so that the whole record takes at most `room` bytes,
/// and a `cut` object: the payload's size in bytes and sha256 (of its text as read: a JSON
/// payload's JSON text, a text payload's text), the bytes kept, the DLQ's `refusal`, and the
/// file that holds the whole record. `None` if the record does not fit even with no payload at
/// all.
pub(super) fn cut_record(
    record: &DlqRecord<'_>,
    room: usize,
    refusal: &str,
    whole_in: &Path,
) -> Option<String> {
    let text = match &*record.event.data {
        Payload::Json(raw) => raw.get(),
        Payload::Text(text) => text.as_str(),
    };
    let digest = crate::plugin::cache::sha256_hex(text.as_bytes());
    let render = |keep: usize| {
        let kept = &text[..text.floor_char_boundary(keep)];
        let cut = Cut {
            data_bytes: text.len(),
            data_sha256: digest.clone(),
            kept_bytes: kept.len(),
            dlq_refused: refusal.to_owned(),
            whole_record_in: whole_in.display().to_string(),
        };
        record.cut_to(kept, cut).to_json()
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
    use crate::dlq_record::Failure;
    use crate::event::Envelope;

    fn event(data: &str) -> Envelope {
        Envelope {
            id: "in/0/7".into(),
            source: "kafka",
            key: Some("k".into()),
            time: "2026-12-06T10:00:00.000Z".into(),
            received_at: "2026-12-06T10:00:00.000Z".into(),
            data: Payload::Text(data.into()),
            meta: serde_json::Map::new(),
        }
    }

    #[test]
    fn a_cut_record_fits_its_room_and_says_what_was_cut() {
        // Multi-byte characters and quotes: the kept text ends on a character, and escaping
        // is counted in the room.
        let data = "é\"x".repeat(1000);
        let event = event(&data);
        let failure = Failure::now("sink", "rejected", "too large", 1, None);
        let record = DlqRecord::new("p", &event, &failure);
        let path = Path::new("/state/p/dlq-fallback.jsonl");
        for room in [700, 1200, 2500] {
            let out = cut_record(&record, room, "MsgSizeTooLarge", path).expect("fits");
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
            // The DLQ's readers take it as any record: its kept text is text.
            let back: DlqRecord = serde_json::from_str(&out).unwrap();
            assert!(matches!(&*back.event.data, Payload::Text(t) if t == kept));
            assert_eq!(back.cut.map(|c| c.kept_bytes), Some(kept.len()));
        }
        // Not even the record without its payload fits (its event and error take more).
        assert!(cut_record(&record, 100, "too large", path).is_none());
    }
}
