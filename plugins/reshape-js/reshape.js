// `reshape`: the whole-pipeline benchmark's transform (scripts/bench-w1.sh) in JavaScript, the
// same as plugins/reshape (Rust): each order event becomes 7 fields, `id`, `type` (its
// `detail-type`), `customer`, `dept` (upper-cased), `amount`, `email` ("***") and `seq`. An event
// that is not such an order fails (to the dead-letter queue).
const decoder = new TextDecoder();
const encoder = new TextEncoder();

export function init(_config) {}

export function process(events) {
  const outputs = [];
  const failures = [];
  events.forEach((event, input) => {
    try {
      outputs.push({ input, payload: encoder.encode(reshape(decoder.decode(event.payload))) });
    } catch (e) {
      // Bad data will not get better on a retry.
      failures.push({ input, message: String(e), retryable: false });
    }
  });
  return { outputs, failures };
}

function reshape(text) {
  let event;
  try {
    event = JSON.parse(text);
  } catch (e) {
    throw `not JSON: ${e.message}`;
  }
  // `?.` because `null` is JSON too; Rust's `Value::get` is None for any non-object.
  const detail = event?.detail;
  if (detail === undefined) throw 'no detail';
  const dept = detail?.department;
  if (typeof dept !== 'string') throw 'no detail.department';
  // A missing field is `null`, as in the Rust plugin: JSON.stringify would drop an undefined one.
  // Insertion order is the output's key order.
  return JSON.stringify({
    id: event.id ?? null,
    type: event['detail-type'] ?? null,
    customer: detail.customer ?? null,
    dept: dept.toUpperCase(),
    amount: detail.amount ?? null,
    email: '***',
    seq: detail.seq ?? null,
  });
}
