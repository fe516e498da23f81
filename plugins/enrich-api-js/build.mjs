// Builds enrich-api.wasm from enrich-api.js against the weir:plugin WIT contract (`npm run
// build`, or scripts/build-plugins.sh, which also skips it when nothing changed).
// The `jco componentize` CLI is broken for componentize-js 0.23.0; the library call works.
import { componentize } from '@bytecodealliance/componentize-js';
import { rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const { component } = await componentize({
  sourcePath: here('./enrich-api.js'),
  // The folder holding plugin.wit (package weir:plugin@0.2.0): enrich-api.js imports its
  // `lookup` interface.
  witPath: here('../../wit'),
  worldName: 'transform',
  // The `http` feature stays on: it is `fetch`, over the standard wasi:http/outgoing-handler,
  // which weir answers under the plugin's `http` grant. `fetch-event` (serving HTTP) is not for a
  // plugin.
  disableFeatures: ['fetch-event'],
});
// Write then rename, so an interrupted build never leaves a truncated enrich-api.wasm behind.
await writeFile(here('./enrich-api.wasm.tmp'), component);
await rename(here('./enrich-api.wasm.tmp'), here('./enrich-api.wasm'));
