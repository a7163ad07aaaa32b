// Helpers for the fault-injection suite (tests/node/faults): the upstream contract's /status and
// /metrics views, bounded waits on them, timing reports and process CPU/RSS figures.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { httpRequest, sleep } from './http.mjs';
import { scrape, findSamples } from './prom.mjs';
import { assertFlagsMap, assertSegmentsMap } from './assertions.mjs';
import { relayTest } from './harness.mjs';

export const FAULT_TEST_TIMEOUT_MS = Number(process.env.FLAGRELAY_FAULT_TEST_TIMEOUT_MS || 30000);

/**
 * relayTest with the fault suite's time bound, and a crash check: when the test body is done,
 * every relay it started must still be running unless the test stopped it (kill/terminate) or
 * passes {allowExit: true} (exitOnError tests).
 */
export function faultTest(name, fn, opts = {}) {
  const { allowExit = false, ...rest } = opts;
  return relayTest(name, async (t, s) => {
    await fn(t, s);
    if (allowExit) return;
    for (const r of s.relays) {
      assert.ok(!r.exitInfo || r.stopRequested, `relay ${r.label ?? ''} (pid ${r.pid}) exited on its own during the test: ${JSON.stringify(r.exitInfo)} (crash?)`);
    }
  }, { timeout: FAULT_TEST_TIMEOUT_MS, ...rest });
}

/** Reconnect settings of the contract for tests: fast backoff, short read timeout. */
export const FAST = {
  initialReconnectDelay: '100ms',
  maxReconnectDelay: '500ms',
  readTimeout: '2s',
};
export const FAST_MAX_DELAY_MS = 500;
/** Scheduling slack added to every recovery bound (2 shared cores, other builds running). */
export const SLACK_MS = Number(process.env.FLAGRELAY_FAULT_SLACK_MS || 1000);

export const user = (key) => ({ kind: 'user', key });

export async function statusJson(relay) {
  return (await httpRequest(`${relay.url}/status`, { timeoutMs: 3000 })).json();
}

export async function envStatus(relay, env = 'prod') {
  const st = await statusJson(relay);
  const e = st.environments?.[env];
  if (!e) throw new Error(`/status has no environment ${env}: ${JSON.stringify(st)}`);
  return e;
}

/** Polls /status until pred(envStatus, fullStatus) is truthy; the error shows the last status. */
export async function waitEnv(relay, pred, { env = 'prod', timeoutMs = 5000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  let lastErr = null;
  while (Date.now() < deadline) {
    try {
      const st = await statusJson(relay);
      last = st;
      const e = st.environments?.[env];
      if (e && pred(e, st)) return e;
    } catch (err) {
      lastErr = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for /status ${env}: ${what}; last /status: ${JSON.stringify(last?.environments?.[env] ?? last)}${lastErr ? ` (last error: ${lastErr.message})` : ''}`,
  );
}

export const stateIs = (state) => (e) => e.connectionStatus?.state === state;

/** The upstream series of the contract for one environment. */
export async function upstreamMetrics(relay, env = 'prod') {
  const sc = await scrape(relay);
  assert.equal(sc.status, 200, `/metrics status ${sc.status}`);
  const p = sc.parsed;
  const byLabel = (name, label) => {
    const out = {};
    for (const smp of findSamples(p, name, { env })) out[smp.labels[label]] = smp.value;
    return out;
  };
  const one = (name) => findSamples(p, name, { env })[0]?.value;
  return {
    text: sc.text,
    parsed: p,
    state: byLabel('flagrelay_upstream_state', 'state'),
    reconnects: byLabel('flagrelay_upstream_reconnects_total', 'kind'),
    polls: byLabel('flagrelay_upstream_polls_total', 'result'),
    connected: one('flagrelay_upstream_connected'),
    lastActivityAge: one('flagrelay_upstream_last_activity_age_seconds'),
  };
}

/** flagrelay_upstream_state{env}: the four states exposed, exactly `expected` is 1. */
export function assertStateGauge(m, expected, msg = 'flagrelay_upstream_state') {
  const states = ['initializing', 'valid', 'interrupted', 'off'];
  for (const st of states) {
    assert.ok(st in m.state, `${msg}: no series for state="${st}" (have ${JSON.stringify(m.state)})`);
  }
  const ones = Object.entries(m.state).filter(([, v]) => v === 1).map(([k]) => k);
  assert.deepEqual(ones, [expected], `${msg}: expected exactly state="${expected}" = 1, got ${JSON.stringify(m.state)}`);
}

/** Polls /metrics until pred(upstreamMetrics) holds. */
export async function waitMetrics(relay, pred, { env = 'prod', timeoutMs = 5000, what = 'metrics condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    try {
      last = await upstreamMetrics(relay, env);
      if (pred(last)) return last;
    } catch {
      /* retry */
    }
    await sleep(50);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}; last: state=${JSON.stringify(last?.state)} reconnects=${JSON.stringify(last?.reconnects)} polls=${JSON.stringify(last?.polls)} connected=${last?.connected}`,
  );
}

/** GET /sdk/latest-all with the SDK key: {status, body (parsed when 200)}. */
export async function latestAll(relay, key, timeoutMs = 5000) {
  const r = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: { Authorization: key }, timeoutMs });
  return { status: r.status, body: r.status === 200 ? r.json() : r.text };
}

/** Asserts the polling endpoint serves exactly these flags/segments (evaluation fields). */
export async function assertServes(relay, key, flags, segments, msg = '/sdk/latest-all') {
  const r = await latestAll(relay, key);
  assert.equal(r.status, 200, `${msg}: status ${r.status} ${typeof r.body === 'string' ? r.body.slice(0, 200) : ''}`);
  assertFlagsMap(r.body.flags, flags, `${msg} flags`);
  if (segments) assertSegmentsMap(r.body.segments, segments, `${msg} segments`);
  return r.body;
}

/** Prints a measured figure (TAP diagnostic + stdout line "# TIMING ..."), and returns it. */
export function report(t, s, label, value, unit = 'ms') {
  const v = typeof value === 'number' ? (Number.isInteger(value) ? value : value.toFixed(unit === 'ms' ? 0 : 3)) : value;
  const line = `TIMING ${label}: ${v} ${unit}`;
  s?.notes.push(line);
  t.diagnostic(line);
  return value;
}

/** utime + stime of a process in seconds (from /proc/<pid>/stat, clock ticks of 1/100 s). */
export function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  return (utime + stime) / 100;
}

/**
 * Whether the process runs under a sanitizer (ASan, TSan): their allocators keep freed memory in a
 * quarantine and add shadow memory, so RSS says nothing about what the relay itself holds.
 */
export function sanitized(pid) {
  return /lib(asan|tsan)\.so/.test(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
}

export function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

/** Times (ms) of the /all requests the fake upstream got for `key` after `since`, with statuses. */
export function streamAttempts(up, key, since = 0) {
  return up.requests.filter((r) => r.path === '/all' && r.headers.authorization === key && r.time >= since);
}

export function gaps(times) {
  const out = [];
  for (let i = 1; i < times.length; i++) out.push(times[i] - times[i - 1]);
  return out;
}

/** Waits until the fake upstream has received `n` /all requests for `key` (any status). */
export async function waitAttempts(up, key, n, { since = 0, timeoutMs = 5000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = streamAttempts(up, key, since);
    if (a.length >= n) return a;
    if (Date.now() > deadline) {
      throw new Error(`fake upstream: ${a.length} /all request(s) within ${timeoutMs} ms, wanted ${n} (statuses ${a.map((x) => x.status).join(',')})`);
    }
    await sleep(10);
  }
}

/** Bounded wait for an SDK client's variation to equal `value`; returns ms waited. */
export async function waitVariation(client, flagKey, value, { timeoutMs = 5000, fallback = '__default__' } = {}) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    last = await client.variation(flagKey, user('u1'), fallback);
    if (JSON.stringify(last) === JSON.stringify(value)) return Date.now() - start;
    await sleep(20);
  }
  throw new Error(`SDK: ${flagKey} is ${JSON.stringify(last)}, wanted ${JSON.stringify(value)} within ${timeoutMs} ms`);
}

/** A raw SSE frame (string) for pushRaw. */
export const frame = (event, data) => `event: ${event}\ndata: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;

/**
 * A TCP server on 127.0.0.1 that accepts connections, reads whatever is sent and never answers
 * (a black-holed upstream or proxy). Closed, with its sockets, when the test ends.
 * Returns { port, conns, sockets }: the accept time (ms) of each connection, and the open ones.
 */
export async function blackHole(s) {
  const conns = [];
  const sockets = new Set();
  const server = net.createServer((sock) => {
    conns.push(Date.now());
    sockets.add(sock);
    sock.on('data', () => {}); // read the request, answer nothing
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  s.defer(() => new Promise((resolve) => {
    for (const x of sockets) x.destroy();
    server.close(() => resolve());
  }));
  return { port: server.address().port, conns, sockets };
}
