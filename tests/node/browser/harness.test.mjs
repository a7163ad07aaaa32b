// Self-test of the browser harness (no relay): Chromium starts, the page server serves the SDK
// bundle, and the CDP network log sees the CORS preflights and the errors Chromium reports, so
// the relay tests' assertions about CORS rest on something that is known to work.
import assert from 'node:assert/strict';
import http from 'node:http';
import { browserTest, openSdkPage } from '../support/browser.mjs';

/** A loopback server answering CORS like a permissive (or, with allow=null, a silent) API. */
async function corsServer(s, { allow }) {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    const h = allow ? { 'Access-Control-Allow-Origin': allow, 'Access-Control-Allow-Headers': 'Content-Type,X-Custom', 'Access-Control-Allow-Methods': 'GET,REPORT,OPTIONS' } : {};
    if (req.url === '/sse') {
      res.writeHead(200, { ...h, 'Content-Type': 'text/event-stream' });
      res.write('event: put\ndata: {"x":1}\n\n');
      return;
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(200, h);
      res.end();
      return;
    }
    req.resume();
    res.writeHead(200, { ...h, 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ method: req.method }));
  });
  await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  s.defer(() => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${server.address().port}`, seen };
}

browserTest('harness: Chromium loads a trivial page and the page with the bundled SDK', async (t, s) => {
  const page = await openSdkPage(s, { goto: '/trivial' });
  assert.equal(await page.page.textContent('#p'), 'hello');
  await page.goto('/');
  assert.equal(await page.page.title(), 'flagrelay browser test');
  assert.equal(await page.page.evaluate(() => typeof window.LD?.createClient), 'function');
  assert.equal(await page.page.evaluate(() => window.isSecureContext), true, '127.0.0.1 is a secure context (WebCrypto for the SDK)');
  const b = s.browserHandle.server.bundle;
  t.diagnostic(`SDK ${b.sdkVersion} bundle ${b.bytes} bytes in ${b.ms} ms; chromium ${s.browserHandle.handle.browser.version()}`);
});

browserTest('harness: cross-origin requests are preflighted and CORS failures are visible', async (t, s) => {
  const page = await openSdkPage(s);
  const good = await corsServer(s, { allow: page.origin });
  const bad = await corsServer(s, { allow: 'http://other.example' });

  const ok = await page.fetch(`${good.url}/x`, { method: 'REPORT', headers: { 'Content-Type': 'application/json', 'X-Custom': '1' }, body: '{}' });
  assert.equal(ok.status, 200, JSON.stringify(ok));
  assert.deepEqual(good.seen.map((r) => r.method), ['OPTIONS', 'REPORT']);
  assert.equal(good.seen[0].headers.origin, page.origin);
  assert.equal(good.seen[0].headers['access-control-request-method'], 'REPORT');
  await page.waitForRequest(good.url, (e) => e.method === 'OPTIONS' && e.status === 200, { what: 'preflight seen by CDP' });

  const blocked = await page.fetch(`${bad.url}/y`);
  assert.match(blocked.error ?? '', /TypeError: Failed to fetch/, JSON.stringify(blocked));
  assert.equal(bad.seen.length, 1, 'a simple GET is sent, its answer withheld from the page');
  const failed = await page.waitForRequest(bad.url, (e) => e.failed, { what: 'failed request seen by CDP' });
  assert.equal(failed.corsError?.corsError, 'AllowOriginMismatch', page.netSummary(bad.url));
  assert.ok(page.consoleMatching('CORS policy').length >= 1, 'Chromium logs the CORS error to the console');
  const es = await page.eventSourceFirst(`${good.url}/sse`, 'put');
  assert.deepEqual(es, { type: 'put', data: '{"x":1}' });
  const m = await page.waitForSse(good.url, (x) => x.event === 'put', { what: 'put seen by CDP' });
  assert.equal(m.data, '{"x":1}');
  const esBlocked = await page.eventSourceFirst(`${bad.url}/sse`, 'put');
  assert.match(esBlocked.error ?? '', /EventSource error/, JSON.stringify(esBlocked));

  t.diagnostic(`blackhole: ${JSON.stringify(s.browserHandle.handle.blackHole.targets)}`);
});
