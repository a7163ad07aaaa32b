// The Node side of the client-side evaluation benchmark (issue 4): the official Node server SDK
// (@launchdarkly/node-server-sdk, from tests/node/node_modules) evaluating the same data for the
// same contexts as bench/eval/eval_bench.cpp.
//
//   node bench/eval/eval-node.mjs --data DATA.json --contexts CONTEXTS.jsonl
//                                 [--rounds 20] [--warmup 5] [--dump RESULTS.jsonl]
//
// The SDK loads DATA.json through its file data source (no network: no stream, no polling,
// sendEvents false, diagnostics off). Each round calls
// `await client.allFlagsState(context, {withReasons: true, clientSideOnly: true})` once per
// context; every call is one sample (the primary figure). A second pass times the call plus
// `JSON.stringify(state.toJSON())`, the serialization the C++ figure includes. `--dump` writes
// each context's result converted to the relay's evalx shape (one JSON object per line, in context
// order, keys sorted) for bench/eval/compare.mjs. The last line is machine-readable.
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { stateToEvalx } from '../../tests/node/eval/oracle.mjs';

const require = createRequire(import.meta.url);
const { init, integrations } = require('../../tests/node/node_modules/@launchdarkly/node-server-sdk');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const dataPath = arg('data', null);
const contextsPath = arg('contexts', null);
if (!dataPath || !contextsPath) {
  console.error('usage: node bench/eval/eval-node.mjs --data DATA.json --contexts CONTEXTS.jsonl [--rounds 20] [--warmup 5] [--dump FILE]');
  process.exit(2);
}
const rounds = Number(arg('rounds', 20));
const warmup = Number(arg('warmup', 5));
const dumpPath = arg('dump', null);

const contexts = fs.readFileSync(contextsPath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const flagCount = Object.keys(JSON.parse(fs.readFileSync(dataPath, 'utf8')).flags).length;

// Nearest-rank percentile, as in eval_bench.cpp.
const pct = (sorted, p) => sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length - 1e-6))) - 1];
function stats(samples) {
  const s = Float64Array.from(samples).sort();
  return { median: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), mean: s.reduce((a, b) => a + b, 0) / s.length };
}

const errors = [];
const logger = {
  error: (...a) => errors.push(a.join(' ')), warn: (...a) => errors.push(a.join(' ')),
  info: () => {}, debug: () => {},
};
const client = init('sdk-bench-eval-0000-0000-000000000000', {
  updateProcessor: new integrations.FileDataSourceFactory({ paths: [dataPath], autoUpdate: false }).getFactory(),
  sendEvents: false,
  diagnosticOptOut: true,
  logger,
});
await client.waitForInitialization({ timeout: 10 });

const options = { withReasons: true, clientSideOnly: true };

// evalx shape, keys sorted, as the differential test converts allFlagsState.
const evalx = (json) => stateToEvalx(json);

const lines = [];
const bytes = [];
let visible = 0;
for (const context of contexts) {
  const state = await client.allFlagsState(context, options);
  if (!state.valid) throw new Error(`invalid allFlagsState for ${JSON.stringify(context)}`);
  const json = state.toJSON();
  visible = Object.keys(json.$flagsState).length;
  bytes.push(JSON.stringify(json).length);
  lines.push(`${JSON.stringify(evalx(json))}\n`);
}
if (dumpPath) fs.writeFileSync(dumpPath, lines.join(''));

// 1. allFlagsState alone.
let sink = 0;
const samples = [];
const start = performance.now();
for (let round = -warmup; round < rounds; round++) {
  for (const context of contexts) {
    const t0 = performance.now();
    const state = await client.allFlagsState(context, options);
    const t1 = performance.now();
    sink += state.valid ? 1 : 0;
    if (round >= 0) samples.push((t1 - t0) * 1000);
  }
}
const seconds = (performance.now() - start) / 1000;

// 2. allFlagsState + JSON serialization of the result.
const jsonRounds = Math.max(1, Math.floor(rounds / 3));
const jsonSamples = [];
for (let round = -Math.min(warmup, 2); round < jsonRounds; round++) {
  for (const context of contexts) {
    const t0 = performance.now();
    const state = await client.allFlagsState(context, options);
    const body = JSON.stringify(state.toJSON());
    const t1 = performance.now();
    sink += body.length;
    if (round >= 0) jsonSamples.push((t1 - t0) * 1000);
  }
}
client.close();

const a = stats(samples);
const j = stats(jsonSamples);
const b = stats(bytes);
const f = (x, d = 2) => x.toFixed(d);
console.log(`Node SDK ${JSON.parse(fs.readFileSync(new URL('../../tests/node/node_modules/@launchdarkly/node-server-sdk/package.json', import.meta.url))).version} (node ${process.version}): ` +
  `${flagCount} flags (${visible} client-side), ${contexts.length} contexts, ${rounds} rounds (+${warmup} warm-up), ${samples.length} samples, ${f(seconds)} s`);
console.log(`  allFlagsState           median ${f(a.median)} us  p90 ${f(a.p90)} us  p99 ${f(a.p99)} us  mean ${f(a.mean)} us  (${f((a.median * 1000) / visible, 1)} ns/flag)`);
console.log(`  + JSON.stringify        median ${f(j.median)} us  p90 ${f(j.p90)} us  p99 ${f(j.p99)} us`);
console.log(`  output                  median ${f(b.median, 0)} bytes (allFlagsState JSON)`);
if (errors.length) console.log(`  SDK logged ${errors.length} warnings/errors; first: ${errors[0]}`);
console.log(`RESULT impl=node median_us=${f(a.median, 3)} p90_us=${f(a.p90, 3)} p99_us=${f(a.p99, 3)} ` +
  `ns_per_flag=${f((a.median * 1000) / visible, 1)} with_json_median_us=${f(j.median, 3)} bytes_median=${f(b.median, 0)} sink=${sink}`);
