"""`%NAME%`: a weir plugin. weir calls `init` once per instance with the `[[plugin]] config`
table as JSON text, then `process` with batches of events; for each input, emit zero (drop),
one (map) or several (split) outputs naming its index, or a failure (dead-lettered with the
message). This one adds the configured `tag` to every JSON event as `tagged`, and fails the
events that are not JSON objects. The contract is wit/plugin.wit; componentize-py generates the
`wit_world` module from it when it builds (./build.sh).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import BatchResult, Event, Failure, Output

TAG = ""


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global TAG
        # `result<_, string>`: raising Err(message) refuses the plugin, with this message.
        try:
            tag = json.loads(config).get("tag")
        except ValueError as e:
            raise Err(f"config is not JSON: {e}")
        if not isinstance(tag, str):
            raise Err("config.tag is required, a string")
        TAG = tag

    def process(self, events: list[Event]) -> BatchResult:
        outputs: list[Output] = []
        failures: list[Failure] = []
        for i, event in enumerate(events):
            try:
                event_json = json.loads(event.payload)
            except ValueError as e:
                failures.append(Failure(input=i, message=f"not JSON: {e}", retryable=False))
                continue
            if not isinstance(event_json, dict):
                failures.append(Failure(input=i, message="not a JSON object", retryable=False))
                continue
            event_json["tagged"] = TAG
            payload = json.dumps(event_json, separators=(",", ":")).encode()
            # key=None keeps the event's key.
            outputs.append(Output(input=i, payload=payload, key=None))
        return BatchResult(outputs=outputs, failures=failures)
