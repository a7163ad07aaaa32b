// Events relay throughput and memory (issue 5), printed as a table:
//   1. sustained: SDK-like clients post batches of 50 realistic events as fast as the relay takes
//      them, while a fake events service receives them; accepted and delivered events per second.
//   2. 10× overload: the events service is slowed to a tenth of the rate measured in 1, the
//      clients keep posting at full speed; the relay's memory and queue must stay within the
//      configured bounds (events.maxQueueEvents / maxQueueBytes), and the excess is shed.
//
//   node bench/events.mjs [--runs 3] [--seconds 8]
//        (after scripts/test or a Release build; uses build/relay/flagrelay or FLAGRELAY_BIN)
//
// The load generator and the fake events service run in worker threads of this process, on the
// same 2 cores as the relay: the figures are what the relay sustains while sharing the machine
// with its clients. Everything is on 127.0.0.1, bounded in time, and stops by itself.
import fs from 'node:fs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { startRelay } from '../tests/node/support/relay.mjs';
import { sleep } from '../tests/node/support/http.mjs';
import { scrape, sampleSum } from '../tests/node/support/prom.mjs';
import { postEvents, featureEventBodies } from '../tests/node/support/event-poster.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('--runs', 3);
const SECONDS = arg('--seconds', 8);
const CONNECTIONS = 32;
const BATCH = 50;
const SDK_KEY = 'sdk-bench000-0000-0000-0000-000000000005';
const BODIES = featureEventBodies(20, BATCH);
const LIMITS = { maxBatch: 500, maxQueueEvents: 10000, maxQueueBytes: 16 * 1024 * 1024 };

// The events service: gunzips every POST, counts the events in it, answers 202 after `holdMs`.
const SINK = `
const http = require('node:http');
const zlib = require('node:zlib');
const { parentPort } = require('node:worker_threads');
let holdMs = 0, events = 0, posts = 0, bytes = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    zlib.gunzip(Buffer.concat(chunks), (err, body) => {
      if (!err) {
        // Every event the load generator sends begins with this; nothing inside one does.
        for (let i = body.indexOf('{"kind":"feature"'); i >= 0; i = body.indexOf('{"kind":"feature"', i + 1)) events++;
        posts++;
        bytes += body.length;
      }
      const answer = () => { res.writeHead(err ? 400 : 202); res.end(); };
      holdMs > 0 ? setTimeout(answer, holdMs) : answer();
    });
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (m) => {
  if (m.holdMs !== undefined) holdMs = m.holdMs;
  if (m.count) parentPort.postMessage({ events, posts, bytes });
  if (m.close) server.close(() => process.exit(0));
});
`;

function worker(code, workerData) {
  const w = new Worker(code, { eval: true, workerData });
  w.unref();
  return w;
}
const message = (w) => new Promise((resolve, reject) => {
  w.once('message', resolve);
  w.once('error', reject);
});

function memoryKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)[1]);
  return { rss: field('VmRSS'), anon: field('RssAnon') };
}

async function metrics(relay) {
  const { parsed } = await scrape(relay);
  const sum = (name, labels = {}) => sampleSum(parsed, name, { env: 'bench', ...labels });
  return {
    received: sum('flagrelay_events_received_total'),
    forwarded: sum('flagrelay_events_forwarded_total'),
    queueFull: sum('flagrelay_events_dropped_total', { reason: 'queue_full' }),
    dropped: sum('flagrelay_events_dropped_total'),
    queued: sum('flagrelay_events_queued'),
    queuedBytes: sum('flagrelay_events_queued_bytes'),
  };
}

// One phase: load for SECONDS while sampling the relay's memory and queue every 100 ms.
async function phase(relay, sink, holdMs) {
  sink.postMessage({ holdMs });
  sink.postMessage({ count: true });
  const sinkBefore = await message(sink);
  const before = await metrics(relay);
  const start = performance.now();
  const done = postEvents({ url: relay.url, key: SDK_KEY, bodies: BODIES, ms: SECONDS * 1000, connections: CONNECTIONS });
  let finished = false;
  done.then(() => (finished = true));
  const peak = { rss: 0, anon: 0, queued: 0, queuedBytes: 0 };
  while (!finished) {
    const mem = memoryKiB(relay.pid);
    const m = await metrics(relay);
    peak.rss = Math.max(peak.rss, mem.rss);
    peak.anon = Math.max(peak.anon, mem.anon);
    peak.queued = Math.max(peak.queued, m.queued);
    peak.queuedBytes = Math.max(peak.queuedBytes, m.queuedBytes);
    await sleep(100);
  }
  const load = await done;
  const seconds = (performance.now() - start) / 1000;
  const after = await metrics(relay);
  sink.postMessage({ count: true });
  const sinkAfter = await message(sink);
  return {
    seconds,
    posted: (load.posts * BATCH) / seconds,
    failed: load.posts - (load.statuses[202] ?? 0),
    accepted: (after.received - before.received - (after.dropped - before.dropped)) / seconds,
    shed: (after.queueFull - before.queueFull) / seconds,
    delivered: (sinkAfter.events - sinkBefore.events) / seconds,
    sinkPosts: sinkAfter.posts - sinkBefore.posts,
    peak,
  };
}

async function run() {
  const sink = worker(SINK);
  const { port } = await message(sink);
  const relay = await startRelay({
    upstreamUrl: 'http://127.0.0.1:9', // no flag data needed; the data source just retries
    environments: { bench: { sdkKey: SDK_KEY, dataFile: new URL('../examples/flags.json', import.meta.url).pathname } },
    extra: { upstream: { eventsUri: `http://127.0.0.1:${port}` }, events: LIMITS },
    logLevel: 'error',
  });
  try {
    await sleep(500);
    const idle = memoryKiB(relay.pid);
    const sustained = await phase(relay, sink, 0);
    await sleep(1000); // delivered, queue empty
    // A tenth of the sustained rate: the relay has 4 POSTs of maxBatch events open at a time.
    const holdMs = Math.max(1, Math.round((4 * LIMITS.maxBatch * 10 * 1000) / sustained.delivered));
    const overload = await phase(relay, sink, holdMs);
    return { idle, sustained, overload, holdMs };
  } finally {
    await relay.terminate(10000).catch(() => relay.kill());
    sink.postMessage({ close: true });
  }
}

const results = [];
for (let r = 0; r < RUNS; r++) {
  results.push(await run());
  const last = results.at(-1);
  console.error(`run ${r + 1}: accepted ${Math.round(last.sustained.accepted)}/s, delivered ${Math.round(last.sustained.delivered)}/s; overload peak RSS ${(last.overload.peak.rss / 1024).toFixed(1)} MiB`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const med = (f) => median(results.map(f));
const range = (f, fmt) => `${fmt(Math.min(...results.map(f)))}–${fmt(Math.max(...results.map(f)))}`;
const k = (x) => `${Math.round(x).toLocaleString('en-US')}`;
const mib = (kib) => `${(kib / 1024).toFixed(1)} MiB`;
console.log(`flagrelay events relay (${RUNS} runs of ${SECONDS} s per phase; medians; ${os.cpus().length} cores; batches of ${BATCH} events of ${Math.round(BODIES[0].length / BATCH)} bytes, ${CONNECTIONS} keep-alive connections)`);
console.log('| figure | median | range |');
console.log('|---|---|---|');
console.log(`| sustained: events accepted (202, queued) per second | ${k(med((r) => r.sustained.accepted))} | ${range((r) => r.sustained.accepted, k)} |`);
console.log(`| sustained: events delivered to the events service per second | ${k(med((r) => r.sustained.delivered))} | ${range((r) => r.sustained.delivered, k)} |`);
console.log(`| sustained: events shed (queue full) per second | ${k(med((r) => r.sustained.shed))} | ${range((r) => r.sustained.shed, k)} |`);
console.log(`| sustained: peak RSS | ${mib(med((r) => r.sustained.peak.rss))} | ${range((r) => r.sustained.peak.rss, mib)} |`);
console.log(`| idle RSS before the load | ${mib(med((r) => r.idle.rss))} | ${range((r) => r.idle.rss, mib)} |`);
console.log(`| 10× overload: events posted per second | ${k(med((r) => r.overload.posted))} | ${range((r) => r.overload.posted, k)} |`);
console.log(`| 10× overload: events delivered per second | ${k(med((r) => r.overload.delivered))} | ${range((r) => r.overload.delivered, k)} |`);
console.log(`| 10× overload: events shed (queue full) per second | ${k(med((r) => r.overload.shed))} | ${range((r) => r.overload.shed, k)} |`);
console.log(`| 10× overload: peak queued events (bound ${k(LIMITS.maxQueueEvents)}) | ${k(med((r) => r.overload.peak.queued))} | ${range((r) => r.overload.peak.queued, k)} |`);
console.log(`| 10× overload: peak queued bytes (bound ${mib(LIMITS.maxQueueBytes / 1024)}) | ${mib(med((r) => r.overload.peak.queuedBytes) / 1024)} | ${range((r) => r.overload.peak.queuedBytes / 1024, mib)} |`);
console.log(`| 10× overload: peak RSS | ${mib(med((r) => r.overload.peak.rss))} | ${range((r) => r.overload.peak.rss, mib)} |`);
console.log(`| 10× overload: peak RSS above idle | ${mib(med((r) => r.overload.peak.rss - r.idle.rss))} | ${range((r) => r.overload.peak.rss - r.idle.rss, mib)} |`);
const failed = results.reduce((n, r) => n + r.sustained.failed + r.overload.failed, 0);
console.log(`\nPOSTs not answered 202: ${failed}. Events service slowed to ${results.map((r) => `${r.holdMs} ms`).join(', ')} per POST in the overload phase.`);
