// Builds %NAME%.wasm from plugin.js against the weir:plugin WIT contract in wit/ (./build.sh).
// The `jco componentize` CLI is broken for componentize-js 0.23.0; the library call works.
import { componentize } from '@bytecodealliance/componentize-js';
import { rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const { component } = await componentize({
  sourcePath: here('./plugin.js'),
  witPath: here('./wit'),
  worldName: 'transform',
  // No HTTP: plugins get no network, and these features would import wasi:http.
  disableFeatures: ['http', 'fetch-event'],
});
// Write then rename, so an interrupted build never leaves a truncated file behind.
await writeFile(here('./%NAME%.wasm.tmp'), component);
await rename(here('./%NAME%.wasm.tmp'), here('./%NAME%.wasm'));
