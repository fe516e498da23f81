// `%NAME%`: a weir plugin. weir calls `init` once per instance with the `[[plugin]] config`
// table as JSON text, then `process` with batches of events; for each input, emit zero (drop),
// one (map) or several (split) outputs naming its index, or a failure (dead-lettered with the
// message). This one adds the configured `tag` to every JSON event as `tagged`, and fails the
// events that are not JSON objects. The contract is wit/plugin.wit.
const decoder = new TextDecoder();
const encoder = new TextEncoder();
let tag = '';

// `result<_, string>`: a thrown string refuses the plugin, with this message.
export function init(config) {
  let parsed;
  try {
    parsed = JSON.parse(config);
  } catch (e) {
    throw `config is not JSON: ${e.message}`;
  }
  if (typeof parsed?.tag !== 'string') throw 'config.tag is required, a string';
  tag = parsed.tag;
}

export function process(events) {
  const outputs = [];
  const failures = [];
  events.forEach((event, input) => {
    let value;
    try {
      value = JSON.parse(decoder.decode(event.payload));
    } catch (e) {
      failures.push({ input, message: `not JSON: ${e.message}`, retryable: false });
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      failures.push({ input, message: 'not a JSON object', retryable: false });
      return;
    }
    value.tagged = tag;
    // No `key`: the event keeps its own.
    outputs.push({ input, payload: encoder.encode(JSON.stringify(value)) });
  });
  return { outputs, failures };
}
