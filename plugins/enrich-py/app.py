"""`enrich`: fills in orders from the systems that know (weir example plugin in Python).

For each event (a JSON object), with config `{"table": "customers", "customer_field":
"customer", "rates_url": "http://127.0.0.1:8080/rates/"}` (every key optional):

1. `table`: looks up `event[customer_field]` (default field `customer`) in that lookup table,
   with one `lookup.get_many` call for the whole batch, and adds `tier`: the row's `tier`, or
   `null` when there is no row.
2. `rates_url`: GETs `rates_url + event.currency` for every event of the batch with one
   `http.send_all` call (weir runs the requests concurrently), and adds `rate` and
   `amount_eur: amount * rate` from a `{"rate": number}` answer.

Failures: a lookup or request that failed for now (`unavailable`, `timeout`, a 429 or 5xx) is a
retryable failure, so the pipeline's `[retry]` policy tries the event again later; anything that
will not get better (`denied`, a 404, a body that is not `{"rate": number}`, a payload that is
not a JSON object) is permanent and dead-letters the event with the reason. The pipeline must
grant the table (`tables = ["customers"]`) and the URL prefix (`[plugin.http] allow`).
"""

import json
from dataclasses import dataclass

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import http, lookup
from wit_world.imports.types import BatchResult, Event, Failure, Output

# Set by `init`, once per instance.
TABLE: str | None = None
CUSTOMER_FIELD = "customer"
RATES_URL: str | None = None


@dataclass
class Failed:
    """Why an event failed, and whether trying it again later may succeed."""

    message: str
    retryable: bool


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global TABLE, CUSTOMER_FIELD, RATES_URL
        # `result<_, string>`: raising Err(message) is the `err` the pipeline shows.
        try:
            cfg = json.loads(config)
        except ValueError as e:
            raise Err(f"config is not JSON: {e}")

        def string(name: str) -> str | None:
            v = cfg.get(name)
            if v is not None and not isinstance(v, str):
                raise Err(f"config.{name} must be a string")
            return v

        TABLE = string("table")
        CUSTOMER_FIELD = string("customer_field") or "customer"
        RATES_URL = string("rates_url")

    def process(self, events: list[Event]) -> BatchResult:
        # One slot per event: the order (a dict) or why it failed.
        orders: list[dict | Failed] = [parse(e.payload) for e in events]
        if TABLE is not None:
            add_tiers(orders, TABLE)
        if RATES_URL is not None:
            add_rates(orders, RATES_URL)
        outputs: list[Output] = []
        failures: list[Failure] = []
        for i, order in enumerate(orders):
            if isinstance(order, Failed):
                failures.append(
                    Failure(input=i, message=order.message, retryable=order.retryable)
                )
            else:
                payload = json.dumps(order, separators=(",", ":")).encode()
                # key=None keeps the event's key.
                outputs.append(Output(input=i, payload=payload, key=None))
        return BatchResult(outputs=outputs, failures=failures)


def parse(payload: bytes) -> dict | Failed:
    try:
        value = json.loads(payload)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return Failed("payload is not a JSON object", retryable=False)
    return value


def text(order: dict, field: str) -> str | Failed:
    """The text of a string or number field, as a table key or a URL part."""
    v = order.get(field)
    if isinstance(v, str):
        return v
    # bool is a subclass of int in Python, but `true` is not an id.
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return json.dumps(v)
    return Failed(f"no `{field}` (a string or a number) in the event", retryable=False)


def add_tiers(orders: list[dict | Failed], table: str) -> None:
    """Step 1: one `get_many` for the keys of the whole batch."""
    asking: list[tuple[int, str]] = []
    for i, order in enumerate(orders):
        if isinstance(order, Failed):
            continue
        key = text(order, CUSTOMER_FIELD)
        if isinstance(key, Failed):
            orders[i] = key
        else:
            asking.append((i, key))
    if not asking:
        return
    answers = lookup.get_many(table, [key for _, key in asking])
    for (i, key), answer in zip(asking, answers):
        order = orders[i]
        assert isinstance(order, dict)
        if isinstance(answer, Ok):
            row = json.loads(answer.value) if answer.value is not None else None
            order["tier"] = row.get("tier") if isinstance(row, dict) else None
        elif isinstance(answer.value, lookup.LookupError_Unavailable):
            orders[i] = Failed(
                f"lookup of {json.dumps(key)} in {table} unavailable: {answer.value.value}",
                retryable=True,
            )
        else:
            orders[i] = Failed(
                f"lookup of {json.dumps(key)} in {table} denied: {answer.value.value}",
                retryable=False,
            )


# The `http-error` cases that a retry may cure.
TRANSIENT = (http.HttpError_Timeout, http.HttpError_Unavailable)
HTTP_ERROR_KINDS = {
    http.HttpError_Denied: "denied",
    http.HttpError_Invalid: "invalid",
    http.HttpError_TooLarge: "too-large",
    http.HttpError_Timeout: "timeout",
    http.HttpError_Unavailable: "unavailable",
}


def add_rates(orders: list[dict | Failed], rates_url: str) -> None:
    """Step 2: every GET of the batch in one `send_all`, which weir runs concurrently."""
    asking: list[tuple[int, str, float]] = []
    for i, order in enumerate(orders):
        if isinstance(order, Failed):
            continue
        currency = text(order, "currency")
        amount = order.get("amount")
        if isinstance(currency, Failed):
            orders[i] = currency
        elif not isinstance(amount, (int, float)) or isinstance(amount, bool):
            orders[i] = Failed("no `amount` number in the event", retryable=False)
        else:
            asking.append((i, currency, amount))
    if not asking:
        return
    requests = [
        http.Request(method="GET", url=rates_url + currency, headers=[], body=b"")
        for _, currency, _ in asking
    ]
    answers = http.send_all(requests)
    for (i, currency, amount), request, answer in zip(asking, requests, answers):
        rate = read_rate(currency, request.url, answer)
        if isinstance(rate, Failed):
            orders[i] = rate
        else:
            order = orders[i]
            assert isinstance(order, dict)
            order["rate"] = number(rate)
            order["amount_eur"] = number(amount * rate)


def number(x: float) -> float | int:
    """A number as JavaScript writes it (and the other examples, so that all three emit the same
    JSON): a whole one without a fraction (`3`, not `3.0`)."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 9e15:
        return int(x)
    return x


def read_rate(currency: str, url: str, answer) -> float | Failed:
    """The rate from a 2xx `{"rate": number}` answer, or why there is none."""

    def fail(why: str, retryable: bool) -> Failed:
        # The URL once: weir's own error messages may name it already.
        where = "" if url in why else f" (GET {url})"
        return Failed(f"no rate for {currency}: {why}{where}", retryable)

    if isinstance(answer, Err):
        error = answer.value
        kind = HTTP_ERROR_KINDS.get(type(error), "error")
        return fail(f"{kind}: {error.value}", isinstance(error, TRANSIENT))
    status = answer.value.status
    if 200 <= status < 300:
        try:
            rate = json.loads(answer.value.body).get("rate")
        except (ValueError, AttributeError):
            rate = None
        if not isinstance(rate, (int, float)) or isinstance(rate, bool):
            return fail(f'{status} without a {{"rate": number}} body', False)
        return rate
    return fail(str(status), status == 429 or status >= 500)
