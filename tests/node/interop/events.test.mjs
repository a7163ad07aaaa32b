// The official Node server SDK sends its analytics and diagnostic events to the relay, which
// forwards them to a fake events service: what the SDK produced is what arrives.
import assert from 'node:assert/strict';
import { relayTest, prodEnv } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { sdkClient } from '../support/sdk.mjs';
import { waitFor } from '../support/http.mjs';
import { startFakeEvents } from '../support/fake-events.mjs';

relayTest('node SDK events (index, feature, summary, custom, diagnostic) reach the events service through the relay', async (t, s) => {
  const sink = await startFakeEvents();
  s.defer(() => sink.close());
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: byKey(makeFlag('tracked-flag', 3, 'on-value', { trackEvents: true }), makeFlag('plain-flag', 7, true)),
  });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    extra: { upstream: { eventsUri: sink.url }, events: { flushInterval: '100ms' } },
  });

  const client = sdkClient(s, relay, KEYS.prod, { stream: true, sendEvents: true, diagnosticOptOut: false, flushInterval: 0.2 });
  await client.waitForInitialization({ timeout: 10 });
  const context = { kind: 'user', key: 'sdk-user-1', name: 'Ada' };
  assert.equal(await client.variation('tracked-flag', context, 'default'), 'on-value');
  assert.equal(await client.variation('plain-flag', context, false), true);
  assert.equal(await client.variation('plain-flag', context, false), true);
  client.track('checkout', context, { cart: 3 }, 42.5);
  client.identify({ kind: 'user', key: 'sdk-user-2' });
  await client.flush();

  const all = () => sink.eventsAt('/bulk');
  await waitFor(() => all().some((e) => e.kind === 'summary') && all().some((e) => e.kind === 'identify'), {
    what: 'the SDK\'s summary and identify events at the events service',
    timeoutMs: 10000,
  });
  const bulk = sink.received.filter((p) => p.url === '/bulk');
  for (const p of bulk) {
    assert.equal(p.headers.authorization, KEYS.prod, 'the SDK key as credential');
    assert.equal(p.headers['x-launchdarkly-event-schema'], '4', 'the Node SDK\'s schema, preserved');
    assert.equal(p.headers['content-encoding'], 'gzip');
  }
  const kinds = all().map((e) => e.kind);
  for (const kind of ['index', 'feature', 'summary', 'custom', 'identify']) {
    assert.ok(kinds.includes(kind), `a ${kind} event; got ${kinds}`);
  }
  const feature = all().find((e) => e.kind === 'feature');
  assert.equal(feature.key, 'tracked-flag');
  assert.equal(feature.value, 'on-value');
  assert.equal(feature.version, 3);
  const summary = all().find((e) => e.kind === 'summary');
  const plain = summary.features['plain-flag'];
  assert.equal(plain.counters.reduce((n, c) => n + c.count, 0), 2, 'two evaluations of plain-flag counted');
  const custom = all().find((e) => e.kind === 'custom');
  assert.equal(custom.key, 'checkout');
  assert.equal(custom.metricValue, 42.5);
  assert.deepEqual(custom.data, { cart: 3 });

  await waitFor(() => sink.received.some((p) => p.url === '/diagnostic'), { what: 'the SDK\'s diagnostic-init event', timeoutMs: 10000 });
  const diagnostic = sink.received.find((p) => p.url === '/diagnostic');
  assert.equal(diagnostic.events.kind, 'diagnostic-init');
  assert.equal(diagnostic.headers.authorization, KEYS.prod);
  assert.match(diagnostic.headers['user-agent'] ?? '', /NodeJSClient/, 'the SDK\'s own User-Agent');
});
