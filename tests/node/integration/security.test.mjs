// Security properties: a credential of one environment never reaches another environment's data
// on any route (relay/src/router.cpp kRoutes, relay/src/client_side.cpp Match); wrong, altered,
// truncated or misplaced credentials are refused (401, or 404 for an unknown environment ID);
// full SDK and mobile keys never appear in the relay's output, /status or /metrics, even on
// error paths; the LMDB cache is private to the relay's user.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { relayTest } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, sleep, waitFor } from '../support/http.mjs';
import { scrape, sampleSum } from '../support/prom.mjs';
import { startFakeEvents } from '../support/fake-events.mjs';
import { b64url, openSseWithBody } from '../support/contexts.mjs';
import { toYaml } from '../support/relay.mjs';

// Three environments. gamma's credentials overlap alpha's: its SDK key has alpha's as a prefix,
// its mobile key is a suffix of alpha's, its environment ID a prefix of alpha's.
const ENVS = {
  alpha: { sdkKey: KEYS.prod, mobileKey: KEYS.prodMobile, envId: KEYS.prodEnvId },
  beta: { sdkKey: KEYS.staging, mobileKey: KEYS.stagingMobile, envId: KEYS.stagingEnvId },
  gamma: { sdkKey: `${KEYS.prod}7`, mobileKey: KEYS.prodMobile.slice(4), envId: KEYS.prodEnvId.slice(0, -1) },
};
const NAMES = Object.keys(ENVS);

const everyone = { clientSideAvailability: { usingMobileKey: true, usingEnvironmentId: true }, clientSide: true };

/**
 * Each environment: a flag of its own, a flag `shared` (same key everywhere, its own value), a
 * segment of its own and a segment `seg-shared`. Every value carries the environment's name, so a
 * response can be checked for other environments' markers.
 */
function envData(name) {
  return {
    flags: byKey(
      makeFlag(`only-${name}`, 1, `secret-${name}`, everyone),
      makeFlag('shared', 1, `shared-${name}`, everyone),
    ),
    segments: byKey(makeSegment(`seg-${name}`, 1, [`user-${name}`]), makeSegment('seg-shared', 1, [`member-${name}`])),
  };
}

/** Strings that only `name`'s data contains. */
const markers = (name) => [`secret-${name}`, `shared-${name}`, `only-${name}`, `seg-${name}`, `user-${name}`, `member-${name}`];
const foreignMarkers = (name) => NAMES.filter((n) => n !== name).flatMap(markers);

const CTX = { kind: 'user', key: 'ctx-1' };
const B64 = b64url(CTX);

// ---------------------------------------------------------------------------------------------
// Every credentialed route. `cred`: which credential selects the environment; `path(id)` for
// browser routes takes the environment ID; `data`: the response holds environment data (flags or
// evaluations); `stream`: an SSE route; `events`: an events route (the body is posted).

const ROUTES = [
  // Server SDK key.
  { cred: 'sdk', method: 'GET', path: '/all', stream: 'all' },
  { cred: 'sdk', method: 'GET', path: '/flags', stream: 'flags' },
  { cred: 'sdk', method: 'GET', path: '/sdk/latest-all', data: 'all' },
  { cred: 'sdk', method: 'GET', path: '/sdk/latest-flags', data: 'flags' },
  { cred: 'sdk', method: 'GET', path: '/sdk/latest-flags/shared', data: 'flag' },
  { cred: 'sdk', method: 'GET', path: '/sdk/latest-segments', data: 'segments' },
  { cred: 'sdk', method: 'GET', path: '/sdk/latest-segments/seg-shared', data: 'segment' },
  { cred: 'sdk', method: 'GET', path: '/sdk/flags', data: 'flags' },
  { cred: 'sdk', method: 'GET', path: '/sdk/flags/shared', data: 'flag' },
  { cred: 'sdk', method: 'GET', path: '/sdk/segments/seg-shared', data: 'segment' },
  { cred: 'sdk', method: 'GET', path: `/sdk/evalx/contexts/${B64}`, data: 'eval' },
  { cred: 'sdk', method: 'GET', path: `/sdk/evalx/users/${B64}`, data: 'eval' },
  { cred: 'sdk', method: 'REPORT', path: '/sdk/evalx/context', body: CTX, data: 'eval' },
  { cred: 'sdk', method: 'REPORT', path: '/sdk/evalx/user', body: CTX, data: 'eval' },
  { cred: 'sdk', method: 'POST', path: '/bulk', events: 'bulk' },
  { cred: 'sdk', method: 'POST', path: '/diagnostic', events: 'diagnostic' },
  // Mobile key.
  { cred: 'mobile', method: 'GET', path: `/msdk/evalx/contexts/${B64}`, data: 'eval' },
  { cred: 'mobile', method: 'GET', path: `/msdk/evalx/users/${B64}`, data: 'eval' },
  { cred: 'mobile', method: 'REPORT', path: '/msdk/evalx/context', body: CTX, data: 'eval' },
  { cred: 'mobile', method: 'REPORT', path: '/msdk/evalx/user', body: CTX, data: 'eval' },
  { cred: 'mobile', method: 'GET', path: `/meval/${B64}`, stream: 'eval' },
  { cred: 'mobile', method: 'REPORT', path: '/meval', body: CTX, stream: 'eval' },
  { cred: 'mobile', method: 'GET', path: '/mping', stream: 'ping' },
  { cred: 'mobile', method: 'POST', path: '/mobile', events: 'bulk' },
  { cred: 'mobile', method: 'POST', path: '/mobile/events', events: 'bulk' },
  { cred: 'mobile', method: 'POST', path: '/mobile/events/bulk', events: 'bulk' },
  { cred: 'mobile', method: 'POST', path: '/mobile/events/diagnostic', events: 'diagnostic' },
  // Browser: the environment ID in the path.
  { cred: 'envId', method: 'GET', path: (id) => `/sdk/evalx/${id}/contexts/${B64}`, data: 'eval' },
  { cred: 'envId', method: 'GET', path: (id) => `/sdk/evalx/${id}/users/${B64}`, data: 'eval' },
  { cred: 'envId', method: 'REPORT', path: (id) => `/sdk/evalx/${id}/context`, body: CTX, data: 'eval' },
  { cred: 'envId', method: 'REPORT', path: (id) => `/sdk/evalx/${id}/user`, body: CTX, data: 'eval' },
  { cred: 'envId', method: 'GET', path: (id) => `/eval/${id}/${B64}`, stream: 'eval' },
  { cred: 'envId', method: 'REPORT', path: (id) => `/eval/${id}`, body: CTX, stream: 'eval' },
  { cred: 'envId', method: 'GET', path: (id) => `/ping/${id}`, stream: 'ping' },
  { cred: 'envId', method: 'POST', path: (id) => `/events/bulk/${id}`, events: 'bulk' },
  { cred: 'envId', method: 'POST', path: (id) => `/events/diagnostic/${id}`, events: 'diagnostic' },
  { cred: 'envId', method: 'OPTIONS', path: (id) => `/sdk/evalx/${id}/contexts/${B64}`, preflight: true },
  { cred: 'envId', method: 'OPTIONS', path: (id) => `/events/bulk/${id}`, preflight: true },
];

const label = (route) => `${route.method} ${typeof route.path === 'function' ? route.path('{envId}') : route.path}`;
const credOf = (name, kind) => ENVS[name][{ sdk: 'sdkKey', mobile: 'mobileKey', envId: 'envId' }[kind]];
const flip = (s) => s.slice(0, -1) + (s.at(-1) === '0' ? '1' : '0');

/**
 * Credentials that must not select environment `name` on a route taking `kind`: wrong, altered,
 * truncated, extended, decorated, or of another kind. Those that happen to be another
 * environment's valid credential of that kind are left out (they select that environment).
 */
function badCredentials(name, kind) {
  const own = credOf(name, kind);
  const e = ENVS[name];
  const list = kind === 'envId'
    ? [
        ['a wrong ID', '5f0c0ffee0ddba11cafe9999'],
        ['one character changed', flip(own)],
        ['a prefix', own.slice(0, -2)],
        ['a suffix', own.slice(2)],
        ['extended', `${own}0`],
        ['upper-cased', own.toUpperCase()],
        ['the SDK key', e.sdkKey],
        ['the mobile key', e.mobileKey],
        ['percent-encoded slash', `${own}%2F`],
      ]
    : [
        ['a wrong key', KEYS.wrong],
        ['one character changed', flip(own)],
        ['a prefix', own.slice(0, -1)],
        ['a suffix', own.slice(1)],
        ['extended', `${own}x`],
        ['"api_key" without a space', `api_key${own}`],
        ['"api_key" and two spaces', `api_key  ${own}`],
        ['"API_KEY "', `API_KEY ${own}`],
        ['"Bearer "', `Bearer ${own}`],
        ['"api_key api_key "', `api_key api_key ${own}`],
        ['the key twice', `${own},${own}`],
        ['an empty Authorization', ''],
        ['no Authorization', null],
        [kind === 'sdk' ? 'the mobile key' : 'the SDK key', kind === 'sdk' ? e.mobileKey : e.sdkKey],
        ['the environment ID', e.envId],
      ];
  const valid = new Set(NAMES.map((n) => credOf(n, kind)));
  return list.filter(([, v]) => !valid.has(v) && !valid.has(v?.replace(/^api_key /, '')));
}

/** One request on `route` with `cred` (a header value, null = none, or the path's ID). */
function request(relay, route, cred, { eventKey = 'x' } = {}) {
  const headers = {};
  if (route.cred !== 'envId' && cred !== null) headers.Authorization = cred;
  const p = typeof route.path === 'function' ? route.path(cred) : route.path;
  let body;
  if (route.events) {
    body = route.events === 'diagnostic'
      ? JSON.stringify({ kind: 'diagnostic', id: { diagnosticId: eventKey } })
      : JSON.stringify([{ kind: 'custom', key: eventKey, creationDate: 1700000000000 }]);
  } else if (route.body) {
    body = JSON.stringify(route.body);
  }
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(body);
  }
  if (route.preflight) {
    headers.Origin = 'https://app.example';
    headers['Access-Control-Request-Method'] = 'GET';
  }
  return httpRequest(`${relay.url}${p}`, { method: route.method, headers, body, timeoutMs: 3000 });
}

async function openStream(s, relay, route, cred) {
  const headers = route.cred === 'envId' || cred === null ? {} : { Authorization: cred };
  const p = typeof route.path === 'function' ? route.path(cred) : route.path;
  if (route.method === 'REPORT') {
    const c = await openSseWithBody(`${relay.url}${p}`, route.body, { headers });
    s.defer(() => c.close());
    return c;
  }
  return s.sse(`${relay.url}${p}`, { headers });
}

/**
 * `request`, or for a stream route: open it, take the first event (200) or the body (an error
 * status), close. Resolves { status, text }.
 */
async function probe(s, relay, route, cred, opts) {
  if (!route.stream) return request(relay, route, cred, opts);
  const c = await openStream(s, relay, route, cred);
  let text = '';
  if (c.status === 200) {
    text = await c.nextEvent(2000).then((ev) => `event: ${ev.event}\ndata: ${ev.data}`, (err) => err.message);
  } else {
    await c.waitClosed(3000);
    text = c.body;
  }
  c.close();
  return { status: c.status, text };
}

/** The flag keys and the value of `shared` that a data response or a first stream event holds. */
function dataView(kind, text) {
  const j = JSON.parse(text);
  switch (kind) {
    case 'all': return { flags: Object.keys(j.flags).sort(), shared: j.flags.shared?.variations?.[0], segments: Object.keys(j.segments).sort() };
    case 'flags': return { flags: Object.keys(j).sort(), shared: j.shared?.variations?.[0] };
    case 'flag': return { flags: [j.key], shared: j.variations?.[0] };
    case 'segments': return { segments: Object.keys(j).sort(), member: j['seg-shared']?.included };
    case 'segment': return { segments: [j.key], member: j.included };
    case 'eval': return { flags: Object.keys(j).sort(), shared: j.shared?.value };
    default: throw new Error(kind);
  }
}

function expectedView(kind, name) {
  const flags = [`only-${name}`, 'shared'].sort();
  const segments = [`seg-${name}`, 'seg-shared'].sort();
  switch (kind) {
    case 'all': return { flags, shared: `shared-${name}`, segments };
    case 'flags': return { flags, shared: `shared-${name}` };
    case 'flag': return { flags: ['shared'], shared: `shared-${name}` };
    case 'segments': return { segments, member: [`member-${name}`] };
    case 'segment': return { segments: ['seg-shared'], member: [`member-${name}`] };
    case 'eval': return { flags, shared: `shared-${name}` };
    default: throw new Error(kind);
  }
}

function assertNoForeign(text, name, what) {
  const leaked = foreignMarkers(name).filter((m) => text.includes(m));
  assert.deepEqual(leaked, [], `${what}: another environment's data in the response: ${text.slice(0, 300)}`);
}

async function setupThree(s, { sink } = {}) {
  const up = await s.upstream({
    sdkKey: ENVS.alpha.sdkKey,
    ...envData('alpha'),
    environments: { [ENVS.beta.sdkKey]: envData('beta'), [ENVS.gamma.sdkKey]: envData('gamma') },
  });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: ENVS,
    extra: sink ? { upstream: { eventsUri: sink.url }, events: { flushInterval: '100ms' } } : undefined,
  });
  await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 200, { timeoutMs: 10000, what: '/readyz 200' });
  return { up, relay };
}

// ---------------------------------------------------------------------------------------------

relayTest('isolation: on every credentialed route, an environment\'s credential serves only its own data; altered, truncated or misplaced credentials are refused', async (t, s) => {
  const sink = await startFakeEvents();
  s.defer(() => sink.close());
  const { up, relay } = await setupThree(s, { sink });
  const failures = [];
  const fail = (msg) => failures.push(msg);
  let requests = 0;

  for (const name of NAMES) {
    for (const route of ROUTES) {
      const what = `${name} ${label(route)}`;
      const good = credOf(name, route.cred);
      const goods = route.cred === 'envId' ? [good] : [good, `api_key ${good}`];
      // The right credential (and the `api_key ` form ld-relay accepts).
      for (const cred of goods) {
        if (route.stream) continue;
        const r = await request(relay, route, cred, { eventKey: `${name}-good-${requests}` });
        requests++;
        const leaked = foreignMarkers(name).filter((m) => r.text.includes(m));
        if (leaked.length) fail(`${what} [${cred === good ? 'key' : 'api_key key'}]: foreign data ${leaked.join(',')}`);
        if (route.events) {
          if (r.status !== 202) fail(`${what}: events ${r.status} ${r.text.slice(0, 120)}`);
        } else if (route.preflight) {
          if (r.status !== 200) fail(`${what}: preflight ${r.status}`);
        } else if (r.status !== 200) {
          fail(`${what}: ${r.status} ${r.text.slice(0, 120)}`);
        } else {
          const got = dataView(route.data, r.text);
          const want = expectedView(route.data, name);
          if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${what}: served ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
        }
      }
      // Another environment's item keys under this credential: not found.
      if (route.data === 'flag' || route.data === 'segment') {
        for (const other of NAMES.filter((n) => n !== name)) {
          const itemPath = route.path.replace(/shared$/, route.data === 'flag' ? `only-${other}` : `seg-${other}`);
          const r = await request(relay, { ...route, path: itemPath }, good);
          requests++;
          if (r.status !== 404) fail(`${name} GET ${itemPath}: ${r.status} ${r.text.slice(0, 120)} (another environment's item)`);
        }
      }
      // Bad credentials.
      const expected = route.cred === 'envId' ? 404 : 401;
      for (const [why, cred] of badCredentials(name, route.cred)) {
        const r = await probe(s, relay, route, cred, { eventKey: `bad-${requests}` });
        requests++;
        const foreign = foreignMarkers(name).filter((m) => r.text.includes(m));
        if (foreign.length) fail(`${what} with ${why}: another environment's data ${foreign.join(',')}`);
        const leaked = markers(name).filter((m) => r.text.includes(m));
        if (leaked.length) fail(`${what} with ${why}: data in the refusal: ${r.text.slice(0, 120)}`);
        if (r.status !== expected) fail(`${what} with ${why} (${JSON.stringify(cred)}): ${r.status}, expected ${expected}`);
      }
    }
  }
  t.diagnostic(`${requests} requests`);

  // Streams: the first event of each, then changes pushed to the other environments never reach
  // them, while their own change does.
  const streams = [];
  for (const name of NAMES) {
    for (const route of ROUTES.filter((r) => r.stream)) {
      const c = await openStream(s, relay, route, credOf(name, route.cred));
      const what = `${name} ${label(route)}`;
      if (c.status !== 200) {
        fail(`${what}: stream status ${c.status}`);
        continue;
      }
      const first = await c.nextEvent(3000);
      if (route.stream === 'ping') {
        if (first.event !== 'ping') fail(`${what}: first event ${first.event}`);
      } else {
        assertNoForeign(first.data, name, `${what} first event`);
        const data = JSON.parse(first.data);
        const view = route.stream === 'all' ? dataView('all', JSON.stringify(data.data)) : dataView(route.stream === 'flags' ? 'flags' : 'eval', first.data);
        const want = expectedView(route.stream === 'all' ? 'all' : route.stream === 'flags' ? 'flags' : 'eval', name);
        if (first.event !== 'put' || JSON.stringify(view) !== JSON.stringify(want)) {
          fail(`${what}: first event ${first.event} ${JSON.stringify(view)}, expected put ${JSON.stringify(want)}`);
        }
      }
      streams.push({ name, route, c, what });
    }
  }
  for (const changed of NAMES) {
    up.pushPatch(makeFlag('shared', 2 + NAMES.indexOf(changed), `shared-${changed}-v2`, everyone), { key: ENVS[changed].sdkKey });
    const mine = streams.filter((x) => x.name === changed);
    const others = streams.filter((x) => x.name !== changed);
    await Promise.all(mine.map(async (x) => {
      const ev = await x.c.nextEvent(3000).catch((err) => ({ event: 'none', data: err.message }));
      if (x.route.stream === 'ping') {
        if (ev.event !== 'ping') fail(`${x.what}: after its own change: ${ev.event}`);
      } else if (!ev.data.includes(`shared-${changed}-v2`)) {
        fail(`${x.what}: after its own change: ${ev.event} ${ev.data.slice(0, 200)}`);
      }
    }));
    await Promise.all(others.map(async (x) => {
      try {
        await x.c.expectNoEvent(300);
      } catch (err) {
        fail(`${x.what}: an event after ${changed}'s change: ${err.message.slice(0, 200)}`);
      }
    }));
  }

  // Events: each accepted post reaches the events service under its own environment's
  // credential or ID; nothing posted with a refused credential arrives.
  await sleep(500);
  await waitFor(() => sink.received.length > 0, { what: 'events delivered' });
  await sleep(500);
  for (const post of sink.received) {
    const keys = Array.isArray(post.events) ? post.events.map((e) => e.key) : [post.events?.id?.diagnosticId];
    const owner = NAMES.find((n) => post.headers.authorization === ENVS[n].sdkKey || post.headers.authorization === ENVS[n].mobileKey ||
      post.headers.authorization === `api_key ${ENVS[n].sdkKey}` || post.headers.authorization === `api_key ${ENVS[n].mobileKey}` ||
      post.url.endsWith(`/${ENVS[n].envId}`));
    if (!owner) {
      fail(`events service got ${post.url} with an unknown credential ${post.headers.authorization}: ${JSON.stringify(keys)}`);
      continue;
    }
    const strangers = keys.filter((k) => !String(k).startsWith(`${owner}-good-`));
    if (strangers.length) fail(`events service got ${post.url} as ${owner} holding ${JSON.stringify(strangers)}`);
  }
  const delivered = sink.received.flatMap((p) => (Array.isArray(p.events) ? p.events.map((e) => e.key) : [p.events?.id?.diagnosticId]));
  const bad = delivered.filter((k) => String(k).startsWith('bad-'));
  if (bad.length) fail(`events posted with refused credentials were forwarded: ${bad.join(', ')}`);
  const m = await scrape(relay);
  // /readyz is 503 by design until the data is in.
  const fivexx = m.parsed.samples.filter((x) => x.name === 'flagrelay_http_requests_total' && x.labels.status === '5xx' && x.value > 0 && x.labels.route !== '/readyz');
  if (fivexx.length) fail(`5xx answers: ${JSON.stringify(fivexx)}`);
  assert.deepEqual(failures, [], 'isolation failures');
}, { timeout: 60000 });

relayTest('an environment whose key the upstream rejected answers 401 on every route and serves no other environment\'s data', async (t, s) => {
  const up = await s.upstream({
    sdkKey: ENVS.alpha.sdkKey,
    ...envData('alpha'),
    environments: { [ENVS.beta.sdkKey]: envData('beta') },
  });
  up.statusByKey.set(ENVS.beta.sdkKey, 401);
  const relay = await s.relay({ upstreamUrl: up.url, environments: { alpha: ENVS.alpha, beta: ENVS.beta } });
  await waitFor(async () => JSON.parse((await httpRequest(`${relay.url}/status`)).text).environments.beta.connectionStatus.state === 'OFF',
    { timeoutMs: 5000, what: 'beta OFF after the 401' });
  const failures = [];
  for (const route of ROUTES) {
    const r = await probe(s, relay, route, credOf('beta', route.cred));
    const expected = route.cred === 'envId' ? 404 : 401;
    if (r.status !== expected) failures.push(`${label(route)} with beta's rejected credential: ${r.status}, expected ${expected}`);
    const leaked = [...markers('alpha'), ...markers('beta')].filter((m) => r.text.includes(m));
    if (leaked.length) failures.push(`${label(route)} with beta's rejected credential: data ${leaked.join(',')}`);
  }
  assert.deepEqual(failures, []);
  const ok = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: { Authorization: ENVS.alpha.sdkKey } });
  assert.equal(ok.status, 200);
  assert.deepEqual(dataView('all', ok.text), expectedView('all', 'alpha'));
});

// ---------------------------------------------------------------------------------------------
// Key masking.

/** Every 10-character window of `secret` that `text` contains (a key printed whole or in part). */
function secretFragments(text, secret, width = 10) {
  const found = new Set();
  for (let i = 0; i + width <= secret.length; i++) {
    const w = secret.slice(i, i + width);
    if (text.includes(w)) found.add(w);
  }
  return [...found];
}

relayTest('keys masked everywhere: no full (or 10-character piece of a) SDK or mobile key in the output, /status or /metrics, across every route, refusals, upstream rejections, event refusals and SIGHUP', async (t, s) => {
  // alpha: streams, events go through — except its mobile events, which the events service
  // refuses (401). beta: the upstream refuses its SDK key (401). gamma: the stream fails (503)
  // and the polling fallback polls with its key.
  const sink = await startFakeEvents();
  s.defer(() => sink.close());
  const baseHandle = sink.handle.bind(sink);
  sink.handle = (req, res) => {
    if (req.headers.authorization === ENVS.alpha.mobileKey) {
      req.resume();
      req.on('end', () => {
        sink.received.push({ url: req.url, headers: req.headers, answered: 401 });
        res.writeHead(401);
        res.end(`unknown key ${req.headers.authorization}`);
      });
      return;
    }
    baseHandle(req, res);
  };
  const up = await s.upstream({
    sdkKey: ENVS.alpha.sdkKey,
    ...envData('alpha'),
    environments: { [ENVS.beta.sdkKey]: envData('beta'), [ENVS.gamma.sdkKey]: envData('gamma') },
  });
  up.statusByKey.set(ENVS.beta.sdkKey, 401);
  // The 503 only for gamma's stream; its polls succeed (handlePoll answers 401 for keys in
  // statusByKey, so gamma's stream is failed by hand).
  const baseUp = up.handle.bind(up);
  up.handle = (req, res) => {
    if (req.method === 'GET' && req.url.startsWith('/all') && req.headers.authorization === ENVS.gamma.sdkKey) {
      up.requests.push({ method: req.method, url: req.url, path: '/all', headers: { ...req.headers }, time: Date.now(), status: 503 });
      res.writeHead(503, { 'Content-Type': 'text/plain' });
      res.end(`overloaded, key ${req.headers.authorization}`);
      return;
    }
    baseUp(req, res);
  };
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: ENVS,
    logLevel: 'debug',
    upstream: { pollingFallback: { enabled: true, after: '0s', interval: '1s' } },
    extra: { upstream: { eventsUri: sink.url }, events: { flushInterval: '100ms' } },
  });
  relay.out.limit = 16 * 1024 * 1024; // keep all of it: the check must see every line
  await waitFor(async () => {
    const st = JSON.parse((await httpRequest(`${relay.url}/status`)).text).environments;
    return st.beta.connectionStatus.state === 'OFF' && st.gamma.connectionStatus.mode === 'polling' && st.gamma.dataSource === 'upstream';
  }, { timeoutMs: 10000, what: 'beta OFF (401) and gamma polling' });

  // Every route, with each environment's right credential and with wrong ones.
  let requests = 0;
  for (const name of NAMES) {
    for (const route of ROUTES) {
      // A key in place of an environment ID puts it in the URL path, which the request log
      // prints: that case has a test of its own below, so that this one checks everything else.
      const bad = badCredentials(name, route.cred).filter(([why]) => route.cred !== 'envId' || !/key$/.test(why));
      const creds = [credOf(name, route.cred), ...bad.map(([, c]) => c)];
      if (route.cred !== 'envId') creds.push(`api_key ${credOf(name, route.cred)}`);
      for (const cred of creds) {
        await probe(s, relay, route, cred, { eventKey: `${name}-${requests}` });
        requests++;
      }
    }
  }
  t.diagnostic(`${requests} requests`);
  // The events service refuses alpha's mobile key: wait for the error path to log.
  await waitFor(() => /refused the credential/.test(relay.output()), { timeoutMs: 5000, what: 'the events refusal logged' });
  // SIGHUP: a valid reload, then an invalid one (duplicate keys: the error names them).
  relay.reload({ logLevel: 'debug' });
  await waitFor(() => /SIGHUP|reload/i.test(relay.output()), { timeoutMs: 5000, what: 'the reload logged' });
  const broken = JSON.parse(JSON.stringify(relay.config));
  broken.environments.gamma.sdkKey = ENVS.alpha.sdkKey;
  broken.environments.gamma.mobileKey = ENVS.beta.mobileKey;
  broken.environments.beta.sdkKey = `${ENVS.beta.sdkKey} withspace`;
  const linesBefore = relay.output().split('\n').length;
  relay.reload(`${toYaml(broken)}\n`);
  await waitFor(() => relay.output().split('\n').length > linesBefore + 1 && /duplicate|unique|whitespace|invalid/i.test(relay.output().split('\n').slice(linesBefore).join('\n')),
    { timeoutMs: 5000, what: 'the invalid reload logged' });
  await sleep(300);
  assert.ok(relay.running(), 'the relay survived the invalid reload');

  const status = await httpRequest(`${relay.url}/status`);
  const metrics = await scrape(relay);
  const output = relay.output();
  t.diagnostic(`relay output: ${output.length} bytes`);
  assert.equal(relay.out.dropped, 0, 'the whole output was kept (the check must see all of it)');
  // The relay did use the full keys upstream: masking is meaningful.
  assert.ok(up.requests.some((r) => r.headers.authorization === ENVS.alpha.sdkKey), 'alpha streamed with its full key');
  assert.ok(up.polls.some((p) => p.key === ENVS.gamma.sdkKey), 'gamma polled with its full key');
  assert.ok(sink.received.some((p) => p.headers.authorization === ENVS.alpha.mobileKey), 'alpha\'s mobile events were sent with the full key');

  const betaStatus = JSON.parse(status.text).environments.beta.connectionStatus;
  assert.equal(betaStatus.lastError?.statusCode, 401);
  assert.match(betaStatus.lastError.message, /rejected/, 'the rejection is explained');
  assert.ok(!betaStatus.lastError.message.includes(ENVS.beta.sdkKey.slice(4, 12)), `beta's lastError names its key: ${betaStatus.lastError.message}`);
  t.diagnostic(`beta lastError: ${JSON.stringify(betaStatus.lastError)}`);
  t.diagnostic(`gamma lastError: ${JSON.stringify(JSON.parse(status.text).environments.gamma.connectionStatus.lastError)}`);

  const secrets = NAMES.flatMap((n) => [[`${n}.sdkKey`, ENVS[n].sdkKey], [`${n}.mobileKey`, ENVS[n].mobileKey]]);
  const hits = [];
  for (const [where, text] of [['relay output', output], ['/status', status.text], ['/metrics', metrics.text]]) {
    for (const [name, secret] of secrets) {
      const pieces = secretFragments(text, secret);
      if (pieces.length) {
        const line = text.split('\n').find((l) => pieces.some((p) => l.includes(p)));
        hits.push(`${where}: ${name} (${pieces.length} pieces, e.g. ${pieces[0]}) in: ${line?.slice(0, 200)}`);
      }
    }
  }
  assert.deepEqual(hits, [], 'key material printed');
  // The masked form is there (so the check did look at the right output).
  assert.match(status.text, /"sdkKey":"sdk-\*{8}-\*{4}-\*{4}-\*{4}-\*{7}56789"/);
  assert.match(output, /auth=\*56789/);
}, { timeout: 60000 });

relayTest('keys masked: a server SDK key sent by mistake where a client-side ID belongs (the URL path) is not logged whole', async (t, s) => {
  // A common misconfiguration: the browser SDK initialised with the server SDK key. The key is in
  // the request path; the debug request log must not print it.
  const up = await s.upstream({ sdkKey: ENVS.alpha.sdkKey, ...envData('alpha') });
  const relay = await s.relay({ upstreamUrl: up.url, environments: { alpha: ENVS.alpha }, logLevel: 'debug' });
  for (const p of [`/sdk/evalx/${ENVS.alpha.sdkKey}/contexts/${B64}`, `/eval/${ENVS.alpha.sdkKey}/${B64}`, `/events/bulk/${ENVS.alpha.mobileKey}`]) {
    const r = await httpRequest(`${relay.url}${p}`, { method: p.startsWith('/events') ? 'POST' : 'GET', headers: { 'Content-Type': 'application/json' }, body: p.startsWith('/events') ? '[]' : undefined });
    assert.equal(r.status, 404, `${p}: ${r.status}`);
  }
  await sleep(200);
  const hits = [ENVS.alpha.sdkKey, ENVS.alpha.mobileKey].flatMap((k) => relay.output().split('\n').filter((l) => l.includes(k)));
  assert.deepEqual(hits, [], 'full keys in the relay output');
});

// ---------------------------------------------------------------------------------------------
// Cache file permissions.

function mode(p) {
  return fs.statSync(p).mode & 0o777;
}

relayTest('cache: the LMDB directory is 0700 and its files 0600, also after a corrupt data file was set aside', async (t, s) => {
  // Under the usual umask 022, so that permissions are the relay's choice, not the umask's.
  const previous = process.umask(0o022);
  s.defer(() => process.umask(previous));
  const dir = s.tmpDir('flagrelay-perm-');
  const cacheDir = path.join(dir, 'cache'); // created by the relay
  const up = await s.upstream({ sdkKey: ENVS.alpha.sdkKey, ...envData('alpha') });
  const relay = await s.relay({ upstreamUrl: up.url, environments: { alpha: ENVS.alpha }, dir, cacheDir });
  await waitFor(async () => sampleSum((await scrape(relay)).parsed, 'flagrelay_cache_commits_total', { env: 'alpha', result: 'ok' }) >= 1,
    { timeoutMs: 5000, what: 'a cache commit' });
  await relay.terminate();
  const listing = () => fs.readdirSync(cacheDir).map((f) => `${f} ${mode(path.join(cacheDir, f)).toString(8)}`).join(', ');
  t.diagnostic(`cache dir ${mode(cacheDir).toString(8)}: ${listing()}`);
  const problems = [];
  const check = (p, want) => {
    const got = mode(p);
    if (got !== want) problems.push(`${path.relative(dir, p)}: mode ${got.toString(8)}, expected ${want.toString(8)}`);
  };
  check(cacheDir, 0o700);
  check(path.join(cacheDir, 'data.mdb'), 0o600);
  check(path.join(cacheDir, 'lock.mdb'), 0o600);

  // Corrupt the meta pages in place (the file keeps its mode): the next start moves it aside.
  const fd = fs.openSync(path.join(cacheDir, 'data.mdb'), 'r+');
  fs.writeSync(fd, Buffer.alloc(8192, 0xa5), 0, 8192, 0);
  fs.closeSync(fd);
  const again = await s.relay({ upstreamUrl: up.url, environments: { alpha: ENVS.alpha }, dir, cacheDir, configName: 'relay2.yaml' });
  await waitFor(async () => sampleSum((await scrape(again)).parsed, 'flagrelay_cache_commits_total', { env: 'alpha', result: 'ok' }) >= 1,
    { timeoutMs: 5000, what: 'a cache commit after the restart' });
  const aside = fs.readdirSync(cacheDir).filter((f) => f.startsWith('data.mdb.corrupt-'));
  t.diagnostic(`after the restart: ${listing()}`);
  assert.equal(aside.length, 1, `the corrupt file set aside: ${listing()}; output:\n${again.output().slice(-2000)}`);
  check(path.join(cacheDir, aside[0]), 0o600);
  check(path.join(cacheDir, 'data.mdb'), 0o600);
  check(path.join(cacheDir, 'lock.mdb'), 0o600);
  check(cacheDir, 0o700);
  assert.deepEqual(problems, [], 'cache permissions');
});
