// The grace period the chart gives the pod against the real binary's shutdown, with the chart's
// shutdown settings: /readyz 503 while everything is still served for shutdown.drainDelay, then
// events stuck on a black-holed events service cut at events.shutdownTimeout, exit 0, all within
// terminationGracePeriodSeconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { Relay, assertRelayBinExists, makeTempDir } from '../support/relay.mjs';
import { freePort } from '../support/ports.mjs';
import { httpRequest, sleep, waitFor } from '../support/http.mjs';
import { REPO, configText, durationMs, parseYaml, podTemplates, renderOk, valuesFile } from '../support/helm.mjs';

const KEY = 'sdk-00000000-0000-0000-0000-00000000beef';

test('the chart\'s grace period outlasts the relay\'s drain and events flush after SIGTERM', { timeout: 60000 }, async (t) => {
  const { docs } = renderOk({ values: [valuesFile('standalone')] });
  const rendered = parseYaml(configText(docs));
  const grace = podTemplates(docs)[0].pod.spec.terminationGracePeriodSeconds;
  const drainMs = durationMs(rendered.shutdown.drainDelay);
  const flushMs = durationMs(rendered.events?.shutdownTimeout ?? '5s');
  assert.ok(drainMs > 0, 'the chart sets a drain delay');

  // An events service that accepts connections and never answers: the flush at shutdown waits
  // for the whole events.shutdownTimeout, the slowest shutdown there is.
  const sockets = new Set();
  const hole = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('data', () => {});
    sock.on('error', () => {});
  });
  await new Promise((resolve) => hole.listen({ host: '127.0.0.1', port: 0 }, resolve));

  const dir = makeTempDir('flagrelay-helm-shutdown-');
  let relay;
  try {
    // The rendered config, with what a pod provides replaced by loopback equivalents.
    const port = await freePort();
    const metricsPort = await freePort();
    const cfg = {
      ...rendered,
      listen: { ...rendered.listen, host: '127.0.0.1', port },
      metrics: { port: metricsPort },
      cache: { dir: path.join(dir, 'cache') },
      upstream: { eventsUri: `http://127.0.0.1:${hole.address().port}` },
      environments: { production: { sdkKey: '${LD_SDK_KEY_PRODUCTION}', dataFile: path.join(REPO, 'examples/flags.json') } },
    };
    const configPath = path.join(dir, 'config.yaml');
    fs.writeFileSync(configPath, YAML.stringify(cfg));
    relay = new Relay({
      bin: assertRelayBinExists(), dir, configPath, config: cfg, port, metricsPort, label: 'shutdown',
      env: { LD_SDK_KEY_PRODUCTION: KEY },
    }).spawn();
    await relay.waitHealthy();
    await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 200, { what: 'ready' });
    const posted = await httpRequest(`${relay.url}/bulk`, {
      method: 'POST',
      headers: { Authorization: KEY, 'Content-Type': 'application/json', 'X-LaunchDarkly-Event-Schema': '4' },
      body: '[{"kind":"custom","key":"shutdown-test","creationDate":1700000000000,"contextKeys":{"user":"u1"}}]',
    });
    assert.equal(posted.status, 202);

    const start = Date.now();
    const exited = relay.terminate((grace + 10) * 1000);
    // Well inside the drain: not ready, but alive and serving SDKs.
    await sleep(Math.min(1000, drainMs / 2));
    assert.equal((await httpRequest(`${relay.url}/readyz`)).status, 503, 'not ready while draining');
    assert.equal((await httpRequest(`${relay.url}/healthz`)).status, 200, 'alive while draining');
    const poll = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: { Authorization: KEY } });
    assert.equal(poll.status, 200, 'SDKs still served while draining');

    const exit = await exited;
    const elapsed = Date.now() - start;
    t.diagnostic(`SIGTERM to exit: ${elapsed} ms (drain ${drainMs} ms, flush bound ${flushMs} ms, grace ${grace} s)`);
    assert.deepEqual(exit, { code: 0, signal: null }, relay.output());
    assert.ok(elapsed >= drainMs, `the relay drained for ${drainMs} ms (exited after ${elapsed} ms)`);
    assert.ok(elapsed < grace * 1000, `exited after ${elapsed} ms, within the grace period of ${grace} s`);
  } catch (err) {
    if (relay) t.diagnostic(relay.diagnostics());
    throw err;
  } finally {
    await relay?.kill();
    for (const s of sockets) s.destroy();
    hole.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
