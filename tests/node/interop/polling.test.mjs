// Official Node server SDK in polling mode (stream: false) against the relay's /sdk/latest-all.
//
// The SDK validates pollInterval with numberWithMin(30): a smaller value is replaced by the
// default (30 s) with a warning, so a test cannot wait for a second poll. Instead: the first poll
// must initialize the client correctly, and a client created after a patch must see the new value.
import assert from 'node:assert/strict';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { sdkClient } from '../support/sdk.mjs';
import { scrape, findSamples } from '../support/prom.mjs';

const user = (key) => ({ kind: 'user', key });

relayTest('polling SDK initializes from /sdk/latest-all and evaluates; a later client sees a patch', async (t, s) => {
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: byKey(
      makeFlag('poll-bool', 1, true),
      makeFlag('poll-num', 1, 7),
      makeFlag('poll-json', 1, { a: [1, 2] }),
      makeFlag('poll-seg', 1, 'member', {
        variations: ['member', 'non-member'],
        rules: [{ id: 'r', variation: 0, clauses: [{ attribute: 'key', op: 'segmentMatch', values: ['beta'], negate: false }], trackEvents: false }],
        fallthrough: { variation: 1 },
      }),
    ),
    segments: byKey(makeSegment('beta', 1, ['beta-user'])),
  });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  await waitFor(async () => (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status === 200, {
    timeoutMs: 5000,
    what: 'relay has data',
  });

  // pollInterval below the SDK minimum: the SDK warns and uses 30 s (checked through its log).
  const first = sdkClient(s, relay, KEYS.prod, { stream: false, pollInterval: 1 }, 'sdk-poll-1');
  await first.waitForInitialization({ timeout: 10 });
  assert.ok(s.notes.some((n) => /pollInterval/.test(n)), 'the SDK is expected to warn about pollInterval < 30 (clamped)');
  assert.equal(await first.variation('poll-bool', user('u'), false), true);
  assert.equal(await first.variation('poll-num', user('u'), 0), 7);
  assert.deepEqual(await first.variation('poll-json', user('u'), null), { a: [1, 2] });
  assert.equal(await first.variation('poll-seg', user('beta-user'), 'd'), 'member');
  assert.equal(await first.variation('poll-seg', user('u'), 'd'), 'non-member');

  // The SDK really polled: a GET on the latest-all route was counted, and no stream was opened.
  const m = await scrape(relay);
  const polled = findSamples(m.parsed, 'flagrelay_http_requests_total', { method: 'GET' }).filter((x) => x.labels.route?.includes('latest-all'));
  assert.ok(polled.reduce((a, x) => a + x.value, 0) >= 2, `latest-all requests counted: ${JSON.stringify(polled)}`);

  up.pushPatch(makeFlag('poll-num', 2, 8));
  up.pushDelete('flags', 'poll-bool', 2);
  // Each change is served once committed, so the delete can land a commit after the patch.
  await waitFor(async () => {
    const r = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
    const flags = r.json().flags;
    return flags['poll-num']?.version === 2 && flags['poll-bool'] === undefined;
  }, { timeoutMs: 3000, what: 'relay applied the patch and the delete' });

  const second = sdkClient(s, relay, KEYS.prod, { stream: false, pollInterval: 30 }, 'sdk-poll-2');
  await second.waitForInitialization({ timeout: 10 });
  assert.equal(await second.variation('poll-num', user('u'), 0), 8, 'second client sees the patch');
  assert.equal(await second.variation('poll-bool', user('u'), false), false, 'second client sees the delete');
  assert.equal(await second.variation('poll-seg', user('beta-user'), 'd'), 'member');
  // The first client has not polled again yet (30 s interval): still the old value.
  assert.equal(await first.variation('poll-num', user('u'), 0), 7);
});

relayTest('polling SDK with a wrong key fails initialization (401)', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('f', 1, true)) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  const client = sdkClient(s, relay, KEYS.wrong, { stream: false }, 'sdk-poll-bad');
  await assert.rejects(client.waitForInitialization({ timeout: 5 }));
  assert.equal(await client.variation('f', user('u'), 'default'), 'default');
});
