//! Step 2: the exchange rate of the event's currency, from an HTTP API, through the standard
//! wasi:http with `wstd`: every GET of the batch is under way at once (futures joined), so a
//! batch waits about as long as its slowest request, not the sum of them.

use crate::order::{Failed, Order};
use crate::{AMOUNT, CURRENCY};
use serde_json::Value;
use wstd::http::{Body, Client, ErrorCode, Request};

pub(crate) fn add_rates(rates_url: &str, orders: &mut [Result<Order, Failed>]) {
    let mut asking = Vec::new();
    for (i, slot) in orders.iter_mut().enumerate() {
        let Ok(order) = slot else { continue };
        let amount = order.number(AMOUNT);
        match (order.text(CURRENCY, "currency"), amount) {
            (Ok(currency), Some(amount)) => asking.push((i, currency.into_owned(), amount)),
            (Err(failed), _) => *slot = Err(failed),
            (Ok(_), None) => {
                *slot = Err(Failed::permanent("no `amount` number in the event".into()));
            }
        }
    }
    if asking.is_empty() {
        return;
    }
    let client = Client::new();
    let answers = wstd::runtime::block_on(futures::future::join_all(
        asking
            .iter()
            .map(|(_, currency, _)| rate(&client, rates_url, currency)),
    ));
    for ((i, _, amount), answer) in asking.into_iter().zip(answers) {
        let Ok(order) = &mut orders[i] else { continue };
        match answer {
            Ok(rate) => {
                order.add("rate", &number(rate).to_string());
                order.add("amount_eur", &number(amount * rate).to_string());
            }
            Err(failed) => orders[i] = Err(failed),
        }
    }
}

/// A number as JavaScript writes it (and the other examples, so that all three emit the same
/// JSON): a whole one without a fraction (`3`, not `3.0`).
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

/// GET `rates_url + currency` and read `{"rate": number}` from a 2xx answer.
async fn rate(client: &Client, rates_url: &str, currency: &str) -> Result<f64, Failed> {
    let url = format!("{rates_url}{currency}");
    // The URL once: weir's own error messages may name it already.
    let fail = |retryable: bool, why: String| Failed {
        message: if why.contains(&url) {
            format!("no rate for {currency}: {why}")
        } else {
            format!("no rate for {currency}: {why} (GET {url})")
        },
        retryable,
    };
    let request = Request::get(&url)
        .body(Body::empty())
        .map_err(|e| fail(false, format!("invalid: {e}")))?;
    let mut response = client
        .send(request)
        .await
        .map_err(|e| sent_wrong(e, &fail))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .contents()
        .await
        .map_err(|e| sent_wrong(e, &fail))?;
    match status {
        200..=299 => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("rate").and_then(Value::as_f64))
            .ok_or_else(|| {
                fail(
                    false,
                    format!("{status} without a {{\"rate\": number}} body"),
                )
            }),
        429 | 500..=599 => Err(fail(true, status.to_string())),
        _ => Err(fail(false, status.to_string())),
    }
}

/// A request without a response, named by the kind of the `http` interface's errors (the words
/// the other languages' examples use): transient unless weir refused it (outside the grant, too
/// large) or it could never be sent as it is.
fn sent_wrong(error: wstd::http::Error, fail: &impl Fn(bool, String) -> Failed) -> Failed {
    let (kind, retryable) = match error.downcast_ref::<ErrorCode>() {
        Some(ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited) => {
            ("denied", false)
        }
        Some(
            ErrorCode::HttpResponseBodySize(_)
            | ErrorCode::HttpResponseHeaderSectionSize(_)
            | ErrorCode::HttpResponseHeaderSize(_),
        ) => ("too-large", false),
        Some(
            ErrorCode::HttpRequestMethodInvalid
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpRequestUriTooLong
            | ErrorCode::ConfigurationError
            // weir reports an `invalid` request (a bad header, URL or method) as an internal error.
            | ErrorCode::InternalError(_),
        ) => ("invalid", false),
        Some(
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout
            | ErrorCode::DnsTimeout,
        ) => ("timeout", true),
        Some(_) => ("unavailable", true),
        // Not a wasi:http error: the request could not be built (a header, a URL).
        None => ("invalid", false),
    };
    fail(retryable, format!("{kind}: {error:#}"))
}
