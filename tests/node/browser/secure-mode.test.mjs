// Secure mode (protocol reference §1.5): with `secureMode: true` every JS evaluation needs
// `h` = hex HMAC-SHA256(SDK key, the context's fully-qualified key), which the browser SDK sends
// from identify/start options `hash`; a missing or wrong hash is a 400.
import assert from 'node:assert/strict';
import { browserTest } from '../support/browser.mjs';
import { ADA, ENV_ID, FLAGS, EXPECTED_ADA, SDK_KEY, sdkOptions, setup, streamOpen } from './fixtures.mjs';
import { KEYS } from '../support/flags.mjs';
import { b64url, secureHash } from '../support/contexts.mjs';

const SECURE = { envExtra: { secureMode: true } };

browserTest('secure mode: the correct hash works for the poll and the client stream', async (t, s) => {
  const { up, relay, page } = await setup(s, SECURE);
  const hash = secureHash(SDK_KEY, ADA.key);
  const r = await page.startClient(ENV_ID, ADA, sdkOptions(relay), { identifyOptions: { hash } });
  assert.equal(r.status, 'complete', JSON.stringify(r));
  assert.deepEqual(await page.allFlags(), EXPECTED_ADA);
  const poll = await page.waitForRequest(`${relay.url}/sdk/evalx/`, (e) => e.method === 'GET' && e.status !== null);
  assert.equal(new URL(poll.url).searchParams.get('h'), hash);
  const stream = await streamOpen(page, relay);
  assert.equal(new URL(stream.url).searchParams.get('h'), hash);
  up.pushPatch({ ...FLAGS.number, version: 2, variations: [43, -1] });
  await page.waitForChange('everyone-number', { pred: (v) => v['everyone-number'] === 43 });
});

browserTest('secure mode: a wrong or missing hash fails with 400, which the page can see', async (t, s) => {
  const { relay, page } = await setup(s, SECURE);
  // The hash of another key, and the right message under another key.
  for (const [what, hash] of [['hash of another context key', secureHash(SDK_KEY, 'someone-else')], ['keyed by the wrong SDK key', secureHash(KEYS.wrong, ADA.key)]]) {
    const f = await page.fetch(`${relay.url}/sdk/evalx/${ENV_ID}/contexts/${b64url(ADA)}?h=${hash}`);
    assert.equal(f.status, 400, `${what}: ${JSON.stringify(f).slice(0, 300)}`);
    assert.match(f.text, /secure mode/i, what);
  }
  const none = await page.fetch(`${relay.url}/sdk/evalx/${ENV_ID}/contexts/${b64url(ADA)}`);
  assert.equal(none.status, 400, `no hash: ${JSON.stringify(none).slice(0, 300)}`);

  // The client stream checks the hash too.
  const streamBase = `${relay.url}/eval/${ENV_ID}/${b64url(ADA)}`;
  const wrongStream = await page.eventSourceFirst(`${streamBase}?h=${secureHash(SDK_KEY, 'someone-else')}`, 'put', 4000);
  assert.ok(wrongStream.error, `stream with a wrong hash: ${JSON.stringify(wrongStream).slice(0, 200)}`);
  const e = await page.waitForRequest(streamBase, (x) => x.status !== null || x.failed, { what: 'stream answer' });
  assert.equal(e.status, 400, page.netSummary(streamBase));
  const goodStream = await page.eventSourceFirst(`${streamBase}?h=${secureHash(SDK_KEY, ADA.key)}`, 'put', 4000);
  assert.equal(goodStream.type, 'put', JSON.stringify(goodStream).slice(0, 200));

  const r = await page.startClient(ENV_ID, ADA, sdkOptions(relay, { streaming: false }), { identifyOptions: { hash: secureHash(SDK_KEY, 'someone-else') } });
  assert.equal(r.status, 'failed', JSON.stringify(r));
  assert.equal(r.error.status, 400, `the SDK sees the 400 (CORS headers on the error): ${JSON.stringify(r.error)}`);
  assert.deepEqual(await page.allFlags(), {});
});

browserTest('secure mode: non-user and multi-kind contexts hash their fully-qualified key', async (t, s) => {
  const { relay, page } = await setup(s, SECURE);
  const org = { kind: 'org', key: 'acme', name: 'Acme' };
  const multi = { kind: 'multi', user: { key: ADA.key, country: 'fr' }, org: { key: 'acme' } };
  const cases = [
    ['org', org, 'org:acme', 'for-others'],
    ['multi', multi, `org:acme:user:${ADA.key}`, 'for-you'],
  ];
  for (const [what, ctx, fqKey, targeted] of cases) {
    const good = await page.fetch(`${relay.url}/sdk/evalx/${ENV_ID}/contexts/${b64url(ctx)}?h=${secureHash(SDK_KEY, fqKey)}`);
    assert.equal(good.status, 200, `${what} with hash of "${fqKey}": ${JSON.stringify(good).slice(0, 300)}`);
    assert.equal(JSON.parse(good.text).targeted.value, targeted, what);
    const bare = ctx.kind === 'multi' ? ADA.key : 'acme';
    const bad = await page.fetch(`${relay.url}/sdk/evalx/${ENV_ID}/contexts/${b64url(ctx)}?h=${secureHash(SDK_KEY, bare)}`);
    assert.equal(bad.status, 400, `${what} with hash of the bare key "${bare}": ${JSON.stringify(bad).slice(0, 200)}`);
  }
  // And through the SDK, for the multi-kind context.
  const r = await page.startClient(ENV_ID, multi, sdkOptions(relay), { identifyOptions: { hash: secureHash(SDK_KEY, `org:acme:user:${ADA.key}`) } });
  assert.equal(r.status, 'complete', JSON.stringify(r));
  assert.equal(await page.variation('targeted', 'd'), 'for-you');
  assert.equal(await page.variation('by-country', 'd'), 'bonjour');
  await streamOpen(page, relay);
});
