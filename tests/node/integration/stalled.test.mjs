// A subscriber that stops reading is disconnected once its queue bound is exceeded, while another
// subscriber keeps receiving every patch promptly.
import assert from 'node:assert/strict';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { sleep, waitFor } from '../support/http.mjs';
import { scrape, sampleSum } from '../support/prom.mjs';

const PATCHES_PER_BATCH = 100;
const PAYLOAD_BYTES = 20 * 1024;
// Kernel socket buffers on loopback absorb some MiB before the relay's own queue fills; keep
// pushing (bounded) until the relay reports the slow disconnect.
const MAX_BATCHES = 8;
const BATCH_DEADLINE_MS = 4000;

relayTest('stalled reader is disconnected at its queue bound; a healthy reader gets every patch promptly', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('seed', 1, 'seed')) });
  const relay = await s.relay({
    // No cache: each change would wait for its commit (fsync), and on a shared CI disk 100 of them
    // can take longer than the deadline; this test is about the stream queues.
    cacheDir: null,
    upstreamUrl: up.url,
    environments: prodEnv(),
    streams: { maxQueueEvents: 64, maxQueueBytes: 262144, heartbeatInterval: '1s' },
  });
  const healthy = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal((await healthy.nextEvent(5000)).event, 'put');
  const stalled = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod), paused: true });
  assert.equal(stalled.status, 200);
  await waitFor(async () => sampleSum((await scrape(relay)).parsed, 'flagrelay_sdk_streams', { env: 'prod' }) === 2, {
    timeoutMs: 3000,
    what: 'flagrelay_sdk_streams{env="prod"} == 2',
  });

  const padding = 'p'.repeat(PAYLOAD_BYTES);
  let version = 1;
  let pushed = 0;
  let slow = 0;
  const latencies = [];
  for (let batch = 0; batch < MAX_BATCHES; batch++) {
    const firstVersion = version + 1;
    const start = Date.now();
    for (let i = 0; i < PATCHES_PER_BATCH; i++) {
      version++;
      up.pushPatch(makeFlag(`big-${version % 25}`, version, `${version}:${padding}`));
      pushed++;
      // Let this process read the healthy stream now and then: pushed in one synchronous burst,
      // 2 MB would pile up unread in front of the healthy reader too, and on a busy machine it
      // could exceed the queue bound like the stalled one (seen once in CI).
      if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
    }
    // The healthy reader must receive this batch's patches, in order, within the deadline.
    for (let v = firstVersion; v <= version; v++) {
      const left = start + BATCH_DEADLINE_MS - Date.now();
      let ev;
      try {
        ev = await healthy.nextEvent(Math.max(left, 1));
      } catch (err) {
        assert.fail(`batch ${batch}: healthy reader stalled at version ${v} of ${version} (${err.message}); stalled reader closed=${stalled.isClosed}`);
      }
      assert.equal(ev.event, 'patch', `healthy reader: expected patch, got ${ev.event}`);
      const got = ev.json().data.version;
      assert.equal(got, v, `healthy reader: patches out of order or missing (expected v${v}, got v${got})`);
    }
    latencies.push(Date.now() - start);
    slow = sampleSum((await scrape(relay)).parsed, 'flagrelay_sdk_stream_slow_disconnects_total', { env: 'prod' }) ?? 0;
    if (slow >= 1) break;
  }
  s.note(`pushed ${pushed} patches of ~${PAYLOAD_BYTES} B; healthy batch delivery ms: ${latencies.join(', ')}; slow disconnects: ${slow}`);
  assert.ok(
    slow >= 1,
    `flagrelay_sdk_stream_slow_disconnects_total{env="prod"} is ${slow} after ${pushed} patches (~${Math.round((pushed * PAYLOAD_BYTES) / 1048576)} MiB) to a reader that never reads`,
  );

  // The relay must have closed the stalled socket: once we read what the kernel buffered, the
  // stream ends (it would otherwise stay open and keep receiving heartbeats).
  stalled.resume();
  const closed = await stalled.waitClosed(5000);
  assert.ok(closed, `stalled reader's connection still open 5 s after resuming (read ${stalled.bytes} bytes, ${stalled.events.length} events)`);
  const stalledPatches = stalled.events.filter((e) => e.event === 'patch').length;
  assert.ok(stalledPatches < pushed, `stalled reader got all ${pushed} patches; it should have been cut off`);

  await waitFor(async () => sampleSum((await scrape(relay)).parsed, 'flagrelay_sdk_streams', { env: 'prod' }) === 1, {
    timeoutMs: 3000,
    what: 'flagrelay_sdk_streams{env="prod"} back to 1',
  });

  // The healthy reader is still connected and current.
  up.pushPatch(makeFlag('after', 1, 'still-here'));
  const ev = await healthy.nextEvent(3000);
  assert.equal(ev.json().path, '/flags/after');
  assert.ok(!healthy.isClosed, 'healthy reader must not be disconnected');
}, { timeout: 40000 });
