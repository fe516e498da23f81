//! OAuth 2 client credentials: a bearer token from `token_url`, shared by every request of the
//! sink and kept until shortly before it expires. One fetch at a time: requests that need a
//! token while one is being fetched wait for it. A request answered 401 asks for a new token
//! once ([`Tokens::renew`]): if another request already renewed the token it was sent with,
//! that one is used.

use super::answer::{read_limited, status_error};
use crate::http_client::{HttpsClient, error_chain};
use crate::sink::SinkError;
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// At most this much of a token response is read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

pub(super) struct Tokens {
    token_url: String,
    uri: http::Uri,
    /// The form posted: grant_type, client_id, client_secret, scope and audience if set.
    form: Bytes,
    client: HttpsClient,
    timeout: Duration,
    current: Mutex<Option<Token>>,
}

/// A token and when to stop using it.
#[derive(Clone)]
pub(super) struct Token {
    /// `Bearer ...`, marked sensitive.
    pub(super) header: HeaderValue,
    /// Which fetch it came from: a 401 renews only the token it was sent with.
    pub(super) generation: u64,
    until: Option<Instant>,
}

impl Tokens {
    pub(super) fn new(
        token_url: &str,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
        audience: Option<&str>,
        client: HttpsClient,
        timeout: Duration,
    ) -> Result<Tokens, SinkError> {
        let uri = http::Uri::try_from(token_url).map_err(|e| {
            SinkError::permanent(format!("auth.token_url {token_url:?}: {e}"))
        })?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret);
        if let Some(scope) = scope {
            form.append_pair("scope", scope);
        }
        if let Some(audience) = audience {
            form.append_pair("audience", audience);
        }
        Ok(Tokens {
            token_url: token_url.to_owned(),
            uri,
            form: Bytes::from(form.finish()),
            client,
            timeout,
            current: Mutex::new(None),
        })
    }

    /// The current token, fetched if there is none or it is about to expire.
    pub(super) async fn get(&self) -> Result<Token, SinkError> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref()
            && t.until.is_none_or(|until| Instant::now() < until)
        {
            return Ok(t.clone());
        }
        let generation = current.as_ref().map_or(1, |t| t.generation + 1);
        let token = self.fetch(generation).await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// A new token after the API refused `stale` (401), unless another request renewed it
    /// already.
    pub(super) async fn renew(&self, stale: &Token) -> Result<Token, SinkError> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref()
            && t.generation != stale.generation
        {
            return Ok(t.clone());
        }
        let token = self.fetch(stale.generation + 1).await?;
        *current = Some(token.clone());
        Ok(token)
    }

    async fn fetch(&self, generation: u64) -> Result<Token, SinkError> {
        let failed = |why: String| {
            SinkError::retryable(format!("oauth2 token from {}: {why}", self.token_url))
        };
        let mut request = http::Request::new(Full::new(self.form.clone()));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri.clone();
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        request
            .headers_mut()
            .insert(http::header::ACCEPT, HeaderValue::from_static("application/json"));
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let (bytes, _) = read_limited(body, MAX_TOKEN_RESPONSE)
                .await
                .map_err(|e| failed(error_chain(&e)))?;
            if !parts.status.is_success() {
                // Retryable whatever the status, and no sooner than its Retry-After.
                let e = status_error(parts.status, &parts.headers, &bytes, "POST", &self.token_url);
                let mut error = failed(e.message);
                error.retry_after = e.retry_after;
                return Err(error);
            }
            Ok(bytes)
        };
        let bytes = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                failed(format!(
                    "no answer within timeout_ms {}",
                    self.timeout.as_millis()
                ))
            })??;
        parse(&bytes, generation).map_err(failed)
    }
}

/// A token response: `access_token` and, if it says, `expires_in` seconds.
fn parse(body: &[u8], generation: u64) -> Result<Token, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: String,
        #[serde(default)]
        expires_in: Option<f64>,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("not a token response with access_token ({e})"))?;
    let mut header = HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
        .map_err(|_| "the access_token is not a valid header value".to_owned())?;
    header.set_sensitive(true);
    let until = answer
        .expires_in
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Instant::now() + lifetime(Duration::from_secs_f64(s.min(1e9))));
    Ok(Token {
        header,
        generation,
        until,
    })
}

/// How long a token that expires in `expires_in` is used: until 30 s or a tenth of its life
/// before it expires, whichever is earlier to the end (the smaller margin), so that a request
/// never carries a token that expires on the way.
fn lifetime(expires_in: Duration) -> Duration {
    let margin = (expires_in / 10).min(Duration::from_secs(30));
    expires_in - margin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_used_until_shortly_before_they_expire() {
        assert_eq!(lifetime(Duration::from_secs(3600)), Duration::from_secs(3570));
        assert_eq!(lifetime(Duration::from_secs(100)), Duration::from_secs(90));
        assert_eq!(lifetime(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_token_response_is_read_and_its_token_hidden() {
        let t = parse(br#"{"access_token":"abc","expires_in":60,"token_type":"Bearer"}"#, 3)
            .expect("a token");
        assert_eq!(t.header, "Bearer abc");
        assert!(t.header.is_sensitive());
        assert_eq!(t.generation, 3);
        assert!(t.until.is_some());
        let e = parse(br#"{"error":"invalid_client"}"#, 1).err().expect("no token");
        assert!(e.contains("access_token"), "{e}");
    }
}
