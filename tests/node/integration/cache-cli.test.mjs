// `flagrelay cache inspect|verify|export`: what an operator sees of the cache, and the air-gapped
// transfer path (export on one side, `dataFile` on the other).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { relayTest, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { runRelayCli } from '../support/relay.mjs';
import { assertFlagsMap, assertSegmentsMap } from '../support/assertions.mjs';

const flags = byKey(makeFlag('alpha', 3, 'a'), makeFlag('beta', 7, true));
const segments = byKey(makeSegment('testers', 2, ['u1', 'u2']));

/** A cache written by a relay that learned `flags`, then a patch and a delete. */
async function seedCache(s) {
  const dir = s.tmpDir();
  const cacheDir = path.join(dir, 'cache');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags, segments });
  const relay = await s.relay({ dir, cacheDir, upstreamUrl: up.url, environments: { prod: { sdkKey: KEYS.prod } } });
  await waitFor(async () => (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status === 200, {
    what: 'initialized',
  });
  up.pushPatch(makeFlag('gamma', 1, 'g'));
  up.pushDelete('flags', 'beta', 8);
  await waitFor(async () => {
    const body = (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).json();
    return body.flags.gamma && !body.flags.beta;
  }, { what: 'patch and delete applied' });
  return { dir, cacheDir, relay };
}

relayTest('cache inspect lists environments, versions, sizes, ages and checksum state (on a running relay)', async (t, s) => {
  const { cacheDir, relay } = await seedCache(s);
  const json = runRelayCli(['cache', 'inspect', '--dir', cacheDir, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout);
  assert.equal(report.environments.length, 1);
  const prod = report.environments[0];
  assert.equal(prod.name, 'prod');
  assert.equal(prod.state, 'ok');
  assert.equal(prod.source, 'upstream');
  assert.equal(prod.flags, 2, 'alpha and gamma live');
  assert.equal(prod.deleted, 1, 'beta kept as a tombstone');
  assert.equal(prod.segments, 1);
  assert.ok(prod.dataVersion >= 3, `data version ${prod.dataVersion}: the put, the patch and the delete`);
  assert.ok(prod.bytes > 100 && report.fileBytes > prod.bytes);
  assert.ok(Math.abs(Date.now() - prod.savedAt) < 60000, 'savedAt is recent');
  assert.deepEqual(report.quarantine, []);

  const text = runRelayCli(['cache', 'inspect', '--dir', cacheDir]);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /ENVIRONMENT\s+DATA-VERSION\s+FLAGS\s+SEGMENTS\s+BYTES\s+SAVED\s+AGE\s+SOURCE\s+CHECKSUMS/);
  assert.match(text.stdout, /\nprod\s+\d+\s+2\s+1\s+\d+\s+\d{4}-\d\d-\d\dT\S+Z\s+\d+s\s+upstream\s+ok\n/);
  const verify = runRelayCli(['cache', 'verify', '--dir', cacheDir]);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, /prod: ok \(data version \d+, 4 records\)/);
  assert.ok(relay.running(), 'the relay is undisturbed');
  assert.equal((await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status, 200);
});

relayTest('cache export writes a data file that dataFile serves as the same flags (air-gapped transfer)', async (t, s) => {
  const { dir, cacheDir, relay } = await seedCache(s);
  await relay.kill();
  const file = path.join(dir, 'exported.json');
  const r = runRelayCli(['cache', 'export', '--dir', cacheDir, '--env', 'prod', '--out', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /exported prod \(data version \d+, 2 flags, 1 segments\)/);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'flag rules stay private');
  const exported = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.deepEqual(Object.keys(exported.flags).sort(), ['alpha', 'gamma'], 'deletions are not exported');

  const stdout = runRelayCli(['cache', 'export', '--dir', cacheDir, '--env', 'prod']);
  assert.deepEqual(JSON.parse(stdout.stdout), exported, 'stdout and --out agree');

  const offline = await s.relay({ cacheDir: null, environments: { prod: { sdkKey: KEYS.prod, dataFile: file } }, upstreamUrl: 'http://127.0.0.1:9' });
  await waitFor(async () => (await httpRequest(`${offline.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status === 200, {
    what: 'the data file is served',
  });
  const body = (await httpRequest(`${offline.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).json();
  assertFlagsMap(body.flags, byKey(flags.alpha, makeFlag('gamma', 1, 'g')), 'flags from the exported file');
  assertSegmentsMap(body.segments, segments, 'segments from the exported file');
});

relayTest('cache commands: clear errors and exit codes', async (t, s) => {
  const { cacheDir } = await seedCache(s);
  const missingEnv = runRelayCli(['cache', 'export', '--dir', cacheDir, '--env', 'nope']);
  assert.equal(missingEnv.code, 1);
  assert.match(missingEnv.stderr, /no environment 'nope'/);
  const noDir = path.join(s.tmpDir(), 'none');
  const missingDir = runRelayCli(['cache', 'inspect', '--dir', noDir]);
  assert.equal(missingDir.code, 1);
  assert.match(missingDir.stderr, /none/);
  assert.ok(!fs.existsSync(noDir), 'inspect never creates a cache');
  for (const args of [['cache'], ['cache', 'inspect'], ['cache', 'frobnicate', '--dir', cacheDir], ['cache', 'export', '--dir', cacheDir], ['cache', 'inspect', '--dir']]) {
    const r = runRelayCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}`);
    assert.match(r.stderr, /usage: flagrelay cache/, `${args.join(' ')}: usage on stderr`);
  }
});
