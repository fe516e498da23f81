// `enrich`: adds computed fields to orders (weir example plugin in JavaScript).
//
// For an event `{"detail": {"amount": 131.5, "items": [{"qty": 4}, {"qty": 1}], ...}}` it adds
// `detail.itemCount` (sum of quantities), `detail.lineCount` and `detail.size` ("large" when
// amount >= config.large_from, default 100, else "small"). Events that are not JSON objects with
// a `detail` object pass through unchanged.
import { log } from 'weir:plugin/host@0.2.0';

let largeFrom = 100;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

// `result<_, string>`: throwing makes the `err` the pipeline shows.
export function init(config) {
  const cfg = JSON.parse(config);
  if (cfg.large_from !== undefined) {
    if (typeof cfg.large_from !== 'number') throw 'config.large_from must be a number';
    largeFrom = cfg.large_from;
  }
  log('debug', `enrich: large orders from ${largeFrom}`);
}

export function process(events) {
  const outputs = [];
  const failures = [];
  events.forEach((event, input) => {
    let value;
    try {
      value = JSON.parse(decoder.decode(event.payload));
    } catch {
      outputs.push({ input, payload: event.payload });
      return;
    }
    const detail = value && value.detail;
    if (typeof detail !== 'object' || detail === null) {
      outputs.push({ input, payload: event.payload });
      return;
    }
    const items = Array.isArray(detail.items) ? detail.items : [];
    detail.itemCount = items.reduce((n, item) => n + (Number(item.qty) || 0), 0);
    detail.lineCount = items.length;
    detail.size = Number(detail.amount) >= largeFrom ? 'large' : 'small';
    outputs.push({ input, payload: encoder.encode(JSON.stringify(value)) });
  });
  return { outputs, failures };
}
