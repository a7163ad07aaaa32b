// Disk full and read-only cache: the relay keeps serving from memory, reports the cache as failing
// in /status and metrics, and recovers by itself when space (or write access) returns.
//
// The cache lives on a small tmpfs in a private mount namespace of the relay's own (`unshare -m`,
// root in CI), so filling it or remounting it read-only touches nothing else on the machine.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { relayTest, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { relayBin } from '../support/relay.mjs';

// CI runs as root, where this works: there a missing unshare fails the tests instead of skipping.
const unshareWorks = spawnSync('unshare', ['-m', 'true']).status === 0;

/**
 * A launcher that gives the relay a `sizeKiB` tmpfs at `cacheDir` in its own mount namespace
 * (read-only with `readOnly`).
 */
function tmpfsLauncher(dir, cacheDir, sizeKiB, readOnly = false) {
  const launcher = path.join(dir, 'launch-on-tmpfs.sh');
  fs.mkdirSync(cacheDir, { recursive: true });
  fs.writeFileSync(
    launcher,
    [
      '#!/bin/sh',
      `exec unshare -m --propagation private sh -c 'mount -t tmpfs -o size=${sizeKiB}k,mode=0700${readOnly ? ',ro' : ''} flagrelay-test "$0" && exec "$@"' "${cacheDir}" "${relayBin()}" "$@"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return launcher;
}

/** Runs a command in the relay's mount namespace. */
function inRelayNamespace(relay, args) {
  const r = spawnSync('nsenter', ['-t', String(relay.pid), '-m', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `nsenter ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const prodStatus = async (relay) => (await httpRequest(`${relay.url}/status`)).json().environments.prod;

async function metricValue(relay, name, labels) {
  const text = (await httpRequest(`${relay.metricsUrl}/metrics`)).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
  return line ? Number(line.split(' ').pop()) : NaN;
}

// Flags big enough that each patch needs fresh pages in the data file.
const bigFlag = (key, version) => makeFlag(key, version, `v${version}`, { salt: 'x'.repeat(20000) });

async function expectServedVersion(relay, stream, key, version, what) {
  await stream.waitForEvent((e) => e.event === 'patch' && e.json().data.key === key && e.json().data.version === version, 5000, what);
  const body = (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).json();
  assert.equal(body.flags[key]?.version, version, `${what}: polling serves it too`);
}

/** A relay with its cache on a tmpfs, an upstream and an open stream; waits for the first commit. */
async function startOnTmpfs(s, sizeKiB, { readOnly = false } = {}) {
  const dir = s.tmpDir();
  const cacheDir = path.join(dir, 'cache');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('small', 1, true)) });
  const relay = await s.relay({
    dir,
    cacheDir,
    bin: tmpfsLauncher(dir, cacheDir, sizeKiB, readOnly),
    upstreamUrl: up.url,
    environments: { prod: { sdkKey: KEYS.prod } },
    logLevel: 'info',
    extra: { cache: { mapSize: '64MiB' } },
  });
  await waitFor(async () => {
    const st = await prodStatus(relay);
    return st.dataSource === 'upstream' && (readOnly || st.cache.state === 'ok');
  }, { what: 'upstream data served (and committed)' });
  const stream = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  await stream.waitForEvent((e) => e.event === 'put', 3000, 'put');
  return { dir, cacheDir, up, relay, stream };
}

relayTest(
  'disk full: serving goes on from memory, the cache reports failing, and recovers when space returns',
  async (t, s) => {
    const { cacheDir, up, relay, stream } = await startOnTmpfs(s, 1024);
    // Fill the tmpfs from inside the relay's namespace, leaving no room for new pages.
    inRelayNamespace(relay, ['sh', '-c', `dd if=/dev/zero of=${cacheDir}/filler bs=4k 2>/dev/null; true`]);

    let version = 10;
    for (; version < 13; version++) {
      up.pushPatch(bigFlag('big', version));
      await expectServedVersion(relay, stream, 'big', version, `patch ${version} with the disk full`);
    }
    await waitFor(async () => (await prodStatus(relay)).cache.state === 'failing', { what: '/status cache.state failing' });
    const st = await prodStatus(relay);
    assert.match(st.cache.lastError, /No space left on device|MDB_MAP_FULL|ENOSPC/i, `lastError: ${st.cache.lastError}`);
    assert.equal(await metricValue(relay, 'flagrelay_cache_healthy', ['env="prod"']), 0, 'flagrelay_cache_healthy');
    assert.ok((await metricValue(relay, 'flagrelay_cache_commits_total', ['env="prod"', 'result="error"'])) >= 1);
    assert.match(relay.output(), /commit failed, serving from memory/);

    // Space returns: without any new change, the periodic retry rewrites the cache.
    inRelayNamespace(relay, ['rm', '-f', `${cacheDir}/filler`]);
    await waitFor(async () => (await prodStatus(relay)).cache.state === 'ok', { timeoutMs: 12000, what: 'cache.state ok again' });
    assert.equal(await metricValue(relay, 'flagrelay_cache_healthy', ['env="prod"']), 1);
    assert.match(relay.output(), /commits succeed again/);
    const report = JSON.parse(inRelayNamespace(relay, [relayBin(), 'cache', 'inspect', '--dir', cacheDir, '--json']));
    const stored = report.environments.find((e) => e.name === 'prod');
    assert.equal(stored.state, 'ok');
    assert.equal(stored.dataVersion, (await prodStatus(relay)).dataVersion, 'the cache holds what is served');
  },
  { skip: !unshareWorks && !process.env.CI && 'needs unshare -m (root)', timeout: 40000 },
);

relayTest(
  'read-only cache directory: the relay starts and serves, and reports the cache as failing',
  async (t, s) => {
    const { up, relay, stream } = await startOnTmpfs(s, 1024, { readOnly: true });
    up.pushPatch(makeFlag('small', 2, false));
    await expectServedVersion(relay, stream, 'small', 2, 'patch without a usable cache');
    const st = await prodStatus(relay);
    assert.equal(st.cache.state, 'failing', JSON.stringify(st.cache));
    assert.equal(st.cache.load, 'error');
    assert.match(st.cache.lastError, /Read-only file system/, st.cache.lastError);
    assert.equal(await metricValue(relay, 'flagrelay_cache_healthy', ['env="prod"']), 0, 'flagrelay_cache_healthy');
    assert.equal(await metricValue(relay, 'flagrelay_cache_loads_total', ['env="prod"', 'outcome="error"']), 1);
  },
  { skip: !unshareWorks && !process.env.CI && 'needs unshare -m (root)', timeout: 40000 },
);
