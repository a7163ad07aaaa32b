// /status, /readyz and /metrics under upstream faults: disconnectedStatusTime, readiness modes,
// the upstream metric families (and promtool), connectionStatus.mode for a file environment.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prodEnv } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { httpRequest, sleep } from '../support/http.mjs';
import { promtoolAvailable, promtoolCheck } from '../support/prom.mjs';
import {
  FAST, SLACK_MS, envStatus, waitEnv, stateIs, upstreamMetrics, assertStateGauge, waitMetrics, report, statusJson, frame,
  faultTest,
} from '../support/faults.mjs';

const readyz = async (relay) => (await httpRequest(`${relay.url}/readyz`)).status;

faultTest('disconnectedStatusTime: "connected" while briefly interrupted, "disconnected" (top level degraded) after it', async (t, s) => {
  // 3 s: wide enough that the INTERRUPTED state is always seen (and checked) well inside it.
  const DISCONNECTED_MS = 3000;
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('f', 1, 1)), heartbeatMs: 300 });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: { ...FAST, disconnectedStatusTime: `${DISCONNECTED_MS}ms` } });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID' });
  assert.equal((await statusJson(relay)).status, 'healthy');
  up.allStatus = 503;
  up.dropStreams();
  const e = await waitEnv(relay, stateIs('INTERRUPTED'), { what: 'INTERRUPTED' });
  const since = e.connectionStatus.stateSince;
  const age = Date.now() - since;
  s.note(`INTERRUPTED seen ${age} ms into the interruption`);
  assert.equal(e.status, 'connected', `status ${age} ms into an interruption (disconnectedStatusTime ${DISCONNECTED_MS} ms)`);
  assert.equal((await statusJson(relay)).status, 'healthy', `top-level status ${Date.now() - since} ms into an interruption (disconnectedStatusTime ${DISCONNECTED_MS} ms)`);
  const d = await waitEnv(relay, (x) => x.status === 'disconnected', { what: 'status disconnected', timeoutMs: DISCONNECTED_MS + SLACK_MS + 1000 });
  const after = Date.now() - since;
  report(t, s, `disconnectedStatusTime ${DISCONNECTED_MS} ms: "disconnected" seen after`, after);
  assert.ok(after >= DISCONNECTED_MS - 100, `"disconnected" ${after} ms after the interruption began (disconnectedStatusTime ${DISCONNECTED_MS} ms)`);
  assert.equal(d.connectionStatus.state, 'INTERRUPTED');
  assert.equal((await statusJson(relay)).status, 'degraded', 'top-level status with a disconnected environment');
  up.allStatus = null;
  await waitEnv(relay, (x) => x.status === 'connected' && x.connectionStatus.state === 'VALID', { what: 'connected again' });
  assert.equal((await statusJson(relay)).status, 'healthy');
});

faultTest('readiness mode live: 200 only while VALID with upstream activity within maxSilence; mode data stays 200', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('f', 1, 1)), heartbeatMs: 250 });
  const live = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: { ...FAST, readTimeout: '10s' }, extra: { readiness: { mode: 'live', maxSilence: '1s' } }, label: 'live' });
  const data = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: { ...FAST, readTimeout: '10s' }, label: 'data' });
  await waitEnv(live, stateIs('VALID'), { what: 'live relay VALID' });
  await waitEnv(data, stateIs('VALID'), { what: 'data relay VALID' });
  assert.equal(await readyz(live), 200, 'live: VALID with heartbeats');
  assert.equal(await readyz(data), 200);

  // Silence: the stream stays open (readTimeout 10 s) but nothing arrives.
  up.setHeartbeat(0);
  const quietAt = Date.now();
  let notReadyAt = null;
  while (Date.now() - quietAt < 3000) {
    if ((await readyz(live)) === 503) {
      notReadyAt = Date.now() - quietAt;
      break;
    }
    await sleep(50);
  }
  report(t, s, 'readiness live (maxSilence 1s): 503 after silence of', notReadyAt ?? -1);
  assert.ok(notReadyAt !== null, 'live: /readyz still 200 after 3 s of upstream silence (maxSilence 1 s)');
  assert.ok(notReadyAt >= 700, `live: /readyz 503 after only ${notReadyAt} ms of silence (maxSilence 1 s)`);
  assert.equal((await envStatus(live)).connectionStatus.state, 'VALID', 'silence alone does not change the state');
  assert.equal(await readyz(data), 200, 'data mode ignores silence');
  up.setHeartbeat(250);
  const hbAt = Date.now();
  while ((await readyz(live)) !== 200 && Date.now() - hbAt < 2000) await sleep(50);
  assert.equal(await readyz(live), 200, 'live: ready again once heartbeats resume');

  // Interrupted: live not ready, data still ready (it has data).
  up.allStatus = 503;
  up.dropStreams();
  await waitEnv(live, stateIs('INTERRUPTED'), { what: 'live relay INTERRUPTED' });
  assert.equal(await readyz(live), 503, 'live: INTERRUPTED is not ready');
  assert.equal(await readyz(data), 200, 'data: still has data');
  up.allStatus = null;
  await waitEnv(live, stateIs('VALID'), { what: 'live relay VALID again' });
  const back = Date.now();
  while ((await readyz(live)) !== 200 && Date.now() - back < 2000) await sleep(50);
  assert.equal(await readyz(live), 200, 'live: ready after recovery');
});

faultTest('metrics under faults: state gauge, reconnects by kind, activity age, connected; promtool passes; file env mode', async (t, s) => {
  const dir = s.tmpDir();
  const file = path.join(dir, 'staging.json');
  fs.writeFileSync(file, JSON.stringify({ flags: byKey(makeFlag('sf', 1, 's')), segments: {} }));
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('f', 1, 1)), heartbeatMs: 250 });
  const relay = await s.relay({
    dir,
    upstreamUrl: up.url,
    upstream: FAST,
    environments: { ...prodEnv(), staging: { sdkKey: KEYS.staging, dataFile: file } },
  });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID' });
  const m0 = await upstreamMetrics(relay);
  assertStateGauge(m0, 'valid');
  assert.equal(m0.connected, 1);
  assert.ok(m0.lastActivityAge >= 0 && m0.lastActivityAge < 1, `last_activity_age_seconds with heartbeats: ${m0.lastActivityAge}`);

  // error_response
  up.allStatus = 503;
  up.dropStreams();
  await waitMetrics(relay, (m) => m.reconnects.error_response >= 1, { what: 'reconnects{error_response}' });
  up.allStatus = null;
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID after 503' });
  // invalid_data
  up.pushRaw(frame('put', '{"path":"/","data":'));
  await waitMetrics(relay, (m) => m.reconnects.invalid_data >= 1, { what: 'reconnects{invalid_data}' });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID after invalid data' });
  // network_error
  up.dropStreams();
  await waitMetrics(relay, (m) => m.reconnects.network_error >= 1, { what: 'reconnects{network_error}' });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID after a dropped stream' });

  const m = await upstreamMetrics(relay);
  assertStateGauge(m, 'valid');
  report(t, s, 'metrics: reconnects by kind', JSON.stringify(m.reconnects), '');
  const st = await statusJson(relay);
  assert.equal(st.environments.staging.connectionStatus?.mode, 'file', `file environment mode: ${JSON.stringify(st.environments.staging.connectionStatus)}`);
  assert.equal(st.environments.prod.connectionStatus.mode, 'streaming');
  assert.equal(typeof st.environments.prod.connectionStatus.lastActivityAt, 'number');
  assert.ok(Number.isInteger(st.environments.prod.dataAgeMs), 'dataAgeMs');
  if (promtoolAvailable()) {
    const r = promtoolCheck(m.text);
    assert.equal(r.code, 0, `promtool check metrics: ${r.output}`);
  } else {
    t.diagnostic('promtool not found: check skipped');
  }
  for (const kind of ['network_error', 'error_response', 'invalid_data', 'unknown']) {
    assert.ok(kind in m.reconnects, `flagrelay_upstream_reconnects_total{kind="${kind}"} not exposed (series are registered at start-up): ${JSON.stringify(m.reconnects)}`);
  }
  for (const result of ['ok', 'not_modified', 'error']) {
    assert.ok(result in m.polls, `flagrelay_upstream_polls_total{result="${result}"} not exposed: ${JSON.stringify(m.polls)}`);
  }
});
