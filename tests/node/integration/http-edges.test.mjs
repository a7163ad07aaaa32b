// HTTP edges found in review: a slow reader of a large put is not cut off by the heartbeats that
// queue behind it; 304 carries no Content-Length; a GET with a body is refused before it is read.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { makeFlag, KEYS } from '../support/flags.mjs';
import { httpRequest, sleep, waitFor } from '../support/http.mjs';
import { scrape, sampleSum } from '../support/prom.mjs';

function bigFlags(count, padBytes) {
  const flags = {};
  for (let i = 0; i < count; i++) {
    const key = `big-${i}`;
    flags[key] = makeFlag(key, 1, true, { description: 'x'.repeat(padBytes) });
  }
  return flags;
}

async function waitForData(relay) {
  await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 200,
    { timeoutMs: 10000, what: 'the relay has data (/readyz 200)' });
}

// Sends raw bytes and resolves with everything the server sent until it closed or `ms` passed.
function rawExchange(port, text, ms = 2000) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('data', (d) => { received += d.toString('latin1'); });
    socket.on('close', () => { clearTimeout(timer); resolve(received); });
    socket.on('error', () => {});
    socket.write(text);
  });
}

relayTest('a slow reader receives a put larger than maxQueueBytes in full, heartbeats queued behind it', async (t, s) => {
  const flags = bigFlags(1000, 10000); // ~10 MB put, far above maxQueueBytes (256 KiB here)
  const up = (await s.upstream({ sdkKey: KEYS.prod, flags }));
  const relay = (await s.relay({ upstreamUrl: up.url, environments: prodEnv(),
    streams: { heartbeatInterval: '1s', maxQueueBytes: 262144, writeTimeout: '5s' } }));
  await waitForData(relay);
  const started = Date.now();
  const result = await new Promise((resolve, reject) => {
    const req = http.get(`${relay.url}/all`, { headers: auth(KEYS.prod) }, (res) => {
      let text = '';
      let afterPut = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        // ~64 KiB every 25 ms: about 2.5 MB/s, so the put takes seconds and heartbeats queue up.
        res.pause();
        setTimeout(() => res.resume(), 25);
        if (text !== null) {
          text += chunk;
          while (text.startsWith(':\n')) text = text.slice(2);  // a heartbeat may come first
          const end = text.indexOf('\n\n');
          if (end >= 0) {
            afterPut = text.slice(end + 2);
            resolve({ put: text.slice(0, end), res, afterPut: () => afterPut });
            text = null;
          }
        } else {
          afterPut += chunk;
        }
      });
      res.on('close', () => reject(new Error(`stream closed by the relay after ${Date.now() - started} ms`)));
    });
    req.on('error', reject);
    s.defer(() => req.destroy());
  });
  const seconds = (Date.now() - started) / 1000;
  assert.ok(result.put.startsWith('event: put\ndata: '), 'the put arrives first');
  const data = JSON.parse(result.put.slice('event: put\ndata: '.length)).data;
  assert.equal(Object.keys(data.flags).length, 1000, 'the put is complete');
  t.diagnostic(`10 MB put read at a throttled rate in ${seconds.toFixed(1)} s`);
  // The stream stays open afterwards and heartbeats follow.
  await sleep(1500);
  assert.match(result.afterPut(), /:\n/, 'heartbeats arrive after the put');
  const m = await scrape(relay);
  assert.equal(sampleSum(m.parsed, 'flagrelay_sdk_stream_slow_disconnects_total', { env: 'prod' }), 0);
}, { timeout: 60000 });

relayTest('304 responses carry no Content-Length', async (t, s) => {
  const up = (await s.upstream({ sdkKey: KEYS.prod, flags: { f: makeFlag('f', 1, true) } }));
  const relay = (await s.relay({ upstreamUrl: up.url, environments: prodEnv() }));
  await waitForData(relay);
  const first = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assert.equal(first.status, 200);
  const etag = first.headers.etag;
  const raw = await rawExchange(relay.port,
    `GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\nAuthorization: ${KEYS.prod}\r\nIf-None-Match: ${etag}\r\nConnection: close\r\n\r\n`);
  assert.match(raw, /^HTTP\/1\.1 304 /);
  assert.doesNotMatch(raw, /content-length/i, raw);
});

relayTest('a GET with a body is refused (413) before the body is read', async (t, s) => {
  const up = (await s.upstream({ sdkKey: KEYS.prod, flags: {} }));
  const relay = (await s.relay({ upstreamUrl: up.url, environments: prodEnv() }));
  await waitForData(relay);
  const raw = await rawExchange(relay.port,
    'GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n' + 'a'.repeat(1000));
  assert.match(raw, /^HTTP\/1\.1 413 /, raw.slice(0, 200));
  const ok = await rawExchange(relay.port,
    `GET /sdk/latest-all HTTP/1.1\r\nHost: x\r\nAuthorization: ${KEYS.prod}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  assert.match(ok, /^HTTP\/1\.1 200 /, 'an explicit empty body is fine');
});

relayTest('listen.host may be a name (localhost): the relay resolves it and serves there', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: {} });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), waitHealthy: false,
    extra: { listen: { host: 'localhost' } } });
  // localhost may resolve to 127.0.0.1 or ::1 first; either is a correct choice.
  const urls = [`http://127.0.0.1:${relay.port}/healthz`, `http://[::1]:${relay.port}/healthz`];
  await waitFor(async () => {
    for (const url of urls) {
      try {
        if ((await httpRequest(url, { timeoutMs: 500 })).status === 200) return true;
      } catch { /* not listening on this address */ }
    }
    return false;
  }, { timeoutMs: 10000, what: '/healthz on localhost' });
});
