// /status (masked keys, per-environment state), /healthz, /readyz, secrets kept out of logs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { runRelayCli } from '../support/relay.mjs';

const ALL_SECRETS = [KEYS.prod, KEYS.prodMobile, KEYS.staging, KEYS.stagingMobile];

function assertMasked(masked, raw, what) {
  assert.equal(typeof masked, 'string', `${what}: expected a masked string, got ${JSON.stringify(masked)}`);
  assert.notEqual(masked, raw, `${what} is not masked`);
  assert.ok(masked.startsWith(raw.slice(0, 4)), `${what}: masked value should keep the "${raw.slice(0, 4)}" prefix: ${masked}`);
  assert.ok(masked.endsWith(raw.slice(-5)), `${what}: masked value should keep the last 5 characters: ${masked}`);
  assert.ok(masked.includes('*'), `${what}: masked value should contain "*": ${masked}`);
}

async function setup(s) {
  const dir = s.tmpDir();
  const file = path.join(dir, 'staging.json');
  fs.writeFileSync(file, JSON.stringify({ flags: byKey(makeFlag('sf', 1, 's')), segments: {} }));
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: byKey(makeFlag('p1', 1, 'a'), makeFlag('p2', 1, 'b')),
    segments: byKey(makeSegment('ps', 1, ['u'])),
  });
  const relay = await s.relay({
    dir,
    upstreamUrl: up.url,
    environments: {
      ...prodEnv(),
      staging: { sdkKey: KEYS.staging, mobileKey: KEYS.stagingMobile, envId: KEYS.stagingEnvId, dataFile: file, dataFilePollInterval: '100ms' },
    },
  });
  await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 200, { timeoutMs: 5000, what: '/readyz 200' });
  return { up, relay };
}

relayTest('/status: keys masked, per-environment state, counts and data source', async (t, s) => {
  const { up, relay } = await setup(s);
  const before = Date.now();
  const r = await httpRequest(`${relay.url}/status`);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/);
  for (const secret of ALL_SECRETS) {
    assert.ok(!r.text.includes(secret), `/status body contains a raw key ${secret.slice(0, 8)}...: ${r.text}`);
  }
  const st = r.json();
  assert.equal(st.status, 'healthy', `top-level status: ${r.text}`);
  assert.equal(typeof st.version, 'string');
  assert.notEqual(st.version, '');
  const cliVersion = runRelayCli(['--version']).stdout;
  assert.ok(cliVersion.includes(st.version), `/status version ${st.version} should match --version output ${JSON.stringify(cliVersion)}`);

  const prod = st.environments?.prod;
  assert.ok(prod, `no prod in /status: ${r.text}`);
  assertMasked(prod.sdkKey, KEYS.prod, 'prod.sdkKey');
  assertMasked(prod.mobileKey, KEYS.prodMobile, 'prod.mobileKey');
  assert.equal(prod.envId, KEYS.prodEnvId);
  assert.equal(prod.status, 'connected');
  assert.equal(prod.connectionStatus?.state, 'VALID');
  assert.equal(typeof prod.connectionStatus.stateSince, 'number');
  assert.ok(prod.connectionStatus.stateSince > before - 60000 && prod.connectionStatus.stateSince <= Date.now() + 1000, `stateSince ${prod.connectionStatus.stateSince} must be epoch milliseconds`);
  assert.equal(prod.dataSource, 'upstream');
  assert.equal(typeof prod.dataVersion, 'number');
  assert.equal(prod.flagCount, 2);
  assert.equal(prod.segmentCount, 1);

  const staging = st.environments?.staging;
  assert.ok(staging, 'no staging in /status');
  assertMasked(staging.sdkKey, KEYS.staging, 'staging.sdkKey');
  assertMasked(staging.mobileKey, KEYS.stagingMobile, 'staging.mobileKey');
  assert.equal(staging.dataSource, 'file');
  assert.equal(staging.flagCount, 1);
  assert.equal(staging.segmentCount, 0);

  // A patch moves dataVersion and the counts.
  up.pushPatch(makeFlag('p3', 1, 'c'));
  const after = await waitFor(async () => {
    const x = (await httpRequest(`${relay.url}/status`)).json().environments.prod;
    return x.flagCount === 3 ? x : null;
  }, { timeoutMs: 3000, what: 'flagCount 3 after a patch' });
  assert.ok(after.dataVersion > prod.dataVersion, `dataVersion must grow after a change (${prod.dataVersion} -> ${after.dataVersion})`);

  // Upstream lost: the connection state leaves VALID.
  await up.close();
  const interrupted = await waitFor(async () => {
    const x = (await httpRequest(`${relay.url}/status`)).json().environments.prod;
    return x.connectionStatus.state === 'INTERRUPTED' ? x : null;
  }, { timeoutMs: 3000, what: 'connectionStatus.state INTERRUPTED after the upstream went away' });
  assert.ok(interrupted.connectionStatus.stateSince >= prod.connectionStatus.stateSince, 'stateSince must move with the state');
  assert.equal(interrupted.flagCount, 3, 'data is kept while interrupted');

  // Cache health: committed changes keep it "ok"; this relay started without a cache entry.
  assert.equal(prod.cache?.state, 'ok', `prod.cache.state: ${JSON.stringify(prod)}`);
  assert.equal(prod.cache?.load, 'missing', `prod.cache.load: ${JSON.stringify(prod)}`);
  assert.ok(Number.isInteger(prod.dataAgeMs) && prod.dataAgeMs >= 0, `prod.dataAgeMs: ${JSON.stringify(prod)}`);
  assert.equal(typeof interrupted.connectionStatus.lastError?.kind, 'string', 'the reason for INTERRUPTED is reported');
});

relayTest('/healthz and /readyz need no credentials', async (t, s) => {
  const { relay } = await setup(s);
  assert.equal((await httpRequest(`${relay.url}/healthz`)).status, 200);
  assert.equal((await httpRequest(`${relay.url}/readyz`)).status, 200);
  assert.equal((await httpRequest(`${relay.url}/status`)).status, 200);
  assert.equal((await httpRequest(`${relay.url}/no-such-route`, { headers: auth(KEYS.prod) })).status, 404);
});

relayTest('raw SDK and mobile keys never appear in the relay output (debug log level)', async (t, s) => {
  const { up, relay } = await setup(s);
  // Exercise the paths that log: requests with valid and invalid keys, patches, upstream loss.
  await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.staging) });
  await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.wrong) });
  up.pushPatch(makeFlag('p9', 1, 1));
  await up.close();
  await up.restart();
  await up.waitForConnections(2, 5000);
  await relay.terminate();
  const out = relay.output();
  assert.ok(out.length > 0, 'expected some log output at logLevel debug');
  for (const secret of ALL_SECRETS) {
    assert.ok(!out.includes(secret), `relay output contains the raw key ${secret.slice(0, 8)}...`);
  }
});
