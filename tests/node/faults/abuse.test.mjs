// Hostile input against the real binary, on loopback: slowloris clients, connection floods past
// listen.maxConnections, oversized headers and bodies, malformed requests, pipelining floods and
// SSE readers that never read. Every test uses small configured timeouts, bounded counts and
// bounded waits, checks that the relay stays up and keeps serving a normal client, and prints its
// measured figures as "# TIMING" lines.
import assert from 'node:assert/strict';
import net from 'node:net';
import { prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { httpRequest, sleep, waitFor } from '../support/http.mjs';
import { scrape, sampleSum } from '../support/prom.mjs';
import { startFakeEvents } from '../support/fake-events.mjs';
import { b64url } from '../support/contexts.mjs';
import { faultTest, report, rssKiB, sanitized, SLACK_MS } from '../support/faults.mjs';

const A = `Authorization: ${KEYS.prod}\r\n`;

// ---------------------------------------------------------------------------------------------
// Raw sockets.

/**
 * A raw TCP client: everything received is kept (latin1), with the time of the first byte sent,
 * of the close, and the socket error. `closed` resolves at the close.
 */
function rawClient(port) {
  const socket = net.connect(port, '127.0.0.1');
  const c = {
    socket,
    text: '',
    bytes: 0,
    connectedAt: null,
    firstByteAt: null,
    closedAt: null,
    error: null,
    sent: 0,
  };
  c.connected = new Promise((resolve) => socket.once('connect', () => {
    c.connectedAt = Date.now();
    resolve();
  }));
  c.closed = new Promise((resolve) => socket.once('close', () => {
    c.closedAt = Date.now();
    resolve();
  }));
  socket.on('data', (d) => {
    c.bytes += d.length;
    if (c.text.length < 4 * 1024 * 1024) c.text += d.toString('latin1');
  });
  socket.on('error', (err) => { c.error = err.code ?? err.message; });
  c.write = (data) => {
    if (c.firstByteAt === null) c.firstByteAt = Date.now();
    c.sent += Buffer.byteLength(data, 'latin1');
    socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  };
  c.destroy = () => socket.destroy();
  return c;
}

/** Bounded wait for a raw client's close; resolves true when it closed in time. */
async function closedWithin(c, ms) {
  await Promise.race([c.closed, sleep(ms)]);
  return c.closedAt !== null;
}

/**
 * Splits `text` into complete HTTP responses (Content-Length bodies; a chunked response is taken
 * as a stream and ends the list). Returns { responses: [{status, version, headers, body}], rest }.
 */
function parseResponses(text) {
  const responses = [];
  let pos = 0;
  while (pos < text.length) {
    const end = text.indexOf('\r\n\r\n', pos);
    if (end < 0) break;
    const lines = text.slice(pos, end).split('\r\n');
    const m = /^HTTP\/(\d\.\d) (\d{3})/.exec(lines[0]);
    if (!m) throw new Error(`not an HTTP response at byte ${pos}: ${JSON.stringify(text.slice(pos, pos + 120))}`);
    const headers = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(m[2]);
    const start = end + 4;
    if (/chunked/i.test(headers['transfer-encoding'] ?? '') || headers['content-type']?.startsWith('text/event-stream')) {
      responses.push({ status, version: m[1], headers, body: text.slice(start), stream: true });
      pos = text.length;
      break;
    }
    const length = status === 304 ? 0 : Number(headers['content-length'] ?? 0);
    if (text.length < start + length) break;
    responses.push({ status, version: m[1], headers, body: text.slice(start, start + length) });
    pos = start + length;
  }
  return { responses, rest: text.slice(pos) };
}

/**
 * Sends `data` on a fresh connection; resolves once `want` complete responses arrived, the server
 * closed, or `ms` passed: { responses, closed, text, error, ms }.
 */
async function exchange(port, data, { want = 1, ms = 3000 } = {}) {
  const c = rawClient(port);
  await c.connected;
  const t0 = Date.now();
  c.write(data);
  const deadline = t0 + ms;
  while (Date.now() < deadline && c.closedAt === null && parseResponses(c.text).responses.length < want) {
    await Promise.race([c.closed, sleep(10)]);
  }
  const { responses } = parseResponses(c.text);
  // A close right after the response (Connection: close, or a rejected request) is part of it.
  if (c.closedAt === null) await closedWithin(c, 100);
  const closed = c.closedAt !== null;
  c.destroy();
  return { responses, closed, text: c.text, error: c.error, ms: Date.now() - t0 };
}

async function metricsOf(relay) {
  return (await scrape(relay)).parsed;
}

/** Every flagrelay_http_requests_total sample with a 5xx status class, as "route method: n". */
function serverErrors(parsed) {
  // /readyz is 503 by design until the data is in (start() polls it).
  return parsed.samples
    .filter((x) => x.name === 'flagrelay_http_requests_total' && x.labels.status === '5xx' && x.value > 0 && x.labels.route !== '/readyz')
    .map((x) => `${x.labels.route} ${x.labels.method}: ${x.value}`);
}

/** The relay still answers a normal client: /healthz, the polling endpoint and a new stream. */
async function assertStillServing(s, relay, flagKey, msg) {
  assert.ok(relay.running(), `${msg}: the relay exited (${JSON.stringify(relay.exitInfo)})`);
  const health = await httpRequest(`${relay.url}/healthz`, { timeoutMs: 3000 });
  assert.equal(health.status, 200, `${msg}: /healthz`);
  const poll = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod), timeoutMs: 3000 });
  assert.equal(poll.status, 200, `${msg}: /sdk/latest-all ${poll.status} ${poll.text.slice(0, 200)}`);
  assert.ok(flagKey in poll.json().flags, `${msg}: /sdk/latest-all serves ${flagKey}`);
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal(sse.status, 200, `${msg}: /all status`);
  const put = await sse.nextEvent(3000);
  assert.equal(put.event, 'put', `${msg}: /all starts with a put`);
  assert.ok(flagKey in put.json().data.flags, `${msg}: the put holds ${flagKey}`);
  sse.close();
}

async function waitForData(relay) {
  await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 200,
    { timeoutMs: 10000, what: 'the relay has data (/readyz 200)' });
}

async function start(s, { flags = byKey(makeFlag('f', 1, 'value-f')), listen = {}, streams = {}, extra = {} } = {}) {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    cacheDir: null,
    streams,
    extra: { ...extra, listen: { ...listen, ...(extra.listen ?? {}) } },
  });
  await waitForData(relay);
  return { up, relay };
}

// ---------------------------------------------------------------------------------------------

faultTest('slowloris: a request dripped a byte every 250 ms is cut at listen.headerTimeout (headers or body), a silent connection by the idle timeout; a normal client is served meanwhile', async (t, s) => {
  const HEADER_MS = 1000;
  const IDLE_MS = 2500;
  const { relay } = await start(s, { listen: { headerTimeout: '1s', idleTimeout: '2500ms' } });

  // Headers dripped one byte at a time: the request would take ~60 s to arrive whole.
  const slowHeaders = rawClient(relay.port);
  const headerText = `GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\n${A}X-Pad: ${'a'.repeat(200)}\r\n\r\n`;
  // Headers at once, then a body dripped one byte at a time (Content-Length 200: 50 s).
  const slowBody = rawClient(relay.port);
  // Opens and never sends a byte.
  const silent = rawClient(relay.port);
  // One request answered, then silent on a keep-alive connection.
  const keepAlive = rawClient(relay.port);
  await Promise.all([slowHeaders.connected, slowBody.connected, silent.connected, keepAlive.connected]);
  keepAlive.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  slowBody.write(`POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nContent-Length: 200\r\n\r\n[`);
  const bodyHeadersAt = Date.now();
  let i = 0;
  const drip = setInterval(() => {
    if (slowHeaders.closedAt === null && i < headerText.length) slowHeaders.write(headerText[i++]);
    if (slowBody.closedAt === null) slowBody.write(' ');
  }, 250);
  s.defer(() => clearInterval(drip));

  // A normal client polls throughout; every answer is prompt.
  const latencies = [];
  const pollUntil = Date.now() + IDLE_MS + 500;
  while (Date.now() < pollUntil) {
    const t0 = Date.now();
    const r = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod), timeoutMs: 3000 });
    latencies.push(Date.now() - t0);
    assert.equal(r.status, 200, 'a normal client is served while slowloris clients hold connections');
    await sleep(150);
  }
  for (const c of [slowHeaders, slowBody, silent, keepAlive]) await closedWithin(c, IDLE_MS + SLACK_MS);
  clearInterval(drip);
  const keepAliveAnswered = parseResponses(keepAlive.text).responses;

  const headersCut = slowHeaders.closedAt === null ? null : slowHeaders.closedAt - slowHeaders.firstByteAt;
  const bodyCut = slowBody.closedAt === null ? null : slowBody.closedAt - bodyHeadersAt;
  const silentCut = silent.closedAt === null ? null : silent.closedAt - silent.connectedAt;
  const keepAliveCut = keepAlive.closedAt === null ? null : keepAlive.closedAt - keepAlive.firstByteAt;
  report(t, s, 'slowloris headers: closed after first byte', headersCut ?? 'never');
  report(t, s, 'slowloris body: closed after the headers', bodyCut ?? 'never');
  report(t, s, 'silent connection: closed after connect', silentCut ?? 'never');
  report(t, s, 'keep-alive connection: closed after its request', keepAliveCut ?? 'never');
  report(t, s, 'normal client latency max', Math.max(...latencies));

  assert.ok(headersCut !== null && headersCut >= HEADER_MS - 100 && headersCut <= HEADER_MS + SLACK_MS,
    `headers dripped 1 byte/250 ms: closed ${headersCut} ms after the first byte, expected at headerTimeout ${HEADER_MS} ms (+${SLACK_MS})`);
  assert.ok(i < headerText.length, 'the dripped request was cut before it was complete');
  assert.equal(parseResponses(slowHeaders.text).responses.filter((r) => r.status < 400).length, 0, 'no request of the slow client was served');
  assert.ok(bodyCut !== null && bodyCut >= HEADER_MS - 100 && bodyCut <= HEADER_MS + SLACK_MS,
    `body dripped 1 byte/250 ms: closed ${bodyCut} ms after the headers, expected at headerTimeout ${HEADER_MS} ms (a request must arrive whole within it)`);
  assert.equal(parseResponses(slowBody.text).responses.filter((r) => r.status < 400).length, 0, 'the dripped events body was not accepted');
  // A new connection that never sends a byte is cut at the header timeout (http_server.cpp
  // DoRead): it must not hold a connection slot for the longer idle timeout.
  assert.ok(silentCut !== null && silentCut >= HEADER_MS - 100 && silentCut <= HEADER_MS + SLACK_MS,
    `a connection that sends nothing: closed ${silentCut} ms after connect, expected at headerTimeout ${HEADER_MS} ms (+${SLACK_MS})`);
  assert.equal(keepAliveAnswered.length, 1, 'the keep-alive request was answered');
  assert.equal(keepAliveAnswered[0].status, 200);
  assert.ok(keepAliveCut !== null && keepAliveCut >= IDLE_MS - 100 && keepAliveCut <= IDLE_MS + SLACK_MS,
    `keep-alive connection idle after its request: closed ${keepAliveCut} ms after it, expected at idleTimeout ${IDLE_MS} ms`);
  assert.ok(Math.max(...latencies) < 1000, `normal client latencies ${latencies.join(', ')} ms`);

  // Every slot is back: only the scrape's own connection is open.
  await waitFor(async () => sampleSum(await metricsOf(relay), 'flagrelay_http_connections') <= 1,
    { timeoutMs: 3000, what: 'flagrelay_http_connections back to the scrape alone' });
  await assertStillServing(s, relay, 'f', 'after slowloris');
});

faultTest('connection flood: 400 idle or half-sent sockets against maxConnections 200 — the cap holds, the excess is closed at accept and counted, streams keep flowing, new clients are served once slots free', async (t, s) => {
  const CAP = 200;
  const FLOOD = 400;
  // Everything up to the /healthz probe must happen before the header timeout frees slots: 2 s
  // leaves room for an ASan build beside another test.
  const HEADER_MS = 2000;
  const { up, relay } = await start(s, { listen: { maxConnections: CAP, headerTimeout: '2s', idleTimeout: '4s' } });
  // A stream opened before the flood holds one slot and must keep receiving changes.
  const before = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal((await before.nextEvent(3000)).event, 'put');
  const rejected0 = sampleSum(await metricsOf(relay), 'flagrelay_http_connections_rejected_total');

  // Even sockets send nothing; odd ones part of the headers of a request, then stall.
  const flood = [];
  s.defer(() => { for (const c of flood) c.destroy(); });
  for (let i = 0; i < FLOOD; i++) {
    const c = rawClient(relay.port);
    c.half = i % 2 === 1;
    c.connected.then(() => { if (c.half) c.write(`GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\n${A}X-Pa`); });
    c.socket.resume();
    flood.push(c);
  }
  const t0 = Date.now();
  // Connections over the cap are closed at accept: wait until only the cap's worth stay open.
  await waitFor(() => flood.filter((c) => c.closedAt !== null).length >= FLOOD - (CAP - 1),
    { timeoutMs: 3000, intervalMs: 20, what: `${FLOOD - (CAP - 1)} flood sockets closed at accept` });
  const openAfterAccept = flood.filter((c) => c.closedAt === null).length;
  const acceptClosedMs = Date.now() - t0;
  const m = await metricsOf(relay);
  const gauge = sampleSum(m, 'flagrelay_http_connections');
  const rejected = sampleSum(m, 'flagrelay_http_connections_rejected_total') - rejected0;
  report(t, s, 'flood: excess closed at accept within', acceptClosedMs);
  report(t, s, 'flood: flood sockets held open', openAfterAccept, 'sockets');
  report(t, s, 'flood: flagrelay_http_connections while full (incl. the scrape)', gauge, 'connections');
  report(t, s, 'flood: rejected_total increase', rejected, 'connections');
  assert.equal(openAfterAccept, CAP - 1, `the relay holds exactly the cap: ${CAP - 1} flood sockets + the stream`);
  // The gauge counts the metrics listener's connections too (this scrape, perhaps the last one).
  assert.ok(gauge >= CAP + 1 && gauge <= CAP + 2, `flagrelay_http_connections ${gauge}, expected the cap ${CAP} + this scrape`);
  assert.equal(rejected, FLOOD - (CAP - 1), 'flagrelay_http_connections_rejected_total counts every connection closed at accept');

  // While the cap is full: the open stream still gets changes, and /metrics (its own listener)
  // answers. A new client is closed at accept at once — not queued, not hung: the documented
  // behaviour, which also means /healthz on the SDK port fails until a slot frees (finding).
  up.pushPatch(makeFlag('during-flood', 2, 'x'));
  const patch = await before.nextEvent(3000);
  assert.equal(patch.json().path, '/flags/during-flood', 'a stream opened before the flood keeps flowing');
  const probeStart = Date.now();
  let probe;
  try {
    probe = `status ${(await httpRequest(`${relay.url}/healthz`, { timeoutMs: 2000 })).status}`;
  } catch (err) {
    probe = `error: ${err.message}`;
  }
  const probeMs = Date.now() - probeStart;
  report(t, s, `flood: /healthz on the SDK port while full (${probe}) after`, probeMs);
  s.note(`while ${CAP} idle sockets fill listen.maxConnections, GET /healthz on the SDK port: ${probe} in ${probeMs} ms`);
  assert.ok(probeMs < HEADER_MS / 2, `a connection over the cap is refused at once, not left hanging (${probeMs} ms: ${probe})`);
  assert.match(probe, /^error/, `a connection over the cap is closed at accept (got ${probe})`);
  // The liveness probe that the Helm chart sends to the metrics port still passes: a full relay
  // must not be restarted (every stream would drop and reconnect at once).
  const live = await httpRequest(`${relay.metricsUrl}/healthz`, { timeoutMs: 2000 });
  assert.equal(live.status, 200, `/healthz on the metrics port while the SDK port is full: ${live.status}`);

  // Half-sent and silent sockets are cut at headerTimeout: slots free up, a normal client gets in.
  await waitFor(async () => {
    try {
      return (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod), timeoutMs: 1000 })).status === 200;
    } catch {
      return false;
    }
  }, { timeoutMs: HEADER_MS + SLACK_MS + 1000, intervalMs: 50, what: '/sdk/latest-all served once half-sent sockets are cut' });
  const servedAfter = Date.now() - t0;
  report(t, s, 'flood: a new client served after', servedAfter);
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal(sse.status, 200);
  assert.equal((await sse.nextEvent(3000)).event, 'put', 'a new stream works once slots are free');
  await waitFor(() => flood.every((c) => c.closedAt !== null), { timeoutMs: HEADER_MS + SLACK_MS + 1000, what: 'every flood socket closed by the relay' });
  const half = flood.filter((c) => c.half && c.closedAt !== null && c.closedAt - t0 > 100);
  assert.ok(half.length > 0, 'some half-sent sockets were accepted and later cut');
  const halfMax = Math.max(...half.map((c) => c.closedAt - c.firstByteAt));
  report(t, s, 'flood: half-sent sockets cut after their first byte (max)', halfMax);
  assert.ok(halfMax <= HEADER_MS + SLACK_MS, `half-sent requests held ${halfMax} ms, headerTimeout is ${HEADER_MS} ms`);

  // The silent ones went at the header timeout too: every flood slot is free.
  const silentMax = Math.max(...flood.filter((c) => !c.half && c.connectedAt !== null).map((c) => c.closedAt - c.connectedAt));
  report(t, s, 'flood: silent sockets closed after connect (max)', silentMax);
  assert.ok(silentMax <= HEADER_MS + SLACK_MS, `silent sockets held ${silentMax} ms, headerTimeout is ${HEADER_MS} ms`);
  await waitFor(async () => sampleSum(await metricsOf(relay), 'flagrelay_http_connections') <= 3,
    { timeoutMs: 3000, what: 'flagrelay_http_connections back to the two streams + the scrape' });
  assert.ok(!before.isClosed, 'the stream opened before the flood survived it');
  await assertStillServing(s, relay, 'during-flood', 'after the connection flood');
}, { timeout: 30000 });

faultTest('limits: oversized headers → 431, bodies over listen.maxBodyBytes / events.maxBodyBytes → 413 (Content-Length or chunked, lying lengths without reading), bodies on GET → 413', async (t, s) => {
  const sink = await startFakeEvents();
  s.defer(() => sink.close());
  // A long header timeout: a relay that waited for a lying Content-Length's body would hang here.
  const { relay } = await start(s, {
    listen: { headerTimeout: '10s', maxHeaderBytes: '4KiB', maxBodyBytes: '16KiB' },
    extra: { upstream: { eventsUri: sink.url }, events: { maxBodyBytes: '64KiB', flushInterval: '100ms' } },
  });
  const ctx = JSON.stringify({ kind: 'user', key: 'u', pad: 'p'.repeat(20 * 1024) }); // > 16 KiB
  const events = (n) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ kind: 'identify', key: `k${i}`, context: { kind: 'user', key: `k${i}` } })));
  const eventsOver = events(1500); // ~90 KiB > 64 KiB
  assert.ok(eventsOver.length > 64 * 1024);
  const chunked = (body, size = 8192) => {
    let out = '';
    for (let i = 0; i < body.length; i += size) {
      const part = body.slice(i, i + size);
      out += `${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`;
    }
    return `${out}0\r\n\r\n`;
  };
  const cases = [
    ['one 8 KiB header', `GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`, 431],
    ['2,000 small headers (14 KiB)', `GET /status HTTP/1.1\r\nHost: x\r\n${'X-N: v\r\n'.repeat(2000)}\r\n`, 431],
    ['a 64 KiB path', `GET /${'a'.repeat(65536)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431],
    ['a 10,000-character method', `${'G'.repeat(10000)} /status HTTP/1.1\r\nHost: x\r\n\r\n`, 431],
    ['REPORT body over maxBodyBytes (Content-Length)',
      `REPORT /sdk/evalx/context HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nContent-Length: ${ctx.length}\r\n\r\n${ctx}`, 413],
    ['REPORT body over maxBodyBytes (chunked)',
      `REPORT /sdk/evalx/context HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(ctx)}`, 413],
    ['events POST over events.maxBodyBytes (Content-Length)',
      `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nContent-Length: ${eventsOver.length}\r\n\r\n${eventsOver}`, 413],
    ['events POST over events.maxBodyBytes (chunked)',
      `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(eventsOver)}`, 413],
    ['mobile events POST over events.maxBodyBytes (chunked)',
      `POST /mobile/events/bulk HTTP/1.1\r\nHost: x\r\nAuthorization: ${KEYS.prodMobile}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(eventsOver)}`, 413],
    ['browser events POST over events.maxBodyBytes (chunked)',
      `POST /events/bulk/${KEYS.prodEnvId} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(eventsOver)}`, 413],
    ['GET with a chunked body', `GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\n${A}Transfer-Encoding: chunked\r\n\r\n${chunked('x'.repeat(100))}`, 413],
    ['GET stream with a chunked body', `GET /all HTTP/1.1\r\nHost: x\r\n${A}Transfer-Encoding: chunked\r\n\r\n${chunked('x'.repeat(100))}`, 413],
    ['OPTIONS with a chunked body', `OPTIONS /events/bulk/${KEYS.prodEnvId} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunked('x'.repeat(100))}`, 413],
  ];
  for (const [what, data, status] of cases) {
    const r = await exchange(relay.port, data, { ms: 3000 });
    assert.equal(r.responses[0]?.status, status, `${what}: expected ${status}, got ${r.responses[0]?.status ?? 'no response'} (${r.error ?? ''}) ${JSON.stringify(r.text.slice(0, 160))}`);
    assert.ok(r.closed, `${what}: the connection is closed after the refusal`);
  }

  // Lying Content-Lengths: only the headers are sent. The answer comes at once (the body is not
  // waited for: the header timeout is 10 s) and the connection is closed.
  for (const [what, head] of [
    ['events POST, Content-Length 1 GB', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n[`],
    ['REPORT, Content-Length 100 KiB', `REPORT /sdk/evalx/context HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nContent-Length: 102400\r\n\r\n{`],
    ['Expect: 100-continue, Content-Length 1 GB', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Expect: 100-continue\r\nContent-Length: 1000000000\r\n\r\n`],
  ]) {
    const r = await exchange(relay.port, head, { ms: 3000 });
    report(t, s, `lying length (${what}): answered after`, r.ms);
    assert.equal(r.responses[0]?.status, 413, `${what}: expected 413 before any body, got ${r.responses[0]?.status ?? 'no response'} ${JSON.stringify(r.text.slice(0, 160))}`);
    assert.ok(r.ms < 1000, `${what}: 413 after ${r.ms} ms, the body must not be waited for`);
    assert.ok(r.closed, `${what}: closed after the 413`);
  }

  // A header count that fits the byte bound is fine (no per-header blow-up).
  const many = await exchange(relay.port, `GET /healthz HTTP/1.1\r\nHost: x\r\n${'a:\r\n'.repeat(900)}Connection: close\r\n\r\n`);
  assert.equal(many.responses[0]?.status, 200, '900 empty headers within maxHeaderBytes');

  await sleep(300);
  assert.equal(sink.received.length, 0, `nothing refused reached the events service (${sink.received.map((p) => p.url)})`);
  const m = await metricsOf(relay);
  assert.deepEqual(serverErrors(m), [], 'no 5xx');
  await assertStillServing(s, relay, 'f', 'after oversized requests');
});

faultTest('limits: an events POST larger than listen.maxBodyBytes but within events.maxBodyBytes is accepted with a Content-Length as it is chunked', async (t, s) => {
  // docs/configuration.md: listen.maxBodyBytes bounds REPORT bodies, events POSTs are bounded by
  // events.maxBodyBytes. SDKs send events with a Content-Length.
  const sink = await startFakeEvents();
  s.defer(() => sink.close());
  const { relay } = await start(s, {
    listen: { maxBodyBytes: '16KiB' },
    extra: { upstream: { eventsUri: sink.url }, events: { maxBodyBytes: '256KiB', flushInterval: '100ms' } },
  });
  const body = JSON.stringify(Array.from({ length: 600 }, (_, i) => ({ kind: 'identify', key: `k${i}`, context: { kind: 'user', key: `k${i}` } })));
  assert.ok(body.length > 16 * 1024 && body.length < 256 * 1024, `body ${body.length} bytes`);
  const headers = { ...auth(KEYS.prod), 'Content-Type': 'application/json', 'X-LaunchDarkly-Event-Schema': '4' };
  const viaChunks = await httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...headers, 'Transfer-Encoding': 'chunked' }, body });
  assert.equal(viaChunks.status, 202, `chunked ${body.length}-byte events POST: ${viaChunks.status} ${viaChunks.text}`);
  const withLength = await httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...headers, 'Content-Length': Buffer.byteLength(body) }, body });
  assert.equal(withLength.status, 202,
    `POST /bulk with Content-Length ${body.length} (listen.maxBodyBytes 16 KiB < body < events.maxBodyBytes 256 KiB): expected 202, got ${withLength.status} ${withLength.text.trim()}`);
  await waitFor(() => sink.eventsAt('/bulk').length === 1200, { what: 'both posts delivered (1200 events)' });
});

faultTest('limits: a client still sending a 16 MiB body over events.maxBodyBytes can read the 413 (lingering close), not only a reset', async (t, s) => {
  // RFC 9112 §9.6: a server that answers before the whole body arrived and closes at once makes
  // the client's TCP stack receive a reset while it is still sending, which "may erase the
  // client's unacknowledged input buffers before they can be read" — the 413 is lost, and the
  // SDK sees a network error. The server should half-close and keep reading (bounded) instead.
  // 16 MiB: more than loopback socket buffers absorb, so the client is still sending when the
  // relay answers.
  const { relay } = await start(s, { listen: { maxBodyBytes: '16KiB' }, extra: { events: { maxBodyBytes: '64KiB' } } });
  const BODY = 16 * 1024 * 1024;
  const PIECE = 64 * 1024;
  const outcomes = [];
  const cases = [
    ['POST /bulk', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nContent-Length: ${BODY}\r\n\r\n`],
    ['POST /bulk chunked', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`],
    ['REPORT /sdk/evalx/context', `REPORT /sdk/evalx/context HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nContent-Length: ${BODY}\r\n\r\n`],
  ];
  // Twice each: whether the reset arrives before the answer is read is a race.
  for (const [what, head] of [...cases, ...cases]) {
    const chunkedBody = /chunked/.test(head);
    const c = rawClient(relay.port);
    s.defer(() => c.destroy());
    await c.connected;
    c.write(head);
    // The body in 64 KiB pieces, each once the previous one left (like an HTTP client streaming
    // a large upload), while the answer is read as it comes.
    let sent = 0;
    while (sent < BODY && c.error === null && c.closedAt === null) {
      const piece = Buffer.alloc(PIECE, 'a');
      const framed = chunkedBody ? Buffer.concat([Buffer.from(`${PIECE.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
      const drained = c.socket.write(framed);
      sent += PIECE;
      if (!drained) await Promise.race([new Promise((resolve) => c.socket.once('drain', resolve)), c.closed, sleep(2000)]);
    }
    if (chunkedBody && c.error === null && c.closedAt === null) c.socket.write('0\r\n\r\n');
    await closedWithin(c, 3000);
    const status = parseResponses(c.text).responses[0]?.status ?? null;
    const outcome = `${what}: status ${status}, body bytes written ${Math.min(sent, BODY)}/${BODY}, socket error ${c.error}`;
    t.diagnostic(outcome);
    outcomes.push({ what, status, error: c.error, outcome });
    c.destroy();
  }
  // A reset after the answer was read is fine; losing the answer is not.
  assert.deepEqual(outcomes.filter((o) => o.status !== 413).map((o) => o.outcome), [],
    'the relay reset the connection while the client was still sending its body, and the client never saw the 413 (no lingering close)');
  await assertStillServing(s, relay, 'f', 'after oversized bodies');
});

faultTest('malformed requests: odd methods, paths, versions and framings get a 4xx or a close, never a 5xx or a hang; the relay keeps serving', async (t, s) => {
  const { relay } = await start(s, { listen: { headerTimeout: '2s', idleTimeout: '2s' } });
  const ctxOk = b64url({ kind: 'user', key: 'u' });
  const close = 'Connection: close\r\n';
  const fourxx = (r) => r.status >= 400 && r.status < 500;
  const cases = [
    // [what, bytes, predicate on the first response (or null = no response, closed)]
    ['unknown method BREW', 'BREW /all HTTP/1.1\r\nHost: x\r\n\r\n', (r) => r.status === 405],
    ['lower-case method get', 'get /healthz HTTP/1.1\r\nHost: x\r\n\r\n', (r) => r.status === 405],
    ['HEAD on a GET route', `HEAD /sdk/latest-all HTTP/1.1\r\nHost: x\r\n${A}${close}\r\n`, (r) => r.status === 405],
    ['TRACE', `TRACE /status HTTP/1.1\r\nHost: x\r\n${close}\r\n`, (r) => r.status === 405],
    ['CONNECT (no tunnel)', 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n', fourxx],
    ['GET with control bytes for a target', 'GET \x01\x02 garbage\r\n\r\n', (r) => r.status === 400],
    ['NUL bytes for a request line', '\x00\x00\x00\x00\r\n\r\n', (r) => r.status === 400],
    ['a TLS ClientHello on the plain port', Buffer.from('16030100a5010000a10303', 'hex').toString('latin1') + 'a'.repeat(100), (r) => r.status === 400],
    ['/..%2f', `GET /..%2f HTTP/1.1\r\nHost: x\r\n${close}\r\n`, (r) => r.status === 404],
    ['/..%2fsdk/latest-all with a key', `GET /..%2fsdk/latest-all HTTP/1.1\r\nHost: x\r\n${A}${close}\r\n`, (r) => r.status === 404],
    ['/sdk/../status', `GET /sdk/../status HTTP/1.1\r\nHost: x\r\n${close}\r\n`, (r) => r.status === 404],
    ['//all with a key', `GET //all HTTP/1.1\r\nHost: x\r\n${A}${close}\r\n`, (r) => r.status === 404],
    ['/all/ with a key', `GET /all/ HTTP/1.1\r\nHost: x\r\n${A}${close}\r\n`, (r) => r.status === 404],
    ['invalid base64 context (browser)', `GET /sdk/evalx/${KEYS.prodEnvId}/contexts/!!!~~~ HTTP/1.1\r\nHost: x\r\n${close}\r\n`, (r) => r.status === 400],
    ['invalid base64 context (server)', `GET /sdk/evalx/contexts/%ZZ%0 HTTP/1.1\r\nHost: x\r\n${A}${close}\r\n`, (r) => r.status === 400],
    ['context of 3,000 nested arrays', `GET /sdk/evalx/contexts/${b64url('['.repeat(3000))} HTTP/1.1\r\nHost: x\r\n${A}${close}\r\n`, (r) => r.status === 400],
    ['context JSON null', `GET /meval/${b64url('null')} HTTP/1.1\r\nHost: x\r\nAuthorization: ${KEYS.prodMobile}\r\n${close}\r\n`, (r) => r.status === 400],
    ['item key %2F..%2F', `GET /sdk/latest-flags/%2F..%2Ff HTTP/1.1\r\nHost: x\r\n${A}${close}\r\n`, (r) => r.status === 404],
    ['item key %00', `GET /sdk/latest-flags/%00 HTTP/1.1\r\nHost: x\r\n${A}${close}\r\n`, (r) => r.status === 404],
    ['NUL byte in the path', 'GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n', (r) => r.status === 400],
    ['BEL byte in the path', 'GET /heal\x07thz HTTP/1.1\r\nHost: x\r\n\r\n', (r) => r.status === 400],
    ['DEL byte in the path', 'GET /heal\x7fthz HTTP/1.1\r\nHost: x\r\n\r\n', (r) => r.status === 400],
    ['a space in the path', 'GET /sta tus HTTP/1.1\r\nHost: x\r\n\r\n', (r) => r.status === 400],
    ['absolute-form http://x/all', `GET http://x/all HTTP/1.1\r\nHost: x\r\n${A}${close}\r\n`, (r) => fourxx(r) || r.status === 200],
    ['asterisk-form OPTIONS *', `OPTIONS * HTTP/1.1\r\nHost: x\r\n${close}\r\n`, fourxx],
    ['asterisk-form GET *', `GET * HTTP/1.1\r\nHost: x\r\n${close}\r\n`, fourxx],
    ['HTTP/0.9 request line', 'GET /status\r\n\r\n', (r) => r.status === 400],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', (r) => r.status === 400],
    ['HTTP/1.2', `GET /status HTTP/1.2\r\nHost: x\r\n${close}\r\n`, (r) => r.status === 400],
    ['HTTP/3.0', `GET /status HTTP/3.0\r\nHost: x\r\n${close}\r\n`, (r) => r.status === 400],
    ['bare LF line ends', 'GET /status HTTP/1.1\nHost: x\n\n', (r) => r.status === 400],
    ['a header without a colon', `GET /status HTTP/1.1\r\nHost x\r\n${close}\r\n`, (r) => r.status === 400],
    ['a space before the colon', `GET /status HTTP/1.1\r\nHost : x\r\n${close}\r\n`, (r) => r.status === 400],
    ['a NUL in a header value', `GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\nAuthorization: ${KEYS.prod}\x00\r\n${close}\r\n`, (r) => r.status === 400],
    ['Content-Length and Transfer-Encoding', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, (r) => r.status === 400],
    ['two different Content-Lengths', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, (r) => r.status === 400],
    ['a negative Content-Length', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Length: -1\r\n\r\n`, (r) => r.status === 400],
    ['a 26-digit Content-Length', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Length: 99999999999999999999999999\r\n\r\n`, (r) => r.status === 400],
    ['a bad chunk size', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Transfer-Encoding: chunked\r\n\r\nzz\r\n`, (r) => r.status === 400],
    ['a 2^72 chunk size', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n`, (r) => r.status === 400 || r.status === 413],
  ];
  const failures = [];
  for (const [what, data, ok] of cases) {
    const r = await exchange(relay.port, data, { ms: 4000 });
    const first = r.responses[0];
    const got = first ? `${first.status} ${JSON.stringify(first.body.slice(0, 80))}` : `no response (closed=${r.closed}, ${r.error ?? ''})`;
    t.diagnostic(`${what}: ${got}`);
    if (!first) {
      if (!r.closed) failures.push(`${what}: neither answered nor closed within 4 s`);
      continue;
    }
    if (first.status >= 500) failures.push(`${what}: ${got}`);
    else if (!ok(first)) failures.push(`${what}: unexpected ${got}`);
  }
  assert.deepEqual(failures, [], 'malformed requests');

  // HTTP/1.0: answered in HTTP/1.0 and closed; a stream over HTTP/1.0 is not chunked.
  const v10 = await exchange(relay.port, `GET /sdk/latest-all HTTP/1.0\r\n${A}\r\n`);
  assert.equal(v10.responses[0]?.status, 200, `HTTP/1.0 poll: ${v10.text.slice(0, 120)}`);
  assert.equal(v10.responses[0].version, '1.0');
  assert.ok(v10.closed, 'HTTP/1.0 without keep-alive: closed after the answer');
  const c = rawClient(relay.port);
  s.defer(() => c.destroy());
  await c.connected;
  c.write(`GET /all HTTP/1.0\r\n${A}\r\n`);
  await waitFor(() => /\r\n\r\nevent: put\ndata: /.test(c.text), { timeoutMs: 3000, what: 'an HTTP/1.0 stream put, unchunked' });
  assert.match(c.text, /^HTTP\/1\.0 200 /);
  assert.doesNotMatch(c.text.slice(0, c.text.indexOf('\r\n\r\n')), /transfer-encoding/i, 'no chunked coding for HTTP/1.0');
  c.destroy();

  assert.deepEqual(serverErrors(await metricsOf(relay)), [], 'no 5xx counted');
  await assertStillServing(s, relay, 'f', 'after malformed requests');
}, { timeout: 30000 });

faultTest('request smuggling guards: a Transfer-Encoding other than a final chunked is refused (400) and the connection closed, not read as a bodiless request', async (t, s) => {
  // RFC 9112 §6.3: Transfer-Encoding present and chunked not the final coding → 400 and close.
  // Read as "no body", the bytes that follow would be taken as the next request: a proxy in front
  // that frames the body differently would then desynchronise requests and responses.
  const { relay } = await start(s);
  const smuggled = 'GET /status HTTP/1.1\r\nHost: x\r\n\r\n';
  const failures = [];
  for (const [what, head] of [
    ['GET, Transfer-Encoding: gzip', 'GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n'],
    ['POST, Transfer-Encoding: gzip', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Transfer-Encoding: gzip\r\n\r\n`],
    ['POST, Transfer-Encoding: chunked, chunked', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Transfer-Encoding: chunked, chunked\r\n\r\n`],
    ['POST, Transfer-Encoding: xchunked', `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Transfer-Encoding: xchunked\r\n\r\n`],
  ]) {
    const r = await exchange(relay.port, head + smuggled, { want: 2, ms: 2500 });
    const statuses = r.responses.map((x) => x.status);
    const answeredSmuggled = r.responses.some((x) => x.body.includes('"environments"'));
    const line = `${what}: statuses ${JSON.stringify(statuses)}, closed=${r.closed}, following request answered=${answeredSmuggled}`;
    t.diagnostic(line);
    if (JSON.stringify(statuses) !== '[400]' || !r.closed || answeredSmuggled) failures.push(line);
  }
  assert.deepEqual(failures, [], 'each must be answered by a single 400 and a close');
  // The legitimate framings still work.
  const ok = await exchange(relay.port, `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n`);
  assert.ok([202, 400].includes(ok.responses[0]?.status), `gzip, chunked: ${ok.text.slice(0, 100)}`);
});

faultTest('pipelining: requests sent in one packet are answered in order on one connection; a stream opened behind them works', async (t, s) => {
  const flags = byKey(makeFlag('p1', 1, 'one'), makeFlag('p2', 1, 'two'));
  const { up, relay } = await start(s, { flags });
  const batch = [
    `GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\n${A}\r\n`,
    `GET /sdk/latest-flags/p1 HTTP/1.1\r\nHost: x\r\n${A}\r\n`,
    `GET /sdk/latest-flags/nope HTTP/1.1\r\nHost: x\r\n${A}\r\n`,
    `GET /sdk/latest-flags/p2 HTTP/1.1\r\nHost: x\r\n${A}\r\n`,
    `GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\n${A}\r\n`,
    'GET /status HTTP/1.1\r\nHost: x\r\n\r\n',
    `GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\nAuthorization: ${KEYS.wrong}\r\n\r\n`,
    `POST /bulk HTTP/1.1\r\nHost: x\r\n${A}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n[]`,
    `GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\n${A}Connection: close\r\n\r\n`,
  ].join('');
  const r = await exchange(relay.port, batch, { want: 9, ms: 3000 });
  const got = r.responses.map((x) => x.status);
  assert.deepEqual(got, [200, 200, 404, 200, 200, 200, 401, 202, 200], `statuses in order: ${JSON.stringify(got)}`);
  for (const i of [0, 4, 8]) assert.deepEqual(Object.keys(JSON.parse(r.responses[i].body).flags).sort(), ['p1', 'p2'], `answer ${i} is /sdk/latest-all`);
  assert.equal(JSON.parse(r.responses[1].body).key, 'p1', 'second answer is p1');
  assert.equal(JSON.parse(r.responses[3].body).key, 'p2', 'fourth answer is p2');
  assert.ok('environments' in JSON.parse(r.responses[5].body), 'sixth answer is /status');
  assert.ok(r.closed, 'Connection: close on the last request closes');

  // Pipelined polls, then a stream request: the stream starts after the answers and lives on.
  const c = rawClient(relay.port);
  s.defer(() => c.destroy());
  await c.connected;
  c.write(`GET /sdk/latest-flags/p1 HTTP/1.1\r\nHost: x\r\n${A}\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /all HTTP/1.1\r\nHost: x\r\n${A}\r\n`);
  await waitFor(() => /event: put\ndata: /.test(c.text), { timeoutMs: 3000, what: 'the stream put after two pipelined answers' });
  const parsed = parseResponses(c.text).responses;
  assert.deepEqual(parsed.map((x) => x.status), [200, 200, 200]);
  assert.equal(JSON.parse(parsed[0].body).key, 'p1');
  assert.ok(parsed[2].stream, 'the third answer is the stream');
  up.pushPatch(makeFlag('p3', 1, 'three'));
  await waitFor(() => /event: patch\r?\ndata: \{"path":"\/flags\/p3"/.test(c.text), { timeoutMs: 3000, what: 'a patch on the stream opened behind pipelined requests' });
  assert.equal(c.closedAt, null, 'the stream stays open');
});

faultTest('pipelining flood: 1,000 requests in one write, read slowly — answered in order, relay memory flat', async (t, s) => {
  const N = 1000;
  const FLAGS = 50;
  const ITEM_BYTES = 32 * 1024;
  const flags = {};
  for (let i = 0; i < FLAGS; i++) flags[`big-${i}`] = makeFlag(`big-${i}`, 1, true, { description: 'x'.repeat(ITEM_BYTES) });
  // writeTimeout bounds one response write; the reader below is slow but keeps reading.
  const { relay } = await start(s, { flags, streams: { writeTimeout: '10s' } });
  // Warm up the answers' code paths before measuring.
  for (let i = 0; i < FLAGS; i++) await httpRequest(`${relay.url}/sdk/latest-flags/big-${i}`, { headers: auth(KEYS.prod) });
  const rss0 = rssKiB(relay.pid);

  const c = rawClient(relay.port);
  s.defer(() => c.destroy());
  await c.connected;
  c.socket.pause();
  let requests = '';
  for (let i = 0; i < N; i++) requests += `GET /sdk/latest-flags/big-${i % FLAGS} HTTP/1.1\r\nHost: x\r\n${A}\r\n`;
  const t0 = Date.now();
  c.write(requests);
  let maxRss = rss0;
  const sampler = setInterval(() => { maxRss = Math.max(maxRss, rssKiB(relay.pid)); }, 50);
  s.defer(() => clearInterval(sampler));

  // Not read at all for a second: ~32 MB of answers are due, the relay must wait, not buffer.
  await sleep(1000);
  const stalledRss = rssKiB(relay.pid);
  // Meanwhile another client is served promptly.
  const other = await httpRequest(`${relay.url}/sdk/latest-flags/big-1`, { headers: auth(KEYS.prod), timeoutMs: 2000 });
  assert.equal(other.status, 200);

  // Then read slowly: one chunk at a time with a pause, parsing answers as they come.
  const keys = [];
  let buf = '';
  c.socket.removeAllListeners('data');
  c.socket.on('data', (d) => {
    buf += d.toString('latin1');
    const { responses, rest } = parseResponses(buf);
    for (const r of responses) keys.push(r.status === 200 ? JSON.parse(r.body).key : `status ${r.status}`);
    buf = rest;
    c.socket.pause();
    setTimeout(() => c.socket.resume(), 4);
  });
  c.socket.resume();
  await waitFor(() => keys.length >= N || c.closedAt !== null, { timeoutMs: 25000, intervalMs: 100, what: `${N} pipelined answers` });
  clearInterval(sampler);
  const ms = Date.now() - t0;
  const rssEnd = rssKiB(relay.pid);
  report(t, s, `pipelined flood: ${keys.length} answers (${Math.round((keys.length * ITEM_BYTES) / 1048576)} MiB) read in`, ms);
  report(t, s, 'pipelined flood: relay RSS before / stalled / max / after', `${rss0} / ${stalledRss} / ${maxRss} / ${rssEnd}`, 'KiB');
  assert.equal(keys.length, N, `all ${N} pipelined requests answered (connection closed: ${c.closedAt !== null}, ${c.error ?? ''})`);
  const wrong = keys.findIndex((k, i) => k !== `big-${i % FLAGS}`);
  assert.equal(wrong, -1, `answer ${wrong} out of order: ${keys[wrong]}`);
  // Memory bounds hold for a plain build; a sanitizer's allocator keeps freed memory on purpose.
  if (!sanitized(relay.pid)) assert.ok(maxRss - rss0 < 16 * 1024, `relay RSS grew ${maxRss - rss0} KiB while ${N} answers (~${Math.round((N * ITEM_BYTES) / 1048576)} MiB) were due to a slow reader`);
  await assertStillServing(s, relay, 'big-0', 'after the pipelining flood');
}, { timeout: 40000 });

faultTest('50 SSE clients that never read, ~5 MB of large patches: each is disconnected at its queue bound and counted, a reading client gets everything, relay memory flat', async (t, s) => {
  const STALLED = 50;
  const PAD = 20 * 1024;
  const { up, relay } = await start(s, {
    flags: byKey(makeFlag('seed', 1, 'seed')),
    streams: { maxQueueEvents: 64, maxQueueBytes: 262144, heartbeatInterval: '1s', writeTimeout: '30s' },
  });
  const healthy = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal((await healthy.nextEvent(3000)).event, 'put');
  const stalled = [];
  for (let i = 0; i < STALLED; i++) stalled.push(await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod), paused: true }));
  await waitFor(async () => sampleSum(await metricsOf(relay), 'flagrelay_sdk_streams', { env: 'prod' }) === STALLED + 1,
    { timeoutMs: 3000, what: `flagrelay_sdk_streams{env="prod"} == ${STALLED + 1}` });
  const slow0 = sampleSum(await metricsOf(relay), 'flagrelay_sdk_stream_slow_disconnects_total', { env: 'prod' });
  const rss0 = rssKiB(relay.pid);
  let maxRss = rss0;

  // Batches of 25 patches of ~20 KiB; the healthy reader must get each batch in order. Kernel
  // buffers absorb some MiB per stalled socket before the relay's queue fills: keep going (up to
  // 16 MiB) until all stalled readers are cut.
  let version = 1;
  let slow = 0;
  const pad = 'p'.repeat(PAD);
  const t0 = Date.now();
  for (let batch = 0; batch < 32 && slow < STALLED; batch++) {
    for (let i = 0; i < 25; i++) {
      version++;
      up.pushPatch(makeFlag(`big-${version % 25}`, version, `${version}:${pad}`));
      if (i % 5 === 4) await new Promise((resolve) => setImmediate(resolve));
    }
    for (;;) {
      const ev = await healthy.nextEvent(5000);
      assert.equal(ev.event, 'patch');
      if (ev.json().data.version === version) break;
    }
    maxRss = Math.max(maxRss, rssKiB(relay.pid));
    slow = sampleSum(await metricsOf(relay), 'flagrelay_sdk_stream_slow_disconnects_total', { env: 'prod' }) - slow0;
  }
  const pushedMiB = ((version - 1) * PAD) / 1048576;
  report(t, s, `stalled readers: ${slow}/${STALLED} cut after ${pushedMiB.toFixed(1)} MiB of patches, in`, Date.now() - t0);
  report(t, s, 'stalled readers: relay RSS before / max', `${rss0} / ${maxRss}`, 'KiB');
  assert.equal(slow, STALLED, `flagrelay_sdk_stream_slow_disconnects_total{env="prod"} rose by ${slow}, expected ${STALLED} after ${pushedMiB.toFixed(1)} MiB`);
  if (!sanitized(relay.pid)) assert.ok(maxRss - rss0 < 30 * 1024, `relay RSS grew ${maxRss - rss0} KiB with ${STALLED} stalled readers`);
  await waitFor(async () => sampleSum(await metricsOf(relay), 'flagrelay_sdk_streams', { env: 'prod' }) === 1,
    { timeoutMs: 3000, what: 'flagrelay_sdk_streams{env="prod"} back to the healthy reader' });
  // The stalled sockets really are closed: once read, each stream ends.
  for (const c of stalled.slice(0, 5)) {
    c.resume();
    assert.ok(await c.waitClosed(5000), `a stalled reader still open after resuming (read ${c.bytes} bytes)`);
  }
  up.pushPatch(makeFlag('after', 1, 'still-here'));
  assert.equal((await healthy.nextEvent(3000)).json().path, '/flags/after');
  assert.ok(!healthy.isClosed, 'the healthy reader is never cut');
});
