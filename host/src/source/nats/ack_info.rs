//! What a JetStream message's acknowledgement subject says about its delivery:
//! `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<published ns>.<pending>`,
//! or the longer form with `<domain>.<account hash>.` before the stream and tokens after the
//! pending count (ADR-15). Read here rather than with async-nats's `Message::info`, which
//! builds a calendar date from the timestamp: that alone was a tenth of the source's work per
//! message, for a number weir only writes out again.

#[derive(Debug, PartialEq, Eq)]
pub(super) struct AckInfo<'a> {
    pub stream: &'a str,
    pub consumer: &'a str,
    pub delivered: i64,
    pub stream_seq: u64,
    pub consumer_seq: u64,
    /// When the message was published: nanoseconds since the Unix epoch.
    pub published_nanos: i64,
    pub pending: u64,
}

/// `None` for a subject that is not a JetStream acknowledgement subject.
pub(super) fn parse(reply: &str) -> Option<AckInfo<'_>> {
    let rest = reply.strip_prefix("$JS.ACK.")?;
    // The short form has 7 tokens, the long one 9 or more (more than 12 are not needed).
    let mut tokens = [""; 12];
    let mut n = 0;
    let mut start = 0;
    for (i, &b) in rest.as_bytes().iter().enumerate() {
        if b == b'.' {
            tokens[n] = &rest[start..i];
            n += 1;
            start = i + 1;
            if n == tokens.len() {
                break;
            }
        }
    }
    if n < tokens.len() {
        tokens[n] = &rest[start..];
        n += 1;
    }
    let t = match n {
        7 => &tokens[..7],
        n if n >= 9 => &tokens[2..9],
        _ => return None,
    };
    Some(AckInfo {
        stream: t[0],
        consumer: t[1],
        delivered: i64::try_from(number(t[2])?).ok()?,
        stream_seq: number(t[3])?,
        consumer_seq: number(t[4])?,
        published_nanos: i64::try_from(number(t[5])?).ok()?,
        pending: number(t[6])?,
    })
}

/// A token of decimal digits (`str::parse` handles signs and more, and costs more).
fn number(token: &str) -> Option<u64> {
    if token.is_empty() {
        return None;
    }
    token.bytes().try_fold(0u64, |n, b| {
        let digit = b.wrapping_sub(b'0');
        (digit < 10).then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: AckInfo<'static> = AckInfo {
        stream: "ORDERS",
        consumer: "weir",
        delivered: 2,
        stream_seq: 1041,
        consumer_seq: 77,
        published_nanos: 1_765_000_000_123_456_789,
        pending: 5,
    };

    #[test]
    fn both_forms_are_read() {
        let short = "$JS.ACK.ORDERS.weir.2.1041.77.1765000000123456789.5";
        assert_eq!(parse(short), Some(INFO));
        let long = "$JS.ACK._.HASH.ORDERS.weir.2.1041.77.1765000000123456789.5.tok";
        assert_eq!(parse(long), Some(INFO));
        let longest = "$JS.ACK.hub.HASH.ORDERS.weir.2.1041.77.1765000000123456789.5.a.b.c.d";
        assert_eq!(parse(longest), Some(INFO));
    }

    #[test]
    fn other_subjects_are_not() {
        for s in [
            "",
            "_INBOX.abc.1",
            "$JS.ACK.ORDERS.weir.2.1041.77.1765000000123456789",
            "$JS.ACK.a.b.ORDERS.weir.2.1041.77.1765000000123456789",
            "$JS.ACK.ORDERS.weir.x.1041.77.1765000000123456789.5",
            "$JS.ACK.ORDERS.weir.2.1041.77.99999999999999999999999.5",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }
}
