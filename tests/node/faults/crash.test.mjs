// Crash consistency: SIGKILL the relay at random moments while the upstream streams patches and
// deletes, then restart it with the upstream down. Each time the cache must open, serve a
// snapshot that is exactly the state after some prefix of the upstream's changes (nothing half
// applied, no holes), and that prefix must reach at least the newest change any SDK received
// before the kill: the relay commits before it publishes.
//
// FLAGRELAY_CRASH_TRIALS sets the number of kills (default 20 here; scripts/crash-trials runs
// hundreds).
import assert from 'node:assert/strict';
import path from 'node:path';
import { relayTest, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { httpRequest, sleep, waitFor } from '../support/http.mjs';
import { freePort } from '../support/ports.mjs';

const TRIALS = Number(process.env.FLAGRELAY_CRASH_TRIALS || 20);
const FLAGS = 5; // change n goes to flag f<n % FLAGS>
const FIRST_CHANGE = 10;

// Change n: every 7th deletes its flag, the others patch it to version n.
const isDelete = (n) => n % 7 === 0;

/** The flags after changes FIRST_CHANGE..k, as key -> version (absent when deleted). */
function stateAfter(k) {
  const state = {};
  for (let j = 0; j < FLAGS; j++) state[`f${j}`] = j + 1; // the initial put
  for (let n = FIRST_CHANGE; n <= k; n++) {
    if (isDelete(n)) delete state[`f${n % FLAGS}`];
    else state[`f${n % FLAGS}`] = n;
  }
  return state;
}

/** The newest change a stream's events show (patch version or delete version). */
function newestChangeSeen(events) {
  let newest = 0;
  for (const e of events) {
    if (e.event === 'patch' || e.event === 'delete') {
      const body = e.json();
      newest = Math.max(newest, body.data?.version ?? body.version ?? 0);
    } else if (e.event === 'put') {
      for (const f of Object.values(e.json().data.flags)) newest = Math.max(newest, f.version);
    }
  }
  return newest;
}

const canonical = (state) => JSON.stringify(Object.entries(state).sort(([a], [b]) => a.localeCompare(b)));

/** Checks that served flags are exactly stateAfter(k) for k = the newest version among them. */
function assertPrefixState(flags, trial) {
  const served = Object.fromEntries(Object.entries(flags).map(([key, f]) => [key, f.version]));
  const newest = Math.max(0, ...Object.values(served));
  // A delete may be the newest change: try k = newest and the deletes right after it.
  for (let k = newest; k < newest + FLAGS * 2; k++) {
    if (canonical(stateAfter(k)) === canonical(served)) return k;
    if (k > newest && !isDelete(k)) break;
  }
  assert.fail(`trial ${trial}: the cached snapshot is no prefix of the upstream's changes: ${JSON.stringify(served)}`);
}

relayTest(
  `SIGKILL at random moments (${TRIALS} trials): the cache reopens with a consistent snapshot at least as new as any SDK saw`,
  async (t, s) => {
    const dir = s.tmpDir();
    const cacheDir = path.join(dir, 'cache');
    const deadUpstream = `http://127.0.0.1:${await freePort()}`;
    const initial = byKey(...Array.from({ length: FLAGS }, (_, j) => makeFlag(`f${j}`, j + 1, `v${j + 1}`)));
    let servedVersions = 0;
    for (let trial = 1; trial <= TRIALS; trial++) {
      const up = await s.upstream({ sdkKey: KEYS.prod, flags: initial });
      const relay = await s.relay({
        dir,
        cacheDir,
        upstreamUrl: up.url,
        environments: { prod: { sdkKey: KEYS.prod } },
        logLevel: 'warn',
        label: `trial ${trial}`,
      });
      const stream = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
      await stream.waitForEvent((e) => e.event === 'put', 5000, 'the first put');

      // Changes as fast as the loop runs, for a random while; the kill lands mid-stream, often
      // during a commit (and sometimes during the put's ReplaceAll of the previous trial's data).
      let n = FIRST_CHANGE;
      let pushing = true;
      const pusher = (async () => {
        while (pushing) {
          if (isDelete(n)) up.pushDelete('flags', `f${n % FLAGS}`, n);
          else up.pushPatch(makeFlag(`f${n % FLAGS}`, n, `v${n}`));
          n++;
          if (n % 4 === 0) await sleep(1);
        }
      })();
      await sleep(20 + Math.floor(Math.random() * 300));
      process.kill(relay.pid, 'SIGKILL');
      await relay.exited;
      pushing = false;
      await pusher;
      await stream.closed;
      await up.close();
      const seen = newestChangeSeen(stream.events);

      // Restart with the upstream down: the cache is served once the first attempt fails.
      const again = await s.relay({
        dir,
        cacheDir,
        upstreamUrl: deadUpstream,
        environments: { prod: { sdkKey: KEYS.prod } },
        logLevel: 'warn',
        label: `trial ${trial} restart`,
      });
      let body;
      await waitFor(
        async () => {
          const r = await httpRequest(`${again.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
          body = r.status === 200 ? r.json() : null;
          return body !== null;
        },
        { timeoutMs: 5000, what: `trial ${trial}: cached data served after the restart` },
      );
      const k = assertPrefixState(body.flags, trial);
      assert.ok(
        k >= seen,
        `trial ${trial}: the cache holds change ${k}, but an SDK had received change ${seen} before the kill`,
      );
      const st = (await httpRequest(`${again.url}/status`)).json();
      assert.equal(st.environments.prod.dataSource, 'cache', `trial ${trial}: /status dataSource`);
      assert.equal(st.environments.prod.cache.load, 'loaded', `trial ${trial}: cache load outcome`);
      servedVersions += k - FIRST_CHANGE;
      if (trial <= 3 || trial % 50 === 0) {
        s.note(`trial ${trial}: ${n - FIRST_CHANGE} changes pushed, SDK saw up to ${seen}, cache holds ${k}`);
      }
      await again.kill();
    }
    s.note(`${TRIALS} kills, every restart consistent; ${servedVersions} changes survived in all`);
  },
  { timeout: 30000 + TRIALS * 4000 },
);
