// Fan-out benchmarks (issue 7), driven by the C++ load generator (bench/fanout/loadgen.cpp), on
// loopback only. Every scenario starts a fresh relay (Release build; default stream limits; the
// LMDB cache on, in a temp dir) whose upstream is the load generator itself, and prints a table.
//
//   node bench/fanout.mjs fanout    [--subscribers 10000] [--runs 3] [--patches 20] [--peer pushpin]
//   node bench/fanout.mjs burst     [--subscribers 5000] [--runs 3]
//   node bench/fanout.mjs hold      [--subscribers 19000] [--procs 2]
//   node bench/fanout.mjs reconnect [--subscribers 10000] [--put-bytes 1000000]
//
//   fanout     subscribers connect (ramped, --rate per s), then --patches patches 200 ms apart:
//              delivery latency p50/p99/max, losses, errors, upstream connections, RSS. With
//              --peer pushpin, the same workload through Pushpin in the same run (alternating).
//   burst      all subscribers connect at once: errors, connect-to-put p50/p99/max.
//   hold       --subscribers streams held by --procs load generator processes: relay RSS per
//              held stream, fds.
//   reconnect  all subscribers connect at once to a relay serving a --put-bytes `put`: peak RSS
//              (VmHWM) against the baseline.
// --json prints the results as one JSON line at the end (bench/run-all collects them).
// Options: --bin RELAY (default build/relay/flagrelay), --loadgen BIN (default
// build/bench/fanout/flagrelay_loadgen), --threads N (load generator I/O threads, default 1).

import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startRelay } from '../tests/node/support/relay.mjs';
import { freePort } from '../tests/node/support/ports.mjs';
import { sleep } from '../tests/node/support/http.mjs';
import { startPushpin, statusKiB } from './peers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const scenario = args[0] && !args[0].startsWith('--') ? args.shift() : 'fanout';
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  return typeof fallback === 'boolean' ? true : args[i + 1];
};
const defaults = { fanout: 10000, burst: 5000, hold: 19000, reconnect: 10000 };
if (!(scenario in defaults)) {
  console.error(`unknown scenario ${scenario}; see the top of bench/fanout.mjs`);
  process.exit(2);
}
const subscribers = Number(opt('subscribers', defaults[scenario]));
const runs = Number(opt('runs', scenario === 'hold' || scenario === 'reconnect' ? 1 : 3));
const patches = Number(opt('patches', 20));
const rate = Number(opt('rate', 2000));
const peer = opt('peer', '');
const threads = Number(opt('threads', 1));
const putBytes = Number(opt('put-bytes', scenario === 'reconnect' ? 1000000 : 0));
const procs = Number(opt('procs', scenario === 'hold' ? 2 : 1));
const relayBin = path.resolve(opt('bin', path.join(root, 'build/relay/flagrelay')));
const loadgen = path.resolve(opt('loadgen', path.join(root, 'build/bench/fanout/flagrelay_loadgen')));
const json = opt('json', false);
const SDK_KEY = 'sdk-bench-0000-0000-0000-000000000000';

for (const bin of [relayBin, loadgen]) {
  if (!fs.existsSync(bin)) {
    console.error(`${bin} is missing: build with cmake --build build (Release)`);
    process.exit(2);
  }
}

// Source addresses: about 28,000 ports each towards one target port.
const sources = (first, count) =>
  Array.from({ length: count }, (_, i) => `127.0.${Math.floor((first + i) / 250)}.${((first + i) % 250) + 2}`);

function runLoadgen(argv, { onLine } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(loadgen, [...argv, '--json', '--threads', String(threads)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (onLine) onLine(line);
      }
    });
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('exit', () => {
      const last = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (!last) return reject(new Error(`load generator printed no result:\n${out}`));
      resolve(JSON.parse(last));
    });
  });
}

function startBenchRelay(upstreamPort, port) {
  return startRelay({
    bin: relayBin,
    port,
    upstreamUrl: `http://127.0.0.1:${upstreamPort}`,
    environments: { bench: { sdkKey: SDK_KEY, events: { enabled: false } } },
    logLevel: 'warn',
    // The relay's own defaults, not the test suites' small bounds.
    streams: { heartbeatInterval: '30s', maxQueueEvents: 256, maxQueueBytes: '8MiB' },
    extra: { listen: { maxConnections: 20000 } },
  });
}

async function waitUntil(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// CPU time (user + system) a process has used, in ms.
function cpuMs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
}

const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
const mib = (kib) => Math.round((kib / 1024) * 10) / 10;

// One relay run: the load generator is the upstream and the subscribers.
async function relayRun({ count, connectRate, extraArgs = [] }) {
  const upstreamPort = await freePort();
  const relayPort = await freePort();
  // The load generator starts first, as the relay's upstream; its subscribers wait
  // (--wait-upstream) until the relay has connected to it.
  const lgArgs = [
    '--upstream', String(upstreamPort), '--wait-upstream', '1',
    '--target', `127.0.0.1:${relayPort}`, '--path', '/all', '--auth', SDK_KEY,
    '--subscribers', String(count), '--sources', sources(0, Math.ceil(count / 20000) + 1).join(','),
    '--connect-rate', String(connectRate), '--flags', '100', ...extraArgs,
  ];
  let peak = 0;
  let relayPid = 0;
  let cpuAtPatches = null;
  const result = runLoadgen(lgArgs, {
    onLine: (line) => {
      if (line === 'patching' && relayPid) cpuAtPatches = cpuMs(relayPid);
    },
  });
  const relay = await startBenchRelay(upstreamPort, relayPort);
  relayPid = relay.pid;
  const baseline = statusKiB(relay.pid, 'VmRSS');
  const sampler = setInterval(() => (peak = Math.max(peak, statusKiB(relay.pid, 'VmRSS'))), 50);
  try {
    const r = await result;
    clearInterval(sampler);
    if (cpuAtPatches !== null) r.relay_patch_cpu_ms = cpuMs(relay.pid) - cpuAtPatches;
    r.relay_rss_mib = mib(statusKiB(relay.pid, 'VmRSS'));
    r.relay_hwm_mib = mib(statusKiB(relay.pid, 'VmHWM'));
    r.relay_baseline_mib = mib(baseline);
    r.relay_sampled_peak_mib = mib(peak);
    if (!relay.running()) r.problem = `relay exited: ${relay.output().slice(-2000)}`;
    return r;
  } finally {
    clearInterval(sampler);
    await relay.kill();
    fs.rmSync(relay.dir, { recursive: true, force: true });
  }
}

async function pushpinRun({ count, connectRate }) {
  const originPort = await freePort();
  const pp = await startPushpin({ originPort });
  try {
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, pp.rssKiB())), 200);
    const r = await runLoadgen([
      '--upstream', String(originPort), '--grip', '--publish', '127.0.0.1:5561',
      '--target', '127.0.0.1:7999', '--path', '/stream/bench',
      '--subscribers', String(count), '--sources', sources(0, 2).join(','),
      '--connect-rate', String(connectRate), '--flags', '100',
      '--patches', String(patches), '--interval-ms', '200',
    ]);
    clearInterval(timer);
    r.peer_rss_mib = mib(pp.rssKiB());
    r.peer_sampled_peak_mib = mib(peak);
    if (r.errors && r.subscribed === 0) r.problem += ` pushpin: ${pp.output().slice(-1500)}`;
    return r;
  } finally {
    await pp.stop();
  }
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

function table(rows, columns) {
  const widths = columns.map(([h, f]) => Math.max(h.length, ...rows.map((r) => String(f(r)).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  console.log(line(columns.map(([h]) => h)));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(columns.map(([, f]) => f(r))));
}

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

async function main() {
  const results = [];
  if (scenario === 'fanout') {
    for (let i = 0; i < runs; i++) {
      const r = await relayRun({
        count: subscribers,
        connectRate: rate,
        extraArgs: ['--patches', String(patches), '--interval-ms', '200'],
      });
      r.who = 'flagrelay';
      results.push(r);
      console.error(`run ${i + 1} flagrelay: p50 ${fmt(r.p50_ms, 2)} p99 ${fmt(r.p99_ms, 2)} max ${fmt(r.max_ms, 2)} lost ${r.lost} errors ${r.errors}; CPU per patch: relay ${fmt(r.relay_patch_cpu_ms / patches)} ms, load generator ${fmt(r.loadgen_patch_cpu_ms / patches)} ms ${r.problem}`);
      if (peer === 'pushpin') {
        const p = await pushpinRun({ count: subscribers, connectRate: Math.min(rate, 1000) });
        p.who = 'pushpin';
        results.push(p);
        console.error(`run ${i + 1} pushpin:   p50 ${fmt(p.p50_ms, 2)} p99 ${fmt(p.p99_ms, 2)} max ${fmt(p.max_ms, 2)} lost ${p.lost} errors ${p.errors} ${p.problem}`);
      }
    }
    table(results, [
      ['who', (r) => r.who],
      ['subscribers', (r) => r.subscribed],
      ['errors', (r) => r.errors],
      ['deliveries', (r) => r.deliveries],
      ['lost', (r) => r.lost],
      ['p50 ms', (r) => fmt(r.p50_ms, 2)],
      ['p99 ms', (r) => fmt(r.p99_ms, 2)],
      ['max ms', (r) => fmt(r.max_ms, 2)],
      ['upstream conns', (r) => r.upstream_connections],
      ['RSS MiB', (r) => fmt(r.relay_rss_mib ?? r.peer_rss_mib)],
    ]);
    for (const who of ['flagrelay', 'pushpin']) {
      const mine = results.filter((r) => r.who === who);
      if (!mine.length) continue;
      console.log(`${who}: median of ${mine.length} runs: p50 ${fmt(median(mine.map((r) => r.p50_ms)), 2)} ms, p99 ${fmt(median(mine.map((r) => r.p99_ms)), 2)} ms, max ${fmt(median(mine.map((r) => r.max_ms)), 2)} ms`);
    }
    if (peer) {
      const ratio = median(results.filter((r) => r.who === 'pushpin').map((r) => r.p99_ms)) /
        median(results.filter((r) => r.who === 'flagrelay').map((r) => r.p99_ms));
      console.log(`p99 ratio pushpin / flagrelay: ${fmt(ratio, 1)}x`);
    }
  } else if (scenario === 'burst') {
    for (let i = 0; i < runs; i++) {
      const r = await relayRun({ count: subscribers, connectRate: 0 });
      results.push(r);
    }
    table(results, [
      ['subscribers', (r) => r.subscribers],
      ['got put', (r) => r.subscribed],
      ['errors', (r) => r.errors],
      ['connect->put p50 ms', (r) => fmt(r.connect_p50_ms)],
      ['p99 ms', (r) => fmt(r.connect_p99_ms)],
      ['max ms', (r) => fmt(r.connect_max_ms)],
      ['all in ms', (r) => fmt(r.connect_wall_ms, 0)],
    ]);
  } else if (scenario === 'reconnect') {
    for (let i = 0; i < runs; i++) {
      const r = await relayRun({
        count: subscribers,
        connectRate: 0,
        extraArgs: ['--put-bytes', String(putBytes), '--connect-timeout', '120'],
      });
      results.push(r);
    }
    table(results, [
      ['subscribers', (r) => r.subscribers],
      ['got put', (r) => r.subscribed],
      ['errors', (r) => r.errors],
      ['all in ms', (r) => fmt(r.connect_wall_ms, 0)],
      ['baseline RSS MiB', (r) => fmt(r.relay_baseline_mib)],
      ['peak RSS (VmHWM) MiB', (r) => fmt(r.relay_hwm_mib)],
      ['after MiB', (r) => fmt(r.relay_rss_mib)],
    ]);
  } else if (scenario === 'hold') {
    results.push(await holdRun());
    table(results, [
      ['streams held', (r) => r.held],
      ['errors', (r) => r.errors],
      ['relay fds', (r) => r.fds],
      ['RSS before MiB', (r) => fmt(r.before_mib)],
      ['RSS held MiB', (r) => fmt(r.held_mib)],
      ['per stream KiB', (r) => fmt(r.per_stream_kib, 2)],
      ['upstream conns', (r) => r.upstream_connections],
    ]);
  }
  if (json) console.log(JSON.stringify({ scenario, subscribers, results }));
}

// `procs` load generators hold `subscribers` streams between them; the first is also the
// upstream. RSS and fds are read once all hold their streams.
async function holdRun() {
  const upstreamPort = await freePort();
  const relayPort = await freePort();
  const per = Math.ceil(subscribers / procs);
  let holding = 0;
  const loads = [];
  const load = (p, extra) => {
    const count = Math.min(per, subscribers - p * per);
    loads.push(runLoadgen([
      '--target', `127.0.0.1:${relayPort}`, '--path', '/all', '--auth', SDK_KEY,
      '--connect-rate', String(rate), '--hold-seconds', '20', '--connect-timeout', '60',
      '--subscribers', String(count), '--sources', sources(p * 2, 2).join(','), ...extra,
    ], { onLine: (line) => line.startsWith('holding') && holding++ }));
  };
  load(0, ['--upstream', String(upstreamPort), '--wait-upstream', '1', '--flags', '100']);
  const relay = await startBenchRelay(upstreamPort, relayPort);
  try {
    await sleep(500);
    const before = statusKiB(relay.pid, 'VmRSS');
    for (let p = 1; p < procs; p++) load(p, []);
    await waitUntil(() => holding === procs, 120000, 'every load generator holding');
    await sleep(2000);
    const rss = statusKiB(relay.pid, 'VmRSS');
    const fds = fdCount(relay.pid);
    const lr = await Promise.all(loads);
    const held = lr.reduce((s, r) => s + r.subscribed, 0);
    return {
      held, errors: lr.reduce((s, r) => s + r.errors, 0), fds,
      before_mib: mib(before), held_mib: mib(rss), per_stream_kib: (rss - before) / Math.max(1, held),
      upstream_connections: lr[0].upstream_connections,
      first_error: lr.map((r) => r.first_error).find(Boolean) ?? '',
    };
  } finally {
    await relay.kill();
    fs.rmSync(relay.dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
