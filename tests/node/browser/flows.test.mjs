// Application flows of the browser SDK against the relay: switching context with identify(), the
// stream surviving a relay restart, prerequisites whose change must re-evaluate dependents,
// bursts of patches; and protocol edges seen from a page (errors must carry CORS headers to be
// visible at all).
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { browserTest } from '../support/browser.mjs';
import { waitEnv } from '../support/faults.mjs';
import { makeFlag } from '../support/flags.mjs';
import { sleep, waitFor } from '../support/http.mjs';
import { b64url, b64urlPadded } from '../support/contexts.mjs';
import {
  ADA, BOB, ENV_ID, FLAGS, EXPECTED_ADA, EXPECTED_BOB, NOT_JS_OVERRIDES, countryRule,
  sdkOptions, setup, streamOpen, evalxUrl,
} from './fixtures.mjs';

browserTest('identify() switches context: new poll and new stream, then updates for the new context', async (t, s) => {
  const { up, relay, page } = await setup(s);
  assert.equal((await page.startClient(ENV_ID, ADA, sdkOptions(relay))).status, 'complete');
  await streamOpen(page, relay, `/eval/${ENV_ID}/${b64url(ADA)}`);
  const r = await page.identify(BOB);
  assert.equal(r.status, 'completed', JSON.stringify(r));
  assert.deepEqual(await page.allFlags(), EXPECTED_BOB);
  await streamOpen(page, relay, `/eval/${ENV_ID}/${b64url(BOB)}`);
  await page.waitForSse(`${relay.url}/eval/${ENV_ID}/${b64url(BOB)}`, (m) => m.event === 'put', { what: "Bob's put" });
  await page.skipChanges();
  up.pushPatch({ ...FLAGS.byCountry, version: 2, rules: [countryRule(['us'])] });
  await page.waitForChange('by-country', { pred: (v) => v['by-country'] === 'bonjour' });
});

browserTest('relay restart: the SDK reconnects its stream and gets what changed meanwhile', async (t, s) => {
  const { up, relay, page } = await setup(s);
  assert.equal((await page.startClient(ENV_ID, ADA, sdkOptions(relay))).status, 'complete');
  await streamOpen(page, relay);
  await page.waitForSse(`${relay.url}/eval/`, (m) => m.event === 'put');
  await page.skipChanges();
  await relay.kill();
  const data = up.data();
  data.flags['everyone-number'] = { ...FLAGS.number, version: 5, variations: [44, -1] };
  const restartAt = Date.now();
  const again = await s.relay({ dir: relay.dir, port: relay.port, metricsPort: relay.metricsPort, upstreamUrl: up.url, environments: relay.config.environments, configName: 'relay-restarted.yaml' });
  await waitEnv(again, (e) => e.connectionStatus?.state === 'VALID', { timeoutMs: 10000 });
  const c = await page.waitForChange('everyone-number', { pred: (v) => v['everyone-number'] === 44, timeoutMs: 20000 });
  t.diagnostic(`new value seen ${c.at - restartAt} ms after the relay was started again`);
  assert.equal(await page.variation('everyone-number', 0), 44);
});

browserTest('prerequisites: a change to a (server-only) prerequisite re-evaluates the dependent flag on the stream', async (t, s) => {
  const gate = makeFlag('gate', 1, true, NOT_JS_OVERRIDES);
  const gated = makeFlag('gated', 1, 'open', {
    clientSideAvailability: { usingEnvironmentId: true, usingMobileKey: false },
    clientSide: true,
    variations: ['open', 'closed'],
    prerequisites: [{ key: 'gate', variation: 0 }],
  });
  const { up, relay, page } = await setup(s);
  up.pushPatch(gate);
  up.pushPatch(gated);
  let body;
  await waitFor(async () => {
    body = JSON.parse((await page.fetch(evalxUrl(relay, ADA, '?withReasons=true'))).text);
    return body.gated !== undefined; // changes apply in order: the prerequisite is in too
  }, { timeoutMs: 5000, what: 'both patches applied (the prerequisite and the flag gated by it)' });
  assert.equal(body.gate, undefined, 'the prerequisite itself is server-only');
  assert.equal(body.gated.value, 'open');
  assert.deepEqual(body.gated.prerequisites, ['gate'], `evalx prerequisites field: ${JSON.stringify(body.gated)}`);

  assert.equal((await page.startClient(ENV_ID, ADA, sdkOptions(relay, { withReasons: true }))).status, 'complete');
  await streamOpen(page, relay);
  await page.waitForSse(`${relay.url}/eval/`, (m) => m.event === 'put');
  await page.skipChanges();
  assert.equal(await page.variation('gated', 'd'), 'open');
  up.pushPatch({ ...gate, version: 2, on: false });
  await page.waitForChange('gated', { pred: (v) => v.gated === 'closed' });
  const d = await page.variationDetail('gated', 'd');
  assert.deepEqual(d.reason, { kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'gate' });
  assert.equal(await page.variation('gate', 'not-visible'), 'not-visible');
});

browserTest('an upstream full put (new data set) reaches the page as changes', async (t, s) => {
  const { up, relay, page } = await setup(s);
  assert.equal((await page.startClient(ENV_ID, ADA, sdkOptions(relay))).status, 'complete');
  await streamOpen(page, relay);
  await page.waitForSse(`${relay.url}/eval/`, (m) => m.event === 'put');
  await page.skipChanges();
  const flags = Object.fromEntries(Object.values(FLAGS).map((f) => [f.key, f]));
  flags['everyone-number'] = { ...FLAGS.number, version: 7, variations: [77, -1] };
  delete flags['json-flag'];
  flags['brand-new'] = makeFlag('brand-new', 1, 'new!', { clientSideAvailability: { usingEnvironmentId: true, usingMobileKey: false }, clientSide: true });
  const from = page.changeCursor;
  up.pushPut({ flags, segments: up.data().segments });
  const expected = { ...EXPECTED_ADA, 'everyone-number': 77, 'brand-new': 'new!' };
  delete expected['json-flag'];
  await waitFor(async () => isDeepStrictEqual(await page.allFlags(), expected),
    { timeoutMs: 10000, what: 'allFlags() after the put' }).catch(async (err) => {
    assert.deepEqual(await page.allFlags(), expected, err.message);
  });
  const changed = new Set((await page.changes()).slice(from).flatMap((c) => c.keys));
  for (const k of ['everyone-number', 'json-flag', 'brand-new']) assert.ok(changed.has(k), `change event for ${k}: ${[...changed]}`);
  assert.equal(changed.has('targeted'), false, 'no change event for an unchanged flag');
});

browserTest('a burst of patches: the page ends on the last version, never going back', async (t, s) => {
  const { up, relay, page } = await setup(s);
  assert.equal((await page.startClient(ENV_ID, ADA, sdkOptions(relay))).status, 'complete');
  await streamOpen(page, relay);
  await page.waitForSse(`${relay.url}/eval/`, (m) => m.event === 'put');
  await page.skipChanges();
  const from = page.changeCursor;
  for (let v = 2; v <= 30; v++) up.pushPatch({ ...FLAGS.number, version: v, variations: [v * 10, -1] });
  await page.waitForChange('everyone-number', { pred: (v) => v['everyone-number'] === 300 });
  const seen = (await page.changes()).slice(from).filter((c) => c.keys.includes('everyone-number')).map((c) => c.values['everyone-number']);
  assert.ok(seen.every((v, i) => i === 0 || v > seen[i - 1]), `values went back: ${seen}`);
  t.diagnostic(`${seen.length} change events for 29 patches`);
  await sleep(300);
  assert.equal(await page.variation('everyone-number', 0), 300);
  assert.deepEqual(await page.allFlags(), { ...EXPECTED_ADA, 'everyone-number': 300 });
});

browserTest('protocol edges seen from a page: errors carry CORS headers, old users, unicode keys, content types', async (t, s) => {
  const { relay, page } = await setup(s);
  // A bad context is a 400 the page can read (CORS headers on the error response).
  const bad = await page.fetch(`${relay.url}/sdk/evalx/${ENV_ID}/contexts/not-base64-json!!`);
  assert.equal(bad.status, 400, JSON.stringify(bad).slice(0, 300));
  const noKey = await page.fetch(`${relay.url}/sdk/evalx/${ENV_ID}/contexts/${b64url({ kind: 'user', key: '' })}`);
  assert.equal(noKey.status, 400, JSON.stringify(noKey).slice(0, 300));
  // An unknown environment: 404 without CORS headers (§1.8), so the page sees a network error.
  const unknown = await page.fetch(`${relay.url}/sdk/evalx/000000000000000000000000/contexts/${b64url(ADA)}`);
  assert.match(unknown.error ?? '', /Failed to fetch/, `unknown env: ${JSON.stringify(unknown).slice(0, 300)}`);
  // Old user JSON on the users route, padded base64.
  const oldUser = b64urlPadded({ key: ADA.key, custom: { country: 'fr' } });
  const u = await page.fetch(`${relay.url}/sdk/evalx/${ENV_ID}/users/${oldUser}`);
  assert.equal(u.status, 200, JSON.stringify(u).slice(0, 300));
  assert.equal(JSON.parse(u.text)['by-country'].value, 'bonjour', 'old user custom attribute');
  assert.equal(JSON.parse(u.text).targeted.value, 'for-you');
  // A key with non-ASCII and URL-special characters, through the SDK (base64url of UTF-8).
  const odd = { kind: 'user', key: 'ünï/cødé+?&=', country: 'fr' };
  assert.equal((await page.startClient(ENV_ID, odd, sdkOptions(relay))).status, 'complete');
  assert.equal(await page.variation('by-country', 'd'), 'bonjour');
  assert.equal(await page.variation('targeted', 'd'), 'for-others');
  await streamOpen(page, relay);
  // REPORT needs exactly application/json (415 otherwise), readable by the page.
  const wrongType = await page.fetch(`${relay.url}/sdk/evalx/${ENV_ID}/context`, { method: 'REPORT', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify(ADA) });
  assert.equal(wrongType.status, 415, JSON.stringify(wrongType).slice(0, 300));
});
