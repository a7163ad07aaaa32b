// docs/guides/air-gapped.md, run for real on loopback: the guide's connected relay (fed by a fake
// LaunchDarkly) and its export commands, the transfer commands, the air-gapped relay serving the
// files as data files (same flags, same ETag, updates by rename, no outbound connection), and the
// import into a cache served with the upstream unreachable.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { relayTest, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { freePort } from '../support/ports.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { waitEnv, statusJson } from '../support/faults.mjs';
import { scrape, findSamples } from '../support/prom.mjs';
import { relayBin } from '../support/relay.mjs';
import { readGuide, block, blockIds, rewrite, runShell, shellReport, startYamlRelay } from './guide-blocks.mjs';

const guide = readGuide('air-gapped.md');
const KEY_ENV = { PRODUCTION_SDK_KEY: KEYS.prod, STAGING_SDK_KEY: KEYS.staging };

const prodFlags = [makeFlag('checkout', 3, 'old'), makeFlag('banner', 1, true), makeFlag('retired', 2, 'x')];
const prodSegments = [makeSegment('beta-testers', 4, ['u1', 'u2'])];
const stagingFlags = [makeFlag('search', 1, 'v1')];

relayTest('every tagged block of the air-gapped guide is run by this test', () => {
  assert.deepEqual(blockIds(guide).sort(), [
    'cache-config', 'check-datafile', 'connected', 'datafile', 'export', 'import', 'receive', 'start-cache', 'start-datafile', 'update',
  ].sort());
});

/** A TCP listener that counts connections: whatever connects to it tried to leave the network. */
async function tripwire(s) {
  const server = net.createServer((sock) => {
    server.hits++;
    sock.destroy();
  });
  server.hits = 0;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.defer(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${server.address().port}`, hits: () => server.hits };
}

/** The directory layout of the guide under one temp root. */
function layout(s) {
  const root = s.tmpDir('flagrelay-airgap-');
  const dirs = {
    root,
    transfer: path.join(root, 'media/transfer'),
    connectedCache: path.join(root, 'connected/var/lib/flagrelay'),
    connectedEtc: path.join(root, 'connected/etc/flagrelay'),
    srv: path.join(root, 'airgap/srv/flagrelay'),
    airgapCache: path.join(root, 'airgap/var/lib/flagrelay'),
    airgapEtc: path.join(root, 'airgap/etc/flagrelay'),
  };
  fs.mkdirSync(dirs.transfer, { recursive: true });
  return dirs;
}

/** §1: the connected relay, streaming from the fake LaunchDarkly until both environments are live. */
async function startConnected(s, dirs, up) {
  const port = await freePort();
  const metricsPort = await freePort();
  const yaml = rewrite(block(guide, 'connected'), [
    ['port: 8030', `port: ${port}`],
    ['port: 8031', `port: ${metricsPort}`],
    ['/var/lib/flagrelay', dirs.connectedCache],
  ]);
  const env = { ...KEY_ENV, STREAM_URI: up.url, BASE_URI: up.url, EVENTS_URI: up.url };
  const relay = await startYamlRelay(s, { yaml, port, metricsPort, env, label: 'connected', dir: dirs.connectedEtc });
  for (const e of ['production', 'staging']) {
    await waitEnv(relay, (x) => x.dataSource === 'upstream', { env: e, what: `connected ${e} live` });
  }
  return relay;
}

/** §1's export block, as written, into the transfer directory. */
async function runExport(s, dirs) {
  const r = await runShell(s, rewrite(block(guide, 'export'), [
    ['/media/transfer', dirs.transfer],
    ['/var/lib/flagrelay', dirs.connectedCache],
  ]), { cwd: dirs.root });
  assert.equal(r.code, 0, shellReport(r));
  return r;
}

/** §2's block: check the sums, install into /srv/flagrelay. */
async function runReceive(s, dirs) {
  const r = await runShell(s, rewrite(block(guide, 'receive'), [
    ['/media/transfer', dirs.transfer],
    ['/srv/flagrelay', dirs.srv],
  ]), { cwd: dirs.root });
  assert.equal(r.code, 0, shellReport(r));
  return r;
}

/** Runs a start-* block's check line and returns the run line, rewritten. */
async function checkStart(s, id, configFile, env) {
  const lines = rewrite(block(guide, id), [['/etc/flagrelay/relay.yaml', configFile]]).trim().split('\n');
  assert.equal(lines.length, 2, `${id}: a check, then the run`);
  const check = await runShell(s, lines[0], { cwd: path.dirname(configFile), env });
  assert.equal(check.code, 0, shellReport(check));
  assert.match(check.stdout, /valid \(2 environments\)/);
  assert.equal(lines[1], `flagrelay --config ${configFile}`, 'the run line is what startYamlRelay runs');
}

const etagOf = async (relay, key) => (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(key) })).headers.etag;
const latest = async (relay, key) => (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(key) })).json();

relayTest('air-gapped A: export on the connected host, carry, serve as data files: same flags and ETag, updates by rename, nothing leaves', async (t, s) => {
  const dirs = layout(s);
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: byKey(...prodFlags),
    segments: byKey(...prodSegments),
    environments: { [KEYS.staging]: { flags: byKey(...stagingFlags) } },
  });
  const connected = await startConnected(s, dirs, up);
  up.pushDelete('flags', 'retired', 3);
  await waitEnv(connected, (x) => x.flagCount === 2, { env: 'production', what: 'the delete applied' });

  // §1: export, on the running relay's cache.
  const exported = await runExport(s, dirs);
  assert.match(exported.stdout, /production: ok .*\n.*staging: ok/s, 'cache verify');
  assert.match(exported.stderr, /exported production \(data version \d+, 2 flags, 1 segments\) to production\.json/);
  assert.match(exported.stderr, /exported staging \(data version \d+, 1 flags, 0 segments\) to staging\.json/);
  for (const f of ['production.json', 'staging.json']) {
    assert.equal(fs.statSync(path.join(dirs.transfer, f)).mode & 0o777, 0o600, `${f} is created 0600`);
  }
  const file = JSON.parse(fs.readFileSync(path.join(dirs.transfer, 'production.json'), 'utf8'));
  assert.deepEqual(Object.keys(file.flags).sort(), ['banner', 'checkout'], 'the deleted flag is left out');
  assert.ok(!JSON.stringify(file).includes(KEYS.prod), 'no SDK key in the file');

  // §2: across the gap.
  await runReceive(s, dirs);
  assert.equal(fs.statSync(dirs.srv).mode & 0o777, 0o700);
  assert.equal(fs.statSync(path.join(dirs.srv, 'production.json')).mode & 0o777, 0o600);

  // §3A: the data-file relay; anything trying to reach "LaunchDarkly" would hit the tripwire.
  const wire = await tripwire(s);
  const port = await freePort();
  const metricsPort = await freePort();
  const yaml = rewrite(block(guide, 'datafile'), [
    ['0.0.0.0', '127.0.0.1'],
    ['port: 8030', `port: ${port}`],
    ['port: 8031', `port: ${metricsPort}`],
    ['/srv/flagrelay', dirs.srv],
  ]);
  const configFile = path.join(dirs.airgapEtc, 'relay.yaml');
  fs.mkdirSync(dirs.airgapEtc, { recursive: true });
  fs.writeFileSync(configFile, yaml);
  const airEnv = { ...KEY_ENV, STREAM_URI: wire.url, BASE_URI: wire.url, EVENTS_URI: wire.url };
  await checkStart(s, 'start-datafile', configFile, airEnv);
  const airgapped = await startYamlRelay(s, { yaml, port, metricsPort, env: airEnv, label: 'air-gapped (dataFile)', dir: dirs.airgapEtc });
  for (const e of ['production', 'staging']) await waitEnv(airgapped, (x) => x.dataSource === 'file', { env: e, what: `${e} served from its file` });

  // The guide's checks, against both relays: the same ETag means the same bytes.
  const check = async (relay) => {
    const r = await runShell(s, rewrite(block(guide, 'check-datafile'), [['127.0.0.1:8030', `127.0.0.1:${relay.port}`]]), { cwd: dirs.root, env: KEY_ENV });
    assert.equal(r.code, 0, shellReport(r));
    // /status ends without a newline, so the ETag header line follows it directly.
    const at = r.stdout.search(/etag:/i);
    assert.ok(at > 0, shellReport(r));
    return { status: JSON.parse(r.stdout.slice(0, at)), etag: r.stdout.slice(at).trim(), r };
  };
  const here = await check(airgapped);
  const there = await check(connected);
  for (const e of ['production', 'staging']) {
    const st = here.status.environments[e];
    assert.equal(st.dataSource, 'file', `${e}: ${JSON.stringify(st)}`);
    assert.equal(st.connectionStatus.state, 'VALID');
    assert.equal(st.connectionStatus.mode, 'file');
    assert.equal(st.status, 'connected');
  }
  assert.equal(here.status.environments.production.flagCount, 2);
  assert.equal(here.status.environments.production.segmentCount, 1);
  assert.match(here.etag, /^etag: "[^"]+"$/i);
  assert.equal(here.etag, there.etag, 'the air-gapped relay serves the same bytes as the connected one');
  assert.deepEqual(await latest(airgapped, KEYS.prod), await latest(connected, KEYS.prod));
  assert.deepEqual(await latest(airgapped, KEYS.staging), await latest(connected, KEYS.staging));

  // Events are accepted and discarded.
  const ev = await httpRequest(`${airgapped.url}/bulk`, {
    method: 'POST',
    headers: { ...auth(KEYS.prod), 'Content-Type': 'application/json' },
    body: JSON.stringify([{ kind: 'custom', key: 'x', creationDate: Date.now(), contextKeys: { user: 'u' } }]),
  });
  assert.equal(ev.status, 202);
  assert.equal(here.status.environments.production.events.state, 'disabled');

  // Updating: a change on the connected side, a new export, the guide's update block.
  const sse = await s.sse(`${airgapped.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal((await sse.nextEvent(3000)).event, 'put');
  up.pushPatch(makeFlag('checkout', 4, 'new'));
  up.pushPatch(makeFlag('dark-mode', 1, false));
  up.pushDelete('flags', 'banner', 2);
  await waitFor(async () => {
    const flags = (await latest(connected, KEYS.prod)).flags;
    return flags['dark-mode'] && !flags.banner && flags.checkout.version === 4;
  }, { what: 'the connected relay applied the changes' });
  await runExport(s, dirs);
  const updated = await runShell(s, rewrite(block(guide, 'update'), [
    ['/media/transfer', dirs.transfer],
    ['/srv/flagrelay', dirs.srv],
  ]), { cwd: dirs.root });
  assert.equal(updated.code, 0, shellReport(updated));
  const seen = {};
  while (!(seen['/flags/checkout'] && seen['/flags/dark-mode'] && seen['/flags/banner'])) {
    const e = await sse.nextEvent(4000);
    const body = e.json();
    seen[body.path] = { event: e.event, body };
  }
  assert.equal(seen['/flags/checkout'].event, 'patch');
  assert.equal(seen['/flags/checkout'].body.data.version, 4);
  assert.equal(seen['/flags/dark-mode'].event, 'patch');
  assert.equal(seen['/flags/banner'].event, 'delete');
  assert.equal(Object.keys(seen).length, 3, `only what changed is sent: ${Object.keys(seen)}`);
  assert.equal(await etagOf(airgapped, KEYS.prod), await etagOf(connected, KEYS.prod), 'still the same bytes after the update');

  assert.equal(wire.hits(), 0, 'the air-gapped relay never tried to reach LaunchDarkly');
  assert.ok(airgapped.running());
});

/** `flagrelay ARGS` with exactly `env` added (bounded); {code, stdout, stderr}. */
function cli(args, env = {}) {
  const r = spawnSync(relayBin(), args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 10000, killSignal: 'SIGKILL' });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

relayTest('air-gapped B: import the export into a cache; served with the upstream unreachable; bad input leaves the cache alone', async (t, s) => {
  const dirs = layout(s);
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: byKey(...prodFlags),
    segments: byKey(...prodSegments),
    environments: { [KEYS.staging]: { flags: byKey(...stagingFlags) } },
  });
  const connected = await startConnected(s, dirs, up);
  await runExport(s, dirs);

  // §3B: the config, then the import block, into a cache directory that does not exist yet.
  const closed = `http://127.0.0.1:${await freePort()}`; // LaunchDarkly, unreachable: connections refused
  const port = await freePort();
  const metricsPort = await freePort();
  const yaml = rewrite(block(guide, 'cache-config'), [
    ['0.0.0.0', '127.0.0.1'],
    ['port: 8030', `port: ${port}`],
    ['port: 8031', `port: ${metricsPort}`],
    ['/var/lib/flagrelay', dirs.airgapCache],
  ]);
  const configFile = path.join(dirs.airgapEtc, 'relay.yaml');
  fs.mkdirSync(dirs.airgapEtc, { recursive: true });
  fs.writeFileSync(configFile, yaml);
  const airEnv = { ...KEY_ENV, STREAM_URI: closed, BASE_URI: closed, EVENTS_URI: closed };
  const imported = await runShell(s, rewrite(block(guide, 'import'), [
    ['/etc/flagrelay/relay.yaml', configFile],
    ['/var/lib/flagrelay', dirs.airgapCache],
    ['/media/transfer', dirs.transfer],
  ]), { cwd: dirs.root, env: airEnv });
  assert.equal(imported.code, 0, shellReport(imported));
  const masked = new RegExp(`\\(for SDK key sdk-[*-]+${KEYS.prod.slice(-5)}\\)`);
  assert.match(imported.stdout, new RegExp(`imported 3 flags and 1 segments into ${dirs.airgapCache} as environment production ${masked.source}`));
  assert.match(imported.stdout, /imported 1 flags and 0 segments into .* as environment staging/);
  assert.ok(!imported.stdout.includes(KEYS.prod), 'the key is masked');
  assert.match(imported.stdout, /production: ok/);
  assert.match(imported.stdout, /staging: ok/);
  assert.match(imported.stdout, /\nproduction\s+1\s+3\s+1\s+\d+\s+\S+\s+\S+\s+file\s+ok\n/, `inspect: production, data version 1, 3 flags, 1 segment, source file:\n${imported.stdout}`);
  assert.match(imported.stdout, /\nstaging\s+1\s+1\s+0\s/);
  // Importing again replaces the data, with a data version above it.
  const again = cli(['cache', 'import', '--config', configFile, '--env', 'production', '--in', path.join(dirs.transfer, 'production.json')], airEnv);
  assert.equal(again.code, 0, again.stderr);
  const inspected = JSON.parse(cli(['cache', 'inspect', '--dir', dirs.airgapCache, '--json']).stdout);
  assert.equal(inspected.environments.find((e) => e.name === 'production').dataVersion, 2);

  // The ordinary config, LaunchDarkly unreachable.
  await checkStart(s, 'start-cache', configFile, airEnv);
  const started = Date.now();
  const airgapped = await startYamlRelay(s, { yaml, port, metricsPort, env: airEnv, label: 'air-gapped (cache)', dir: dirs.airgapEtc });
  for (const e of ['production', 'staging']) {
    await waitEnv(airgapped, (x) => x.dataSource === 'cache', { env: e, timeoutMs: 3000, what: `${e} served from the imported cache` });
  }
  t.diagnostic(`cache served ${Date.now() - started} ms after the start`);
  assert.deepEqual(await latest(airgapped, KEYS.prod), await latest(connected, KEYS.prod));
  assert.deepEqual(await latest(airgapped, KEYS.staging), await latest(connected, KEYS.staging));
  assert.equal(await etagOf(airgapped, KEYS.prod), await etagOf(connected, KEYS.prod), 'the same bytes as the connected relay');

  // The "running with the upstream unreachable" table.
  const st = await statusJson(airgapped);
  const prod = st.environments.production;
  assert.equal(prod.connectionStatus.state, 'INITIALIZING', JSON.stringify(prod));
  assert.equal(prod.connectionStatus.lastError?.kind, 'NETWORK_ERROR');
  assert.match(prod.connectionStatus.lastError?.message ?? '', /Connection refused/);
  assert.equal(prod.status, 'disconnected');
  assert.equal(st.status, 'degraded');
  assert.equal((await httpRequest(`${airgapped.url}/readyz`)).status, 200);
  const m = (await scrape(airgapped)).parsed;
  assert.equal(findSamples(m, 'flagrelay_data_source', { env: 'production', source: 'cache' })[0]?.value, 1);
  assert.equal(findSamples(m, 'flagrelay_upstream_connected', { env: 'production' })[0]?.value, 0);
  assert.ok(findSamples(m, 'flagrelay_data_age_seconds', { env: 'production' })[0]?.value >= 0);
  assert.match(airgapped.output(), /WARN \[upstream production\] connect .*Connection refused; reconnecting in/);

  // "If the network ever does reach LaunchDarkly, the first live put replaces the imported data."
  const live = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('live', 1, 'yes')), environments: { [KEYS.staging]: { flags: {} } } });
  await airgapped.kill();
  const online = await startYamlRelay(s, { yaml, port, metricsPort, env: { ...airEnv, STREAM_URI: live.url }, label: 'air-gapped, network back', dir: dirs.airgapEtc });
  await waitEnv(online, (x) => x.dataSource === 'upstream', { env: 'production', what: 'live data replaces the import' });
  assert.deepEqual(Object.keys((await latest(online, KEYS.prod)).flags), ['live']);
  await online.terminate();

  // Bad input is refused and the cache is left as it was (the relay is stopped, as the guide says).
  const dataFile = path.join(dirs.airgapCache, 'data.mdb');
  const digest = () => createHash('sha256').update(fs.readFileSync(dataFile)).digest('hex');
  const before = digest();
  const inspectBefore = cli(['cache', 'inspect', '--dir', dirs.airgapCache, '--json']);
  const bad = {
    'not-json.json': '{"flags": {',
    'wrong-shape.json': '{"flags": [1, 2], "segments": {}}',
    'bad-item.json': JSON.stringify({ flags: { x: { key: 'x', version: 'one' } }, segments: {} }),
  };
  for (const [name, text] of Object.entries(bad)) {
    const f = path.join(dirs.transfer, name);
    fs.writeFileSync(f, text);
    const r = cli(['cache', 'import', '--config', configFile, '--env', 'production', '--in', f], airEnv);
    assert.equal(r.code, 1, `${name}: refused with exit status 1 (got ${r.code}; ${r.stdout}${r.stderr})`);
    assert.equal(digest(), before, `${name}: data.mdb unchanged`);
  }
  const inspectAfter = cli(['cache', 'inspect', '--dir', dirs.airgapCache, '--json']);
  assert.deepEqual(JSON.parse(inspectAfter.stdout).environments, JSON.parse(inspectBefore.stdout).environments);

  // "Cached data belongs to an SDK key": imported for another key, it is not served.
  const otherCache = path.join(dirs.root, 'other/var/lib/flagrelay');
  const other = cli(['cache', 'import', '--config', configFile, '--env', 'production', '--in', path.join(dirs.transfer, 'production.json'), '--dir', otherCache],
    { ...airEnv, PRODUCTION_SDK_KEY: KEYS.wrong });
  assert.equal(other.code, 0, other.stderr);
  const p2 = await freePort();
  const m2 = await freePort();
  const yaml2 = rewrite(block(guide, 'cache-config'), [['0.0.0.0', '127.0.0.1'], ['port: 8030', `port: ${p2}`], ['port: 8031', `port: ${m2}`], ['/var/lib/flagrelay', otherCache]]);
  const mismatched = await startYamlRelay(s, { yaml: yaml2, port: p2, metricsPort: m2, env: airEnv, label: 'imported for another key' });
  const e = await waitEnv(mismatched, (x) => x.cache?.load === 'mismatch', { env: 'production', what: 'cache.load mismatch' });
  assert.notEqual(e.dataSource, 'cache');
});
