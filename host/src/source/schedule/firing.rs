//! One firing as an event: its id, time, meta, and data rendered from the `data` template over
//! the firing's envelope.

use super::SourceEvent;
use crate::event::{Envelope, Payload, Position};
use crate::template::Template;
use chrono::{DateTime, SecondsFormat, Utc};

/// Without `data`: an event shaped like EventBridge's scheduled events.
pub(super) const DEFAULT_DATA: &str = r#"{"detail-type": "Scheduled Event", "source": "weir.schedule", "name": <$.meta.name>, "time": <$.meta.scheduled_time>, "detail": {}}"#;

pub(super) struct Firing {
    pub name: String,
    pub pipeline: String,
    pub expression: String,
    pub timezone: String,
    pub template: Template,
}

impl Firing {
    pub(super) fn event(
        &self,
        at: DateTime<Utc>,
        fired_at: DateTime<Utc>,
        catch_up: bool,
    ) -> SourceEvent {
        let scheduled = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut meta = serde_json::Map::with_capacity(6);
        meta.insert("scheduled_time".into(), scheduled.clone().into());
        meta.insert(
            "fired_at".into(),
            fired_at
                .to_rfc3339_opts(SecondsFormat::Millis, true)
                .into(),
        );
        meta.insert("schedule".into(), self.expression.clone().into());
        meta.insert("timezone".into(), self.timezone.clone().into());
        meta.insert("name".into(), self.name.clone().into());
        meta.insert("catch_up".into(), catch_up.into());
        let ms = at.timestamp_millis().max(0) as u64;
        let mut envelope = Envelope {
            id: format!("{}:{scheduled}", self.name),
            source: "schedule",
            key: None,
            time: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            received_at: fired_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            data: Payload::Json(crate::event::JsonText::null()),
            meta,
        };
        let rendered = self.template.render(&envelope, &self.pipeline);
        let decoded = Payload::decode(rendered.as_bytes());
        envelope.data = decoded.payload;
        // Text that is not JSON is the data as it is; only data too deep to read is refused.
        let problem = decoded
            .problem
            .filter(|p| matches!(p, crate::event::Problem::TooDeep))
            .map(|p| p.to_string());
        SourceEvent {
            envelope,
            position: Position {
                partition: 0,
                offset: ms,
                ordinal: ms,
            },
            problem,
            release_on_failure: false,
        }
    }
}
