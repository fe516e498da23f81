//! The allow-list: whether a URL a plugin asks for lies under one of its grant's prefixes.
//!
//! Both sides are parsed the same way (WHATWG URL rules: lower-case scheme and host, default
//! port made explicit, `.` and `..` segments resolved, `%2e` read as a dot) and then compared
//! part by part, so that `http://h/rates/../admin` is `http://h/admin` before it is checked.
//! What a server might decode differently from us is refused outright: an encoded slash or
//! backslash in the path, and userinfo. Hosts are compared as written: `localhost` is not
//! `127.0.0.1`, because which address a name resolves to is not the plugin's to choose.

use url::Url;

/// One `allow` entry: scheme, host and port to match exactly, and a path to be under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    scheme: String,
    host: String,
    port: u16,
    /// Always starts with `/`; a request's path must equal it or continue it at a `/`.
    path: String,
    /// As the configuration wrote it, for messages.
    pub(crate) written: String,
}

/// As written in the grant, normalised: `https://host:443/path`.
impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}:{}{}",
            self.scheme, self.host, self.port, self.path
        )
    }
}

impl Prefix {
    /// Parses an `allow` entry; the error says what is wrong with it.
    pub(crate) fn parse(written: &str) -> Result<Prefix, String> {
        let url = Url::parse(written).map_err(|e| format!("{written:?} is not a URL: {e}"))?;
        let target = Target::of(&url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{written:?}: a prefix is a scheme, host, port and path, without `?` or `#`"
            ));
        }
        Ok(Prefix {
            scheme: target.scheme,
            host: target.host,
            port: target.port,
            path: target.path,
            written: written.to_owned(),
        })
    }

    /// Whether `target` is under this prefix.
    fn covers(&self, target: &Target) -> bool {
        if self.scheme != target.scheme || self.host != target.host || self.port != target.port {
            return false;
        }
        match target.path.strip_prefix(&self.path) {
            None => false,
            // At a segment boundary: `/rates` covers `/rates` and `/rates/x`, not `/ratesX`.
            Some(rest) => self.path.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        }
    }
}

/// The parts of a request's URL the allow-list compares.
#[derive(Debug)]
struct Target {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn of(url: &Url) -> Result<Target, String> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(format!("scheme {scheme:?} is not http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a URL with userinfo (`user@` or `user:password@`) is refused".into());
        }
        let Some(host) = url.host_str() else {
            return Err("the URL has no host".into());
        };
        let Some(port) = url.port_or_known_default() else {
            return Err("the URL has no port".into());
        };
        let path = url.path();
        let lower = path.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") {
            return Err("an encoded `/` or `\\` in the path is refused".into());
        }
        if lower
            .split('/')
            .any(|s| s == "%2e" || s == "%2e%2e" || s == ".." || s == ".")
        {
            return Err("a dot segment that survived normalisation is refused".into());
        }
        Ok(Target {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// Why a request's URL may not be sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a URL at all.
    Invalid(String),
    /// A URL, but outside the grant.
    Denied(String),
}

/// Checks `url` against `allow`, returning the parsed URL (fragment dropped: it is never sent).
pub(crate) fn check(allow: &[Prefix], url: &str) -> Result<Url, Refusal> {
    let mut parsed =
        Url::parse(url).map_err(|e| Refusal::Invalid(format!("not an absolute URL: {e}")))?;
    parsed.set_fragment(None);
    let target = Target::of(&parsed).map_err(Refusal::Denied)?;
    if allow.iter().any(|p| p.covers(&target)) {
        Ok(parsed)
    } else {
        Err(Refusal::Denied("not under an allowed prefix".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(prefixes: &[&str], url: &str) -> bool {
        let allow: Vec<Prefix> = prefixes
            .iter()
            .map(|p| Prefix::parse(p).expect("valid prefix"))
            .collect();
        check(&allow, url).is_ok()
    }

    #[test]
    fn under_the_prefix_at_a_segment_boundary() {
        let p = ["http://h:8080/rates/"];
        assert!(allowed(&p, "http://h:8080/rates/USD"));
        assert!(allowed(&p, "http://h:8080/rates/USD?at=now#frag"));
        assert!(allowed(&p, "HTTP://H:8080/rates/a/b"));
        assert!(!allowed(&p, "http://h:8080/ratesX"));
        assert!(!allowed(&p, "http://h:8080/rates"));
        let p = ["http://h/rates"];
        assert!(allowed(&p, "http://h/rates"));
        assert!(allowed(&p, "http://h:80/rates/x"));
        assert!(!allowed(&p, "http://h/ratesX"));
        assert!(!allowed(&p, "http://h/rate"));
    }

    #[test]
    fn scheme_host_and_port_must_be_equal() {
        let p = ["http://h:8080/rates/"];
        assert!(!allowed(&p, "https://h:8080/rates/USD"));
        assert!(!allowed(&p, "http://h:8081/rates/USD"));
        assert!(!allowed(&p, "http://h/rates/USD"));
        assert!(!allowed(&p, "http://g:8080/rates/USD"));
        assert!(!allowed(&p, "http://h.evil:8080/rates/USD"));
        assert!(!allowed(&["https://h/x/"], "http://h:443/x/y"));
        assert!(allowed(&["https://h/x/"], "https://h:443/x/y"));
        // As written: a name is not the address it resolves to.
        assert!(!allowed(&["http://localhost/"], "http://127.0.0.1/"));
        assert!(allowed(&["http://127.0.0.1/"], "http://127.1/"));
    }

    #[test]
    fn dot_segments_and_encodings_cannot_climb_out() {
        let p = ["http://h/rates/"];
        assert!(!allowed(&p, "http://h/rates/../admin"));
        assert!(!allowed(&p, "http://h/rates/%2e%2e/admin"));
        assert!(!allowed(&p, "http://h/rates/%2E%2E/admin"));
        assert!(!allowed(&p, "http://h/rates/.%2e/admin"));
        assert!(!allowed(&p, "http://h/rates/..%2fadmin"));
        assert!(!allowed(&p, "http://h/rates/%2F..%2Fadmin"));
        assert!(!allowed(&p, "http://h/rates/..%5cadmin"));
        assert!(!allowed(&p, "http://h/rates\\..\\admin"));
        assert!(allowed(&p, "http://h/rates/./USD"));
        assert!(allowed(&p, "http://h/other/../rates/USD"));
    }

    #[test]
    fn userinfo_and_other_schemes_are_refused() {
        let p = ["http://h/"];
        assert!(!allowed(&p, "http://user@h/"));
        assert!(!allowed(&p, "http://user:pw@h/"));
        assert!(!allowed(&["http://h/"], "ftp://h/"));
        assert!(matches!(check(&[], "not a url"), Err(Refusal::Invalid(_))));
    }

    #[test]
    fn bad_prefixes_are_explained() {
        assert!(Prefix::parse("h/rates").is_err());
        assert!(Prefix::parse("ftp://h/").is_err());
        assert!(Prefix::parse("http://u@h/").is_err());
        assert!(Prefix::parse("http://h/?q=1").is_err());
        assert!(Prefix::parse("http://h/a%2fb").is_err());
    }
}
