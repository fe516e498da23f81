// Builds reshape.wasm from reshape.js against the weir:plugin WIT contract (`npm run build`, or
// scripts/build-plugins.sh, which also skips it when nothing changed).
// The `jco componentize` CLI is broken for componentize-js 0.23.0; the library call works.
import { componentize } from '@bytecodealliance/componentize-js';
import { rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const { component } = await componentize({
  sourcePath: here('./reshape.js'),
  // The folder holding plugin.wit (package weir:plugin@0.2.0).
  witPath: here('../../wit'),
  worldName: 'transform',
  // No HTTP: plugins get no network, and these features would import wasi:http.
  disableFeatures: ['http', 'fetch-event'],
});
// Write then rename, so an interrupted build never leaves a truncated reshape.wasm behind.
await writeFile(here('./reshape.wasm.tmp'), component);
await rename(here('./reshape.wasm.tmp'), here('./reshape.wasm'));
