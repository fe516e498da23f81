//! The request URL: the `url` template rendered with each inserted value percent-encoded, as a
//! path segment before the `?` and as a query component after it, so that an id holding `/`,
//! `?`, `#`, `&` or a space cannot change the URL's shape; the template's own text is kept as
//! written. The result must be an absolute `http` or `https` URL.

use crate::event::Envelope;
use crate::template::Template;
use std::borrow::Cow;
use std::fmt::Write;

/// The URL for `event`, or why it is not one (the event fails for good: it would fail the same
/// way every time).
pub(super) fn render(
    url: &Template,
    event: &Envelope,
    pipeline: &str,
) -> Result<(http::Uri, String), String> {
    let text = url.render_escaped(event, pipeline, escape);
    match check(&text).and_then(|()| http::Uri::try_from(text.as_str()).map_err(|e| e.to_string()))
    {
        Ok(uri) => Ok((uri, text)),
        Err(why) => Err(format!("url template rendered an invalid URL {text:?}: {why}")),
    }
}

/// Whether `text` is an absolute http(s) URL with a host; why not.
pub(super) fn check(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL (use [sink.auth])".into());
    }
    Ok(())
}

/// Where in the URL a value lands, from the text rendered before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Before `scheme://`: the value gives the URL's start (or all of it), taken as it is and
    /// checked whole.
    Start,
    /// The host and port.
    Authority,
    Path,
    Query,
}

fn place(before: &str) -> Place {
    if before.contains(['?', '#']) {
        return Place::Query;
    }
    match before.find("://") {
        None => Place::Start,
        Some(i) if before[i + 3..].contains('/') => Place::Path,
        Some(_) => Place::Authority,
    }
}

/// A value inserted after `before`, encoded for where it lands (values never add a `/`, `?` or
/// `#` of their own: theirs are encoded).
fn escape<'v>(before: &str, value: &'v str) -> Cow<'v, str> {
    let place = place(before);
    let keep = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || match place {
                Place::Start => true,
                Place::Authority => matches!(b, b':' | b'[' | b']'),
                Place::Path => matches!(
                    b,
                    b':' | b'@' | b'!' | b'$' | b'\'' | b'(' | b')' | b'*' | b',' | b';' | b'=' | b'+'
                ),
                Place::Query => matches!(
                    b,
                    b':' | b'@' | b'!' | b'$' | b'\'' | b'(' | b')' | b'*' | b',' | b'/' | b'?'
                ),
            }
    };
    // A whole segment of dots would be read as "this" or "parent" directory.
    let dots = place == Place::Path && matches!(value, "." | "..");
    if !dots && value.bytes().all(keep) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if keep(b) && !(dots && b == b'.') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_for_where_they_land() {
        assert_eq!(escape("https://h/orders/", "a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(escape("https://h/orders/", "C-42_x.y~"), "C-42_x.y~");
        assert_eq!(escape("https://h/o?id=", "a&b=c+d/e?"), "a%26b%3Dc%2Bd/e?");
        assert_eq!(escape("https://h/o/", "ü"), "%C3%BC");
        assert_eq!(escape("https://h/o/", ".."), "%2E%2E");
        assert_eq!(escape("https://h/o?x=", ".."), "..");
        assert_eq!(escape("https://", "evil.com/x?y@z:8"), "evil.com%2Fx%3Fy%40z:8");
        assert_eq!(escape("", "https://h/a b"), "https://h/a b");
        assert_eq!(escape("https://h/o#", "a b"), "a%20b");
    }

    #[test]
    fn only_absolute_http_urls_pass() {
        assert_eq!(check("https://api.example.com/orders/1"), Ok(()));
        assert_eq!(check("http://127.0.0.1:8080/x?y=1"), Ok(()));
        assert!(check("/orders/1").unwrap_err().contains("relative URL"));
        assert!(check("ftp://h/x").unwrap_err().contains("scheme"));
        assert!(check("https://").is_err());
        assert!(check("https://u:p@h/x").unwrap_err().contains("credentials"));
    }
}
