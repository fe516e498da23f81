"""`classify`: normalises and classifies orders (weir example plugin in Python).

For an event `{"detail": {"amount": 131.5, "currency": "eur", ...}}` it upper-cases
`detail.currency` and adds `detail.priority`: the name of the highest threshold in
`config.thresholds` that the amount reaches, else "low". The default config is
`{"thresholds": {"high": 1000, "medium": 100}}`.

An event that is not a JSON object with a `detail` object holding a numeric `amount` is a
failure: it goes to the dead-letter queue with the reason, and the other events go on.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import BatchResult, Event, Failure, Output

# (name, lower bound) pairs, highest bound first. Set by `init`, once per instance.
THRESHOLDS: list[tuple[str, float]] = [("high", 1000.0), ("medium", 100.0)]


def _is_number(v) -> bool:
    # bool is a subclass of int in Python, but `true` is not an amount.
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global THRESHOLDS
        # `result<_, string>`: raising Err(message) is the `err` the pipeline shows.
        try:
            cfg = json.loads(config)
        except ValueError as e:
            raise Err(f"config is not JSON: {e}")
        thresholds = cfg.get("thresholds")
        if thresholds is not None:
            if not isinstance(thresholds, dict) or not all(
                _is_number(v) for v in thresholds.values()
            ):
                raise Err("config.thresholds must map priority names to numbers")
            THRESHOLDS = sorted(
                ((name, float(v)) for name, v in thresholds.items()),
                key=lambda t: t[1],
                reverse=True,
            )
        host.log(host.Level.DEBUG, f"classify: thresholds {THRESHOLDS}")

    def process(self, events: list[Event]) -> BatchResult:
        outputs: list[Output] = []
        failures: list[Failure] = []
        for i, event in enumerate(events):
            try:
                payload = classify(event.payload)
            except ValueError as e:
                failures.append(Failure(input=i, message=str(e), retryable=False))
                continue
            # key=None keeps the event's key.
            outputs.append(Output(input=i, payload=payload, key=None))
        return BatchResult(outputs=outputs, failures=failures)


def classify(payload: bytes) -> bytes:
    try:
        order = json.loads(payload)
    except ValueError:
        raise ValueError("not JSON")
    detail = order.get("detail") if isinstance(order, dict) else None
    if not isinstance(detail, dict):
        raise ValueError("no `detail` object")
    amount = detail.get("amount")
    if not _is_number(amount):
        raise ValueError("no `detail.amount` number")
    if isinstance(detail.get("currency"), str):
        detail["currency"] = detail["currency"].upper()
    detail["priority"] = next(
        (name for name, low in THRESHOLDS if amount >= low), "low"
    )
    return json.dumps(order, separators=(",", ":")).encode()
