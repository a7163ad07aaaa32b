// A `helm upgrade` that changes .Values.config reaches a running relay without a restart: the
// ConfigMap's new config.yaml swapped into the mounted directory the way the kubelet does it
// (a new timestamped directory, then the ..data symlink renamed over), picked up by
// reload.watchInterval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { Relay, assertRelayBinExists, makeTempDir } from '../support/relay.mjs';
import { freePort } from '../support/ports.mjs';
import { waitFor } from '../support/http.mjs';
import { sampleSum, scrape } from '../support/prom.mjs';
import { REPO, configText, parseYaml, renderOk, valuesFile } from '../support/helm.mjs';

// What the kubelet's atomic writer does for a configMap volume: each version in its own
// directory, `..data` pointing at the current one, each key a symlink through `..data`.
function writeVersion(mount, version, files) {
  const dir = path.join(mount, `..${version}`);
  fs.mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  fs.symlinkSync(`..${version}`, path.join(mount, '..data_tmp'));
  fs.renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));
  for (const name of Object.keys(files)) {
    const link = path.join(mount, name);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
  }
}

test('a changed ConfigMap reaches the running relay through the mounted directory', { timeout: 30000 }, async (t) => {
  // The chart's default watchInterval is 10s; 1s keeps the test short.
  const render = (set) => parseYaml(configText(renderOk({
    values: [valuesFile('sidecar')],
    set: ['config.reload.watchInterval=1s', ...set],
  }).docs));
  const before = render([]);
  const after = render(['config.environments.production.events.enabled=false']);
  assert.notDeepEqual(before, after);

  const dir = makeTempDir('flagrelay-helm-reload-');
  let relay;
  try {
    const port = await freePort();
    const metricsPort = await freePort();
    // What the pod provides, on loopback; the environments serve a data file instead of the
    // regional relay.
    const local = (cfg) => YAML.stringify({
      ...cfg,
      listen: { ...cfg.listen, host: '127.0.0.1', port },
      metrics: { port: metricsPort },
      cache: { dir: path.join(dir, 'cache') },
      upstream: { eventsUri: 'http://127.0.0.1:9' },
      environments: Object.fromEntries(Object.entries(cfg.environments)
        .map(([name, env]) => [name, { ...env, dataFile: path.join(REPO, 'examples/flags.json') }])),
    });
    const mount = path.join(dir, 'etc-flagrelay');
    fs.mkdirSync(mount);
    writeVersion(mount, '2026_11_21_10_00_00.1', { 'config.yaml': local(before) });
    relay = new Relay({
      bin: assertRelayBinExists(), dir, configPath: path.join(mount, 'config.yaml'), config: null, port, metricsPort,
      label: 'reload', env: { LD_SDK_KEY_PRODUCTION: 'sdk-00000000-0000-0000-0000-00000000f00d' },
    }).spawn();
    await relay.waitHealthy();
    const forwarding = async () => sampleSum((await scrape(relay)).parsed, 'flagrelay_events_forwarding', { env: 'production' });
    assert.equal(await forwarding(), 1);

    writeVersion(mount, '2026_11_21_10_01_00.2', { 'config.yaml': local(after) });
    await waitFor(async () => (await forwarding()) === 0, { timeoutMs: 5000, what: 'events switched off by the new ConfigMap' });
    assert.ok(relay.running(), 'applied without a restart');
  } catch (err) {
    if (relay) t.diagnostic(relay.diagnostics());
    throw err;
  } finally {
    await relay?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
