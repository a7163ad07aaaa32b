// upstream.pollingFallback: streaming fails -> after `after` the relay polls
// GET {baseUri}/sdk/latest-all every `interval` (If-None-Match), applies 200 bodies, counts 304s and
// errors, and stops polling once the stream works again.
import assert from 'node:assert/strict';
import { prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { sleep } from '../support/http.mjs';
import { sdkClient } from '../support/sdk.mjs';
import { assertAllPut } from '../support/assertions.mjs';
import { promtoolAvailable, promtoolCheck } from '../support/prom.mjs';
import {
  FAST, latestAll, user, waitEnv, stateIs, upstreamMetrics, waitMetrics, assertServes, report, waitVariation, gaps,
  faultTest,
} from '../support/faults.mjs';

const AFTER_MS = 1000;
const INTERVAL_MS = 1000;

const latestAllStatus = async (relay) => (await latestAll(relay, KEYS.prod)).status;

async function waitPolls(up, n, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (up.polls.length < n) {
    if (Date.now() > deadline) throw new Error(`fake upstream: ${up.polls.length} poll(s) of /sdk/latest-all within ${timeoutMs} ms, wanted ${n}`);
    await sleep(20);
  }
  return up.polls[n - 1];
}

faultTest('polling fallback: stream 503 -> polls with ETag -> data via polling -> stream back -> polling stops', async (t, s) => {
  const v1 = byKey(makeFlag('pf', 1, 'stream-v1'));
  const seg = byKey(makeSegment('seg', 1, ['a']));
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: v1, segments: seg, heartbeatMs: 300 });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    upstream: { ...FAST, pollingFallback: { enabled: true, after: `${AFTER_MS}ms`, interval: `${INTERVAL_MS}ms` } },
  });
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await sse.nextEvent(5000), v1, seg);
  const client = sdkClient(s, relay, KEYS.prod, { stream: true });
  await client.waitForInitialization({ timeout: 5 });
  const e0 = await waitEnv(relay, stateIs('VALID'), { what: 'VALID' });
  assert.equal(e0.connectionStatus.mode, 'streaming');
  assert.equal(up.polls.length, 0, 'no polling while the stream works');

  // Streaming fails.
  up.allStatus = 503;
  const failAt = Date.now();
  up.dropStreams();
  const p1 = await waitPolls(up, 1, AFTER_MS + INTERVAL_MS + 2500);
  const firstPollMs = report(t, s, 'polling fallback: first poll after the stream failed', p1.time - failAt);
  assert.ok(firstPollMs >= AFTER_MS - 150, `first poll ${firstPollMs} ms after the stream failed, before pollingFallback.after (${AFTER_MS} ms)`);
  assert.equal(p1.key, KEYS.prod, 'poll Authorization is the SDK key');
  assert.equal(p1.status, 200);
  const e1 = await waitEnv(relay, (x) => x.connectionStatus?.mode === 'polling', { what: 'connectionStatus.mode polling' });
  s.note(`while polling: ${JSON.stringify(e1.connectionStatus)}`);

  // Unchanged data: the next poll carries the ETag and gets 304.
  const p2 = await waitPolls(up, 2, INTERVAL_MS + 1500);
  assert.equal(p2.ifNoneMatch, p1.etag, `second poll If-None-Match ${p2.ifNoneMatch}, last ETag ${p1.etag}`);
  assert.equal(p2.status, 304);
  await waitMetrics(relay, (m) => m.polls.ok >= 1 && m.polls.not_modified >= 1, { what: 'polls_total ok>=1, not_modified>=1' });

  // New data arrives by polling: SDK streams get a new put.
  const v2 = byKey(makeFlag('pf', 2, 'polled-v2'), makeFlag('extra', 1, 'x'));
  up.setData({ flags: v2, segments: seg });
  const changedAt = Date.now();
  // (The first 200 poll may already have sent a put of the unchanged data.)
  const put = await sse.waitForEvent((ev) => ev.event === 'put' && ev.json().data?.flags?.pf?.version === 2, INTERVAL_MS + 2500, 'put of the changed polled data');
  report(t, s, 'polling fallback: changed data -> downstream put after', Date.now() - changedAt);
  assertAllPut(put, v2, seg, 'put from polled data');
  await waitVariation(client, 'pf', 'polled-v2');
  await assertServes(relay, KEYS.prod, v2, seg, 'polling endpoint with polled data');
  const pollsNow = up.polls.length;
  assert.equal(up.polls[pollsNow - 1].status, 200);

  // A failing poll keeps the data and is counted as an error.
  up.pollStatus = 500;
  await waitPolls(up, pollsNow + 1, INTERVAL_MS + 1500);
  up.pollStatus = null;
  await waitMetrics(relay, (m) => m.polls.error >= 1, { what: 'polls_total{result="error"} >= 1' });
  await assertServes(relay, KEYS.prod, v2, seg, 'data kept after a failed poll');
  const pollGaps = gaps(up.polls.map((p) => p.time));
  report(t, s, 'polling fallback: poll gaps', pollGaps.join(','), 'ms');
  for (const g of pollGaps) assert.ok(g >= INTERVAL_MS - 200 && g <= INTERVAL_MS + 800, `poll gap ${g} ms (interval ${INTERVAL_MS} ms): ${pollGaps.join(',')}`);
  assert.ok(up.streamRequests(KEYS.prod).filter((r) => r.time > failAt).length >= 3, 'the stream is still retried while polling');

  // The stream comes back: polling stops.
  const v3 = byKey(makeFlag('pf', 3, 'stream-v3'));
  up.setData({ flags: v3, segments: seg });
  up.allStatus = null;
  const backAt = Date.now();
  const e3 = await waitEnv(relay, (x) => x.connectionStatus?.state === 'VALID' && x.connectionStatus.mode === 'streaming', { what: 'VALID streaming again', timeoutMs: 3000 });
  report(t, s, 'polling fallback: stream back -> VALID streaming after', Date.now() - backAt);
  assert.equal(e3.dataSource, 'upstream');
  await waitVariation(client, 'pf', 'stream-v3');
  const validSeenAt = Date.now();
  await sleep(INTERVAL_MS * 2 + 500);
  // A poll already under way when the stream recovered may finish; none may start later.
  const late = up.polls.filter((p) => p.time > validSeenAt + 200);
  assert.equal(late.length, 0, `${late.length} poll(s) started after the stream recovered (at ${late.map((p) => p.time - backAt).join(',')} ms; VALID seen at ${validSeenAt - backAt} ms): polling must stop`);
  const m = await upstreamMetrics(relay);
  assert.ok(m.polls.ok >= 2 && m.polls.not_modified >= 1 && m.polls.error >= 1, `polls_total ${JSON.stringify(m.polls)}`);
  if (promtoolAvailable()) {
    const r = promtoolCheck(m.text);
    assert.equal(r.code, 0, `promtool check metrics: ${r.output}`);
  }
});

faultTest('polling fallback from start: the stream never works, data arrives by polling and SDKs initialize', async (t, s) => {
  const v1 = byKey(makeFlag('pf', 1, 'polled-from-start'));
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: v1, allStatus: 503 });
  const spawnAt = Date.now();
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    cacheDir: null,
    upstream: { ...FAST, pollingFallback: { enabled: true, after: '1s', interval: '1s' } },
  });
  const client = sdkClient(s, relay, KEYS.prod, { stream: true });
  await client.waitForInitialization({ timeout: 6 });
  report(t, s, 'polling fallback from start: SDK initialized after spawn', Date.now() - spawnAt);
  assert.equal(await client.variation('pf', user('u1'), 'd'), 'polled-from-start');
  await assertServes(relay, KEYS.prod, v1, {}, 'polled data');
  const e = await waitEnv(relay, (x) => x.connectionStatus?.mode === 'polling', { what: 'mode polling' });
  s.note(`polling from start: ${JSON.stringify(e.connectionStatus)} dataSource=${e.dataSource}`);
  assert.equal(e.dataSource, 'upstream');
  assert.ok(up.polls.length >= 1 && up.polls[0].time - spawnAt >= 900, `first poll ${up.polls[0]?.time - spawnAt} ms after start (after = 1 s)`);
});

faultTest('polling fallback asks for gzip and decodes a gzip body', async (t, s) => {
  const v1 = byKey(makeFlag('gz', 1, 'gzipped'), makeFlag('gz2', 1, 'x'.repeat(2000)));
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: v1, allStatus: 503 });
  up.pollGzip = true;
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    cacheDir: null,
    upstream: { ...FAST, pollingFallback: { enabled: true, after: '0s', interval: '1s' } },
  });
  await waitPolls(up, 1, 4000);
  s.note(`first poll: ${JSON.stringify(up.polls[0])}`);
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && (await latestAllStatus(relay)) !== 200) await sleep(50);
  await assertServes(relay, KEYS.prod, v1, {}, 'data from a gzip poll');
  assert.ok(up.polls.some((p) => p.gzip), `no poll accepted gzip (Accept-Encoding ${JSON.stringify(up.polls[0].acceptEncoding)})`);
});
