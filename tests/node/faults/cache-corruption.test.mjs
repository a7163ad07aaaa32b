// Corrupted and foreign caches: whatever is on disk, the relay starts, never crashes, and serves
// either exactly what was stored or nothing from the cache. A damaged data file is set aside
// whole; records that pass their checksums but do not parse are quarantined; records from a newer
// flagrelay are ignored and left in place.
//
// FLAGRELAY_FLIP_TRIALS sets the number of random-damage trials (default 25).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { relayTest, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, sleep, waitFor } from '../support/http.mjs';
import { freePort } from '../support/ports.mjs';
import { runRelayCli } from '../support/relay.mjs';
import { findItemRecords, editRecord, setFormatVersion } from '../support/cache-file.mjs';

const FLIP_TRIALS = Number(process.env.FLAGRELAY_FLIP_TRIALS || 25);
const env = { prod: { sdkKey: KEYS.prod } };
const statusOf = async (relay) => (await httpRequest(`${relay.url}/status`)).json();
const sha = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

// Enough flags to span many LMDB pages (branch pages, overflow pages for the large ones).
function seedFlags() {
  const flags = [];
  for (let i = 0; i < 300; i++) {
    flags.push(makeFlag(`flag-${i}`, i + 1, `value-${i}`, { salt: `salt-${i}-${'x'.repeat(i % 7 === 0 ? 6000 : 40)}` }));
  }
  return byKey(...flags);
}

/** Runs a relay against an upstream until the cache holds its data; returns the cache dir. */
async function seedCache(s, flags, segments = {}) {
  const dir = s.tmpDir();
  const cacheDir = path.join(dir, 'cache');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags, segments });
  const relay = await s.relay({ dir, cacheDir, upstreamUrl: up.url, environments: env, logLevel: 'warn', label: 'seed' });
  await waitFor(async () => {
    const prod = (await statusOf(relay)).environments.prod;
    return prod.dataSource === 'upstream' && prod.cache.state === 'ok';
  }, { timeoutMs: 5000, what: 'the seed relay committed the upstream data' });
  await relay.terminate();
  await up.close();
  return { dir, cacheDir, data: path.join(cacheDir, 'data.mdb') };
}

/** Starts a relay on `cacheDir` with the upstream down; returns it and what it serves. */
async function startOnCache(s, cacheDir, label) {
  const relay = await s.relay({
    cacheDir,
    upstreamUrl: `http://127.0.0.1:${await freePort()}`,
    environments: env,
    logLevel: 'warn',
    label,
  });
  // With the upstream refusing connections the cache is released at the first failed attempt.
  let status;
  await waitFor(async () => {
    status = (await statusOf(relay)).environments.prod;
    return status.cache.load !== 'loaded' || status.dataSource === 'cache';
  }, { timeoutMs: 3000, what: 'loaded cache data served after the first failed upstream attempt' });
  const poll = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  return { relay, status, poll };
}

/** Served flags must be exactly the stored ones (compared as JSON per flag). */
function assertExactly(served, stored, what) {
  assert.deepEqual(Object.keys(served).sort(), Object.keys(stored).sort(), `${what}: flag keys`);
  for (const [key, flag] of Object.entries(stored)) {
    assert.deepEqual(served[key], flag, `${what}: flag ${key}`);
  }
}

relayTest(
  `random bytes flipped in the data file (${FLIP_TRIALS} trials): no crash; the stored data exactly, or none`,
  async (t, s) => {
    const flags = seedFlags();
    const seed = await seedCache(s, flags);
    const pristine = fs.readFileSync(seed.data);
    const outcomes = {};
    for (let trial = 1; trial <= FLIP_TRIALS; trial++) {
      fs.rmSync(seed.cacheDir, { recursive: true, force: true });
      fs.mkdirSync(seed.cacheDir, { mode: 0o700 });
      const damaged = Buffer.from(pristine);
      const flips = 1 + Math.floor(Math.random() * 30);
      for (let i = 0; i < flips; i++) damaged[Math.floor(Math.random() * damaged.length)] = Math.floor(Math.random() * 256);
      fs.writeFileSync(seed.data, damaged, { mode: 0o600 });

      const { relay, status, poll } = await startOnCache(s, seed.cacheDir, `flip trial ${trial}`);
      const load = status.cache.load;
      outcomes[load] = (outcomes[load] ?? 0) + 1;
      if (load === 'loaded') {
        assert.equal(poll.status, 200, `trial ${trial}: cache loaded but /sdk/latest-all ${poll.status}`);
        assertExactly(poll.json().flags, flags, `trial ${trial}`);
      } else {
        assert.ok(['corrupt', 'unsupported_format'].includes(load), `trial ${trial}: cache load '${load}'`);
        assert.equal(poll.status, 503, `trial ${trial}: nothing may be served from a cache that was not loaded`);
      }
      // The write path too: an upstream with new data makes the relay commit into that file.
      const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('fresh', 1, trial)) });
      await relay.terminate();
      const live = await s.relay({ cacheDir: seed.cacheDir, upstreamUrl: up.url, environments: env, logLevel: 'warn', label: `flip trial ${trial} live` });
      await waitFor(async () => (await statusOf(live)).environments.prod.dataSource === 'upstream', {
        timeoutMs: 5000,
        what: `trial ${trial}: upstream data served`,
      });
      await sleep(50);
      assert.ok(live.running(), `trial ${trial}: the relay exited after committing into the damaged file`);
      assert.ok(relay.exitInfo?.code === 0, `trial ${trial}: first run exit ${JSON.stringify(relay.exitInfo)}`);
      await live.terminate();
      await up.close();
    }
    s.note(`cache load outcomes over ${FLIP_TRIALS} trials: ${JSON.stringify(outcomes)}`);
  },
  { timeout: 20000 + FLIP_TRIALS * 3000 },
);

relayTest('a truncated, emptied or garbage data file is set aside and reported; the relay starts without it', async (t, s) => {
  const flags = seedFlags();
  const seed = await seedCache(s, flags);
  const pristine = fs.readFileSync(seed.data);
  const variants = {
    'truncated to half': pristine.subarray(0, pristine.length >> 1),
    'truncated to 1000 bytes': pristine.subarray(0, 1000),
    'garbage': crypto.randomBytes(64 * 1024),
    'another program\'s file': Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.alloc(8192, 7)]),
  };
  for (const [what, bytes] of Object.entries(variants)) {
    fs.rmSync(seed.cacheDir, { recursive: true, force: true });
    fs.mkdirSync(seed.cacheDir, { mode: 0o700 });
    fs.writeFileSync(seed.data, bytes, { mode: 0o600 });
    const { relay, status, poll } = await startOnCache(s, seed.cacheDir, what);
    assert.equal(status.cache.load, 'corrupt', `${what}: /status cache.load (${JSON.stringify(status.cache)})`);
    assert.match(status.cache.lastError ?? '', /moved to .*data\.mdb\.corrupt-/, `${what}: /status says where the file went`);
    assert.equal(poll.status, 503, `${what}: nothing served`);
    const aside = fs.readdirSync(seed.cacheDir).filter((f) => f.startsWith('data.mdb.corrupt-'));
    assert.equal(aside.length, 1, `${what}: one file set aside, got ${aside}`);
    assert.ok(fs.readFileSync(path.join(seed.cacheDir, aside[0])).equals(bytes), `${what}: kept as it was, for inspection`);
    assert.equal((await statusOf(relay)).environments.prod.cache.state, 'ok', `${what}: the fresh cache works`);
    await relay.terminate();
  }
});

relayTest('a record with a valid checksum but JSON that does not parse: quarantined, reported, never served', async (t, s) => {
  const seed = await seedCache(s, byKey(makeFlag('a', 1, 'x'), makeFlag('b', 2, 'y')), byKey(makeSegment('seg', 3, ['u'])));
  const record = findItemRecords(seed.data).find((r) => r.key === 'b');
  assert.ok(record, 'the item record of flag b is in the data file');
  editRecord(seed.data, record, (buf) => buf.write('[', record.jsonOffset)); // '{"key"...' -> '["key"...'
  const verify = runRelayCli(['cache', 'verify', '--dir', seed.cacheDir]);
  assert.equal(verify.code, 1, `cache verify must fail: ${verify.stdout}${verify.stderr}`);
  assert.match(verify.stdout, /prod: corrupt: record flags\/b does not parse/);

  const { relay, status, poll } = await startOnCache(s, seed.cacheDir, 'bad JSON');
  assert.equal(status.cache.load, 'corrupt', JSON.stringify(status.cache));
  assert.match(status.cache.lastError, /flags\/b does not parse.*records quarantined/);
  assert.equal(poll.status, 503, 'nothing from the cache is served');
  await relay.terminate();

  const inspect = runRelayCli(['cache', 'inspect', '--dir', seed.cacheDir, '--json']);
  assert.equal(inspect.code, 0, inspect.stderr);
  const report = JSON.parse(inspect.stdout);
  assert.deepEqual(report.environments, [], 'the environment left the live records');
  assert.equal(report.quarantine.length, 1);
  assert.equal(report.quarantine[0].name, 'prod');
  assert.equal(report.quarantine[0].records, 4, 'meta, two flags and the segment kept for inspection');
});

relayTest('records written by a newer flagrelay are ignored and left in place (rollback safety)', async (t, s) => {
  const flags = byKey(makeFlag('a', 1, 'x'), makeFlag('b', 2, 'y'));
  const seed = await seedCache(s, flags);
  const record = findItemRecords(seed.data).find((r) => r.key === 'a');
  setFormatVersion(seed.data, record, 2);
  const before = sha(seed.data);

  const { relay, status, poll } = await startOnCache(s, seed.cacheDir, 'newer format');
  assert.equal(status.cache.load, 'unsupported_format', JSON.stringify(status.cache));
  assert.match(status.cache.lastError, /item flags\/a/);
  assert.equal(poll.status, 503, 'a newer format is not served');
  assert.ok(relay.running());
  await relay.terminate();
  assert.equal(sha(seed.data), before, 'left exactly as the newer binary wrote it');

  const inspect = JSON.parse(runRelayCli(['cache', 'inspect', '--dir', seed.cacheDir, '--json']).stdout);
  assert.equal(inspect.environments[0].state, 'newer_format');
  assert.deepEqual(inspect.quarantine, []);
  assert.equal(runRelayCli(['cache', 'verify', '--dir', seed.cacheDir]).code, 1);
});

relayTest('cache verify and inspect change nothing, even on a damaged file', async (t, s) => {
  const seed = await seedCache(s, seedFlags());
  const record = findItemRecords(seed.data).find((r) => r.key === 'flag-7');
  const buf = fs.readFileSync(seed.data);
  buf[record.jsonOffset + 3] ^= 0x20; // a byte of JSON, checksum left stale
  fs.writeFileSync(seed.data, buf);
  const before = sha(seed.data);
  const verify = runRelayCli(['cache', 'verify', '--dir', seed.cacheDir]);
  assert.equal(verify.code, 1);
  assert.match(verify.stdout, /prod: corrupt: item flags\/flag-7: checksum/);
  assert.equal(runRelayCli(['cache', 'inspect', '--dir', seed.cacheDir]).code, 0);
  assert.equal(sha(seed.data), before, 'the data file is unchanged');
  assert.ok(!fs.readdirSync(seed.cacheDir).some((f) => f.includes('corrupt')), 'nothing set aside');
});

// The start-up probe (a child reading the whole file) is skipped only for a data file that a relay
// closed cleanly and that is byte for byte unchanged since: a change that keeps the size and the
// modification time, a crash, or a failed start all mean the next start probes.
relayTest('the start-up probe is skipped only for a data file unchanged since a clean stop', async (t, s) => {
  const seed = await seedCache(s, seedFlags());
  const mark = path.join(seed.cacheDir, 'clean-close');
  assert.ok(fs.existsSync(mark), 'a clean stop leaves the clean-close mark');
  const skipped = /start-up probe skipped/;
  const start = async (label, load = 'loaded') => {
    const relay = await s.relay({ cacheDir: seed.cacheDir, upstreamUrl: `http://127.0.0.1:${await freePort()}`, environments: env, logLevel: 'debug', label });
    assert.ok(!fs.existsSync(mark), `${label}: the mark is taken when the relay starts`);
    await sleep(150);
    assert.equal((await statusOf(relay)).environments.prod.cache.load, load, `${label}: cache load`);
    return relay;
  };

  let relay = await start('unchanged');
  assert.match(relay.output(), skipped, 'unchanged since a clean stop: no probe');
  await relay.kill();
  assert.ok(!fs.existsSync(mark), 'a killed relay leaves no mark');
  relay = await start('after a kill');
  assert.doesNotMatch(relay.output(), skipped, 'after a crash the file is probed');
  await relay.terminate();

  // One byte of a record changed in place, size and mtime restored: the hash still tells, and the
  // probe finds the stale checksum (the file is set aside).
  const { mtime } = fs.statSync(seed.data);
  const record = findItemRecords(seed.data).find((r) => r.key === 'flag-3');
  const bytes = fs.readFileSync(seed.data);
  bytes[record.jsonOffset + 2] ^= 0x01;
  fs.writeFileSync(seed.data, bytes);
  fs.utimesSync(seed.data, mtime, mtime);
  relay = await start('changed', 'corrupt');
  assert.doesNotMatch(relay.output(), skipped, 'a changed file is probed');
  assert.match(relay.output(), /unsafe to open: it is damaged/);
  await relay.terminate();
});
