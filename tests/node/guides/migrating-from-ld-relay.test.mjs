// docs/guides/migrating-from-ld-relay.md, checked against the binary and the source: the table
// of variables flagrelay reads is exactly what config/src reads and what docs/configuration.md
// lists; each example value passes `flagrelay --check-config`; each variable does what the table
// says (seen in /status or in behaviour, on loopback); the variables flagrelay does not read are
// ignored; the variables-only and config-file translations run; the cut-over commands work.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { relayTest, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { freePort } from '../support/ports.mjs';
import { startFakeEvents } from '../support/fake-events.mjs';
import { httpRequest, sleep, waitFor, delayUnref } from '../support/http.mjs';
import { waitEnv, stateIs, statusJson } from '../support/faults.mjs';
import { scrape, findSamples, sampleSum, familyNames } from '../support/prom.mjs';
import { relayBin } from '../support/relay.mjs';
import { makeTestPki } from '../support/tls.mjs';
import { b64url, secureHash } from '../support/contexts.mjs';
import { REPO, readGuide, block, blockIds, rewrite, table, codeSpans, runShell, shellReport, startYamlRelay } from './guide-blocks.mjs';

const guide = readGuide('migrating-from-ld-relay.md');
const NAME = 'production'; // what `<name>` becomes

const envRows = table(guide, 'env-vars').map(([vars, fileKey, sets, example, differs]) => ({
  vars: codeSpans(vars),
  fileKey,
  sets: codeSpans(sets),
  example: codeSpans(example)[0],
  differs,
}));
const notReadRows = table(guide, 'not-read').map(([vars, fileKey, replacement]) => ({ vars: codeSpans(vars), fileKey, replacement }));
const concrete = (v) => v.replace('<name>', NAME).replace('<project>', 'PROJ');

/** Every variable name config/src reads: its quoted all-caps literals (prefixes end in `_`). */
function variablesInSource() {
  const dir = path.join(REPO, 'config/src');
  const names = new Set();
  for (const f of fs.readdirSync(dir).filter((x) => /\.(cpp|hpp)$/.test(x))) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    for (const m of text.matchAll(/"([A-Z][A-Z0-9_]{2,}|[a-z]+_proxy)"/g)) names.add(m[1]);
  }
  return [...names].map((n) => (n.endsWith('_') ? `${n}<name>` : n)).sort();
}

/** The variables in docs/configuration.md's "Environment variables" table. */
function variablesInConfigurationMd() {
  const md = fs.readFileSync(path.join(REPO, 'docs/configuration.md'), 'utf8');
  const section = md.slice(md.indexOf('## Environment variables'));
  const lines = section.split('\n');
  const start = lines.findIndex((l) => l.startsWith('| variable |'));
  const vars = [];
  for (let i = start + 2; i < lines.length && lines[i].startsWith('|'); i++) vars.push(...codeSpans(lines[i].split('|')[1]));
  return vars.sort();
}

/** The process environment without anything the relay would read (the runner's own settings). */
function cleanEnv() {
  const env = { ...process.env };
  const read = new Set(variablesInSource().map((v) => v.replace('<name>', '')));
  for (const k of Object.keys(env)) {
    if (read.has(k) || [...read].some((p) => p.endsWith('_') && k.startsWith(p)) || /^(https?|no|all)_proxy$/i.test(k)) delete env[k];
  }
  return env;
}

/** `flagrelay --check-config FILE` with exactly `env` added to a clean environment. */
function checkConfig(file, env) {
  const r = spawnSync(relayBin(), ['--check-config', file], { env: { ...cleanEnv(), ...env }, encoding: 'utf8', timeout: 10000 });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A config file with one environment, loopback only, for the checks of single variables. */
function baseFile(s, extra = '') {
  const file = path.join(s.tmpDir('flagrelay-migrate-'), 'relay.yaml');
  fs.writeFileSync(file, `listen: {host: 127.0.0.1}\nmetrics: {port: 0}\nenvironments:\n  ${NAME}:\n    sdkKey: sdk-base-0000-0000-0000-000000000001\n${extra}`);
  return file;
}

relayTest('every tagged block of the migration guide is run by this test', () => {
  assert.deepEqual(blockIds(guide).sort(), ['check-env', 'compare', 'compat', 'ld-relay-conf', 'ld-relay-env', 'migrated', 'probes'].sort());
});

relayTest('the table lists exactly the variables config/src reads, and docs/configuration.md lists the same', () => {
  const listed = envRows.flatMap((r) => r.vars).sort();
  assert.deepEqual(listed, variablesInSource(), 'docs/guides/migrating-from-ld-relay.md "env-vars" table vs config/src');
  assert.deepEqual(listed, variablesInConfigurationMd(), 'the guide vs docs/configuration.md');
  for (const r of envRows) assert.ok(r.example, `${r.vars}: an example value`);
  for (const r of notReadRows) {
    for (const v of r.vars) assert.ok(!listed.includes(v), `${v} is read by flagrelay, yet listed as not read`);
  }
});

relayTest('every example value in the table passes --check-config; a bad value names its variable', (t, s) => {
  const file = baseFile(s);
  for (const r of envRows) {
    for (const v of r.vars) {
      const res = checkConfig(file, { [concrete(v)]: r.example });
      assert.equal(res.code, 0, `${concrete(v)}=${r.example}: ${res.out}`);
      assert.match(res.out, /valid \(1 environments\)/);
    }
  }
  const bad = {
    PORT: 'http', INIT_TIMEOUT: '10', EXIT_ON_ERROR: 'yes', DISCONNECTED_STATUS_TIME: '1 minute', USE_EVENTS: 'yes',
    EVENTS_FLUSH_INTERVAL: '5', EVENTS_CAPACITY: '100', EVENTS_MAX_INBOUND_PAYLOAD_SIZE: '0B', STREAM_URI: 'stream.launchdarkly.com',
    BASE_URI: 'ftp://sdk', EVENTS_URI: 'events', PROXY_URL: 'https://proxy:3128', HTTPS_PROXY: 'socks5://proxy', HTTP_PROXY: 'socks5://proxy',
  };
  for (const [v, value] of Object.entries(bad)) {
    const res = checkConfig(file, { [v]: value });
    assert.equal(res.code, 1, `${v}=${value} must be refused: ${res.out}`);
    assert.ok(res.out.includes(v), `${v}=${value}: the message names the variable: ${res.out}`);
  }
  // The message quoted in the guide, as the binary prints it.
  const quoted = /`(env EXIT_ON_ERROR: [^`]+)`/.exec(guide.replace(/\n/g, ' '))?.[1];
  assert.ok(quoted, 'the guide quotes an EXIT_ON_ERROR message');
  assert.ok(checkConfig(file, { EXIT_ON_ERROR: 'yes' }).out.includes(quoted), `the binary prints '${quoted}'`);
  // An empty file with LD_ENV_<name> is a complete configuration.
  const empty = path.join(s.tmpDir(), 'empty.yaml');
  fs.writeFileSync(empty, '');
  const fromVars = checkConfig(empty, { [`LD_ENV_${NAME}`]: KEYS.prod });
  assert.equal(fromVars.code, 0, fromVars.out);
  assert.match(fromVars.out, /valid \(1 environments\)/);
  // ld-relay's sizes with a B suffix, and EVENTS_CAPACITY below events.maxBatch, as the table says.
  assert.match(checkConfig(file, { EVENTS_CAPACITY: '499' }).out, /must be at least events\.maxBatch \(500\)/);
  assert.equal(checkConfig(baseFile(s, 'events: {maxBatch: 100}\n'), { EVENTS_CAPACITY: '100' }).code, 0, 'a file lowering maxBatch allows it');
  assert.equal(checkConfig(file, { EVENTS_MAX_INBOUND_PAYLOAD_SIZE: '100B' }).code, 1);
  assert.equal(checkConfig(file, { EXIT_ON_ERROR: '' }).code, 1, 'empty is an error');
  assert.equal(checkConfig(file, { [`LD_MOBILE_KEY_${NAME}`]: '' }).code, 1, 'an empty mobile key is an error');
});

relayTest('the variables flagrelay does not read are ignored, even with values it would refuse', (t, s) => {
  const file = baseFile(s);
  const all = notReadRows.flatMap((r) => r.vars.map(concrete));
  assert.ok(all.includes('EVENTS_HOST') && all.includes('HEARTBEAT_INTERVAL'));
  const env = Object.fromEntries(all.map((v) => [v, 'not a valid value for anything']));
  const res = checkConfig(file, env);
  assert.equal(res.code, 0, res.out);
});

// ---- each variable does what the table says ---------------------------------------------------

const ctx = b64url({ kind: 'user', key: 'migrating-user' });
const ports = async () => ({ port: await freePort(), metricsPort: await freePort() });
/** A loopback config: `port` null leaves listen.port to PORT. */
const relayYaml = ({ port, metricsPort }, body = '') =>
  `listen: {host: 127.0.0.1${port ? `, port: ${port}` : ''}}\nmetrics: {port: ${metricsPort}}\n${body}`;
const envYaml = (extra = '') => `environments:\n  ${NAME}:\n    sdkKey: ${KEYS.prod}\n${extra}`;

/** A data-file environment (no upstream needed), for the events variables. */
function dataFileYaml(s, extra = '') {
  const file = path.join(s.tmpDir('flagrelay-migrate-data-'), 'flags.json');
  fs.writeFileSync(file, JSON.stringify({ flags: byKey(makeFlag('f', 1, 'v')), segments: {} }));
  return envYaml(`    dataFile: ${file}\n${extra}`);
}

const postEvents = (relay, events, key = KEYS.prod) => httpRequest(`${relay.url}/bulk`, {
  method: 'POST',
  headers: { ...auth(key), 'Content-Type': 'application/json', 'X-LaunchDarkly-Event-Schema': '4' },
  body: JSON.stringify(events),
});
const event = (i) => ({ kind: 'custom', key: `migrating-${i}`, creationDate: Date.now(), contextKeys: { user: `u${i}` } });

const scenarios = [];
const scenario = (vars, name, fn) => scenarios.push({ vars, name, fn });

scenario(['LD_ENV_<name>', 'LD_MOBILE_KEY_<name>', 'LD_CLIENT_SIDE_ID_<name>', 'STREAM_URI', 'PORT'],
  'a file without environments or port: the environment, its three credentials, the upstream and the port come from the variables', async (t, s) => {
    const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('from-env', 1, 'yes')) });
    const { port, metricsPort } = await ports();
    const relay = await startYamlRelay(s, {
      yaml: relayYaml({ port: null, metricsPort }),
      port,
      metricsPort,
      env: {
        [`LD_ENV_${NAME}`]: KEYS.prod, [`LD_MOBILE_KEY_${NAME}`]: KEYS.prodMobile, [`LD_CLIENT_SIDE_ID_${NAME}`]: KEYS.prodEnvId,
        STREAM_URI: up.url, PORT: String(port),
      },
    });
    const e = await waitEnv(relay, (x) => x.dataSource === 'upstream', { env: NAME, what: 'live from STREAM_URI' });
    assert.ok(e.sdkKey.startsWith('sdk-') && e.sdkKey.endsWith(KEYS.prod.slice(-5)) && !e.sdkKey.includes(KEYS.prod.slice(-10)), `sdkKey ${e.sdkKey}`);
    assert.ok(e.mobileKey.endsWith(KEYS.prodMobile.slice(-5)), `mobileKey ${e.mobileKey}`);
    assert.equal(e.envId, KEYS.prodEnvId);
    assert.equal(up.streamRequests(KEYS.prod).length, 1, 'STREAM_URI: the stream went there');
    assert.equal((await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).json().flags['from-env'].version, 1);
    assert.equal((await httpRequest(`${relay.url}/msdk/evalx/contexts/${ctx}`, { headers: auth(KEYS.prodMobile) })).status, 200, 'the mobile key is known');
    assert.equal((await httpRequest(`${relay.url}/sdk/evalx/${KEYS.prodEnvId}/contexts/${ctx}`)).status, 200, 'the client-side ID is known');
  });

scenario(['BASE_URI'], 'BASE_URI is where the polling fallback polls', async (t, s) => {
  const streaming = await s.upstream({ sdkKey: KEYS.prod, allStatus: 503 });
  const polling = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('polled', 3, 'p')) });
  const { port, metricsPort } = await ports();
  const relay = await startYamlRelay(s, {
    yaml: relayYaml({ port, metricsPort }, `upstream:\n  pollingFallback: {enabled: true, after: 0s, interval: 1s}\n${envYaml()}`),
    port,
    metricsPort,
    env: { STREAM_URI: streaming.url, BASE_URI: polling.url },
  });
  await waitEnv(relay, (x) => x.connectionStatus.mode === 'polling' && x.dataSource === 'upstream', { env: NAME, what: 'polling BASE_URI' });
  assert.ok(polling.polls.some((p) => p.key === KEYS.prod), 'polled at BASE_URI');
  assert.equal(streaming.polls.length, 0);
});

scenario(['EVENTS_URI', 'EVENTS_FLUSH_INTERVAL'], 'EVENTS_URI is where events go; EVENTS_FLUSH_INTERVAL how soon', async (t, s) => {
  const events = await startFakeEvents();
  s.defer(() => events.close());
  const { port, metricsPort } = await ports();
  const relay = await startYamlRelay(s, {
    yaml: relayYaml({ port, metricsPort }, dataFileYaml(s)),
    port,
    metricsPort,
    env: { EVENTS_URI: events.url, EVENTS_FLUSH_INTERVAL: '100ms' },
  });
  const posted = Date.now();
  assert.equal((await postEvents(relay, [event(1)])).status, 202);
  const got = await waitFor(() => events.received.find((r) => r.url === '/bulk'), { what: 'the event at EVENTS_URI', timeoutMs: 3000 });
  const ms = Date.now() - posted;
  t.diagnostic(`forwarded ${ms} ms after the POST`);
  assert.ok(ms < 2500, `flushed after ${ms} ms: the default interval (5 s) was used`);
  assert.equal(got.headers.authorization, KEYS.prod);
});

scenario(['USE_EVENTS'], 'USE_EVENTS switches every environment\'s events, over the file', async (t, s) => {
  for (const [value, fileSetting, expected] of [['false', 'true', 'disabled'], ['true', 'false', 'forwarding'], ['0', 'true', 'disabled']]) {
    const { port, metricsPort } = await ports();
    const relay = await startYamlRelay(s, {
      yaml: relayYaml({ port, metricsPort }, dataFileYaml(s, `    events: {enabled: ${fileSetting}}\n`)),
      port,
      metricsPort,
      env: { USE_EVENTS: value },
    });
    const st = await statusJson(relay);
    assert.equal(st.environments[NAME].events.state, expected, `USE_EVENTS=${value} over enabled: ${fileSetting}`);
    await relay.terminate();
  }
});

scenario(['EVENTS_CAPACITY'], 'EVENTS_CAPACITY bounds the events held per environment', async (t, s) => {
  const events = await startFakeEvents();
  events.status = 'stall'; // nothing is ever delivered: everything accepted stays held
  s.defer(() => events.close());
  const { port, metricsPort } = await ports();
  const relay = await startYamlRelay(s, {
    yaml: relayYaml({ port, metricsPort }, dataFileYaml(s)),
    port,
    metricsPort,
    env: { EVENTS_URI: events.url, EVENTS_CAPACITY: '600' },
  });
  assert.equal((await postEvents(relay, Array.from({ length: 700 }, (_, i) => event(i)))).status, 202);
  await waitFor(async () => (await statusJson(relay)).environments[NAME].events.queued === 600, { what: '600 events held' });
  const m = (await scrape(relay)).parsed;
  assert.equal(sampleSum(m, 'flagrelay_events_dropped_total', { env: NAME, reason: 'queue_full' }), 100);
});

scenario(['EVENTS_MAX_INBOUND_PAYLOAD_SIZE'], 'EVENTS_MAX_INBOUND_PAYLOAD_SIZE bounds one events POST', async (t, s) => {
  const events = await startFakeEvents();
  s.defer(() => events.close());
  const { port, metricsPort } = await ports();
  const relay = await startYamlRelay(s, {
    yaml: relayYaml({ port, metricsPort }, dataFileYaml(s)),
    port,
    metricsPort,
    env: { EVENTS_URI: events.url, EVENTS_MAX_INBOUND_PAYLOAD_SIZE: '2KiB' },
  });
  const big = Array.from({ length: 40 }, (_, i) => event(i));
  assert.ok(JSON.stringify(big).length > 2048);
  assert.equal((await postEvents(relay, big)).status, 413);
  assert.equal((await postEvents(relay, [event(1)])).status, 202);
});

scenario(['INIT_TIMEOUT', 'EXIT_ON_ERROR'], 'EXIT_ON_ERROR exits when no live data arrives within INIT_TIMEOUT', async (t, s) => {
  const silent = await s.upstream({ sdkKey: KEYS.prod, sendPut: false }); // accepts, never sends data
  const start = async (env, label) => {
    const { port, metricsPort } = await ports();
    const yaml = relayYaml({ port, metricsPort }, envYaml());
    return startYamlRelay(s, { yaml, port, metricsPort, env: { STREAM_URI: silent.url, ...env }, label, waitHealthy: false });
  };
  const started = Date.now();
  const exits = await start({ INIT_TIMEOUT: '300ms', EXIT_ON_ERROR: 'true' }, 'exits');
  const stays = await start({ INIT_TIMEOUT: '300ms', EXIT_ON_ERROR: 'false' }, 'EXIT_ON_ERROR=false');
  const waits = await start({ EXIT_ON_ERROR: '1' }, 'default INIT_TIMEOUT (10s)');
  const info = await Promise.race([exits.exited, delayUnref(5000).then(() => null)]);
  assert.ok(info, `EXIT_ON_ERROR=true INIT_TIMEOUT=300ms: still running after 5 s\n${exits.output()}`);
  const ms = Date.now() - started;
  t.diagnostic(`exited with ${JSON.stringify(info)} after ${ms} ms`);
  assert.equal(info.code, 1);
  assert.ok(ms < 3000, `exited after ${ms} ms: INIT_TIMEOUT=300ms not applied`);
  await sleep(Math.max(0, 1500 - (Date.now() - started)));
  assert.ok(stays.running(), 'EXIT_ON_ERROR=false: keeps running');
  assert.ok(waits.running(), 'EXIT_ON_ERROR=1 with the default INIT_TIMEOUT: still waiting at 1.5 s');
});

scenario(['DISCONNECTED_STATUS_TIME'], 'DISCONNECTED_STATUS_TIME is how long /status tolerates a lost upstream', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('d', 1, 'v')), heartbeatMs: 200 });
  const start = async (env) => {
    const { port, metricsPort } = await ports();
    const yaml = relayYaml({ port, metricsPort }, envYaml());
    const relay = await startYamlRelay(s, { yaml, port, metricsPort, env: { STREAM_URI: up.url, ...env } });
    await waitEnv(relay, stateIs('VALID'), { env: NAME });
    return relay;
  };
  const short = await start({ DISCONNECTED_STATUS_TIME: '500ms' });
  const dflt = await start({});
  up.allStatus = 503;
  up.dropStreams();
  await waitEnv(short, (x) => x.status === 'disconnected', { env: NAME, timeoutMs: 3000, what: 'disconnected after 500 ms' });
  const other = (await statusJson(dflt)).environments[NAME];
  assert.equal(other.connectionStatus.state, 'INTERRUPTED');
  assert.equal(other.status, 'connected', 'the default (1m) still says connected');
});

scenario(['MAX_CLIENT_CONNECTION_TIME'], 'MAX_CLIENT_CONNECTION_TIME closes SDK streams after that long (less up to 20 %)', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('m', 1, 'v')) });
  const p = await ports();
  const relay = await startYamlRelay(s, { yaml: relayYaml(p, envYaml()), ...p, env: { STREAM_URI: up.url, MAX_CLIENT_CONNECTION_TIME: '1s' } });
  await waitEnv(relay, (x) => x.dataSource === 'upstream', { env: NAME });
  const opened = Date.now();
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal((await sse.nextEvent(3000)).event, 'put');
  const closed = await Promise.race([sse.closed, delayUnref(3000).then(() => null)]);
  assert.ok(closed, 'the stream is still open 3 s after it opened');
  const ms = closed.at - opened;
  t.diagnostic(`closed after ${ms} ms`);
  assert.ok(ms >= 750, `closed after ${ms} ms: sooner than 1 s less 20 %`);
});

/** An http upstream and a relay whose proxy comes from `env`; returns what the proxy saw. */
async function throughProxy(s, env, { tls = null, caFile = null, proxyUser = null } = {}) {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('p', 1, 'v')), tls });
  const proxy = await s.proxy(proxyUser ? { user: proxyUser.user, pass: proxyUser.pass } : {});
  const { port, metricsPort } = await ports();
  const upstream = caFile ? `upstream:\n  tls: {caFile: ${caFile}}\n` : '';
  const yaml = relayYaml({ port, metricsPort }, upstream + envYaml());
  const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace('PROXY', proxy.url.replace('http://', ''))]));
  const relay = await startYamlRelay(s, { yaml, port, metricsPort, env: { STREAM_URI: up.url, ...resolved } });
  await waitEnv(relay, (x) => x.dataSource === 'upstream', { env: NAME, what: `live with ${JSON.stringify(resolved)}` });
  return { tunnels: proxy.tunnels(`127.0.0.1:${up.port}`), proxy };
}

scenario(['PROXY_URL'], 'PROXY_URL, with credentials in the URL, tunnels the upstream connection', async (t, s) => {
  const user = { user: 'relay', pass: 'secret' };
  const { tunnels } = await throughProxy(s, { PROXY_URL: 'http://relay:secret@PROXY' }, { proxyUser: user });
  assert.ok(tunnels.length >= 1, 'tunnelled');
  assert.equal(tunnels[0].auth, `Basic ${Buffer.from('relay:secret').toString('base64')}`);
});

scenario(['HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'], 'HTTP_PROXY / http_proxy for http targets; NO_PROXY / no_proxy bypass them', async (t, s) => {
  assert.ok((await throughProxy(s, { HTTP_PROXY: 'http://PROXY' })).tunnels.length >= 1, 'HTTP_PROXY');
  assert.ok((await throughProxy(s, { http_proxy: 'http://PROXY' })).tunnels.length >= 1, 'http_proxy');
  assert.equal((await throughProxy(s, { HTTP_PROXY: 'http://PROXY', NO_PROXY: 'localhost,127.0.0.1' })).proxy.connects.length, 0, 'NO_PROXY');
  assert.equal((await throughProxy(s, { HTTP_PROXY: 'http://PROXY', no_proxy: '127.0.0.1' })).proxy.connects.length, 0, 'no_proxy');
});

scenario(['HTTPS_PROXY', 'https_proxy'], 'HTTPS_PROXY / https_proxy for https targets', async (t, s) => {
  const pki = makeTestPki(path.join(s.tmpDir('flagrelay-pki-'), 'pki'));
  const tls = { key: pki.good.key, cert: pki.good.cert };
  assert.ok((await throughProxy(s, { HTTPS_PROXY: 'http://PROXY' }, { tls, caFile: pki.caFile })).tunnels.length >= 1, 'HTTPS_PROXY');
  assert.ok((await throughProxy(s, { https_proxy: 'PROXY' }, { tls, caFile: pki.caFile })).tunnels.length >= 1, 'https_proxy without a scheme');
  const http = await throughProxy(s, { HTTPS_PROXY: 'http://PROXY' });
  assert.equal(http.proxy.connects.length, 0, 'HTTPS_PROXY is not used for an http target');
});

relayTest('every variable in the table has a behaviour check', () => {
  const covered = scenarios.flatMap((x) => x.vars).sort();
  assert.deepEqual(covered, envRows.flatMap((r) => r.vars).sort());
});
for (const { vars, name, fn } of scenarios) relayTest(`${vars.join(', ')}: ${name}`, fn, { timeout: 30000 });

// ---- the two translations ------------------------------------------------------------------

/** KEY=VALUE lines of the ld-relay.env block. */
function envFile() {
  const out = {};
  for (const line of block(guide, 'ld-relay-env').split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

relayTest('variables only: the guide\'s env file and relay.yaml pass the guide\'s check, and run as ld-relay\'s variables say', async (t, s) => {
  const dir = s.tmpDir('flagrelay-migrate-compat-');
  fs.writeFileSync(path.join(dir, 'ld-relay.env'), block(guide, 'ld-relay-env'));
  fs.mkdirSync(path.join(dir, 'etc/flagrelay'), { recursive: true });
  const configFile = path.join(dir, 'etc/flagrelay/relay.yaml');
  fs.writeFileSync(configFile, block(guide, 'compat'));
  const check = await runShell(s, rewrite(block(guide, 'check-env'), [['/etc/flagrelay/relay.yaml', configFile]]), { cwd: dir, env: cleanEnv() });
  assert.equal(check.code, 0, shellReport(check));
  assert.match(check.stdout, /valid \(2 environments\)/, 'production from the file, staging from LD_ENV_staging');
  // With only the key set, every ${VAR:-default} default is valid too.
  assert.equal(checkConfig(configFile, { [`LD_ENV_${NAME}`]: KEYS.prod }).code, 0);
  // What the not-read table warns of: values ld-relay takes that are errors through the file.
  assert.match(checkConfig(configFile, { [`LD_ENV_${NAME}`]: KEYS.prod, HEARTBEAT_INTERVAL: '15' }).out, /heartbeatInterval: duration needs a unit/);
  assert.match(checkConfig(configFile, { [`LD_ENV_${NAME}`]: KEYS.prod, [`LD_SECURE_MODE_${NAME}`]: '1' }).out, /secureMode: expected true or false/);

  // Run it: the env file's variables, with loopback values for the addresses and quick values for
  // the timings (still ld-relay's variables, so still what the file maps).
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('compat', 1, 'c')), environments: { [KEYS.staging]: { flags: {} } } });
  const events = await startFakeEvents();
  s.defer(() => events.close());
  const { port, metricsPort } = await ports();
  const env = {
    ...envFile(),
    [`LD_ENV_${NAME}`]: KEYS.prod, [`LD_MOBILE_KEY_${NAME}`]: KEYS.prodMobile, [`LD_CLIENT_SIDE_ID_${NAME}`]: KEYS.prodEnvId, LD_ENV_staging: KEYS.staging,
    STREAM_URI: up.url, BASE_URI: up.url, PORT: String(port), PROMETHEUS_PORT: String(metricsPort),
    EVENTS_HOST: events.url, EVENTS_FLUSH_INTERVAL: '100ms',
    HEARTBEAT_INTERVAL: '1s',
    [`LD_SECURE_MODE_${NAME}`]: 'true', [`LD_ALLOWED_HEADER_${NAME}`]: 'X-Migrating',
  };
  assert.equal(env[`LD_ALLOWED_ORIGIN_${NAME}`], 'https://app.example.com', 'from the env file');
  assert.equal(env.LOG_LEVEL, 'warn', 'from the env file');
  const yaml = rewrite(block(guide, 'compat'), [['0.0.0.0', '127.0.0.1']]);
  const relay = await startYamlRelay(s, { yaml, port, metricsPort, env: { ...cleanEnv(), ...env }, label: 'compat' });
  await waitEnv(relay, (x) => x.dataSource === 'upstream', { env: NAME });
  await waitEnv(relay, (x) => x.dataSource === 'upstream', { env: 'staging' });
  // PROMETHEUS_PORT
  assert.equal((await scrape(relay)).status, 200, 'metrics on PROMETHEUS_PORT');
  // HEARTBEAT_INTERVAL
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal((await sse.nextEvent(3000)).event, 'put');
  await sse.waitForComments(1, 2500);
  // EVENTS_HOST
  assert.equal((await postEvents(relay, [event(7)])).status, 202);
  await waitFor(() => events.received.find((r) => r.url === '/bulk'), { what: 'the event at EVENTS_HOST', timeoutMs: 3000 });
  // LD_SECURE_MODE_, LD_ALLOWED_ORIGIN_, LD_ALLOWED_HEADER_
  const browser = `${relay.url}/sdk/evalx/${KEYS.prodEnvId}/contexts/${ctx}`;
  assert.equal((await httpRequest(browser)).status, 400, 'secure mode: no hash, refused');
  const hashed = await httpRequest(`${browser}?h=${secureHash(KEYS.prod, 'migrating-user')}`, { headers: { Origin: 'https://elsewhere.example' } });
  assert.equal(hashed.status, 200);
  assert.equal(hashed.headers['access-control-allow-origin'], 'https://app.example.com');
  const preflight = await httpRequest(browser, { method: 'OPTIONS', headers: { Origin: 'https://app.example.com', 'Access-Control-Request-Method': 'GET' } });
  assert.match(preflight.headers['access-control-allow-headers'] ?? '', /X-Migrating/);
  // LOG_LEVEL=warn: no info lines
  assert.doesNotMatch(relay.output(), / INFO /, 'LOG_LEVEL=warn');
});

relayTest('config file: every key of the guide\'s ld-relay.conf is in a table; the translation runs as the INI said', async (t, s) => {
  const fileKeys = new Set();
  for (const r of [...envRows, ...notReadRows]) {
    for (const span of codeSpans(r.fileKey)) for (const w of span.split(/[^A-Za-z]+/)) if (w) fileKeys.add(w);
  }
  const ini = block(guide, 'ld-relay-conf');
  for (const m of ini.matchAll(/^\s*([A-Za-z]+)\s*=/gm)) {
    assert.ok(fileKeys.has(m[1]), `ld-relay.conf key '${m[1]}' is in no table's file-key column`);
  }
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('migrated', 1, 'm')), environments: { [KEYS.staging]: { flags: {} } } });
  const { port, metricsPort } = await ports();
  const dir = s.tmpDir('flagrelay-migrated-');
  const yaml = rewrite(block(guide, 'migrated'), [
    ['0.0.0.0', '127.0.0.1'],
    ['port: 8030', `port: ${port}`],
    ['port: 8031', `port: ${metricsPort}`],
    ['/var/lib/flagrelay', path.join(dir, 'cache')],
  ]);
  const env = { PRODUCTION_SDK_KEY: KEYS.prod, PRODUCTION_MOBILE_KEY: KEYS.prodMobile, STAGING_SDK_KEY: KEYS.staging, STREAM_URI: up.url };
  const relay = await startYamlRelay(s, { yaml, port, metricsPort, env, dir, label: 'migrated' });
  assert.equal(checkConfig(relay.configPath, env).code, 0);
  await waitEnv(relay, (x) => x.dataSource === 'upstream', { env: 'production' });
  const e = (await statusJson(relay)).environments.production;
  assert.equal(e.envId, '5f0c0ffee0ddba11cafe0001');
  assert.equal(e.events.state, 'forwarding', 'sendEvents = true needs nothing');
  const browser = await httpRequest(`${relay.url}/sdk/evalx/5f0c0ffee0ddba11cafe0001/contexts/${ctx}`, { headers: { Origin: 'https://elsewhere.example' } });
  assert.equal(browser.headers['access-control-allow-origin'], 'https://app.example.com', 'allowedOrigin');
  assert.equal((await scrape(relay)).status, 200, '[Prometheus] port');
  assert.doesNotMatch(relay.output(), / INFO /, 'logLevel = warn');
});

// ---- cut-over commands, metrics and endpoints ----------------------------------------------------

relayTest('cut-over: the comparison says "same" for two relays with the same data and fails on a difference; the probes answer', async (t, s) => {
  const flags = byKey(makeFlag('a', 3, 'x'), makeFlag('b', 9, true));
  const relays = {};
  const upstreams = {};
  for (const name of ['ld-relay', 'flagrelay']) {
    // Two relays on two upstreams holding the same data: the stand-in for ld-relay is a flagrelay.
    upstreams[name] = await s.upstream({ sdkKey: KEYS.prod, flags });
    const p = await ports();
    relays[name] = await startYamlRelay(s, { yaml: relayYaml(p, envYaml()), ...p, env: { STREAM_URI: upstreams[name].url }, label: name });
    await waitEnv(relays[name], (x) => x.dataSource === 'upstream', { env: NAME });
  }
  const probes = await runShell(s, rewrite(block(guide, 'probes'), [
    ['127.0.0.1:8030', `127.0.0.1:${relays.flagrelay.port}`],
    ['127.0.0.1:8031', `127.0.0.1:${relays.flagrelay.metricsPort}`],
  ]), { cwd: s.tmpDir() });
  assert.equal(probes.code, 0, shellReport(probes));

  if (spawnSync('sh', ['-c', 'command -v jq']).status !== 0) {
    t.diagnostic('jq is not installed: the comparison block was not run');
    return;
  }
  const cwd = s.tmpDir();
  const port = (name) => relays[name].port;
  const compare = () => runShell(s, rewrite(block(guide, 'compare'), [
    ['"http://$relay.relay.svc:8030/sdk/flags"', `"http://127.0.0.1:$([ "$relay" = ld-relay ] && echo ${port('ld-relay')} || echo ${port('flagrelay')})/sdk/flags"`],
  ]), { cwd, env: { PRODUCTION_SDK_KEY: KEYS.prod } });
  const same = await compare();
  assert.equal(same.code, 0, shellReport(same));
  assert.match(same.stdout, /same flags and versions/);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(cwd, 'flagrelay.versions'), 'utf8')), { a: 3, b: 9 });

  upstreams.flagrelay.pushPatch(makeFlag('a', 4, 'y'));
  await waitFor(async () => (await httpRequest(`${relays.flagrelay.url}/sdk/flags`, { headers: auth(KEYS.prod) })).json().a.version === 4, { what: 'patched' });
  const differ = await compare();
  assert.notEqual(differ.code, 0, shellReport(differ));
  assert.doesNotMatch(differ.stdout, /same flags/);
  assert.match(differ.stdout, /"a": 3[\s\S]*"a": 4/, 'diff shows the version difference');
});

relayTest('every flagrelay metric the guide names is served', async (t, s) => {
  const named = new Set();
  for (const [, ours] of table(guide, 'metrics')) {
    for (const m of ours.matchAll(/`(flagrelay_[a-z_]+)/g)) named.add(m[1]);
  }
  assert.ok(named.size >= 10);
  const up = await s.upstream({ sdkKey: KEYS.prod });
  const { port, metricsPort } = await ports();
  const yaml = relayYaml({ port, metricsPort }, envYaml());
  const relay = await startYamlRelay(s, { yaml, port, metricsPort, env: { STREAM_URI: up.url } });
  await httpRequest(`${relay.url}/status`);
  const families = familyNames((await scrape(relay)).parsed);
  for (const name of named) assert.ok(families.has(name), `${name} is not in /metrics`);
  assert.ok(findSamples((await scrape(relay)).parsed, 'flagrelay_http_requests_total', { route: '/status', method: 'GET', status: '2xx' }).length === 1);
});

relayTest('the ld-relay endpoints the guide says are not served answer 404; ?filter= is ignored', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('all', 1, 'x')) });
  const { port, metricsPort } = await ports();
  const yaml = relayYaml({ port, metricsPort }, envYaml(`    envId: ${KEYS.prodEnvId}\n`));
  const relay = await startYamlRelay(s, { yaml, port, metricsPort, env: { STREAM_URI: up.url } });
  await waitEnv(relay, (x) => x.dataSource === 'upstream', { env: NAME });
  for (const p of [`/sdk/goals/${KEYS.prodEnvId}`, `/a/${KEYS.prodEnvId}.gif?d=W10=`, '/sdk/stream', '/sdk/poll']) {
    assert.equal((await httpRequest(`${relay.url}${p}`, { headers: auth(KEYS.prod) })).status, 404, p);
  }
  const filtered = await httpRequest(`${relay.url}/sdk/latest-all?filter=some-filter`, { headers: auth(KEYS.prod) });
  assert.equal(filtered.status, 200);
  assert.deepEqual(Object.keys(filtered.json().flags), ['all'], 'the whole environment');
  for (const p of ['/sdk/latest-all', '/sdk/latest-flags', '/sdk/latest-segments']) {
    assert.equal((await httpRequest(`${relay.url}${p}`, { headers: auth(KEYS.prod) })).status, 200, p);
  }
  assert.equal((await httpRequest(`${relay.url}/healthz`)).status, 200);
  assert.equal((await httpRequest(`${relay.url}/readyz`)).status, 200);
});
