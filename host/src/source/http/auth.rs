//! Who may post: bearer tokens, or an HMAC signature of the body (GitHub's
//! `X-Hub-Signature-256`, or any header, algorithm and encoding, optionally over a timestamp
//! header too, against replays). Every comparison takes the same time whatever the bytes, and a
//! refusal says nothing about why (401 with an empty body).

use crate::config::component::KeyError;
use crate::http_client::Secret;
use aws_lc_rs::hmac;
use serde::Deserialize;
use schemars::JsonSchema;

/// `[source.auth]` as written: one table for every type, so that a mistake is named at its key.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HttpSourceAuth")]
pub(crate) struct AuthTable {
    #[serde(rename = "type")]
    kind: AuthKind,
    /// `bearer`: the accepted tokens (several, so that one can be rotated without downtime).
    #[serde(default)]
    tokens: Option<Vec<Secret>>,
    /// `hmac`: `github` sets header, algorithm, prefix and encoding as GitHub signs webhooks.
    #[serde(default)]
    preset: Option<Preset>,
    #[serde(default)]
    secret: Option<Secret>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    algorithm: Option<Algorithm>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    encoding: Option<Encoding>,
    /// A header holding the Unix time (seconds) the sender signed at: the signed content is then
    /// `timestamp + "." + body`, and requests older or newer than `tolerance_s` are refused.
    #[serde(default)]
    timestamp_header: Option<String>,
    #[serde(default)]
    tolerance_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "HttpSourceAuthType")]
enum AuthKind {
    Bearer,
    Hmac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Preset {
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Algorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "SignatureEncoding")]
enum Encoding {
    Hex,
    Base64,
}

/// The default replay window with a timestamp header.
const DEFAULT_TOLERANCE_S: u64 = 300;

impl AuthTable {
    /// Each type's keys present, no other type's.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        let bearer = self.kind == AuthKind::Bearer;
        let hmac_keys: [(&'static str, bool); 8] = [
            ("auth.preset", self.preset.is_some()),
            ("auth.secret", self.secret.is_some()),
            ("auth.header", self.header.is_some()),
            ("auth.algorithm", self.algorithm.is_some()),
            ("auth.prefix", self.prefix.is_some()),
            ("auth.encoding", self.encoding.is_some()),
            ("auth.timestamp_header", self.timestamp_header.is_some()),
            ("auth.tolerance_s", self.tolerance_s.is_some()),
        ];
        if bearer {
            if let Some(&(key, _)) = hmac_keys.iter().find(|(_, given)| *given) {
                return Err((key, "not a key of `type = \"bearer\"` auth".into()));
            }
            match &self.tokens {
                None => return Err(("auth", "missing required key `tokens`".into())),
                Some(t) if t.is_empty() => {
                    return Err(("auth.tokens", "must list at least one token".into()));
                }
                Some(_) => {}
            }
            return Ok(());
        }
        if self.tokens.is_some() {
            return Err(("auth.tokens", "not a key of `type = \"hmac\"` auth".into()));
        }
        if self.secret.is_none() {
            return Err(("auth", "missing required key `secret`".into()));
        }
        if self.preset.is_none() && self.header.is_none() {
            return Err((
                "auth",
                "missing required key `header` (or `preset = \"github\"`)".into(),
            ));
        }
        for (key, value) in [
            ("auth.header", &self.header),
            ("auth.timestamp_header", &self.timestamp_header),
        ] {
            if let Some(h) = value
                && http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).is_err()
            {
                return Err((key, format!("{h:?} is not a header name")));
            }
        }
        if self.tolerance_s.is_some() && self.timestamp_header.is_none() {
            return Err((
                "auth.tolerance_s",
                "applies only with `timestamp_header`".into(),
            ));
        }
        if self.tolerance_s == Some(0) {
            return Err(("auth.tolerance_s", "must be at least 1".into()));
        }
        Ok(())
    }

    /// Reads the secrets: what checks requests, or the key whose secret cannot be read.
    pub(super) fn verifier(&self) -> Result<Verifier, KeyError> {
        let read = |key: &'static str, s: &Secret| {
            s.read().map_err(|e| -> KeyError { (key, e.into()) })
        };
        match self.kind {
            AuthKind::Bearer => {
                let tokens = self
                    .tokens
                    .iter()
                    .flatten()
                    .map(|t| read("auth.tokens", t).map(String::into_bytes))
                    .collect::<Result<Vec<_>, _>>()?;
                if tokens.iter().any(Vec::is_empty) {
                    return Err(("auth.tokens", "a token is empty".into()));
                }
                Ok(Verifier::Bearer(tokens))
            }
            AuthKind::Hmac => {
                let github = self.preset == Some(Preset::Github);
                let secret = match &self.secret {
                    Some(s) => read("auth.secret", s)?,
                    None => return Err(("auth", "missing required key `secret`".into())),
                };
                if secret.is_empty() {
                    return Err(("auth.secret", "the secret is empty".into()));
                }
                let algorithm = self.algorithm.unwrap_or(Algorithm::Sha256);
                let header = self
                    .header
                    .clone()
                    .unwrap_or_else(|| "x-hub-signature-256".into())
                    .to_ascii_lowercase();
                let prefix = self
                    .prefix
                    .clone()
                    .unwrap_or_else(|| if github { "sha256=".into() } else { String::new() });
                Ok(Verifier::Hmac(Box::new(HmacCheck {
                    key: hmac::Key::new(algorithm.aws(), secret.as_bytes()),
                    header,
                    prefix,
                    encoding: self.encoding.unwrap_or(Encoding::Hex),
                    timestamp: self.timestamp_header.as_ref().map(|h| {
                        (
                            h.to_ascii_lowercase(),
                            self.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S),
                        )
                    }),
                })))
            }
        }
    }
}

impl Algorithm {
    fn aws(self) -> hmac::Algorithm {
        match self {
            Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::Sha256 => hmac::HMAC_SHA256,
            Algorithm::Sha384 => hmac::HMAC_SHA384,
            Algorithm::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// Checks requests. Holds secret values: never printed.
pub(crate) enum Verifier {
    Bearer(Vec<Vec<u8>>),
    Hmac(Box<HmacCheck>),
}

pub(crate) struct HmacCheck {
    key: hmac::Key,
    header: String,
    prefix: String,
    encoding: Encoding,
    /// The timestamp header and the tolerance in seconds.
    timestamp: Option<(String, u64)>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verifier::Bearer(_) => "Verifier::Bearer",
            Verifier::Hmac(_) => "Verifier::Hmac",
        })
    }
}

impl Verifier {
    /// Whether the check needs the body (signatures) or only the headers (tokens).
    pub(super) fn needs_body(&self) -> bool {
        matches!(self, Verifier::Hmac(_))
    }

    /// Whether the headers carry a valid token (checked before the body is read).
    pub(super) fn headers_ok(&self, headers: &http::HeaderMap) -> bool {
        match self {
            Verifier::Bearer(tokens) => {
                // The scheme's name is case-insensitive (RFC 9110).
                let Some(given) = headers
                    .get(http::header::AUTHORIZATION)
                    .map(|v| v.as_bytes())
                    .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
                    .map(|v| &v[7..])
                else {
                    return false;
                };
                // Every token is compared, so that the time taken does not tell which matched.
                tokens
                    .iter()
                    .fold(false, |ok, t| same_bytes(t, given) | ok)
            }
            Verifier::Hmac(_) => true,
        }
    }

    /// Whether the body's signature is right (and its timestamp recent), at `now_s` (Unix
    /// seconds).
    pub(super) fn body_ok(&self, headers: &http::HeaderMap, body: &[u8], now_s: u64) -> bool {
        let Verifier::Hmac(c) = self else {
            return true;
        };
        let Some(given) = headers
            .get(c.header.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix(c.prefix.as_str()))
        else {
            return false;
        };
        let Some(given) = decode(c.encoding, given) else {
            return false;
        };
        let mut ctx = hmac::Context::with_key(&c.key);
        if let Some((name, tolerance)) = &c.timestamp {
            let Some(ts) = headers.get(name.as_str()).map(|v| v.as_bytes()) else {
                return false;
            };
            let Some(at) = std::str::from_utf8(ts)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
            else {
                return false;
            };
            if at.abs_diff(now_s) > *tolerance {
                return false;
            }
            ctx.update(ts);
            ctx.update(b".");
        }
        ctx.update(body);
        same_bytes(ctx.sign().as_ref(), &given)
    }
}

fn decode(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    match encoding {
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        Encoding::Hex => {
            let b = text.as_bytes();
            if !b.len().is_multiple_of(2) {
                return None;
            }
            b.chunks(2)
                .map(|p| {
                    let hi = (p[0] as char).to_digit(16)?;
                    let lo = (p[1] as char).to_digit(16)?;
                    Some((hi * 16 + lo) as u8)
                })
                .collect()
        }
    }
}

/// Compares in a time that depends on the lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> AuthTable {
        toml::from_str(text).expect("parses")
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn github_signatures_are_checked() {
        // SAFETY: tests of this module set only their own variable.
        unsafe { std::env::set_var("WEIR_HTTP_AUTH_TEST_GH", "It's a Secret to Everybody") };
        let v = table("type = \"hmac\"\npreset = \"github\"\nsecret = { env = \"WEIR_HTTP_AUTH_TEST_GH\" }")
            .verifier()
            .expect("secret set");
        // GitHub's documented example.
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
                .parse()
                .unwrap(),
        );
        assert!(v.body_ok(&h, b"Hello, World!", 0));
        assert!(!v.body_ok(&h, b"Hello, World?", 0));
        assert!(!v.body_ok(&http::HeaderMap::new(), b"Hello, World!", 0));
    }

    #[test]
    fn timestamps_bound_replays() {
        unsafe { std::env::set_var("WEIR_HTTP_AUTH_TEST_TS", "k") };
        let v = table(
            "type = \"hmac\"\nheader = \"X-Sig\"\nsecret = { env = \"WEIR_HTTP_AUTH_TEST_TS\" }\ntimestamp_header = \"X-Ts\"\ntolerance_s = 60",
        )
        .verifier()
        .unwrap();
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let sig = hex(hmac::sign(&key, b"1000.body").as_ref());
        let mut h = http::HeaderMap::new();
        h.insert("x-sig", sig.parse().unwrap());
        h.insert("x-ts", "1000".parse().unwrap());
        assert!(v.body_ok(&h, b"body", 1030));
        assert!(!v.body_ok(&h, b"body", 1061), "too old");
        assert!(!v.body_ok(&h, b"other", 1030));
    }

    #[test]
    fn bearer_tokens() {
        unsafe { std::env::set_var("WEIR_HTTP_AUTH_TEST_TOKEN", "t0ken") };
        let v = table("type = \"bearer\"\ntokens = [{ env = \"WEIR_HTTP_AUTH_TEST_TOKEN\" }]")
            .verifier()
            .unwrap();
        let mut h = http::HeaderMap::new();
        assert!(!v.headers_ok(&h));
        h.insert("authorization", "Bearer t0ken".parse().unwrap());
        assert!(v.headers_ok(&h));
        h.insert("authorization", "bearer t0ken".parse().unwrap());
        assert!(v.headers_ok(&h));
        h.insert("authorization", "Bearer t0ke".parse().unwrap());
        assert!(!v.headers_ok(&h));
    }

    #[test]
    fn keys_of_another_type_are_named() {
        let t = table("type = \"bearer\"\ntokens = []\nsecret = { env = \"X\" }");
        assert_eq!(t.check().unwrap_err().0, "auth.secret");
        let t = table("type = \"hmac\"\nsecret = { env = \"X\" }");
        assert!(t.check().unwrap_err().1.contains("header"));
    }
}
