// Outbound HTTP CONNECT proxy (proxy.url, with Basic credentials) for http and https upstreams,
// a proxy that refuses the credentials, and proxy.noProxy bypass.
import assert from 'node:assert/strict';
import path from 'node:path';
import { prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { sleep } from '../support/http.mjs';
import { makeTestPki } from '../support/tls.mjs';
import { assertAllPut } from '../support/assertions.mjs';
import { FAST, envStatus, waitEnv, stateIs, assertServes, report, latestAll, faultTest } from '../support/faults.mjs';

const F = byKey(makeFlag('proxied', 1, 'via-proxy'));
const USER = 'relay-user';
const PASS = 'p@ss:w0rd';
const basic = (u, p) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const proxyUrl = (proxy, u = USER, p = PASS) => `http://${encodeURIComponent(u)}:${encodeURIComponent(p)}@127.0.0.1:${proxy.port}`;

function describeProxy(proxy) {
  return `CONNECTs ${JSON.stringify(proxy.connects.map((c) => `${c.target} -> ${c.status}`))}, plain requests ${JSON.stringify(proxy.plainRequests.map((r) => `${r.method} ${r.url}`))}`;
}

async function proxiedFlow(t, s, { tls }) {
  const p = tls ? makeTestPki(path.join(s.tmpDir('flagrelay-pki-'), 'pki')) : null;
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, heartbeatMs: 300, tls: tls ? { key: p.good.key, cert: p.good.cert } : null });
  const proxy = await s.proxy({ user: USER, pass: PASS });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    upstream: { ...FAST, ...(tls ? { tls: { caFile: p.caFile } } : {}) },
    extra: { proxy: { url: proxyUrl(proxy) } },
  });
  const started = Date.now();
  await waitEnv(relay, stateIs('VALID'), { what: `VALID through the proxy (${describeProxy(proxy)})` }).catch((err) => {
    throw new Error(`${err.message}\nproxy saw: ${describeProxy(proxy)}`);
  });
  report(t, s, `proxy (${tls ? 'https' : 'http'} upstream): VALID after`, Date.now() - started);
  const target = `127.0.0.1:${up.port}`;
  assert.equal(proxy.plainRequests.length, 0, `the relay sent plain proxy requests instead of CONNECT: ${describeProxy(proxy)}`);
  const tunnels = proxy.tunnels(target);
  assert.ok(tunnels.length >= 1, `the proxy saw no CONNECT ${target}: ${describeProxy(proxy)}`);
  assert.equal(tunnels[0].auth, basic(USER, PASS), `Proxy-Authorization sent with CONNECT: ${tunnels[0].auth}`);
  assert.ok(up.requests.length >= 1, 'the request reached the upstream through the tunnel');
  await assertServes(relay, KEYS.prod, F, {});
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await sse.nextEvent(3000), F, {});
  up.pushPatch(makeFlag('proxied', 2, 'patched'));
  assert.equal((await sse.nextEvent(3000)).json().data.version, 2, 'patch through the tunnel');
  // A cut stream is re-established through the proxy.
  const before = proxy.tunnels(target).length;
  up.dropStreams();
  await up.waitForConnections(2, 3000);
  assert.ok(proxy.tunnels(target).length > before, `reconnect not tunnelled: ${describeProxy(proxy)}`);
  assert.equal(proxy.connects.filter((c) => c.status !== 200).length, 0, `refused CONNECTs: ${describeProxy(proxy)}`);
}

faultTest('CONNECT proxy with Basic credentials, http upstream: tunnelled, data flows', async (t, s) => {
  await proxiedFlow(t, s, { tls: false });
});

faultTest('CONNECT proxy with Basic credentials, https upstream (test CA): tunnelled, TLS inside the tunnel', async (t, s) => {
  await proxiedFlow(t, s, { tls: true });
});

faultTest('CONNECT proxy refusing the credentials (407): never VALID, no request reaches the upstream, retried', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F });
  const proxy = await s.proxy({ user: USER, pass: PASS });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    cacheDir: null,
    upstream: FAST,
    extra: { proxy: { url: proxyUrl(proxy, USER, 'wrong-password') } },
  });
  await sleep(1500);
  const e = await envStatus(relay);
  s.note(`407: ${JSON.stringify(e.connectionStatus)}; ${describeProxy(proxy)}`);
  assert.ok(proxy.connects.length >= 2, `the relay retried through the proxy: ${describeProxy(proxy)}`);
  assert.ok(proxy.connects.every((c) => c.status === 407), describeProxy(proxy));
  assert.equal(up.requests.length, 0, 'nothing reached the upstream');
  assert.equal(e.connectionStatus.state, 'INITIALIZING');
  assert.ok(e.connectionStatus.lastError, 'lastError reports the proxy failure');
  assert.equal((await latestAll(relay, KEYS.prod)).status, 503);
});

faultTest('proxy.noProxy matching the upstream host: direct connection, the proxy sees nothing', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, heartbeatMs: 300 });
  const proxy = await s.proxy({ user: USER, pass: PASS });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    upstream: FAST,
    extra: { proxy: { url: proxyUrl(proxy), noProxy: 'example.invalid,127.0.0.1' } },
  });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID directly' });
  await assertServes(relay, KEYS.prod, F, {});
  assert.equal(proxy.connects.length + proxy.plainRequests.length, 0, `noProxy matched, yet the proxy was used: ${describeProxy(proxy)}`);
});

faultTest('HTTP_PROXY from the environment is used when proxy.url is not set; NO_PROXY bypasses it', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, heartbeatMs: 300 });
  const proxy = await s.proxy({ user: USER, pass: PASS });
  const viaEnv = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, env: { HTTP_PROXY: proxyUrl(proxy) }, label: 'HTTP_PROXY' });
  await waitEnv(viaEnv, stateIs('VALID'), { what: 'VALID via HTTP_PROXY' }).catch((err) => {
    throw new Error(`${err.message}\nproxy saw: ${describeProxy(proxy)}`);
  });
  const target = `127.0.0.1:${up.port}`;
  assert.ok(proxy.tunnels(target).length >= 1, `HTTP_PROXY ignored: ${describeProxy(proxy)}`);
  const seen = proxy.connects.length;
  const bypass = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, env: { HTTP_PROXY: proxyUrl(proxy), NO_PROXY: 'localhost,127.0.0.1' }, label: 'NO_PROXY' });
  await waitEnv(bypass, stateIs('VALID'), { what: 'VALID directly (NO_PROXY)' });
  assert.equal(proxy.connects.length, seen, `NO_PROXY matched, yet the proxy was used: ${describeProxy(proxy)}`);
});

faultTest('black-holed proxy (CONNECT never answered): next attempt after connectTimeout', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F });
  const proxy = await s.proxy({ hang: true });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    cacheDir: null,
    upstream: { ...FAST, connectTimeout: '1s', readTimeout: '20s' },
    extra: { proxy: { url: `http://127.0.0.1:${proxy.port}` } },
  });
  const deadline = Date.now() + 5000;
  while (proxy.connects.length < 2 && Date.now() < deadline) await sleep(20);
  assert.ok(proxy.connects.length >= 2, `${proxy.connects.length} CONNECT(s) in 5 s: an unanswered CONNECT must be bounded by connectTimeout (1 s)`);
  const gap = report(t, s, 'black-holed proxy (connectTimeout 1s): second CONNECT after', proxy.connects[1].time - proxy.connects[0].time);
  assert.ok(gap >= 900 && gap <= 2500, `second CONNECT ${gap} ms after the first`);
  const e = await waitEnv(relay, (x) => x.connectionStatus?.lastError != null, { what: 'lastError' });
  assert.equal(e.connectionStatus.lastError.kind, 'NETWORK_ERROR');
  assert.equal(up.requests.length, 0);
});

faultTest('proxy.noProxy host:port entries match only that port', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, heartbeatMs: 300 });
  const proxy = await s.proxy({ user: USER, pass: PASS });
  const target = `127.0.0.1:${up.port}`;
  const otherPort = up.port === 65535 ? 65534 : up.port + 1;
  const direct = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, label: 'noProxy host:port (match)',
    extra: { proxy: { url: proxyUrl(proxy), noProxy: target } } });
  await waitEnv(direct, stateIs('VALID'), { what: 'VALID directly' });
  assert.equal(proxy.connects.length, 0, `noProxy ${target} matched, yet the proxy was used: ${describeProxy(proxy)}`);
  const proxied = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, label: 'noProxy host:port (other port)',
    extra: { proxy: { url: proxyUrl(proxy), noProxy: `127.0.0.1:${otherPort}` } } });
  await waitEnv(proxied, stateIs('VALID'), { what: 'VALID through the proxy' });
  assert.ok(proxy.tunnels(target).length >= 1, `noProxy 127.0.0.1:${otherPort} must not bypass the proxy for ${target}: ${describeProxy(proxy)}`);
});
