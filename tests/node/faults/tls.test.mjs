// TLS to the upstream (upstream.tls.caFile) with a test CA made by the openssl CLI at test time,
// certificate verification failures, and downstream HTTPS (listen.tls).
import assert from 'node:assert/strict';
import https from 'node:https';
import path from 'node:path';
import { prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { sleep } from '../support/http.mjs';
import { makeTestPki } from '../support/tls.mjs';
import { sdkClient } from '../support/sdk.mjs';
import { assertAllPut, assertFlagsMap } from '../support/assertions.mjs';
import {
  FAST, FAST_MAX_DELAY_MS, SLACK_MS, envStatus, user, waitEnv, stateIs, upstreamMetrics, assertStateGauge, assertServes, report, waitVariation,
  latestAll,
  faultTest,
  blackHole,
} from '../support/faults.mjs';

const F = byKey(makeFlag('tls-flag', 1, 'over-tls'));

function pki(s) {
  const started = Date.now();
  const p = makeTestPki(path.join(s.tmpDir('flagrelay-pki-'), 'pki'));
  s.note(`test PKI made in ${Date.now() - started} ms`);
  return p;
}

faultTest('TLS upstream with a cert signed by the test CA (upstream.tls.caFile): VALID, data and patches flow', async (t, s) => {
  const p = pki(s);
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, heartbeatMs: 300, tls: { key: p.good.key, cert: p.good.cert } });
  assert.match(up.url, /^https:\/\/127\.0\.0\.1:/);
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: { ...FAST, tls: { caFile: p.caFile } } });
  const e = await waitEnv(relay, stateIs('VALID'), { what: 'VALID over TLS' });
  assert.equal(e.dataSource, 'upstream');
  await assertServes(relay, KEYS.prod, F, {});
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await sse.nextEvent(3000), F, {});
  up.pushPatch(makeFlag('tls-flag', 2, 'patched-over-tls'));
  assert.equal((await sse.nextEvent(3000)).json().data.version, 2);
  assert.equal(up.tlsErrors.length, 0, `TLS handshake errors: ${JSON.stringify(up.tlsErrors)}`);
  assertStateGauge(await upstreamMetrics(relay), 'valid');
});

async function expectRejected(t, s, relay, up, what) {
  await waitEnv(relay, (x) => x.connectionStatus?.lastError != null, { what: `a lastError (${what})`, timeoutMs: 5000 });
  await sleep(1200); // several attempts
  const last = await envStatus(relay);
  s.note(`${what}: lastError ${JSON.stringify(last.connectionStatus.lastError)}`);
  report(t, s, `TLS ${what}: handshakes the upstream saw aborted`, up.tlsErrors.length, `(lastError.message ${JSON.stringify(last.connectionStatus.lastError?.message)})`);
  assert.notEqual(last.connectionStatus.state, 'VALID', `${what}: must not become VALID`);
  assert.equal(last.connectionStatus.state, 'INITIALIZING', `${what}: never valid`);
  assert.equal(last.connectionStatus.lastError.kind, 'NETWORK_ERROR', `${what}: lastError ${JSON.stringify(last.connectionStatus.lastError)}`);
  assert.match(last.connectionStatus.lastError.message ?? '', /certificate|verif/i, `${what}: lastError.message should say why (certificate/verify)`);
  assert.equal(up.requests.length, 0, `${what}: an HTTP request reached the upstream over an unverified connection: ${JSON.stringify(up.requests.map((r) => r.url))}`);
  assert.ok(up.tlsErrors.length >= 2, `${what}: ${up.tlsErrors.length} TLS handshake attempt(s) in ~1.5 s: a verification failure is retried like any network error`);
  const m = await upstreamMetrics(relay);
  assertStateGauge(m, 'initializing');
  assert.ok(m.reconnects.network_error >= 1, `reconnects_total{kind="network_error"}: ${JSON.stringify(m.reconnects)}`);
  assert.equal((await latestAll(relay, KEYS.prod)).status, 503, 'no data served');
}

faultTest('TLS upstream whose certificate names another host (SAN DNS:wrong.example): rejected', async (t, s) => {
  const p = pki(s);
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, tls: { key: p.wrongHost.key, cert: p.wrongHost.cert } });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, upstream: { ...FAST, tls: { caFile: p.caFile } } });
  await expectRejected(t, s, relay, up, 'wrong host name');
});

faultTest('TLS upstream signed by a CA that is not trusted (no caFile): rejected', async (t, s) => {
  const p = pki(s);
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, tls: { key: p.good.key, cert: p.good.cert } });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, upstream: FAST });
  await expectRejected(t, s, relay, up, 'untrusted CA');
});

faultTest('TLS upstream with a self-signed certificate (caFile is another CA): rejected', async (t, s) => {
  const p = pki(s);
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, tls: { key: p.selfSigned.key, cert: p.selfSigned.cert } });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, upstream: { ...FAST, tls: { caFile: p.caFile } } });
  await expectRejected(t, s, relay, up, 'self-signed');
});

faultTest('upstream.tls.minVersion 1.3 against an upstream limited to TLS 1.2: rejected; 1.2 accepted', async (t, s) => {
  const p = pki(s);
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, heartbeatMs: 300, tls: { key: p.good.key, cert: p.good.cert, maxVersion: 'TLSv1.2' } });
  const strict = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, upstream: { ...FAST, tls: { caFile: p.caFile, minVersion: '1.3' } }, label: 'minVersion 1.3' });
  const lax = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, upstream: { ...FAST, tls: { caFile: p.caFile, minVersion: '1.2' } }, label: 'minVersion 1.2' });
  await waitEnv(lax, stateIs('VALID'), { what: 'minVersion 1.2 relay VALID against a TLS 1.2 upstream' });
  const e = await waitEnv(strict, (x) => x.connectionStatus?.lastError != null, { what: 'minVersion 1.3 relay: a lastError' });
  await sleep(500);
  const e2 = await envStatus(strict);
  s.note(`minVersion 1.3: ${JSON.stringify(e2.connectionStatus)}`);
  assert.equal(e2.connectionStatus.state, 'INITIALIZING', 'a TLS 1.2-only upstream must be refused with minVersion 1.3');
  assert.equal(e.connectionStatus.lastError.kind, 'NETWORK_ERROR');
  // The refusal is the protocol version, seen from both ends: the upstream aborted handshakes for
  // it, the relay's lastError names it, and only the minVersion 1.2 relay's request got through.
  s.note(`TLS 1.2-only upstream: handshake errors ${JSON.stringify(up.tlsErrors)}`);
  const versionRefusals = up.tlsErrors.filter((x) => /unsupported protocol|version/i.test(x.message));
  assert.ok(versionRefusals.length >= 1, `the upstream saw no handshake refused for its protocol version: ${JSON.stringify(up.tlsErrors)}`);
  assert.match(e2.connectionStatus.lastError?.message ?? '', /protocol version|unsupported protocol/i, `minVersion 1.3: lastError.message should name the protocol version: ${JSON.stringify(e2.connectionStatus.lastError)}`);
  assert.equal(up.streamRequests(KEYS.prod).length, 1, `only the minVersion 1.2 relay reached the upstream over HTTP (${up.streamRequests(KEYS.prod).length} /all requests)`);
});

function httpsGet(url, { ca, headers = {}, timeoutMs = 3000, minVersion, maxVersion } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, headers, agent: false, minVersion, maxVersion }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`timeout ${url}`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

faultTest('downstream HTTPS (listen.tls): polling, /status and a streaming SDK over TLS', async (t, s) => {
  const p = pki(s);
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: F, heartbeatMs: 300 });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    upstream: FAST,
    extra: { listen: { tls: { certFile: p.good.certFile, keyFile: p.good.keyFile, minVersion: '1.3' } } },
    waitHealthy: false,
  });
  const base = `https://127.0.0.1:${relay.port}`;
  const deadline = Date.now() + 4000;
  let health = null;
  let lastErr = null;
  while (Date.now() < deadline && !health) {
    if (relay.exitInfo) assert.fail(`relay exited: ${JSON.stringify(relay.exitInfo)}`);
    health = await httpsGet(`${base}/healthz`, { ca: p.ca }).catch((err) => {
      lastErr = err;
      return null;
    });
    if (!health) await sleep(100);
  }
  assert.ok(health, `no HTTPS answer on ${base}/healthz (${lastErr?.message})`);
  assert.equal(health.status, 200);
  const poll = await httpsGet(`${base}/sdk/latest-all`, { ca: p.ca, headers: auth(KEYS.prod) });
  assert.equal(poll.status, 200, `HTTPS polling: ${poll.status} ${poll.text.slice(0, 200)}`);
  assertFlagsMap(JSON.parse(poll.text).flags, F, 'HTTPS polling');
  await assert.rejects(httpsGet(`${base}/healthz`, { ca: p.ca, maxVersion: 'TLSv1.2' }), 'listen.tls.minVersion 1.3 must refuse a TLS 1.2 client');
  await assert.rejects(httpsGet(`${base}/healthz`, {}), 'a client that does not trust the test CA must fail verification');
  const client = sdkClient(s, relay, KEYS.prod, { stream: true, streamUri: base, baseUri: base, eventsUri: base, tlsParams: { ca: p.ca } });
  await client.waitForInitialization({ timeout: 5 });
  assert.equal(await client.variation('tls-flag', user('u1'), 'default'), 'over-tls');
  up.pushPatch(makeFlag('tls-flag', 2, 'patched'));
  await waitVariation(client, 'tls-flag', 'patched');
});

faultTest('mutual TLS: an upstream requiring a client certificate accepts upstream.tls.certFile/keyFile, rejects a relay without one', async (t, s) => {
  const p = pki(s);
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: F,
    heartbeatMs: 300,
    tls: { key: p.good.key, cert: p.good.cert, ca: p.ca, requestCert: true, rejectUnauthorized: true },
  });
  const withCert = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, label: 'client cert',
    upstream: { ...FAST, tls: { caFile: p.caFile, certFile: p.client.certFile, keyFile: p.client.keyFile } } });
  const without = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, label: 'no client cert',
    upstream: { ...FAST, tls: { caFile: p.caFile } } });
  await waitEnv(withCert, stateIs('VALID'), { what: 'VALID with a client certificate' });
  await assertServes(withCert, KEYS.prod, F, {});
  await sleep(800);
  const e = await envStatus(without);
  s.note(`without client cert: ${JSON.stringify(e.connectionStatus)}`);
  assert.equal(e.connectionStatus.state, 'INITIALIZING', 'no client certificate: must not get data');
  assert.equal(e.connectionStatus.lastError?.kind, 'NETWORK_ERROR', JSON.stringify(e.connectionStatus.lastError));
  assert.equal(up.streamRequests(KEYS.prod).length, 1, 'only the relay with a client certificate got through');
});

faultTest('TLS handshake black hole (TCP accepted, no ServerHello): next attempt after connectTimeout, not readTimeout', async (t, s) => {
  const { port: holePort, conns } = await blackHole(s);
  const relay = await s.relay({
    upstreamUrl: `https://127.0.0.1:${holePort}`,
    environments: prodEnv(),
    cacheDir: null,
    upstream: { ...FAST, connectTimeout: '1s', readTimeout: '20s' },
  });
  const deadline = Date.now() + 5000;
  while (conns.length < 2 && Date.now() < deadline) await sleep(20);
  assert.ok(conns.length >= 2, `${conns.length} TCP connection(s) in 5 s: a TLS handshake that never completes must be bounded by connectTimeout (1 s)`);
  const gap = report(t, s, 'TLS handshake black hole (connectTimeout 1s): second attempt after', conns[1] - conns[0]);
  assert.ok(gap >= 900 && gap <= 1000 + FAST_MAX_DELAY_MS + SLACK_MS, `second attempt ${gap} ms after the first`);
  const e = await envStatus(relay);
  assert.equal(e.connectionStatus.lastError?.kind, 'NETWORK_ERROR');
});
