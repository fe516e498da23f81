//! What the RabbitMQ source and sink share: the broker's address (an AMQP URL whose password
//! may come from a secret), connecting, `weir check --connect`, and logging an outage once.
//!
//! The URL is `amqp://user:pass@host:5672/vhost` (`amqps://` for TLS, trusting the system's
//! roots; the vhost percent-encoded, `%2f` for `/`). It is shown everywhere with its password
//! replaced by `***`.

use crate::backoff::Backoff;
use crate::http_client::Secret;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;

/// Where the broker is: the table keys the source and sink share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Broker<'a> {
    pub url: &'a str,
    pub password: Option<&'a Secret>,
    /// The connection's name in the management UI and `rabbitmqctl list_connections`.
    pub connection_name: Option<&'a str>,
}

/// How long connecting (TCP, TLS, the AMQP handshake) may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the broker could not be reached or used. Never holds a password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub(crate) struct RabbitError {
    pub message: String,
    /// A refusal that trying again cannot fix (no such queue, access refused).
    pub permanent: bool,
}

impl RabbitError {
    fn new(message: String, e: &lapin::Error) -> Self {
        RabbitError {
            message,
            permanent: permanent(e),
        }
    }
}

/// The broker refused the request for good (not the network or a closing connection).
pub(crate) fn permanent(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => matches!(
            p.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND | AMQPSoftError::ACCESSREFUSED)
                | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
        ),
        _ => false,
    }
}

/// Checks the URL and that a password is given once at most: `(key, message)`.
pub(crate) fn validate(b: Broker<'_>) -> Result<(), (&'static str, String)> {
    let uri: AMQPUri = b.url.parse().map_err(|e| {
        (
            "url",
            format!("not an AMQP URL ({e}); for example amqp://user@127.0.0.1:5672/%2f"),
        )
    })?;
    if !(b.url.starts_with("amqp://") || b.url.starts_with("amqps://")) {
        return Err(("url", "must start with amqp:// or amqps://".into()));
    }
    if b.password.is_some() && url_has_password(b.url) {
        return Err((
            "password",
            "the url holds a password too: give it in one place (`password`, so that it is not written in the file)".into(),
        ));
    }
    if uri.authority.host.is_empty() {
        return Err(("url", "names no host".into()));
    }
    if b.connection_name.is_some_and(str::is_empty) {
        return Err(("connection_name", "must not be empty".into()));
    }
    Ok(())
}

fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The URL as it may be shown: its password, if any, replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Broker<'_> {
    /// The URL as it may be shown.
    pub(crate) fn shown(&self) -> String {
        redacted(self.url)
    }

    /// Connects: TCP (TLS for amqps), the handshake, within [`CONNECT_TIMEOUT`].
    pub(crate) async fn connect(&self, default_name: &str) -> Result<Connection, RabbitError> {
        let mut uri: AMQPUri = self.url.parse().map_err(|e| RabbitError {
            message: format!("url {}: {e}", self.shown()),
            permanent: true,
        })?;
        if let Some(secret) = self.password {
            uri.authority.userinfo.password = secret.read().map_err(|e| RabbitError {
                message: format!("password: {e}"),
                permanent: true,
            })?;
        }
        let tls = uri.scheme == AMQPScheme::AMQPS;
        let name = self.connection_name.unwrap_or(default_name);
        let props = ConnectionProperties::default().with_connection_name(name.into());
        match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, props)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(RabbitError::new(
                format!("cannot connect to {}: {e}", self.shown()),
                &e,
            )),
            Err(_) => Err(RabbitError {
                message: format!(
                    "cannot connect to {}: no answer within {} s{}",
                    self.shown(),
                    CONNECT_TIMEOUT.as_secs(),
                    if tls { " (TLS)" } else { "" }
                ),
                permanent: false,
            }),
        }
    }
}

/// A channel on a new connection.
pub(crate) async fn open_channel(
    broker: Broker<'_>,
    default_name: &str,
) -> Result<(Connection, Channel), RabbitError> {
    let conn = broker.connect(default_name).await?;
    let channel = conn.create_channel().await.map_err(|e| {
        RabbitError::new(
            format!("{}: cannot open a channel: {e}", broker.shown()),
            &e,
        )
    })?;
    Ok((conn, channel))
}

/// What `reach` checks exists.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Declared<'a> {
    Queue(&'a str),
    Exchange(&'a str),
}

/// `weir check --connect`: connects and declares the queue or exchange passively (which
/// creates nothing, and fails if it does not exist). What it reached, or why not.
pub(crate) async fn reach(
    broker: Broker<'_>,
    what: Declared<'_>,
    timeout: Duration,
) -> Result<String, String> {
    reach_checked(broker, what, timeout)
        .await
        .map_err(|e| e.message)
}

/// [`reach`], telling a refusal (no such queue, access refused) from an outage.
pub(crate) async fn reach_checked(
    broker: Broker<'_>,
    what: Declared<'_>,
    timeout: Duration,
) -> Result<String, RabbitError> {
    let work = async {
        let (conn, channel) = open_channel(broker, "weir check").await?;
        let passive = |e: lapin::Error, what: String| {
            let hint = if permanent(&e) {
                format!("{what} does not exist (or this user may not use it)")
            } else {
                what
            };
            RabbitError::new(format!("{} on {}: {e}", hint, broker.shown()), &e)
        };
        let reached = match what {
            Declared::Queue(q) => {
                let opts = lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                let queue = channel
                    .queue_declare(q.into(), opts, Default::default())
                    .await
                    .map_err(|e| passive(e, format!("queue `{q}`")))?;
                format!(
                    "queue `{q}` on {} ({} messages ready, {} consumers)",
                    broker.shown(),
                    queue.message_count(),
                    queue.consumer_count()
                )
            }
            Declared::Exchange("") => {
                format!("the default exchange on {}", broker.shown())
            }
            Declared::Exchange(x) => {
                let opts = lapin::options::ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                channel
                    .exchange_declare(
                        x.into(),
                        lapin::ExchangeKind::Direct,
                        opts,
                        Default::default(),
                    )
                    .await
                    .map_err(|e| passive(e, format!("exchange `{x}`")))?;
                format!("exchange `{x}` on {}", broker.shown())
            }
        };
        let _ = conn.close(200, "weir check done".into()).await;
        Ok::<_, RabbitError>(reached)
    };
    match tokio::time::timeout(timeout.max(CONNECT_TIMEOUT), work).await {
        Ok(r) => r,
        Err(_) => Err(RabbitError {
            message: format!("{}: no answer in time", broker.shown()),
            permanent: false,
        }),
    }
}

/// The pace of reconnecting: 0.2 s doubling to 10 s, with jitter (several weir processes of one
/// queue should not all come back at the same moment).
pub(crate) const RECONNECT: Backoff = Backoff {
    min: Duration::from_millis(200),
    max: Duration::from_secs(10),
    jitter: true,
};

/// An AMQP field-table value as JSON: numbers as numbers, strings as strings (bytes that are
/// not UTF-8 in base64, as `{"base64": ...}`), tables as objects, arrays as arrays, timestamps as
/// seconds since the epoch, decimals as numbers.
pub(crate) fn value_to_json(v: &lapin::types::AMQPValue) -> serde_json::Value {
    use lapin::types::AMQPValue as A;
    use serde_json::Value;
    match v {
        A::Boolean(b) => (*b).into(),
        A::ShortShortInt(n) => (*n).into(),
        A::ShortShortUInt(n) => (*n).into(),
        A::ShortInt(n) => (*n).into(),
        A::ShortUInt(n) => (*n).into(),
        A::LongInt(n) => (*n).into(),
        A::LongUInt(n) => (*n).into(),
        A::LongLongInt(n) => (*n).into(),
        A::Float(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
        }
        A::Double(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        A::DecimalValue(d) => {
            let v = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
        }
        A::ShortString(s) => s.as_str().into(),
        A::LongString(s) => crate::event::preview_bytes(s.as_bytes()),
        A::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        A::Timestamp(t) => (*t).into(),
        A::FieldTable(t) => table_to_json(t),
        A::ByteArray(b) => crate::event::preview_bytes(b.as_slice()),
        A::Void => Value::Null,
    }
}

/// A field table (message headers) as a JSON object.
pub(crate) fn table_to_json(t: &lapin::types::FieldTable) -> serde_json::Value {
    serde_json::Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), value_to_json(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("amqp://weir:s3cret@mq:5672/%2f"),
            "amqp://weir:***@mq:5672/%2f"
        );
        assert_eq!(redacted("amqp://weir@mq/v"), "amqp://weir@mq/v");
        assert_eq!(redacted("amqps://mq:5671"), "amqps://mq:5671");
        assert!(url_has_password("amqp://a:b@h/"));
        assert!(!url_has_password("amqp://a@h/x:y@z"));
    }

    #[test]
    fn urls_are_checked() {
        let b = |url| Broker {
            url,
            password: None,
            connection_name: None,
        };
        assert!(validate(b("amqp://guest@127.0.0.1:5672/%2f")).is_ok());
        assert_eq!(validate(b("http://x/")).unwrap_err().0, "url");
        assert_eq!(validate(b("not a url")).unwrap_err().0, "url");
        let secret = Secret::Env("P".into());
        let with = Broker {
            url: "amqp://u:p@h/",
            password: Some(&secret),
            connection_name: None,
        };
        assert_eq!(validate(with).unwrap_err().0, "password");
    }
}
