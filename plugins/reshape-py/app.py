"""`reshape`: the whole-pipeline benchmark's transform (scripts/bench-w1.sh) in Python, the same
as plugins/reshape (Rust): each order event becomes 7 fields, `id`, `type` (its `detail-type`),
`customer`, `dept` (upper-cased), `amount`, `email` ("***") and `seq`. An event that is not such
an order fails (to the dead-letter queue).
"""

import json

import wit_world
from wit_world.imports.types import BatchResult, Event, Failure, Output


def _reject_constant(name: str):
    # Python's json accepts NaN and Infinity, which are not JSON (serde_json rejects them).
    raise ValueError(f"{name} is not JSON")


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        pass

    def process(self, events: list[Event]) -> BatchResult:
        outputs: list[Output] = []
        failures: list[Failure] = []
        for i, event in enumerate(events):
            try:
                payload = reshape(event.payload)
            except ValueError as e:
                # Bad data will not get better on a retry.
                failures.append(Failure(input=i, message=str(e), retryable=False))
                continue
            # key=None keeps the event's key.
            outputs.append(Output(input=i, payload=payload, key=None))
        return BatchResult(outputs=outputs, failures=failures)


def reshape(payload: bytes) -> bytes:
    try:
        event = json.loads(payload, parse_constant=_reject_constant)
    except ValueError as e:
        raise ValueError(f"not JSON: {e}")
    if not isinstance(event, dict) or "detail" not in event:
        raise ValueError("no detail")
    detail = event["detail"]
    dept = detail.get("department") if isinstance(detail, dict) else None
    if not isinstance(dept, str):
        raise ValueError("no detail.department")
    # A missing field is null, as in the Rust plugin; dict order is the output's key order.
    shaped = {
        "id": event.get("id"),
        "type": event.get("detail-type"),
        "customer": detail.get("customer"),
        "dept": dept.upper(),
        "amount": detail.get("amount"),
        "email": "***",
        "seq": detail.get("seq"),
    }
    # Compact, and UTF-8 rather than \u escapes, like serde_json: the same bytes as the Rust
    # plugin's output. (A lone surrogate then fails to encode: serde_json refuses it too.)
    return json.dumps(shaped, separators=(",", ":"), ensure_ascii=False).encode()
