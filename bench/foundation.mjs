// Foundation figures (issue 2), printed as a table: idle RSS, cold start from the cache with the
// upstream down, and upstream patch -> official Node SDK `update` latency.
//
//   node bench/foundation.mjs [--runs 5]        (after scripts/test or a build; uses build/relay/flagrelay
//                                                or FLAGRELAY_BIN, and tests/node/node_modules)
//
// Everything runs on 127.0.0.1 with bounded counts and durations, and stops by itself.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { startFakeUpstream } from '../tests/node/support/fake-upstream.mjs';
import { makeFlag } from '../tests/node/support/flags.mjs';
import { startRelay, makeTempDir } from '../tests/node/support/relay.mjs';
import { sleep } from '../tests/node/support/http.mjs';
import { init } from '../tests/node/node_modules/@launchdarkly/node-server-sdk/dist/src/index.js';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
const SDK_KEY = 'sdk-bench000-0000-0000-0000-000000000001';
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];

function flags(n) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const key = `flag-${String(i).padStart(5, '0')}`;
    // Realistic weight: a rule with a clause and a few targets per flag (~700 bytes of JSON).
    out[key] = makeFlag(key, 1, i % 2 === 0, {
      targets: [{ values: [`user-${i}`, `user-${i + 1}`, `user-${i + 2}`], variation: 0 }],
      rules: [{ id: `rule-${i}`, clauses: [{ contextKind: 'user', attribute: 'email', op: 'endsWith', values: ['@example.com'], negate: false }], variation: 0, trackEvents: false }],
    });
  }
  return out;
}

// Resident memory in KiB: all of it, and the anonymous part (heap, stacks: what the process
// itself allocated, as opposed to shared-library pages that the page cache can share/reclaim).
function memoryKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)[1]);
  return { rss: field('VmRSS'), anon: field('RssAnon') };
}

// GET over a raw socket, done when the whole body (by Content-Length) is in: Node's HTTP client
// takes 8-22 ms to take in the 6 MB body of 10,000 flags (curl: 4 ms), which would be counted
// as the relay's start time. Returns the status, or 0 when the body did not arrive whole.
function getWholeBody(port, path, headers) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const head = [];
    let status = 0;
    let need = -1;
    let got = 0;
    const finish = (code) => { socket.destroy(); resolve(code); };
    socket.setTimeout(1000, () => finish(0));
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
      Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + 'Connection: close\r\n\r\n'));
    socket.on('data', (chunk) => {
      if (need < 0) {
        head.push(chunk);
        const bytes = Buffer.concat(head);
        const end = bytes.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = bytes.subarray(0, end).toString('latin1');
        status = Number(text.split(' ')[1]);
        need = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? 0);
        got = bytes.length - end - 4;
      } else {
        got += chunk.length;
      }
      if (got >= need) finish(status);
    });
    socket.on('error', () => finish(0));
    socket.on('close', () => finish(0));
  });
}

async function idleRss() {
  const up = await startFakeUpstream({ sdkKey: SDK_KEY, flags: flags(100) });
  const relay = await startRelay({ upstreamUrl: up.url ?? `http://127.0.0.1:${up.port}`, logLevel: 'warn', metrics: false,
    environments: { bench: { sdkKey: SDK_KEY } } });
  try {
    await sleep(2000);  // connected, put applied and committed, then idle
    return memoryKiB(relay.pid);
  } finally {
    await relay.terminate();
    await up.close();
  }
}

// `unclean`: the run starts as after a crash (no clean-close mark), so the start-up probe runs.
// 10 environments × 5,000 flags (about 3 MB of JSON each), all from one upstream, then idle.
async function idleRssLarge() {
  const keys = Array.from({ length: 10 }, (_, i) => `sdk-bench000-0000-0000-0000-0000000001${String(i).padStart(2, '0')}`);
  const environments = Object.fromEntries(keys.slice(1).map((k) => [k, { flags: flags(5000) }]));
  const up = await startFakeUpstream({ sdkKey: keys[0], flags: flags(5000), environments });
  const relay = await startRelay({ upstreamUrl: `http://127.0.0.1:${up.port}`, logLevel: 'warn', metrics: false,
    environments: Object.fromEntries(keys.map((k, i) => [`env${i}`, { sdkKey: k }])) });
  try {
    await sleep(4000);  // ten puts applied and committed, then idle
    return memoryKiB(relay.pid);
  } finally {
    await relay.terminate();
    await up.close();
  }
}

async function coldStartFromCache(flagCount, { unclean = false } = {}) {
  const dir = makeTempDir('flagrelay-bench-');
  const up = await startFakeUpstream({ sdkKey: SDK_KEY, flags: flags(flagCount) });
  const url = `http://127.0.0.1:${up.port}`;
  const env = { bench: { sdkKey: SDK_KEY } };
  const warm = await startRelay({ dir, upstreamUrl: url, logLevel: 'warn', metrics: false, environments: env });
  for (let i = 0; i < 200; i++) {  // wait until the upstream put is committed and served
    const status = await new Promise((resolve) => http.get(`${warm.url}/status`, (res) => {
      let body = ''; res.on('data', (c) => { body += c; }); res.on('end', () => resolve(JSON.parse(body)));
    }));
    if (status.environments.bench.dataSource === 'upstream') break;
    await sleep(50);
  }
  await warm.terminate();
  await up.close();  // the upstream is down from here on

  const results = [];
  for (let r = 0; r < runs; r++) {
    if (unclean) fs.rmSync(`${dir}/cache/clean-close`, { force: true });
    let t0 = 0;
    const relay = await startRelay({ dir, port: warm.port, upstreamUrl: url, logLevel: 'warn', metrics: false, environments: env,
      waitHealthy: false, onSpawn: () => { t0 = performance.now(); } });
    try {
      const deadline = t0 + 10000;
      let ms = NaN;
      while (performance.now() < deadline) {
        if ((await getWholeBody(relay.port, '/sdk/latest-all', { Authorization: SDK_KEY })) === 200) { ms = performance.now() - t0; break; }
        await sleep(1);
      }
      results.push(ms);
    } finally {
      await relay.terminate();
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return results;
}

async function sdkPatchLatency(patches) {
  const all = flags(100);
  const up = await startFakeUpstream({ sdkKey: SDK_KEY, flags: all });
  const relay = await startRelay({ upstreamUrl: `http://127.0.0.1:${up.port}`, logLevel: 'warn', metrics: false,
    environments: { bench: { sdkKey: SDK_KEY } } });
  const quiet = { error() {}, warn() {}, info() {}, debug() {} };
  const client = init(SDK_KEY, { streamUri: relay.url, baseUri: relay.url, eventsUri: relay.url, sendEvents: false,
    diagnosticOptOut: true, logger: quiet });
  const latencies = [];
  try {
    await client.waitForInitialization({ timeout: 10 });
    for (let i = 0; i < patches; i++) {
      const flag = { ...all['flag-00007'], version: 2 + i };
      const seen = new Promise((resolve) => client.once('update:flag-00007', () => resolve(performance.now())));
      const t0 = performance.now();
      up.pushPatch(flag);
      latencies.push((await Promise.race([seen, sleep(5000).then(() => NaN)])) - t0);
    }
  } finally {
    client.close();
    await relay.terminate();
    await up.close();
  }
  return latencies;
}

const rss = [];
for (let r = 0; r < runs; r++) rss.push(await idleRss());
const rssLarge = [];
for (let r = 0; r < runs; r++) rssLarge.push(await idleRssLarge());
const cold = await coldStartFromCache(10000);
const coldUnclean = await coldStartFromCache(10000, { unclean: true });
const lat = await sdkPatchLatency(200);

const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
console.log(`flagrelay foundation figures (${runs} runs each; medians; machine: ${(await import('node:os')).cpus().length} cores)`);
console.log('| figure | median | spread |');
console.log('|---|---|---|');
const mib = (xs, f) => `${(median(xs.map(f)) / 1024).toFixed(1)} MiB`;
const spread = (xs, f) => `${(Math.min(...xs.map(f)) / 1024).toFixed(1)}–${(Math.max(...xs.map(f)) / 1024).toFixed(1)} MiB`;
console.log(`| idle RSS, 1 environment, 100 flags | ${mib(rss, (m) => m.rss)} | ${spread(rss, (m) => m.rss)} |`);
console.log(`| … of which anonymous (heap, stacks) | ${mib(rss, (m) => m.anon)} | ${spread(rss, (m) => m.anon)} |`);
console.log(`| idle RSS, 10 environments × 5,000 flags | ${mib(rssLarge, (m) => m.rss)} | ${spread(rssLarge, (m) => m.rss)} |`);
console.log(`| start → first whole /sdk/latest-all 200 from the cache, upstream down, 10,000 flags | ${fmt(median(cold))} ms | ${fmt(Math.min(...cold))}–${fmt(Math.max(...cold))} ms |`);
console.log(`| … the same after an unclean stop (the start-up probe reads the file first) | ${fmt(median(coldUnclean))} ms | ${fmt(Math.min(...coldUnclean))}–${fmt(Math.max(...coldUnclean))} ms |`);
console.log(`| upstream patch → Node SDK update event (200 patches, 100-flag env) | ${fmt(median(lat))} ms | p99 ${fmt(pct(lat, 99))} ms, max ${fmt(Math.max(...lat))} ms |`);
