// The events relay against a fake events service: what SDKs post arrives upstream verbatim, in
// gzip batches with the right path, credential and headers; bad bodies are refused with a
// message; retries, give-ups, refused keys and switched-off environments are counted; a
// shutdown delivers what is queued.
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag } from '../support/flags.mjs';
import { httpRequest, waitFor, sleep } from '../support/http.mjs';
import { scrape, sampleSum } from '../support/prom.mjs';
import { startFakeEvents } from '../support/fake-events.mjs';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const json = { 'Content-Type': 'application/json', 'X-LaunchDarkly-Event-Schema': '4' };

async function setup(s, { events = {}, env = {} } = {}) {
  const sink = await startFakeEvents();
  s.defer(() => sink.close());
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: {} });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(env),
    extra: { upstream: { eventsUri: sink.url }, events: { flushInterval: '200ms', ...events } },
  });
  return { sink, relay, up };
}

async function status(relay, env = 'prod') {
  const r = await httpRequest(`${relay.url}/status`);
  return JSON.parse(r.body).environments[env];
}

async function metric(relay, name, labels = {}) {
  const m = await scrape(relay);
  return sampleSum(m.parsed, name, { env: 'prod', ...labels });
}

relayTest('events: each SDK kind\'s events arrive verbatim, gzip, with its path, credential and headers', async (t, s) => {
  const { sink, relay } = await setup(s);
  const serverEvent = '{"kind":"custom","key":"k1","creationDate":1700000000000,"metricValue":1.0E0,"data":{"a":[1,2]}}';
  let r = await httpRequest(`${relay.url}/bulk`, {
    method: 'POST',
    headers: { ...auth(KEYS.prod), ...json, 'X-LaunchDarkly-Tags': 'application-id/shop' },
    body: `[${serverEvent},{"kind":"identify","key":"u"}]`,
  });
  assert.equal(r.status, 202, `POST /bulk: ${r.status} ${r.body}`);
  r = await httpRequest(`${relay.url}/mobile/events/bulk`, {
    method: 'POST',
    headers: { ...auth(KEYS.prodMobile), ...json, 'Content-Encoding': 'gzip' },
    body: zlib.gzipSync('[{"kind":"identify","key":"m"}]'),
  });
  assert.equal(r.status, 202, `POST /mobile/events/bulk (gzip): ${r.status} ${r.body}`);
  r = await httpRequest(`${relay.url}/mobile`, { method: 'POST', headers: { ...auth(KEYS.prodMobile), ...json }, body: '[{"kind":"identify","key":"m2"}]' });
  assert.equal(r.status, 202, `POST /mobile: ${r.status}`);
  r = await httpRequest(`${relay.url}/events/bulk/${KEYS.prodEnvId}`, {
    method: 'POST',
    headers: { ...json, Origin: 'https://app.example' },
    body: '[{"kind":"feature","key":"b","value":true}]',
  });
  assert.equal(r.status, 202, `POST /events/bulk/{envId}: ${r.status}`);
  assert.equal(r.headers['access-control-allow-origin'], 'https://app.example', 'CORS on the browser events route');
  const preflight = await httpRequest(`${relay.url}/events/bulk/${KEYS.prodEnvId}`, { method: 'OPTIONS', headers: { Origin: 'https://app.example' } });
  assert.equal(preflight.status, 200);
  assert.match(preflight.headers['access-control-allow-methods'] ?? '', /POST/);
  r = await httpRequest(`${relay.url}/diagnostic`, {
    method: 'POST',
    headers: { ...auth(KEYS.prod), 'Content-Type': 'application/json', 'User-Agent': 'NodeJSClient/9.0', 'X-LaunchDarkly-Wrapper': 'w/1' },
    body: '{"kind":"diagnostic","id":{"diagnosticId":"d1"}}',
  });
  assert.equal(r.status, 202, `POST /diagnostic: ${r.status}`);
  const big = await httpRequest(`${relay.url}/diagnostic`, {
    method: 'POST',
    headers: { ...auth(KEYS.prod), 'Content-Type': 'application/json' },
    body: JSON.stringify({ kind: 'diagnostic', padding: 'x'.repeat(300 * 1024) }),
  });
  assert.equal(big.status, 413, 'a diagnostic body over 256 KiB, though under events.maxBodyBytes');

  await waitFor(() => sink.received.length >= 4, { what: 'four POSTs at the fake events service' });
  const at = (url) => sink.received.find((p) => p.url === url);
  const bulk = at('/bulk');
  assert.ok(bulk, `POST /bulk upstream; got ${sink.received.map((p) => p.url)}`);
  assert.equal(bulk.headers.authorization, KEYS.prod);
  assert.equal(bulk.headers['content-encoding'], 'gzip');
  assert.equal(bulk.headers['x-launchdarkly-event-schema'], '4');
  assert.equal(bulk.headers['x-launchdarkly-tags'], 'application-id/shop');
  assert.match(bulk.headers['x-launchdarkly-payload-id'] ?? '', UUID_V4);
  assert.match(bulk.headers['user-agent'] ?? '', /^flagrelay\//);
  assert.equal(bulk.body, `[${serverEvent},{"kind":"identify","key":"u"}]`, 'events verbatim (1.0E0 stays 1.0E0)');
  const mobile = at('/mobile');
  assert.equal(mobile.headers.authorization, KEYS.prodMobile);
  assert.deepEqual(sink.eventsAt('/mobile').map((e) => e.key).sort(), ['m', 'm2']);
  const browser = at(`/events/bulk/${KEYS.prodEnvId}`);
  assert.equal(browser.headers.authorization, undefined, 'browser events go without a credential');
  const diagnostic = at('/diagnostic');
  assert.equal(diagnostic.headers.authorization, KEYS.prod);
  assert.equal(diagnostic.headers['user-agent'], 'NodeJSClient/9.0', 'diagnostics keep the SDK\'s User-Agent');
  assert.equal(diagnostic.headers['x-launchdarkly-wrapper'], 'w/1');
  assert.deepEqual(JSON.parse(diagnostic.body), { kind: 'diagnostic', id: { diagnosticId: 'd1' } });
  const ids = new Set(sink.received.map((p) => p.headers['x-launchdarkly-payload-id']).filter(Boolean));
  assert.equal(ids.size, sink.received.filter((p) => p.headers['x-launchdarkly-payload-id']).length, 'a fresh payload ID per POST');
  await waitFor(async () => (await metric(relay, 'flagrelay_events_forwarded_total')) === 5, { what: 'flagrelay_events_forwarded_total = 5' });
});

relayTest('events: bad bodies are refused with a message; too large is 413; a wrong key is 401', async (t, s) => {
  const { sink, relay } = await setup(s, { events: { maxBodyBytes: '2KiB' } });
  const post = (body, headers = {}) =>
    httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...auth(KEYS.prod), ...json, ...headers }, body });
  for (const [body, why] of [
    ['', /empty/],
    ['[{"kind":', /invalid JSON/],
    ['{"kind":"custom"}', /array/],
    ['[1,2]', /not a JSON object/],
  ]) {
    const r = await post(body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status}`);
    assert.match(JSON.parse(r.body).message, why, `${JSON.stringify(body)}: ${r.body}`);
  }
  let r = await post(Buffer.from('not gzip'), { 'Content-Encoding': 'gzip' });
  assert.equal(r.status, 400, `bad gzip → ${r.status}`);
  r = await post(`[${'{"kind":"custom","key":"x"},'.repeat(100)}{}]`);
  assert.equal(r.status, 413, `over events.maxBodyBytes → ${r.status}`);
  r = await post(zlib.gzipSync(`[${'{"kind":"custom","key":"x"},'.repeat(1000)}{}]`), { 'Content-Encoding': 'gzip' });
  assert.equal(r.status, 413, `gzip inflating past events.maxBodyBytes → ${r.status}`);
  r = await httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...auth(KEYS.wrong), ...json }, body: '[]' });
  assert.equal(r.status, 401);
  r = await httpRequest(`${relay.url}/bulk`, { method: 'GET', headers: auth(KEYS.prod) });
  assert.equal(r.status, 405);
  await sleep(500);
  assert.equal(sink.received.length, 0, 'nothing refused reaches the events service');
});

relayTest('events: a 5xx is retried once a second later with the same payload ID; twice is a give-up, counted', async (t, s) => {
  const { sink, relay } = await setup(s);
  sink.script = [500];
  const post = (key) =>
    httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...auth(KEYS.prod), ...json }, body: `[{"kind":"identify","key":"${key}"}]` });
  assert.equal((await post('a')).status, 202);
  await waitFor(() => sink.received.length >= 2, { what: 'first attempt and its retry' });
  const [first, retry] = sink.received;
  assert.equal(first.answered, 500);
  assert.equal(retry.headers['x-launchdarkly-payload-id'], first.headers['x-launchdarkly-payload-id'], 'the retry is the same payload');
  assert.equal(retry.body, first.body);
  await waitFor(async () => (await metric(relay, 'flagrelay_events_forwarded_total')) === 1, { what: 'forwarded after the retry' });

  sink.script = [503, 503];
  assert.equal((await post('b')).status, 202);
  await waitFor(async () => (await metric(relay, 'flagrelay_events_dropped_total', { reason: 'undeliverable' })) === 1, {
    what: 'dropped{reason="undeliverable"} after two failures',
  });
  assert.equal(sink.received.length, 4, 'two attempts only');

  sink.script = [413];
  assert.equal((await post('c')).status, 202);
  await waitFor(async () => (await metric(relay, 'flagrelay_events_dropped_total', { reason: 'refused_batch' })) === 1, {
    what: 'a 413 drops the batch without retry',
  });
  await sleep(1300);
  assert.equal(sink.received.length, 5, 'no retry after 413');
  assert.equal(await metric(relay, 'flagrelay_events_queued'), 0, 'nothing left queued');
});

relayTest('events: a refused key (401) stops forwarding for the environment, visibly', async (t, s) => {
  const { sink, relay } = await setup(s);
  sink.status = 401;
  const post = () =>
    httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...auth(KEYS.prod), ...json }, body: '[{"kind":"identify","key":"a"}]' });
  assert.equal((await post()).status, 202);
  await waitFor(async () => (await metric(relay, 'flagrelay_events_forwarding')) === 0, { what: 'flagrelay_events_forwarding 0' });
  assert.equal(sink.received.length, 1, '401 is not retried');
  assert.equal((await post()).status, 202, 'SDKs still get 202');
  await sleep(500);
  assert.equal(sink.received.length, 1, 'nothing more is sent');
  assert.equal(await metric(relay, 'flagrelay_events_dropped_total', { reason: 'upstream_rejected' }), 2);
  assert.ok(/refused the credential/.test(relay.output()), 'an error log line says why');
  assert.equal((await status(relay)).events.state, 'rejected', '/status says so');

  // Once the key is accepted again, SIGHUP resumes forwarding without a restart.
  sink.status = 202;
  relay.reload({});
  await waitFor(async () => (await status(relay)).events.state === 'forwarding', { what: 'forwarding after SIGHUP' });
  assert.equal((await post()).status, 202);
  await waitFor(() => sink.received.length === 2, { what: 'the next batch delivered' });
  assert.equal(await metric(relay, 'flagrelay_events_forwarding'), 1);
});

relayTest('events: a switched-off environment accepts (202), counts and discards', async (t, s) => {
  const { sink, relay } = await setup(s, { env: { events: { enabled: false } } });
  const r = await httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...auth(KEYS.prod), ...json }, body: '[{"kind":"identify","key":"a"},{"kind":"identify","key":"b"}]' });
  assert.equal(r.status, 202);
  await sleep(500);
  assert.equal(sink.received.length, 0);
  assert.equal(await metric(relay, 'flagrelay_events_dropped_total', { reason: 'disabled' }), 2);
  assert.equal(await metric(relay, 'flagrelay_events_forwarding'), 0);
});

relayTest('events: a stalled events service fills the bounded queue; the excess is shed with 202 and counted', async (t, s) => {
  const { sink, relay } = await setup(s, { events: { maxBatch: 5, maxQueueEvents: 20, sendTimeout: '30s' } });
  sink.status = 'stall';
  const body = `[${Array.from({ length: 10 }, (_, i) => `{"kind":"identify","key":"k${i}"}`).join(',')}]`;
  for (let i = 0; i < 6; i++) {
    const r = await httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...auth(KEYS.prod), ...json }, body });
    assert.equal(r.status, 202, `POST ${i}: ${r.status}`);
  }
  assert.equal(await metric(relay, 'flagrelay_events_queued'), 20, 'queue at its bound');
  assert.equal(await metric(relay, 'flagrelay_events_dropped_total', { reason: 'queue_full' }), 40, '60 posted, 20 held');
  await waitFor(() => sink.received.length === 4, { what: 'at most four POSTs open at once' });
  await sleep(300);
  assert.equal(sink.received.length, 4);
});

relayTest('events: SIGTERM delivers what is queued before exiting', async (t, s) => {
  const { sink, relay } = await setup(s, { events: { flushInterval: '1h' } });
  const r = await httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...auth(KEYS.prod), ...json }, body: '[{"kind":"identify","key":"late"}]' });
  assert.equal(r.status, 202);
  await sleep(200);
  assert.equal(sink.received.length, 0, 'not flushed yet (flushInterval 1h)');
  await relay.terminate();
  assert.deepEqual(sink.eventsAt('/bulk').map((e) => e.key), ['late']);
});

relayTest('events: X-LaunchDarkly-Unsummarized and old schemas are forwarded as they came, each in its own batch', async (t, s) => {
  const { sink, relay } = await setup(s);
  const post = (key, headers) =>
    httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...auth(KEYS.prod), 'Content-Type': 'application/json', ...headers }, body: `[{"kind":"feature","key":"${key}","value":1}]` });
  assert.equal((await post('php', { 'X-LaunchDarkly-Event-Schema': '4', 'X-LaunchDarkly-Unsummarized': 'true' })).status, 202);
  assert.equal((await post('sdk4', { 'X-LaunchDarkly-Event-Schema': '4' })).status, 202);
  assert.equal((await post('old', { 'X-LaunchDarkly-Event-Schema': '2' })).status, 202);
  await waitFor(() => sink.received.length === 3, { what: 'three batches' });
  const batch = (key) => sink.received.find((p) => p.events?.[0]?.key === key);
  assert.equal(batch('php').headers['x-launchdarkly-unsummarized'], 'true');
  assert.equal(batch('php').headers['x-launchdarkly-event-schema'], '4');
  assert.equal(batch('sdk4').headers['x-launchdarkly-unsummarized'], undefined);
  assert.equal(batch('old').headers['x-launchdarkly-event-schema'], '2');
  assert.equal(batch('old').body, '[{"kind":"feature","key":"old","value":1}]');
});

relayTest('events: SIGHUP switches an environment\'s events live, keeps SDK streams, and rejects an invalid config', async (t, s) => {
  const { sink, relay, up } = await setup(s);
  const stream = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  await stream.waitForEvent((e) => e.event === 'put', 5000, 'the initial put');
  const post = (n, tag) =>
    httpRequest(`${relay.url}/bulk`, {
      method: 'POST',
      headers: { ...auth(KEYS.prod), ...json },
      body: `[${Array.from({ length: n }, (_, i) => `{"kind":"identify","key":"${tag}${i}"}`).join(',')}]`,
    });
  assert.equal((await post(1, 'before')).status, 202);
  await waitFor(() => sink.eventsAt('/bulk').length === 1, { what: 'delivered before the switch' });

  relay.reload({ environments: { prod: { events: { enabled: false } } } });
  await waitFor(async () => (await status(relay)).events.state === 'disabled', { what: '/status events.state disabled' });
  // The log line follows the switch: wait for it rather than race the output pipe.
  await waitFor(() => /environment prod: events now off/.test(relay.output()), { what: 'the reload logged' });
  assert.equal((await post(2, 'off')).status, 202, 'switched off: still 202');
  await waitFor(async () => (await metric(relay, 'flagrelay_events_dropped_total', { reason: 'disabled' })) === 2, { what: 'dropped{disabled} 2' });
  assert.equal(await metric(relay, 'flagrelay_events_forwarding'), 0);

  relay.reload('environments: [unclosed\n');
  await waitFor(() => /new config is invalid; keeping the running one/.test(relay.output()), { what: 'the invalid config is logged' });
  assert.equal((await status(relay)).events.state, 'disabled', 'the old switches stay');

  relay.reload({ environments: { prod: { events: { enabled: true, rateLimit: 5, rateBurst: 5, sampleRatio: 0.25 } } } });
  await waitFor(async () => (await status(relay)).events.state === 'forwarding', { what: 'forwarding again' });
  const events = (await status(relay)).events;
  assert.equal(events.rateLimit, 5);
  assert.equal(events.sampleRatio, 0.25);
  assert.equal((await post(20, 'limited')).status, 202);
  await waitFor(() => sink.eventsAt('/bulk').length === 6, { what: 'the burst of 5 delivered' });
  assert.equal(await metric(relay, 'flagrelay_events_dropped_total', { reason: 'rate_limited' }), 15);
  assert.equal(sink.eventsAt('/bulk').filter((e) => e.key.startsWith('off')).length, 0);

  // The SDK stream lived through all of it.
  up.pushPatch(makeFlag('after-reloads', 1, true));
  await stream.waitForEvent((e) => e.event === 'patch' && e.data.includes('after-reloads'), 5000, 'a patch after the reloads');
  assert.ok(!stream.isClosed, 'the SDK stream is still open');
});

relayTest('events: batches share a kept-alive connection; one the service closed is replaced without losing a batch', async (t, s) => {
  const { sink, relay } = await setup(s);
  const post = (key) =>
    httpRequest(`${relay.url}/bulk`, { method: 'POST', headers: { ...auth(KEYS.prod), ...json }, body: `[{"kind":"identify","key":"${key}"}]` });
  for (let i = 0; i < 3; i++) {
    assert.equal((await post(`k${i}`)).status, 202);
    await waitFor(() => sink.eventsAt('/bulk').length === i + 1, { what: `batch ${i} delivered` });
  }
  assert.equal(sink.connections, 1, 'three batches, one connection');

  // The service drops the idle connection; the relay finds out when it next sends.
  sink.dropConnections();
  await sleep(100);
  assert.equal((await post('after-close')).status, 202);
  // At once (flushInterval is 200 ms), not after the one-second retry of a failed POST.
  await waitFor(() => sink.eventsAt('/bulk').length === 4, { what: 'batch 4 delivered on a fresh connection', timeoutMs: 900 });
  assert.equal(sink.connections, 2, 'a second connection replaced the closed one');
  assert.doesNotMatch(relay.output(), /no answer from the events service|sending events failed/, 'not a failure');
  assert.deepEqual(sink.eventsAt('/bulk').map((e) => e.key), ['k0', 'k1', 'k2', 'after-close'], 'each once');
  assert.equal(await metric(relay, 'flagrelay_events_forwarded_total'), 4);
  assert.equal(await metric(relay, 'flagrelay_events_dropped_total'), 0);
});
