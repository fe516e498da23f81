// `enrich-api`: fills in orders from the systems that know (weir example plugin in JavaScript).
//
// For each event (a JSON object), with config `{"table": "customers", "customer_field":
// "customer", "rates_url": "http://127.0.0.1:8080/rates/"}` (every key optional):
// 1. `table`: looks up `event[customer_field]` (default field `customer`) in that lookup table,
//    with one `getMany` call for the whole batch, and adds `tier`: the row's `tier`, or `null`
//    when there is no row.
// 2. `rates_url`: `fetch`es `rates_url + event.currency` for every event of the batch, all under
//    way at once (`Promise.all`), and adds `rate` and `amount_eur: amount * rate` from a
//    `{"rate": number}` answer.
//
// Failures: a lookup or request that failed for now (`unavailable`, a timeout, a 429 or 5xx) is
// a retryable failure, so the pipeline's `[retry]` policy tries the event again later; anything
// that will not get better (`denied`, a 404, a body that is not `{"rate": number}`, a payload
// that is not a JSON object) is permanent and dead-letters the event with the reason. The
// pipeline must grant the table (`tables = ["customers"]`) and the URL prefix (`[plugin.http]
// allow`).
//
// `process` is async: componentize-js runs the event loop until its promise settles, so the
// component's `process` export stays the synchronous call weir makes. `fetch` goes out through
// the standard wasi:http, under the same grant as weir's `http` import (build.mjs keeps
// componentize-js's `http` feature on).
import { send } from 'weir:plugin/http@0.2.0';
import { getMany } from 'weir:plugin/lookup@0.2.0';

const config = { table: null, customerField: 'customer', ratesUrl: null };
const decoder = new TextDecoder();
const encoder = new TextEncoder();

// `result<_, string>`: throwing makes the `err` the pipeline shows.
export function init(text) {
  let cfg;
  try {
    cfg = JSON.parse(text);
  } catch (e) {
    throw `config is not JSON: ${e.message}`;
  }
  const string = (name) => {
    const v = cfg[name];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw `config.${name} must be a string`;
    return v;
  };
  config.table = string('table');
  config.customerField = string('customer_field') ?? 'customer';
  config.ratesUrl = string('rates_url');
}

// Why an event failed, and whether trying it again later may succeed.
class Failed {
  constructor(message, retryable) {
    this.message = message;
    this.retryable = retryable;
  }
}

// The text of a string or number field, as a table key or a URL part.
function text(order, field) {
  const v = order[field];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw new Failed(`no \`${field}\` (a string or a number) in the event`, false);
}

export async function process(events) {
  // One slot per event: the order (an object) or a Failed.
  const orders = events.map((event) => {
    try {
      const value = JSON.parse(decoder.decode(event.payload));
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value;
    } catch {}
    return new Failed('payload is not a JSON object', false);
  });
  if (config.table !== null) addTiers(orders);
  if (config.ratesUrl !== null) await addRates(orders);

  const outputs = [];
  const failures = [];
  orders.forEach((order, input) => {
    if (order instanceof Failed) {
      failures.push({ input, message: order.message, retryable: order.retryable });
    } else {
      outputs.push({ input, payload: encoder.encode(JSON.stringify(order)) });
    }
  });
  return { outputs, failures };
}

// Step 1: one `getMany` for the keys of the whole batch.
function addTiers(orders) {
  const asking = []; // [index, key]
  orders.forEach((order, i) => {
    if (order instanceof Failed) return;
    try {
      asking.push([i, text(order, config.customerField)]);
    } catch (failed) {
      orders[i] = failed;
    }
  });
  if (asking.length === 0) return;
  const answers = getMany(config.table, asking.map(([, key]) => key));
  asking.forEach(([i, key], n) => {
    const answer = answers[n];
    if (answer.tag === 'ok') {
      // `none` (no row) is `undefined`.
      const row = answer.val === undefined ? null : JSON.parse(answer.val);
      orders[i].tier = row !== null && row.tier !== undefined ? row.tier : null;
    } else {
      const { tag, val } = answer.val; // `denied` or `unavailable`
      orders[i] = new Failed(
        `lookup of ${JSON.stringify(key)} in ${config.table} ${tag}: ${val}`,
        tag === 'unavailable',
      );
    }
  });
}

// Step 2: every GET of the batch under way at once.
async function addRates(orders) {
  const asking = []; // [index, currency, amount]
  orders.forEach((order, i) => {
    if (order instanceof Failed) return;
    try {
      const currency = text(order, 'currency');
      if (typeof order.amount !== 'number') throw new Failed('no `amount` number in the event', false);
      asking.push([i, currency, order.amount]);
    } catch (failed) {
      orders[i] = failed;
    }
  });
  const answers = await Promise.all(asking.map(([, currency]) => rate(currency)));
  asking.forEach(([i, , amount], n) => {
    const answer = answers[n];
    if (answer instanceof Failed) {
      orders[i] = answer;
    } else {
      orders[i].rate = answer;
      orders[i].amount_eur = amount * answer;
    }
  });
}

// GET `rates_url + currency`: the rate from a 2xx `{"rate": number}` answer, or a Failed.
async function rate(currency) {
  const url = config.ratesUrl + currency;
  // The URL once: weir's own error messages may name it already.
  const fail = (why, retryable) =>
    new Failed(`no rate for ${currency}: ${why}${why.includes(url) ? '' : ` (GET ${url})`}`, retryable);
  let status, body;
  try {
    const response = await fetch(url);
    status = response.status;
    body = await response.text();
  } catch {
    // `fetch` rejects with a bare TypeError ("NetworkError when attempting to fetch resource")
    // whatever happened: outside the grant (permanent) or a server down (transient) look alike.
    // weir's own `http.send` says why: ask it once. A request outside the grant never leaves
    // weir, so this costs nothing there; elsewhere it is one more try, whose answer is used.
    try {
      const response = send({ method: 'GET', url, headers: [], body: new Uint8Array() });
      status = response.status;
      body = decoder.decode(response.body);
    } catch (e) {
      const { tag, val } = e.payload; // an `http-error`
      return fail(`${tag}: ${val}`, tag === 'timeout' || tag === 'unavailable');
    }
  }
  if (status >= 200 && status < 300) {
    let rate;
    try {
      rate = JSON.parse(body).rate;
    } catch {}
    if (typeof rate !== 'number') return fail(`${status} without a {"rate": number} body`, false);
    return rate;
  }
  return fail(String(status), status === 429 || status >= 500);
}
