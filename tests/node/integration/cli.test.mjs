// Command line: --version, --check-config (good / bad configs, error positions).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { relayTest } from '../support/harness.mjs';
import { runRelayCli, buildConfig, toYaml } from '../support/relay.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The stderr must contain `<file>:<line>:<col>: <key>: <message>` for this file, line and key. */
function assertErrorAt(stderr, file, line, key) {
  const re = new RegExp(`${escapeRe(path.basename(file))}:${line}:\\d+: ${escapeRe(key)}: \\S`);
  assert.match(stderr, re, `expected an error "<file>:${line}:<col>: ${key}: <message>" on stderr, got:\n${stderr}`);
}

relayTest('--version prints a version and exits 0', async () => {
  const r = runRelayCli(['--version']);
  assert.equal(r.code, 0, `exit code ${r.code}, stderr: ${r.stderr}`);
  assert.match(r.stdout, /\d+\.\d+/, `--version stdout should contain a version number, got: ${JSON.stringify(r.stdout)}`);
});

relayTest('--check-config accepts a minimal valid config (exit 0)', async (t, s) => {
  const dir = s.tmpDir();
  const file = path.join(dir, 'good.yaml');
  fs.writeFileSync(
    file,
    [
      '# minimal flagrelay config',
      'listen:',
      '  host: 127.0.0.1',
      '  port: 8030',
      'environments:',
      '  prod:',
      `    sdkKey: ${KEYS.prod}`,
      '',
    ].join('\n'),
  );
  const r = runRelayCli(['--check-config', file]);
  assert.equal(r.code, 0, `exit code ${r.code}; stderr:\n${r.stderr}`);
});

relayTest('--check-config accepts the full config shape the test suite uses (exit 0)', async (t, s) => {
  const dir = s.tmpDir();
  const dataFile = path.join(dir, 'staging.json');
  fs.writeFileSync(dataFile, JSON.stringify({ flags: byKey(makeFlag('f', 1, true)), segments: {} }));
  const cfg = buildConfig({
    port: 18030,
    metricsPort: 18031,
    upstreamUrl: 'http://127.0.0.1:18032',
    cacheDir: path.join(dir, 'cache'),
    environments: {
      prod: { sdkKey: KEYS.prod, mobileKey: KEYS.prodMobile, envId: KEYS.prodEnvId },
      staging: { sdkKey: KEYS.staging, dataFile, dataFilePollInterval: '100ms' },
    },
  });
  const file = path.join(dir, 'full.yaml');
  fs.writeFileSync(file, `${toYaml(cfg)}\n`);
  const r = runRelayCli(['--check-config', file]);
  assert.equal(r.code, 0, `exit code ${r.code}; config:\n${fs.readFileSync(file, 'utf8')}\nstderr:\n${r.stderr}`);
});

relayTest('--check-config rejects an empty sdkKey naming file, line and key (exit 1)', async (t, s) => {
  const file = path.join(s.tmpDir(), 'bad-key.yaml');
  fs.writeFileSync(
    file,
    [
      '# one error: empty SDK key', // 1
      'listen:', // 2
      '  host: 127.0.0.1', // 3
      '  port: 8030', // 4
      'upstream:', // 5
      '  streamUri: http://127.0.0.1:9', // 6
      'environments:', // 7
      '  prod:', // 8
      '    sdkKey: ""', // 9
      '    envId: abc', // 10
      '',
    ].join('\n'),
  );
  const r = runRelayCli(['--check-config', file]);
  assert.equal(r.code, 1, `exit code ${r.code}; stderr:\n${r.stderr}`);
  assertErrorAt(r.stderr, file, 9, 'environments.prod.sdkKey');
});

relayTest('--check-config rejects a malformed duration naming file, line and key (exit 1)', async (t, s) => {
  const file = path.join(s.tmpDir(), 'bad-duration.yaml');
  fs.writeFileSync(
    file,
    [
      'listen:', // 1
      '  port: 8030', // 2
      'streams:', // 3
      '  maxQueueEvents: 64', // 4
      '  heartbeatInterval: banana', // 5
      'environments:', // 6
      '  prod:', // 7
      `    sdkKey: ${KEYS.prod}`, // 8
      '',
    ].join('\n'),
  );
  const r = runRelayCli(['--check-config', file]);
  assert.equal(r.code, 1, `exit code ${r.code}; stderr:\n${r.stderr}`);
  assertErrorAt(r.stderr, file, 5, 'streams.heartbeatInterval');
});

relayTest('--check-config reports every problem in the file, not only the first', async (t, s) => {
  const file = path.join(s.tmpDir(), 'two-errors.yaml');
  fs.writeFileSync(
    file,
    [
      'streams:', // 1
      '  heartbeatInterval: soon', // 2
      'environments:', // 3
      '  prod:', // 4
      '    sdkKey: ""', // 5
      '',
    ].join('\n'),
  );
  const r = runRelayCli(['--check-config', file]);
  assert.equal(r.code, 1, `exit code ${r.code}; stderr:\n${r.stderr}`);
  assertErrorAt(r.stderr, file, 2, 'streams.heartbeatInterval');
  assertErrorAt(r.stderr, file, 5, 'environments.prod.sdkKey');
});

relayTest('--check-config rejects YAML syntax errors and missing files (exit 1, message on stderr)', async (t, s) => {
  const dir = s.tmpDir();
  const broken = path.join(dir, 'broken.yaml');
  fs.writeFileSync(broken, 'listen:\n  port: [8030\nenvironments: {prod: {sdkKey: x}\n');
  let r = runRelayCli(['--check-config', broken]);
  assert.equal(r.code, 1, `broken YAML: exit code ${r.code}; stderr:\n${r.stderr}`);
  assert.match(r.stderr, /broken\.yaml/, `broken YAML: stderr should name the file:\n${r.stderr}`);

  r = runRelayCli(['--check-config', path.join(dir, 'does-not-exist.yaml')]);
  assert.equal(r.code, 1, `missing file: exit code ${r.code}; stderr:\n${r.stderr}`);
  assert.notEqual(r.stderr.trim(), '', 'missing file: expected an error message on stderr');
});

relayTest('the bundled example configs are valid (with their secrets supplied by the environment)', async () => {
  const examples = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../examples');
  const repo = path.dirname(examples);
  const env = { ...process.env, LD_SDK_KEY_PRODUCTION: 'sdk-prod-key-12345', LD_SDK_KEY_STAGING: 'sdk-stag-key-67890' };
  for (const name of ['default.yaml', 'sidecar.yaml']) {
    const r = spawnSync(process.env.FLAGRELAY_BIN ?? path.join(repo, 'build/relay/flagrelay'),
      ['--check-config', path.join(examples, name)], { cwd: repo, env, encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 0, `${name}: exit ${r.status}, stderr: ${r.stderr}`);
  }
  // Without its secrets the sidecar example is rejected, naming the missing variable but no key.
  const { LD_SDK_KEY_STAGING, ...missing } = env;
  const r = spawnSync(process.env.FLAGRELAY_BIN ?? path.join(repo, 'build/relay/flagrelay'),
    ['--check-config', path.join(examples, 'sidecar.yaml')], { cwd: repo, env: missing, encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /LD_SDK_KEY_STAGING/);
  assert.doesNotMatch(r.stderr, /sdk-prod-key-12345/);
});
