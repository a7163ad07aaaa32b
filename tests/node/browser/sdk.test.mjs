// The official browser SDK (@launchdarkly/js-client-sdk 4.x) in headless Chromium, on a page of
// another origin, against the relay: initial evaluation (GET /sdk/evalx/{envId}/contexts/...,
// preflighted), the client stream (/eval/{envId}/...) with evaluated put/patch/delete, reasons.
// Protocol reference §1.5, §1.6, §1.8.
import assert from 'node:assert/strict';
import { browserTest, openSdkPage } from '../support/browser.mjs';
import { sleep } from '../support/http.mjs';
import {
  ADA, BOB, ENV_ID, FLAGS, SEGMENTS, EXPECTED_ADA, EXPECTED_BOB, INVISIBLE, NOT_JS_OVERRIDES,
  countryRule, sdkOptions, setup, streamOpen,
} from './fixtures.mjs';

browserTest('the browser SDK gets the evaluated flags of its context from the relay (cross-origin)', async (t, s) => {
  const { relay, page } = await setup(s);
  const r = await page.startClient(ENV_ID, ADA, sdkOptions(relay));
  assert.equal(r.status, 'complete', `start(): ${JSON.stringify(r)}`);
  // The first data set is itself a "change" of every key (from nothing).
  const first = await page.pendingChanges();
  assert.deepEqual(first.flatMap((c) => c.keys).sort(), Object.keys(EXPECTED_ADA).sort(), `initial change event: ${JSON.stringify(first)}`);
  await page.skipChanges();

  assert.deepEqual(await page.allFlags(), EXPECTED_ADA, 'allFlags(): targeting by key, rule on an attribute, fallthrough, off, JSON');
  assert.equal(await page.variation('targeted', 'dflt'), 'for-you');
  assert.equal(await page.variation('by-country', 'dflt'), 'bonjour');
  assert.equal(await page.variation('everyone-number', 0), 42);
  for (const k of INVISIBLE) assert.equal(await page.variation(k, 'dflt'), 'dflt', `${k} is not available to the JS SDK`);

  // The initial poll: preflighted (the SDK sends X-LaunchDarkly-User-Agent), answered for this origin.
  const evalx = `${relay.url}/sdk/evalx/${ENV_ID}/contexts/`;
  const pre = await page.waitForRequest(evalx, (e) => e.method === 'OPTIONS' && e.status !== null, { what: 'preflight of the poll' });
  assert.equal(pre.status, 200, page.netSummary(relay.url));
  assert.equal(pre.headers['access-control-allow-origin'] ?? pre.headers['Access-Control-Allow-Origin'], page.origin, `preflight headers ${JSON.stringify(pre.headers)}`);
  const poll = await page.waitForRequest(evalx, (e) => e.method === 'GET' && e.status !== null, { what: 'poll' });
  assert.equal(poll.status, 200);

  // The client stream: an evaluated put for this context, without the non-JS flags.
  await streamOpen(page, relay);
  const put = await page.waitForSse(`${relay.url}/eval/${ENV_ID}/`, (m) => m.event === 'put', { what: 'put on the client stream' });
  const data = JSON.parse(put.data);
  assert.deepEqual(Object.keys(data).sort(), Object.keys(EXPECTED_ADA).sort(), `stream put keys: ${put.data.slice(0, 500)}`);
  for (const [k, v] of Object.entries(EXPECTED_ADA)) {
    assert.deepEqual(data[k].value, v, `stream put ${k}`);
    assert.equal(typeof data[k].version, 'number', `stream put ${k} version`);
  }
  assert.equal(data.targeted.variation, 0);
  assert.equal(data['switched-off'].variation, 1);
  // The stream's put holds what the poll returned: no change for the application.
  await sleep(300);
  assert.deepEqual(await page.pendingChanges(), [], 'the stream put (same data as the poll) changed nothing');
  assert.deepEqual(await page.allFlags(), EXPECTED_ADA, 'allFlags() after the stream put');
});

browserTest('two pages with different contexts get their own evaluations', async (t, s) => {
  const { relay, page } = await setup(s);
  const bob = await openSdkPage(s);
  const [ra, rb] = await Promise.all([page.startClient(ENV_ID, ADA, sdkOptions(relay)), bob.startClient(ENV_ID, BOB, sdkOptions(relay))]);
  assert.equal(ra.status, 'complete', JSON.stringify(ra));
  assert.equal(rb.status, 'complete', JSON.stringify(rb));
  assert.deepEqual(await page.allFlags(), EXPECTED_ADA);
  assert.deepEqual(await bob.allFlags(), EXPECTED_BOB);
});

browserTest('withReasons: evaluation reasons reach the SDK (poll and stream)', async (t, s) => {
  const { relay, page } = await setup(s);
  const r = await page.startClient(ENV_ID, ADA, sdkOptions(relay, { withReasons: true }));
  assert.equal(r.status, 'complete', JSON.stringify(r));
  const poll = await page.waitForRequest(`${relay.url}/sdk/evalx/${ENV_ID}/contexts/`, (e) => e.method === 'GET');
  assert.match(poll.url, /\?withReasons=true$/);
  const check = async (when) => {
    assert.deepEqual(await page.variationDetail('targeted', 'd'), { value: 'for-you', variationIndex: 0, reason: { kind: 'TARGET_MATCH' } }, `${when}: targeted`);
    assert.deepEqual(await page.variationDetail('by-country', 'd'), { value: 'bonjour', variationIndex: 0, reason: { kind: 'RULE_MATCH', ruleIndex: 0, ruleId: 'rule-country' } }, `${when}: by-country`);
    assert.deepEqual(await page.variationDetail('everyone-number', 0), { value: 42, variationIndex: 0, reason: { kind: 'FALLTHROUGH' } }, `${when}: fallthrough`);
    assert.deepEqual(await page.variationDetail('switched-off', true), { value: false, variationIndex: 1, reason: { kind: 'OFF' } }, `${when}: off`);
    const missing = await page.variationDetail('server-only', 'd');
    assert.equal(missing.value, 'd');
    assert.deepEqual(missing.reason, { kind: 'ERROR', errorKind: 'FLAG_NOT_FOUND' }, `${when}: server-only is unknown to the SDK`);
  };
  await check('after the poll');
  await streamOpen(page, relay, `/eval/${ENV_ID}/`);
  const put = await page.waitForSse(`${relay.url}/eval/${ENV_ID}/`, (m) => m.event === 'put', { what: 'put on the client stream' });
  assert.match(new URL(page.sseFrom(`${relay.url}/eval/`)[0].url).search, /withReasons=true/);
  assert.deepEqual(JSON.parse(put.data).targeted.reason, { kind: 'TARGET_MATCH' }, 'the stream put carries reasons');
  await sleep(200);
  await check('after the stream put');
});

browserTest('upstream changes reach the pages through the client stream (patch, delete, segment, visibility)', async (t, s) => {
  const { up, relay, page } = await setup(s);
  const bob = await openSdkPage(s);
  const [ra, rb] = await Promise.all([page.startClient(ENV_ID, ADA, sdkOptions(relay)), bob.startClient(ENV_ID, BOB, sdkOptions(relay))]);
  assert.equal(ra.status, 'complete', JSON.stringify(ra));
  assert.equal(rb.status, 'complete', JSON.stringify(rb));
  await Promise.all([streamOpen(page, relay), streamOpen(bob, relay)]);
  await Promise.all([
    page.waitForSse(`${relay.url}/eval/`, (m) => m.event === 'put', { what: 'initial put' }),
    bob.waitForSse(`${relay.url}/eval/`, (m) => m.event === 'put', { what: 'initial put' }),
  ]);
  await sleep(200);
  await page.skipChanges();
  await bob.skipChanges();
  page.firstChangeAfterInit = page.changeCursor;
  bob.firstChangeAfterInit = bob.changeCursor;
  const latency = [];
  const step = async (what, push, expectations) => {
    const at = Date.now();
    push();
    for (const [p, key, value] of expectations) {
      const c = await p.waitForChange(key, { pred: (v) => JSON.stringify(v[key]) === JSON.stringify(value), timeoutMs: 10000 });
      latency.push(`${what} (${p === page ? 'ada' : 'bob'}): ${c.at - at} ms`);
      assert.deepEqual(await p.variation(key, '<<default>>'), value, `${what}: variation(${key})`);
    }
  };

  // A flag's value changes for everyone.
  await step('patch', () => up.pushPatch({ ...FLAGS.number, version: 2, variations: [43, -1] }),
    [[page, 'everyone-number', 43], [bob, 'everyone-number', 43]]);
  // A flag is deleted.
  await step('delete', () => up.pushDelete('flags', 'doomed', 2),
    [[page, 'doomed', '<<default>>'], [bob, 'doomed', '<<default>>']]);
  assert.equal(await page.variation('doomed', 'gone'), 'gone');
  // A segment change alters one context's result only.
  await step('segment', () => up.pushPatchSegment({ ...SEGMENTS.betaTesters, version: 2, included: [ADA.key] }),
    [[page, 'in-segment', 'beta']]);
  // A rule change that alters Bob's result only.
  await step('rule', () => up.pushPatch({ ...FLAGS.byCountry, version: 2, rules: [countryRule(['fr', 'us'])] }),
    [[bob, 'by-country', 'bonjour']]);
  // A flag becomes visible to JS, another stops being visible.
  await step('now client-side', () => up.pushPatch({ ...FLAGS.serverOnly, version: 2, clientSideAvailability: { usingEnvironmentId: true, usingMobileKey: false }, clientSide: true }),
    [[page, 'server-only', 'secret'], [bob, 'server-only', 'secret']]);
  await step('no longer client-side', () => up.pushPatch({ ...FLAGS.targeted, version: 2, ...NOT_JS_OVERRIDES }),
    [[page, 'targeted', '<<default>>'], [bob, 'targeted', '<<default>>']]);
  t.diagnostic(`change latency (push to the SDK's change event): ${latency.join('; ')}`);

  await sleep(500);
  const final = { ...EXPECTED_ADA, 'everyone-number': 43, 'in-segment': 'beta', 'server-only': 'secret' };
  delete final.doomed;
  delete final.targeted;
  assert.deepEqual(await page.allFlags(), final, 'Ada at the end');
  const finalBob = { ...final, 'in-segment': 'stable', 'by-country': 'bonjour' };
  assert.deepEqual(await bob.allFlags(), finalBob, 'Bob at the end');
  // Changes that did not alter a page's results must not have changed its values.
  for (const [p, name, key] of [[page, 'ada', 'by-country'], [bob, 'bob', 'in-segment']]) {
    const seen = (await p.changes()).slice(p.firstChangeAfterInit).filter((c) => c.keys.includes(key));
    assert.ok(seen.every((c) => c.values[key] === (name === 'ada' ? 'bonjour' : 'stable')), `${name}: ${key} changed: ${JSON.stringify(seen)}`);
    if (seen.length) t.diagnostic(`${name}: change event for ${key} with its value unchanged (the relay sent the new flag version)`);
  }
  t.diagnostic(`SSE events (ada): ${page.sseFrom(relay.url).map((m) => m.event).join(',')}; (bob): ${bob.sseFrom(relay.url).map((m) => m.event).join(',')}`);
});
