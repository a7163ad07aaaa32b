// CORS as a real browser enforces it (protocol reference §1.8): allowedOrigin, allowedHeader, the
// preflights of the SDK's GET (custom headers) and REPORT requests.
import assert from 'node:assert/strict';
import { browserTest } from '../support/browser.mjs';
import { ADA, ENV_ID, FLAGS, EXPECTED_ADA, sdkOptions, setup, evalxUrl, streamUrl } from './fixtures.mjs';

const OTHER = 'http://other.example';
const hdr = (e, name) => e.headers?.[name] ?? Object.entries(e.headers ?? {}).find(([k]) => k.toLowerCase() === name)?.[1];

browserTest('allowedOrigin listing the page origin: the SDK works, preflight answered for that origin', async (t, s) => {
  const { relay, page } = await setup(s, { envExtra: (origin) => ({ allowedOrigin: [OTHER, origin] }) });
  const r = await page.startClient(ENV_ID, ADA, sdkOptions(relay, { wrapperName: 'flagrelay-browser-test', wrapperVersion: '1.0' }));
  assert.equal(r.status, 'complete', JSON.stringify(r));
  assert.deepEqual(await page.allFlags(), EXPECTED_ADA);
  const pre = await page.waitForRequest(`${relay.url}/sdk/evalx/`, (e) => e.method === 'OPTIONS' && e.status !== null, { what: 'preflight' });
  assert.equal(pre.status, 200);
  assert.equal(hdr(pre, 'access-control-allow-origin'), page.origin);
  assert.equal(hdr(pre, 'access-control-max-age'), '300');
  assert.match(hdr(pre, 'access-control-allow-methods') ?? '', /\bGET\b/);
  const allowHeaders = (hdr(pre, 'access-control-allow-headers') ?? '').toLowerCase();
  for (const h of ['x-launchdarkly-user-agent', 'x-launchdarkly-wrapper', 'content-type']) assert.ok(allowHeaders.includes(h), `Allow-Headers ${allowHeaders} lacks ${h}`);
  assert.match(pre.reqHeaders?.['Access-Control-Request-Headers'] ?? pre.reqHeaders?.['access-control-request-headers'] ?? '', /x-launchdarkly-wrapper/i, 'the SDK asked for its wrapper header');
});

browserTest('allowedOrigin without the page origin: the browser blocks the SDK, which fails to start', async (t, s) => {
  const { relay, page } = await setup(s, { envExtra: { allowedOrigin: [OTHER] } });
  const r = await page.startClient(ENV_ID, ADA, sdkOptions(relay, { streaming: false }));
  // The SDK sees a network error (no status): fetch() rejects, retried 3 times, then start fails.
  assert.equal(r.status, 'failed', JSON.stringify(r));
  assert.equal(r.error.status, null, `no HTTP status reaches the page: ${JSON.stringify(r.error)}`);
  assert.match(r.error.message, /Failed to fetch/);
  assert.equal(await page.variation('targeted', 'dflt'), 'dflt');
  assert.deepEqual(await page.allFlags(), {});
  // Chromium's reason: the preflight answered with the first configured origin.
  const blocked = page.requestsTo(`${relay.url}/sdk/evalx/`).filter((e) => e.corsError);
  assert.ok(blocked.length >= 1, `no CORS error recorded:\n  ${page.netSummary(relay.url)}`);
  for (const e of blocked) {
    assert.match(e.corsError.corsError, /AllowOriginMismatch$/, JSON.stringify(e.corsError));
    assert.equal(e.corsError.failedParameter, OTHER);
  }
  assert.ok(page.consoleMatching('blocked by CORS policy').length >= 1);
  // The relay answered (the browser withheld it): the preflight carried the other origin.
  const pre = await page.waitForRequest(`${relay.url}/sdk/evalx/`, (e) => e.method === 'OPTIONS' && e.status !== null, { what: 'preflight answer' });
  assert.equal(pre.status, 200, page.netSummary(`${relay.url}/sdk/evalx/`));
  assert.equal(hdr(pre, 'access-control-allow-origin'), OTHER);
  // The same for a plain fetch and for the client stream (EventSource, no preflight).
  const f = await page.fetch(evalxUrl(relay, ADA));
  assert.match(f.error ?? '', /Failed to fetch/, JSON.stringify(f));
  const es = await page.eventSourceFirst(streamUrl(relay, ADA), 'put', 4000);
  t.diagnostic(`EventSource /eval from a disallowed origin: ${JSON.stringify(es).slice(0, 200)}`);
  assert.ok(es.error, `the stream's put reached a disallowed origin: ${JSON.stringify(es).slice(0, 200)}`);
});

browserTest('allowedHeader: a custom request header passes the preflight; an unlisted one does not', async (t, s) => {
  const { relay, page } = await setup(s, { envExtra: { allowedHeader: ['X-Custom-Test'] } });
  const ok = await page.fetch(evalxUrl(relay, ADA), { headers: { 'X-Custom-Test': 'yes', 'X-LaunchDarkly-User-Agent': 'test/1' } });
  assert.equal(ok.status, 200, JSON.stringify(ok).slice(0, 300));
  assert.equal(JSON.parse(ok.text).targeted.value, 'for-you');
  const pre = await page.waitForRequest(`${relay.url}/sdk/evalx/`, (e) => e.method === 'OPTIONS' && e.status !== null, { what: 'preflight' });
  assert.match(hdr(pre, 'access-control-allow-headers') ?? '', /x-custom-test/i);

  const denied = await page.fetch(evalxUrl(relay, ADA), { headers: { 'X-Not-Allowed': 'no' } });
  assert.match(denied.error ?? '', /Failed to fetch/, JSON.stringify(denied).slice(0, 300));
  const failed = await page.waitForRequest(`${relay.url}/sdk/evalx/`, (e) => e.corsError, { what: 'CORS error' });
  assert.equal(failed.corsError.corsError, 'HeaderDisallowedByPreflightResponse', JSON.stringify(failed.corsError));
  assert.equal(failed.corsError.failedParameter.toLowerCase(), 'x-not-allowed');
});

browserTest('REPORT mode (useReport): the context goes in the body, through a real preflight', async (t, s) => {
  const { relay, page } = await setup(s);
  // Browsers' EventSource cannot send REPORT, so the SDK would stream from /ping/{envId}; polling only here.
  const r = await page.startClient(ENV_ID, ADA, sdkOptions(relay, { useReport: true, streaming: false }));
  assert.equal(r.status, 'complete', JSON.stringify(r));
  assert.deepEqual(await page.allFlags(), EXPECTED_ADA);
  const url = `${relay.url}/sdk/evalx/${ENV_ID}/context`;
  const pre = await page.waitForRequest(url, (e) => e.method === 'OPTIONS' && e.status !== null, { what: 'REPORT preflight' });
  assert.equal(pre.status, 200);
  assert.match(pre.reqHeaders?.['Access-Control-Request-Method'] ?? pre.reqHeaders?.['access-control-request-method'] ?? '', /^REPORT$/);
  assert.match(hdr(pre, 'access-control-allow-methods') ?? '', /\bREPORT\b/);
  assert.equal(hdr(pre, 'access-control-allow-origin'), page.origin);
  const rep = await page.waitForRequest(url, (e) => e.method === 'REPORT' && e.status !== null, { what: 'REPORT' });
  assert.equal(rep.status, 200);

  // A raw REPORT from the page, with reasons, and the plural path.
  for (const p of ['/context', '/contexts']) {
    const f = await page.fetch(`${relay.url}/sdk/evalx/${ENV_ID}${p}?withReasons=true`, { method: 'REPORT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ADA) });
    assert.equal(f.status, 200, `${p}: ${JSON.stringify(f).slice(0, 300)}`);
    const body = JSON.parse(f.text);
    assert.equal(body['by-country'].value, 'bonjour', p);
    assert.deepEqual(body['by-country'].reason, { kind: 'RULE_MATCH', ruleIndex: 0, ruleId: 'rule-country' }, p);
    assert.equal(body['server-only'], undefined, p);
  }
});

browserTest('REPORT mode with streaming: the SDK streams from /ping/{envId} and re-polls with REPORT', async (t, s) => {
  const { up, relay, page } = await setup(s);
  const r = await page.startClient(ENV_ID, ADA, sdkOptions(relay, { useReport: true, streaming: true }));
  assert.equal(r.status, 'complete', JSON.stringify(r));
  const ping = await page.waitForRequest(`${relay.url}/ping/${ENV_ID}`, (e) => e.status !== null || e.failed, { what: 'ping stream request' });
  t.diagnostic(`GET /ping/${ENV_ID} -> ${ping.status} ${ping.failed ?? ''}`);
  assert.equal(ping.status, 200, `the browser SDK in REPORT mode streams from GET /ping/{envId}: ${page.netSummary(relay.url)}`);
  up.pushPatch({ ...FLAGS.number, version: 2, variations: [43, -1] });
  await page.waitForChange('everyone-number', { pred: (v) => v['everyone-number'] === 43 });
});
