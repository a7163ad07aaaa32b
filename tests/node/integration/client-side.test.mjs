// Client-side routes (protocol reference §1.5, §1.6, §1.8, with flagrelay's documented deviations
// in relay/src/client_side.cpp): evalx for server, mobile and browser SDKs, audience filtering,
// result shape, context decoding, REPORT bodies, 503 before data, CORS, secure mode, evaluated
// client streams (/eval, /meval), ping streams (/ping, /mping) and their request metrics.
import assert from 'node:assert/strict';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { assertSseHeaders } from '../support/assertions.mjs';
import { scrape, findSamples, sampleSum } from '../support/prom.mjs';
import {
  b64url,
  b64urlPadded,
  awkwardContext,
  secureHash,
  corsHeaders,
  CORS_BASE_HEADERS,
  openSseWithBody,
} from '../support/contexts.mjs';

const SDK = KEYS.prod;
const MOB = KEYS.prodMobile;
const ENV = KEYS.prodEnvId;

const CTX = { kind: 'user', key: 'ctx-1', name: 'Ada' };
const OLD_USER = { key: 'ctx-1', name: 'Ada', custom: { team: 'blue' } };

const vis = (usingMobileKey, usingEnvironmentId) => ({ clientSideAvailability: { usingMobileKey, usingEnvironmentId } });
/** A flag in the old schema: no clientSideAvailability, only the legacy `clientSide`. */
function oldSchema(flag, clientSide) {
  const f = { ...flag, clientSide };
  delete f.clientSideAvailability;
  return f;
}

// ---------------------------------------------------------------------------------------------
// Requests

/**
 * One request to the relay. `body` (object or string) is sent with Content-Type
 * application/json unless headers['Content-Type'] says otherwise (null = no Content-Type).
 */
function call(relay, method, path, { headers = {}, body } = {}) {
  const h = { ...headers };
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    if (!('Content-Type' in h)) h['Content-Type'] = 'application/json';
    h['Content-Length'] = Buffer.byteLength(payload);
  }
  if (h['Content-Type'] === null) delete h['Content-Type'];
  return httpRequest(`${relay.url}${path}`, { method, headers: h, body: payload });
}

function json200(r, what) {
  assert.equal(r.status, 200, `${what}: status ${r.status}, body ${r.text.slice(0, 300)}`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/, `${what}: Content-Type ${r.headers['content-type']}`);
  return r.json();
}

function assertJsonMessage(r, status, what, message) {
  assert.equal(r.status, status, `${what}: status ${r.status}, body ${r.text.slice(0, 300)}`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/, `${what}: Content-Type ${r.headers['content-type']}`);
  const body = r.json();
  assert.equal(typeof body.message, 'string', `${what}: body must be {"message":...}: ${r.text}`);
  assert.ok(body.message.length > 0, `${what}: empty message`);
  if (message !== undefined) assert.equal(body.message, message, `${what}: message`);
  return body;
}

function assertNoCors(r, what) {
  assert.deepEqual(corsHeaders(r.headers), {}, `${what}: must carry no Access-Control-* headers`);
}

function assertCors(r, what, { origin, methods }) {
  const h = r.headers;
  assert.equal(h['access-control-allow-origin'], origin, `${what}: Access-Control-Allow-Origin`);
  assert.equal(h['access-control-allow-methods'], methods, `${what}: Access-Control-Allow-Methods`);
  assert.equal(h['access-control-max-age'], '300', `${what}: Access-Control-Max-Age`);
  assert.equal(h['access-control-allow-credentials'], 'false', `${what}: Access-Control-Allow-Credentials`);
  assert.equal(h['access-control-expose-headers'], 'Date', `${what}: Access-Control-Expose-Headers`);
  const allowed = (h['access-control-allow-headers'] ?? '').split(',').map((x) => x.trim().toLowerCase());
  for (const name of CORS_BASE_HEADERS) {
    assert.ok(allowed.includes(name.toLowerCase()), `${what}: Access-Control-Allow-Headers lacks ${name}: ${h['access-control-allow-headers']}`);
  }
  return allowed;
}

const evalxPaths = {
  server: (ctx) => `/sdk/evalx/contexts/${b64url(ctx)}`,
  mobile: (ctx) => `/msdk/evalx/contexts/${b64url(ctx)}`,
  browser: (ctx, env = ENV) => `/sdk/evalx/${env}/contexts/${b64url(ctx)}`,
};
const credentials = { server: auth(SDK), mobile: auth(MOB), browser: {} };

async function evalx(relay, audience, ctx = CTX, query = '') {
  const r = await call(relay, 'GET', `${evalxPaths[audience](ctx)}${query}`, { headers: credentials[audience] });
  return json200(r, `${audience} evalx${query}`);
}

/** Starts the fake upstream and the relay; resolves once the environment serves evaluations. */
async function setup(s, { flags = [], segments = [], env = {}, environments, upstream = {}, extra } = {}) {
  const up = await s.upstream({ sdkKey: SDK, flags: byKey(...flags), segments: byKey(...segments), ...upstream });
  const relay = await s.relay({ upstreamUrl: up.url, environments: environments ?? prodEnv(env), extra });
  await waitFor(async () => (await call(relay, 'GET', evalxPaths.server(CTX), { headers: auth(SDK) })).status === 200, {
    timeoutMs: 5000,
    what: 'server evalx 200 after the upstream put',
  });
  return { up, relay };
}

// ---------------------------------------------------------------------------------------------
// Routes, credentials, audiences

const fServer = makeFlag('server-only', 3, 'srv');
const fMobile = makeFlag('mobile-only', 4, 'mob', vis(true, false));
const fBrowser = makeFlag('browser-only', 5, 'web', vis(false, true));
const fBoth = makeFlag('both', 6, 'all', vis(true, true));
const fOldClient = oldSchema(makeFlag('old-client-side', 7, 7), true);
const fOldServer = oldSchema(makeFlag('old-server-side', 8, 8), false);
const AUDIENCE_FLAGS = [fServer, fMobile, fBrowser, fBoth, fOldClient, fOldServer];
const VISIBLE = {
  server: ['both', 'browser-only', 'mobile-only', 'old-client-side', 'old-server-side', 'server-only'],
  mobile: ['both', 'mobile-only', 'old-client-side', 'old-server-side'],
  browser: ['both', 'browser-only', 'old-client-side'],
};
const RESULTS = {
  'server-only': { value: 'srv', variation: 0, version: 3 },
  'mobile-only': { value: 'mob', variation: 0, version: 4 },
  'browser-only': { value: 'web', variation: 0, version: 5 },
  both: { value: 'all', variation: 0, version: 6 },
  'old-client-side': { value: 7, variation: 0, version: 7 },
  'old-server-side': { value: 8, variation: 0, version: 8 },
};
const expectedFor = (audience) => Object.fromEntries(VISIBLE[audience].map((k) => [k, RESULTS[k]]));

/** Every evalx route: [label, method, path, headers, body, audience]. */
function evalxRoutes() {
  const ctx = b64url(CTX);
  const user = b64url(OLD_USER);
  return [
    ['GET /sdk/evalx/contexts/{b64}', 'GET', `/sdk/evalx/contexts/${ctx}`, auth(SDK), undefined, 'server'],
    ['GET /sdk/evalx/users/{b64}', 'GET', `/sdk/evalx/users/${user}`, auth(SDK), undefined, 'server'],
    ['REPORT /sdk/evalx/context', 'REPORT', '/sdk/evalx/context', auth(SDK), CTX, 'server'],
    ['REPORT /sdk/evalx/user', 'REPORT', '/sdk/evalx/user', auth(SDK), OLD_USER, 'server'],
    ['GET /msdk/evalx/contexts/{b64}', 'GET', `/msdk/evalx/contexts/${ctx}`, auth(MOB), undefined, 'mobile'],
    ['GET /msdk/evalx/users/{b64}', 'GET', `/msdk/evalx/users/${user}`, auth(MOB), undefined, 'mobile'],
    ['REPORT /msdk/evalx/context', 'REPORT', '/msdk/evalx/context', auth(MOB), CTX, 'mobile'],
    ['REPORT /msdk/evalx/user', 'REPORT', '/msdk/evalx/user', auth(MOB), OLD_USER, 'mobile'],
    ['GET /sdk/evalx/{envId}/contexts/{b64}', 'GET', `/sdk/evalx/${ENV}/contexts/${ctx}`, {}, undefined, 'browser'],
    ['GET /sdk/evalx/{envId}/users/{b64}', 'GET', `/sdk/evalx/${ENV}/users/${user}`, {}, undefined, 'browser'],
    ['REPORT /sdk/evalx/{envId}/context', 'REPORT', `/sdk/evalx/${ENV}/context`, {}, CTX, 'browser'],
    ['REPORT /sdk/evalx/{envId}/user', 'REPORT', `/sdk/evalx/${ENV}/user`, {}, OLD_USER, 'browser'],
    ['REPORT /sdk/evalx/{envId}/contexts', 'REPORT', `/sdk/evalx/${ENV}/contexts`, {}, CTX, 'browser'],
    ['REPORT /sdk/evalx/{envId}/users', 'REPORT', `/sdk/evalx/${ENV}/users`, {}, OLD_USER, 'browser'],
  ];
}

relayTest('every evalx route answers 200 with the flags of its audience (server all, mobile usingMobileKey, browser usingEnvironmentId)', async (t, s) => {
  const { relay } = await setup(s, { flags: AUDIENCE_FLAGS });
  for (const [label, method, path, headers, body, audience] of evalxRoutes()) {
    const r = await call(relay, method, path, { headers, body });
    const got = json200(r, label);
    assert.deepEqual(Object.keys(got).sort(), VISIBLE[audience], `${label}: flags visible to the ${audience} audience`);
    assert.deepEqual(got, expectedFor(audience), `${label}: results`);
    assert.equal(r.headers.etag, undefined, `${label}: evalx responses carry no ETag`);
  }
});

relayTest('evalx credentials: unknown/mismatched key → 401, unknown envId → 404 without CORS headers', async (t, s) => {
  const { relay } = await setup(s, { flags: AUDIENCE_FLAGS });
  for (const [label, method, path, , body, audience] of evalxRoutes()) {
    if (audience === 'browser') {
      // An unknown envId, or a server/mobile key in its place (a credential of the wrong kind).
      for (const id of ['ffffffffffffffffffffffff', SDK, MOB]) {
        const other = path.replace(ENV, id);
        for (const m of [method, 'OPTIONS']) {
          const r = await call(relay, m, other, { body: m === 'OPTIONS' ? undefined : body, headers: { Origin: 'https://app.example' } });
          assert.equal(r.status, 404, `${label} (${m}) with envId ${id}: status ${r.status}, body ${r.text}`);
          assertNoCors(r, `${label} (${m}) envId ${id}`);
        }
      }
      continue;
    }
    const wrongKeys = { wrong: KEYS.wrong, other: audience === 'server' ? MOB : SDK, none: undefined, bearer: `Bearer ${audience === 'server' ? SDK : MOB}` };
    for (const [what, key] of Object.entries(wrongKeys)) {
      const r = await call(relay, method, path, { headers: key === undefined ? {} : auth(key), body });
      assert.equal(r.status, 401, `${label} with ${what} key: status ${r.status}, body ${r.text}`);
      assertNoCors(r, `${label} 401`);
    }
  }
  // The "api_key " prefix is accepted (ld-relay's rule) on both key kinds.
  const r1 = await call(relay, 'GET', evalxPaths.server(CTX), { headers: auth(`api_key ${SDK}`) });
  json200(r1, 'server evalx with "api_key " prefix');
  const r2 = await call(relay, 'GET', evalxPaths.mobile(CTX), { headers: auth(`api_key ${MOB}`) });
  json200(r2, 'mobile evalx with "api_key " prefix');
});

relayTest('client-side routes answer a wrong method with 405', async (t, s) => {
  const { relay } = await setup(s, { flags: AUDIENCE_FLAGS });
  const b = b64url(CTX);
  const cases = [
    ['POST', '/sdk/evalx/context', auth(SDK)],
    ['GET', '/sdk/evalx/context', auth(SDK)],
    ['GET', '/sdk/evalx/user', auth(SDK)],
    ['GET', '/msdk/evalx/context', auth(MOB)],
    ['REPORT', `/msdk/evalx/contexts/${b}`, auth(MOB)],
    ['GET', `/sdk/evalx/${ENV}/context`, {}],
    ['REPORT', `/sdk/evalx/${ENV}/contexts/${b}`, {}],
    ['POST', `/sdk/evalx/${ENV}/contexts/${b}`, {}],
    ['GET', `/eval/${ENV}`, {}],
    ['REPORT', `/eval/${ENV}/${b}`, {}],
    ['POST', `/eval/${ENV}`, {}],
    ['REPORT', `/ping/${ENV}`, {}],
    ['GET', '/meval', auth(MOB)],
    ['REPORT', `/meval/${b}`, auth(MOB)],
    ['POST', `/meval/${b}`, auth(MOB)],
    ['POST', '/mping', auth(MOB)],
  ];
  const failures = [];
  for (const [method, path, headers] of cases) {
    const body = method === 'GET' ? undefined : CTX;
    const r = await call(relay, method, path, { headers, body });
    if (r.status !== 405) failures.push(`${method} ${path}: ${r.status} ${r.text.trim().slice(0, 100)}`);
  }
  assert.deepEqual(failures, [], 'every wrong method must get 405');
});

// The server GET routes /sdk/evalx/{contexts,users}/{b64} have four path segments, like no browser
// route: a wrong method there is a wrong method on a known path (ld-relay/gorilla: 405).
relayTest('a wrong method on the server GET evalx routes /sdk/evalx/contexts|users/{b64} → 405', async (t, s) => {
  const { relay } = await setup(s, { flags: AUDIENCE_FLAGS });
  const b = b64url(CTX);
  const failures = [];
  for (const list of ['contexts', 'users']) {
    for (const method of ['REPORT', 'POST', 'OPTIONS']) {
      const path = `/sdk/evalx/${list}/${b}`;
      const r = await call(relay, method, path, { headers: auth(SDK), body: method === 'OPTIONS' ? undefined : CTX });
      if (r.status !== 405) failures.push(`${method} ${path}: ${r.status} ${r.text.trim().slice(0, 100)}`);
    }
  }
  assert.deepEqual(failures, [], 'every wrong method must get 405');
});

// ---------------------------------------------------------------------------------------------
// Result shape

const ruleOnCtx = (id, trackEvents) => ({
  id,
  clauses: [{ attribute: 'key', op: 'in', values: ['ctx-1'], negate: false }],
  variation: 1,
  trackEvents,
});
const both = vis(true, true);
const SHAPE_FLAGS = [
  makeFlag('plain', 11, 'p', both),
  makeFlag('tracked', 12, 't', { ...both, trackEvents: true }),
  makeFlag('fallthrough-exp', 13, 'fe', { ...both, trackEventsFallthrough: true }),
  makeFlag('rule-exp', 14, 're', { ...both, rules: [ruleOnCtx('rule-1', true)] }),
  makeFlag('rule-plain', 15, 'rp', { ...both, rules: [ruleOnCtx('rule-2', false)] }),
  makeFlag('rollout-exp', 16, 'ro', {
    ...both,
    fallthrough: { rollout: { kind: 'experiment', seed: 61, variations: [{ variation: 0, weight: 100000 }, { variation: 1, weight: 0 }] } },
  }),
  makeFlag('debug', 17, 'd', { ...both, debugEventsUntilDate: 2000000000000 }),
  makeFlag('debug-zero', 18, 'dz', { ...both, debugEventsUntilDate: 0 }),
  makeFlag('off', 19, 'o', { ...both, on: false }),
  makeFlag('off-no-variation', 20, 'onv', { ...both, on: false, offVariation: null }),
  makeFlag('target', 21, 'tg', { ...both, targets: [{ values: ['ctx-1'], variation: 1 }] }),
  makeFlag('prereq-base', 22, 'pb', both),
  makeFlag('with-prereq', 23, 'wp', { ...both, prerequisites: [{ key: 'prereq-base', variation: 0 }] }),
  makeFlag('prereq-failed', 24, 'pf', { ...both, prerequisites: [{ key: 'prereq-base', variation: 1 }] }),
];
const FALLTHROUGH = { kind: 'FALLTHROUGH' };
const SHAPE_PLAIN = {
  plain: { value: 'p', variation: 0, version: 11 },
  tracked: { value: 't', variation: 0, version: 12, trackEvents: true },
  'fallthrough-exp': { value: 'fe', variation: 0, version: 13, trackEvents: true, trackReason: true, reason: FALLTHROUGH },
  'rule-exp': { value: 're-off', variation: 1, version: 14, trackEvents: true, trackReason: true, reason: { kind: 'RULE_MATCH', ruleIndex: 0, ruleId: 'rule-1' } },
  'rule-plain': { value: 'rp-off', variation: 1, version: 15 },
  'rollout-exp': { value: 'ro', variation: 0, version: 16, trackEvents: true, trackReason: true, reason: { kind: 'FALLTHROUGH', inExperiment: true } },
  debug: { value: 'd', variation: 0, version: 17, debugEventsUntilDate: 2000000000000 },
  'debug-zero': { value: 'dz', variation: 0, version: 18 },
  off: { value: 'o-off', variation: 1, version: 19 },
  'off-no-variation': { value: null, variation: null, version: 20 },
  target: { value: 'tg-off', variation: 1, version: 21 },
  'prereq-base': { value: 'pb', variation: 0, version: 22 },
  'with-prereq': { value: 'wp', variation: 0, version: 23, prerequisites: ['prereq-base'] },
  'prereq-failed': { value: 'pf-off', variation: 1, version: 24, prerequisites: ['prereq-base'] },
};
const REASONS = {
  plain: FALLTHROUGH,
  tracked: FALLTHROUGH,
  'rule-plain': { kind: 'RULE_MATCH', ruleIndex: 0, ruleId: 'rule-2' },
  debug: FALLTHROUGH,
  'debug-zero': FALLTHROUGH,
  off: { kind: 'OFF' },
  'off-no-variation': { kind: 'OFF' },
  target: { kind: 'TARGET_MATCH' },
  'prereq-base': FALLTHROUGH,
  'with-prereq': FALLTHROUGH,
  'prereq-failed': { kind: 'PREREQUISITE_FAILED', prerequisiteKey: 'prereq-base' },
};
const SHAPE_WITH_REASONS = Object.fromEntries(
  Object.entries(SHAPE_PLAIN).map(([k, v]) => [k, v.reason ? v : { ...v, reason: REASONS[k] }]),
);

relayTest('evalx result shape per flag: value, variation, version, trackEvents/trackReason, reason, debugEventsUntilDate, prerequisites', async (t, s) => {
  const { relay } = await setup(s, { flags: SHAPE_FLAGS });
  for (const audience of ['server', 'mobile', 'browser']) {
    assert.deepEqual(await evalx(relay, audience), SHAPE_PLAIN, `${audience}: results without reasons`);
    assert.deepEqual(await evalx(relay, audience, CTX, '?withReasons=false'), SHAPE_PLAIN, `${audience}: withReasons=false`);
    assert.deepEqual(await evalx(relay, audience, CTX, '?withReasons=true'), SHAPE_WITH_REASONS, `${audience}: results with reasons`);
  }
  // The REPORT variants agree, with and without reasons.
  const r = await call(relay, 'REPORT', `/sdk/evalx/${ENV}/context?withReasons=true`, { body: CTX });
  assert.deepEqual(json200(r, 'browser REPORT withReasons'), SHAPE_WITH_REASONS, 'browser REPORT ?withReasons=true');
  const r2 = await call(relay, 'REPORT', '/msdk/evalx/context', { headers: auth(MOB), body: CTX });
  assert.deepEqual(json200(r2, 'mobile REPORT'), SHAPE_PLAIN, 'mobile REPORT');
  // Another context: the targets and rules no longer match.
  const other = await evalx(relay, 'server', { kind: 'user', key: 'someone-else' }, '?withReasons=true');
  assert.deepEqual(other['rule-exp'], { value: 're', variation: 0, version: 14, reason: FALLTHROUGH }, 'rule-exp for a non-matching context (no experiment, no track flags)');
  assert.deepEqual(other.target, { value: 'tg', variation: 0, version: 21, reason: FALLTHROUGH }, 'target for a non-targeted context');
});

// ---------------------------------------------------------------------------------------------
// Context decoding and REPORT bodies

relayTest('contexts: base64url padded and unpadded, bad base64 / JSON → 400 {message}, missing key → 400', async (t, s) => {
  const { relay } = await setup(s, { flags: SHAPE_FLAGS.slice(0, 3) });
  const ctx = awkwardContext('ctx-1');
  const unpadded = b64url(ctx);
  const padded = b64urlPadded(ctx);
  assert.ok(padded.endsWith('=') && /[-_]/.test(unpadded), `test context encodes with padding and URL-safe characters: ${padded}`);
  for (const [audience, prefix, headers] of [
    ['server', '/sdk/evalx/contexts/', auth(SDK)],
    ['mobile', '/msdk/evalx/contexts/', auth(MOB)],
    ['browser', `/sdk/evalx/${ENV}/contexts/`, {}],
  ]) {
    const a = json200(await call(relay, 'GET', prefix + unpadded, { headers }), `${audience} unpadded`);
    const b = json200(await call(relay, 'GET', prefix + padded, { headers }), `${audience} padded`);
    assert.deepEqual(a, b, `${audience}: padded and unpadded give the same results`);
    assert.deepEqual(Object.keys(a).sort(), ['fallthrough-exp', 'plain', 'tracked'], `${audience}: results`);
    // A percent-encoded padding is the same context.
    const c = json200(await call(relay, 'GET', prefix + padded.replace(/=/g, '%3D'), { headers }), `${audience} %3D padding`);
    assert.deepEqual(c, a, `${audience}: %3D-encoded padding`);

    for (const [what, seg] of [
      ['bad base64 characters', '!!!not*base64!!!'],
      ['a lone trailing base64 character', 'eyJrZXkiOiJ4In0x'.slice(0, 13)],
      ['base64 of non-JSON', b64url('this is not json')],
      ['base64 of a JSON array', b64url('[1,2,3]')],
    ]) {
      const r = await call(relay, 'GET', prefix + seg, { headers });
      assertJsonMessage(r, 400, `${audience} ${what}`);
    }
    for (const [what, body] of [
      ['context without key', { kind: 'user', name: 'x' }],
      ['context with an empty key', { kind: 'user', key: '' }],
      ['old user without key', { name: 'x' }],
    ]) {
      const r = await call(relay, 'GET', prefix + b64url(body), { headers });
      assertJsonMessage(r, 400, `${audience} ${what}`, "User must have a 'key' attribute");
    }
  }
  for (const [label, path, headers] of [
    ['server', '/sdk/evalx/context', auth(SDK)],
    ['mobile', '/msdk/evalx/context', auth(MOB)],
    ['browser', `/sdk/evalx/${ENV}/context`, {}],
  ]) {
    assertJsonMessage(await call(relay, 'REPORT', path, { headers, body: '{"kind":"user","key":' }), 400, `${label} REPORT truncated JSON`);
    assertJsonMessage(await call(relay, 'REPORT', path, { headers, body: 'not json' }), 400, `${label} REPORT non-JSON`);
    assertJsonMessage(await call(relay, 'REPORT', path, { headers, body: '' }), 400, `${label} REPORT empty body`);
    assertJsonMessage(await call(relay, 'REPORT', path, { headers, body: { kind: 'user' } }), 400, `${label} REPORT without key`, "User must have a 'key' attribute");
  }
});

relayTest('REPORT Content-Type: application/json (with or without parameters) or none → 200, text/plain → 415', async (t, s) => {
  const { relay } = await setup(s, { flags: [fBoth] });
  for (const [label, path, headers] of [
    ['server', '/sdk/evalx/context', auth(SDK)],
    ['mobile', '/msdk/evalx/context', auth(MOB)],
    ['browser', `/sdk/evalx/${ENV}/context`, {}],
  ]) {
    for (const ct of ['application/json', 'application/json; charset=utf-8', 'Application/JSON', null]) {
      const r = await call(relay, 'REPORT', path, { headers: { ...headers, 'Content-Type': ct }, body: CTX });
      assert.deepEqual(json200(r, `${label} REPORT Content-Type ${ct}`), { both: RESULTS.both }, `${label} REPORT Content-Type ${ct}`);
    }
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx']) {
      const r = await call(relay, 'REPORT', path, { headers: { ...headers, 'Content-Type': ct }, body: CTX });
      assert.equal(r.status, 415, `${label} REPORT Content-Type ${ct}: status ${r.status}, body ${r.text}`);
      assert.match(r.text, /application\/json/, `${label} 415 body names the expected type`);
    }
  }
});

relayTest('a REPORT body over listen.maxBodyBytes → 413; one under it → 200', async (t, s) => {
  const { relay } = await setup(s, { flags: [fBoth], extra: { listen: { maxBodyBytes: 2048 } } });
  const small = { kind: 'user', key: 'ctx-1', name: 'x'.repeat(1500) };
  const big = { kind: 'user', key: 'ctx-1', name: 'x'.repeat(5000) };
  for (const [label, path, headers] of [
    ['server', '/sdk/evalx/context', auth(SDK)],
    ['mobile', '/msdk/evalx/context', auth(MOB)],
    ['browser', `/sdk/evalx/${ENV}/context`, {}],
  ]) {
    json200(await call(relay, 'REPORT', path, { headers, body: small }), `${label} REPORT of ${JSON.stringify(small).length} bytes`);
    const r = await call(relay, 'REPORT', path, { headers, body: big });
    assert.equal(r.status, 413, `${label} REPORT of ${JSON.stringify(big).length} bytes: status ${r.status}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Before data

relayTest('before the environment has data: evalx → 503 {"message":"Service not initialized"}, streams stay silent until the first put', async (t, s) => {
  const up = await s.upstream({ sdkKey: SDK, flags: {}, sendPut: false });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  await up.waitForOpenStream(SDK, 5000);
  for (const [label, method, path, headers, body] of evalxRoutes()) {
    const r = await call(relay, method, path, { headers, body });
    assertJsonMessage(r, 503, `${label} before data`, 'Service not initialized');
  }
  const b = b64url(CTX);
  const streams = {
    '/eval/{envId}/{b64}': await s.sse(`${relay.url}/eval/${ENV}/${b}`),
    'REPORT /eval/{envId}': await openSseWithBody(`${relay.url}/eval/${ENV}`, CTX),
    '/meval/{b64}': await s.sse(`${relay.url}/meval/${b}`, { headers: auth(MOB) }),
    'REPORT /meval': await openSseWithBody(`${relay.url}/meval`, CTX, { headers: auth(MOB) }),
    '/ping/{envId}': await s.sse(`${relay.url}/ping/${ENV}`),
    '/mping': await s.sse(`${relay.url}/mping`, { headers: auth(MOB) }),
  };
  for (const c of Object.values(streams)) s.defer(() => c.close());
  for (const [label, c] of Object.entries(streams)) assertSseHeaders(c, label);
  await Promise.all(Object.values(streams).map((c) => c.expectNoEvent(600)));

  up.pushPut({ flags: byKey(fServer, fMobile, fBrowser, fBoth), segments: {} });
  const expectPut = async (label, audience) => {
    const ev = await streams[label].nextEvent(5000);
    assert.equal(ev.event, 'put', `${label}: first event after the data arrived: ${ev.event} ${ev.data}`);
    assert.deepEqual(ev.json(), {
      both: RESULTS.both,
      ...(audience === 'browser' ? { 'browser-only': RESULTS['browser-only'] } : { 'mobile-only': RESULTS['mobile-only'] }),
    }, `${label}: put data`);
  };
  await expectPut('/eval/{envId}/{b64}', 'browser');
  await expectPut('REPORT /eval/{envId}', 'browser');
  await expectPut('/meval/{b64}', 'mobile');
  await expectPut('REPORT /meval', 'mobile');
  for (const label of ['/ping/{envId}', '/mping']) {
    const ev = await streams[label].nextEvent(5000);
    assert.equal(ev.event, 'ping', `${label}: event after the data arrived: ${ev.event}`);
  }
  for (const [label, method, path, headers, body] of evalxRoutes()) {
    json200(await call(relay, method, path, { headers, body }), `${label} after data`);
  }
});

// ---------------------------------------------------------------------------------------------
// CORS

relayTest('CORS: preflight headers per route, allowedOrigin/allowedHeader, on 200/400/415 of browser routes, none on server/mobile routes', async (t, s) => {
  const { relay } = await setup(s, {
    flags: [fBoth],
    upstream: { environments: { [KEYS.staging]: { flags: byKey(fBoth) } } },
    environments: {
      ...prodEnv({ allowedOrigin: ['https://a.example', 'https://b.example'], allowedHeader: ['X-Custom-One', 'X-Custom-Two'] }),
      staging: { sdkKey: KEYS.staging, mobileKey: KEYS.stagingMobile, envId: KEYS.stagingEnvId },
    },
  });
  const b = b64url(CTX);
  const preflights = [
    [`/sdk/evalx/${ENV}/contexts/${b}`, 'GET,OPTIONS'],
    [`/sdk/evalx/${ENV}/users/${b}`, 'GET,OPTIONS'],
    [`/sdk/evalx/${ENV}/context`, 'REPORT,OPTIONS'],
    [`/sdk/evalx/${ENV}/user`, 'REPORT,OPTIONS'],
    [`/eval/${ENV}/${b}`, 'GET,OPTIONS'],
    [`/eval/${ENV}`, 'REPORT,OPTIONS'],
    [`/ping/${ENV}`, 'GET,OPTIONS'],
  ];
  for (const [path, methods] of preflights) {
    const pre = { 'Access-Control-Request-Method': methods.split(',')[0], 'Access-Control-Request-Headers': 'content-type,x-custom-one' };
    // A listed origin is echoed.
    let r = await call(relay, 'OPTIONS', path, { headers: { Origin: 'https://b.example', ...pre } });
    assert.equal(r.status, 200, `OPTIONS ${path}: status ${r.status} ${r.text}`);
    assert.equal(r.body.length, 0, `OPTIONS ${path}: empty body`);
    const allowed = assertCors(r, `OPTIONS ${path} (listed origin)`, { origin: 'https://b.example', methods });
    assert.ok(allowed.includes('x-custom-one') && allowed.includes('x-custom-two'), `OPTIONS ${path}: allowedHeader values missing: ${r.headers['access-control-allow-headers']}`);
    // An unlisted origin gets the first configured one.
    r = await call(relay, 'OPTIONS', path, { headers: { Origin: 'https://evil.example', ...pre } });
    assertCors(r, `OPTIONS ${path} (unlisted origin)`, { origin: 'https://a.example', methods });
    // No allowedOrigin list: the request Origin is echoed, '*' without one; no extra headers.
    const stagingPath = path.replace(ENV, KEYS.stagingEnvId);
    r = await call(relay, 'OPTIONS', stagingPath, { headers: { Origin: 'https://anywhere.example', ...pre } });
    const stagingAllowed = assertCors(r, `OPTIONS ${stagingPath} (no list)`, { origin: 'https://anywhere.example', methods });
    assert.ok(!stagingAllowed.includes('x-custom-one'), 'allowedHeader of another environment must not leak');
    r = await call(relay, 'OPTIONS', stagingPath, { headers: pre });
    assertCors(r, `OPTIONS ${stagingPath} (no Origin)`, { origin: '*', methods });
  }

  // CORS headers on the real responses of browser routes: 200, 400, 415.
  const origin = { Origin: 'https://a.example' };
  let r = await call(relay, 'GET', `/sdk/evalx/${ENV}/contexts/${b}`, { headers: origin });
  json200(r, 'browser GET');
  assertCors(r, 'browser GET 200', { origin: 'https://a.example', methods: 'GET,OPTIONS' });
  r = await call(relay, 'REPORT', `/sdk/evalx/${ENV}/context`, { headers: origin, body: CTX });
  json200(r, 'browser REPORT');
  assertCors(r, 'browser REPORT 200', { origin: 'https://a.example', methods: 'REPORT,OPTIONS' });
  r = await call(relay, 'GET', `/sdk/evalx/${ENV}/contexts/!!!`, { headers: origin });
  assertJsonMessage(r, 400, 'browser GET bad base64');
  assertCors(r, 'browser GET 400', { origin: 'https://a.example', methods: 'GET,OPTIONS' });
  r = await call(relay, 'REPORT', `/sdk/evalx/${ENV}/context`, { headers: origin, body: { kind: 'user' } });
  assertJsonMessage(r, 400, 'browser REPORT without key', "User must have a 'key' attribute");
  assertCors(r, 'browser REPORT 400', { origin: 'https://a.example', methods: 'REPORT,OPTIONS' });
  r = await call(relay, 'REPORT', `/sdk/evalx/${ENV}/context`, { headers: { ...origin, 'Content-Type': 'text/plain' }, body: CTX });
  assert.equal(r.status, 415);
  assertCors(r, 'browser REPORT 415', { origin: 'https://a.example', methods: 'REPORT,OPTIONS' });

  // Server and mobile routes carry none, on success or error.
  for (const [label, method, path, headers, body] of evalxRoutes().filter((x) => x[5] !== 'browser')) {
    r = await call(relay, method, path, { headers: { ...headers, Origin: 'https://a.example' }, body });
    json200(r, label);
    assertNoCors(r, `${label} 200`);
  }
  r = await call(relay, 'GET', '/sdk/evalx/contexts/!!!', { headers: { ...auth(SDK), Origin: 'https://a.example' } });
  assertJsonMessage(r, 400, 'server bad base64');
  assertNoCors(r, 'server 400');
  r = await call(relay, 'REPORT', '/msdk/evalx/context', { headers: { ...auth(MOB), Origin: 'https://a.example' }, body: { kind: 'user' } });
  assertJsonMessage(r, 400, 'mobile REPORT without key');
  assertNoCors(r, 'mobile 400');
  r = await call(relay, 'OPTIONS', '/sdk/evalx/context', { headers: { ...auth(SDK), Origin: 'https://a.example' } });
  assert.equal(r.status, 405, `OPTIONS on a server route: ${r.status}`);
  assertNoCors(r, 'OPTIONS on a server route');
});

// ---------------------------------------------------------------------------------------------
// Secure mode

relayTest('secure mode: correct h (HMAC-SHA256 of the fully-qualified key) → 200, missing/wrong → 400; not enforced for SDK-key or mobile routes', async (t, s) => {
  const { relay } = await setup(s, { flags: [fBoth, fBrowser, fMobile], env: { secureMode: true } });
  const MSG = 'Environment is in secure mode, and context hash does not match.';
  const cases = [
    ['user', { kind: 'user', key: 'ctx-1' }, 'ctx-1'],
    ['old user', { key: 'ctx-1', name: 'Ada' }, 'ctx-1'],
    ['org', { kind: 'org', key: 'o1' }, 'org:o1'],
    ['org key with ":" and "%"', { kind: 'org', key: 'a:b%c' }, 'org:a%3Ab%25c'],
    ['multi', { kind: 'multi', user: { key: 'u1' }, org: { key: 'o1' } }, 'org:o1:user:u1'],
    ['multi, kinds given in reverse', { kind: 'multi', org: { key: 'o1' }, device: { key: 'd:1' }, user: { key: 'u1' } }, 'device:d%3A1:org:o1:user:u1'],
  ];
  const browserResult = { both: RESULTS.both, 'browser-only': RESULTS['browser-only'] };
  for (const [label, ctx, fqKey] of cases) {
    const h = secureHash(SDK, fqKey);
    const getPath = `/sdk/evalx/${ENV}/contexts/${b64url(ctx)}`;
    assert.deepEqual(json200(await call(relay, 'GET', `${getPath}?h=${h}`), `${label}: GET with h`), browserResult, `${label}: GET results`);
    assert.deepEqual(
      json200(await call(relay, 'GET', `${getPath}?withReasons=true&h=${h}`), `${label}: GET with h after another parameter`)['browser-only'],
      { ...RESULTS['browser-only'], reason: FALLTHROUGH },
      `${label}: h as the second query parameter`,
    );
    json200(await call(relay, 'REPORT', `/sdk/evalx/${ENV}/context?h=${h}`, { body: ctx }), `${label}: REPORT with h`);
    const wrongs = [
      ['no h', ''],
      ['empty h', '?h='],
      ['h of the bare key', `?h=${secureHash(SDK, ctx.key ?? ctx.user.key)}`],
      ['h keyed by the mobile key', `?h=${secureHash(MOB, fqKey)}`],
      ['h upper-case', `?h=${h.toUpperCase()}`],
      ['h truncated', `?h=${h.slice(0, 63)}`],
    ].filter(([what]) => !(what === 'h of the bare key' && fqKey === (ctx.key ?? '')));
    for (const [what, q] of wrongs) {
      const r = await call(relay, 'GET', `${getPath}${q}`, { headers: { Origin: 'https://app.example' } });
      assertJsonMessage(r, 400, `${label}: GET with ${what}`, MSG);
      assert.equal(r.headers['access-control-allow-origin'], 'https://app.example', `${label}: secure-mode 400 carries CORS headers`);
      const rr = await call(relay, 'REPORT', `/sdk/evalx/${ENV}/user${q}`, { body: ctx });
      assertJsonMessage(rr, 400, `${label}: REPORT with ${what}`, MSG);
    }
  }

  // Streams: /eval is enforced, /ping is not.
  const ctx = { kind: 'user', key: 'ctx-1' };
  const h = secureHash(SDK, 'ctx-1');
  let c = await s.sse(`${relay.url}/eval/${ENV}/${b64url(ctx)}?h=${h}`);
  assertSseHeaders(c, '/eval with h');
  assert.deepEqual((await c.nextEvent(5000)).json(), browserResult, '/eval with h: put');
  c = await s.sse(`${relay.url}/eval/${ENV}/${b64url(ctx)}`);
  assert.equal(c.status, 400, `/eval without h: status ${c.status}`);
  c = await s.sse(`${relay.url}/eval/${ENV}/${b64url(ctx)}?h=${secureHash(SDK, 'other')}`);
  assert.equal(c.status, 400, `/eval with a wrong h: status ${c.status}`);
  c = await openSseWithBody(`${relay.url}/eval/${ENV}?h=${h}`, ctx);
  s.defer(() => c.close());
  assert.equal(c.status, 200, `REPORT /eval with h: status ${c.status} ${c.body}`);
  assert.equal((await c.nextEvent(5000)).event, 'put');
  c = await openSseWithBody(`${relay.url}/eval/${ENV}`, ctx);
  s.defer(() => c.close());
  assert.equal(c.status, 400, `REPORT /eval without h: status ${c.status}`);
  c = await s.sse(`${relay.url}/ping/${ENV}`);
  assert.equal(c.status, 200, `/ping is not subject to secure mode: ${c.status}`);
  assert.equal((await c.nextEvent(5000)).event, 'ping');

  // Not enforced with the SDK key or the mobile key.
  const b = b64url(ctx);
  json200(await call(relay, 'GET', `/sdk/evalx/contexts/${b}`, { headers: auth(SDK) }), 'server evalx without h');
  json200(await call(relay, 'REPORT', '/sdk/evalx/context', { headers: auth(SDK), body: ctx }), 'server REPORT without h');
  json200(await call(relay, 'GET', `/msdk/evalx/contexts/${b}`, { headers: auth(MOB) }), 'mobile evalx without h');
  json200(await call(relay, 'REPORT', '/msdk/evalx/context', { headers: auth(MOB), body: ctx }), 'mobile REPORT without h');
  c = await s.sse(`${relay.url}/meval/${b}`, { headers: auth(MOB) });
  assert.equal(c.status, 200, `/meval without h: ${c.status}`);
  assert.equal((await c.nextEvent(5000)).event, 'put');
});

// ---------------------------------------------------------------------------------------------
// Evaluated client streams

const S_BOTH = makeFlag('both', 6, 'all', vis(true, true));
const S_SERVER = makeFlag('server-only', 3, 'srv');
const S_MOBILE = makeFlag('mobile-only', 4, 'mob', vis(true, false));
const S_BROWSER = makeFlag('browser-only', 5, 'web', vis(false, true));
const S_SEG = makeFlag('seg-flag', 9, 'out', {
  ...vis(true, true),
  rules: [{ id: 'in-seg', clauses: [{ attribute: 'key', op: 'segmentMatch', values: ['seg-a'], negate: false }], variation: 1, trackEvents: false }],
});
const SEG_A = makeSegment('seg-a', 1, []);
const SEG_OTHER = makeSegment('seg-other', 1, []);

const STREAMS = [
  {
    name: 'GET /eval/{envId}/{b64}',
    audience: 'browser',
    open: (s, relay, q = '', headers = {}) => s.sse(`${relay.url}/eval/${ENV}/${b64url(CTX)}${q}`, { headers }),
  },
  {
    name: 'REPORT /eval/{envId}',
    audience: 'browser',
    open: async (s, relay, q = '', headers = {}) => {
      const c = await openSseWithBody(`${relay.url}/eval/${ENV}${q}`, CTX, { headers });
      s.defer(() => c.close());
      return c;
    },
  },
  {
    name: 'GET /meval/{b64}',
    audience: 'mobile',
    open: (s, relay, q = '', headers = {}) => s.sse(`${relay.url}/meval/${b64url(CTX)}${q}`, { headers: { ...auth(MOB), ...headers } }),
  },
  {
    name: 'REPORT /meval',
    audience: 'mobile',
    open: async (s, relay, q = '', headers = {}) => {
      const c = await openSseWithBody(`${relay.url}/meval${q}`, CTX, { headers: { ...auth(MOB), ...headers } });
      s.defer(() => c.close());
      return c;
    },
  },
];

async function nextOf(c, type, what) {
  const ev = await c.nextEvent(5000);
  assert.equal(ev.event, type, `${what}: expected a ${type} event, got ${ev.event} ${ev.data.slice(0, 300)}`);
  return ev.json();
}

for (const variant of STREAMS) {
  relayTest(`${variant.name}: put of the evaluated map, patch/delete per changed flag, silence for changes it cannot see, put after a segment change`, async (t, s) => {
    const { up, relay } = await setup(s, { flags: [S_BOTH, S_SERVER, S_MOBILE, S_BROWSER, S_SEG], segments: [SEG_A, SEG_OTHER] });
    const audience = variant.audience;
    const origin = 'https://app.example';
    const c = await variant.open(s, relay, '', { Origin: origin });
    assertSseHeaders(c, variant.name);
    if (audience === 'browser') {
      assert.ok([origin, '*'].includes(c.headers['access-control-allow-origin']), `${variant.name}: Access-Control-Allow-Origin ${c.headers['access-control-allow-origin']}`);
    }

    // put: the same map as the evalx response for this audience.
    const put = await nextOf(c, 'put', 'first event');
    assert.deepEqual(put, await evalx(relay, audience), `${variant.name}: put data equals the ${audience} evalx response`);
    const own = audience === 'browser' ? 'browser-only' : 'mobile-only';
    assert.deepEqual(Object.keys(put).sort(), ['both', own, 'seg-flag'].sort(), `${variant.name}: visible flags`);
    assert.deepEqual(put['seg-flag'], { value: 'out', variation: 0, version: 9 });

    // A flag change that alters this context's result → patch.
    up.pushPatch(makeFlag('both', 7, 'all-2', vis(true, true)));
    let ev = await nextOf(c, 'patch', 'after a patch of "both"');
    assert.deepEqual(ev, { key: 'both', value: 'all-2', variation: 0, version: 7 }, 'patch data');

    // A stale patch (version not above the one held) changes nothing → nothing.
    up.pushPatchOnly(makeFlag('both', 7, 'stale', vis(true, true)));
    await c.expectNoEvent(500);
    // A new version serving the same value: the result's version changed, so the SDK gets a
    // patch carrying it (its events must report the current flag version).
    up.pushPatch(makeFlag('both', 8, 'all-2', { ...vis(true, true), salt: 'another-salt' }));
    ev = await nextOf(c, 'patch', 'after a version-only change of "both"');
    assert.deepEqual(ev, { key: 'both', value: 'all-2', variation: 0, version: 8 }, 'patch data of a version-only change');

    // Changes this stream cannot see → nothing.
    up.pushPatch(makeFlag('server-only', 4, 'srv-2'));
    await c.expectNoEvent(500);
    up.pushPatch(makeFlag(audience === 'browser' ? 'mobile-only' : 'browser-only', 9, 'other-audience'));
    await c.expectNoEvent(500);
    up.pushPatchSegment(makeSegment('seg-other', 2, ['someone-else']));
    await c.expectNoEvent(500);
    // Those changes did reach the relay (the silence is the stream's doing).
    assert.equal((await evalx(relay, 'server'))['server-only'].value, 'srv-2', 'the server-only patch was applied');

    // A segment change that alters the result without a flag version change → a new put.
    up.pushPatchSegment(makeSegment('seg-a', 2, ['ctx-1']));
    ev = await nextOf(c, 'put', 'after seg-a includes the context');
    assert.deepEqual(ev['seg-flag'], { value: 'out-off', variation: 1, version: 9 }, 'seg-flag after the segment change');
    assert.deepEqual(ev, await evalx(relay, audience), 'the new put equals the evalx response');

    // A new visible flag → patch.
    up.pushPatch(makeFlag('added', 1, 'new', vis(true, true)));
    ev = await nextOf(c, 'patch', 'after a new flag');
    assert.deepEqual(ev, { key: 'added', value: 'new', variation: 0, version: 1 }, 'patch data of a new flag');

    // Delete → delete with a version above the one the SDK holds.
    up.pushDelete('flags', 'both', 9);
    ev = await nextOf(c, 'delete', 'after deleting "both"');
    assert.deepEqual(Object.keys(ev).sort(), ['key', 'version'], `delete data fields: ${JSON.stringify(ev)}`);
    assert.equal(ev.key, 'both');
    assert.ok(Number.isInteger(ev.version) && ev.version > 8, `delete version ${ev.version} must be above 8 (the version the SDK holds)`);
    const after = await evalx(relay, audience);
    assert.ok(!('both' in after), 'the deleted flag is gone from evalx too');
    // An upstream put that changes nothing for this context (e.g. after a reconnect) → nothing.
    up.pushPut(up.data());
    await c.expectNoEvent(500);
    assert.equal(c.isClosed, false, 'stream still open');
    assert.ok(c.comments >= 1, `heartbeat comments on the client stream (streams.heartbeatInterval 1s): ${c.comments}`);
  });
}

relayTest('client streams with ?withReasons=true include reasons; stream credentials and bad contexts are refused', async (t, s) => {
  const { relay } = await setup(s, { flags: [S_BOTH, S_SERVER, S_MOBILE, S_BROWSER, S_SEG], segments: [SEG_A] });
  for (const variant of STREAMS) {
    const c = await variant.open(s, relay, '?withReasons=true');
    const put = await nextOf(c, 'put', `${variant.name}?withReasons=true`);
    assert.deepEqual(put, await evalx(relay, variant.audience, CTX, '?withReasons=true'), `${variant.name}: put with reasons equals evalx with reasons`);
    for (const [k, v] of Object.entries(put)) assert.deepEqual(v.reason, FALLTHROUGH, `${variant.name}: reason of ${k}`);
  }
  const b = b64url(CTX);
  const refused = [
    ['/meval with the SDK key', () => s.sse(`${relay.url}/meval/${b}`, { headers: auth(SDK) }), 401],
    ['/meval with a wrong key', () => s.sse(`${relay.url}/meval/${b}`, { headers: auth(KEYS.wrong) }), 401],
    ['/meval without a key', () => s.sse(`${relay.url}/meval/${b}`), 401],
    ['REPORT /meval with the SDK key', () => openSseWithBody(`${relay.url}/meval`, CTX, { headers: auth(SDK) }), 401],
    ['/mping with the SDK key', () => s.sse(`${relay.url}/mping`, { headers: auth(SDK) }), 401],
    ['/eval with an unknown envId', () => s.sse(`${relay.url}/eval/ffffffffffffffffffffffff/${b}`), 404],
    ['REPORT /eval with an unknown envId', () => openSseWithBody(`${relay.url}/eval/ffffffffffffffffffffffff`, CTX), 404],
    ['/ping with an unknown envId', () => s.sse(`${relay.url}/ping/ffffffffffffffffffffffff`), 404],
    ['/eval with bad base64', () => s.sse(`${relay.url}/eval/${ENV}/!!!`), 400],
    ['/meval with a keyless context', () => s.sse(`${relay.url}/meval/${b64url({ kind: 'user' })}`, { headers: auth(MOB) }), 400],
    ['REPORT /eval with text/plain', () => openSseWithBody(`${relay.url}/eval/${ENV}`, CTX, { headers: { 'Content-Type': 'text/plain' } }), 415],
    ['REPORT /meval with bad JSON', () => openSseWithBody(`${relay.url}/meval`, '{nope', { headers: auth(MOB) }), 400],
  ];
  for (const [label, open, status] of refused) {
    const c = await open();
    s.defer(() => c.close());
    assert.equal(c.status, status, `${label}: status ${c.status}, body ${c.body.slice(0, 200)}`);
    if (status === 404) assert.equal(c.headers['access-control-allow-origin'], undefined, `${label}: no CORS on an unknown envId`);
  }
});

// ---------------------------------------------------------------------------------------------
// Ping streams

for (const [name, url, headers] of [
  ['GET /mping', (relay) => `${relay.url}/mping`, auth(MOB)],
  ['GET /ping/{envId}', (relay) => `${relay.url}/ping/${ENV}`, {}],
]) {
  relayTest(`${name}: a ping on connect with data, and one after each change`, async (t, s) => {
    const { up, relay } = await setup(s, { flags: [S_BOTH, S_SERVER], segments: [SEG_A] });
    const c = await s.sse(url(relay), { headers });
    assertSseHeaders(c, name);
    assert.equal((await c.nextEvent(5000)).event, 'ping', 'ping on connect');
    await c.expectNoEvent(300);
    up.pushPatch(makeFlag('both', 7, 'all-2', vis(true, true)));
    assert.equal((await c.nextEvent(5000)).event, 'ping', 'ping after a flag patch');
    await c.expectNoEvent(300);
    up.pushPatch(makeFlag('server-only', 4, 'srv-2'));
    assert.equal((await c.nextEvent(5000)).event, 'ping', 'ping after a patch of any flag');
    up.pushPatchSegment(makeSegment('seg-a', 2, ['x']));
    assert.equal((await c.nextEvent(5000)).event, 'ping', 'ping after a segment patch');
    up.pushDelete('flags', 'both', 8);
    assert.equal((await c.nextEvent(5000)).event, 'ping', 'ping after a delete');
    up.pushPut({ flags: byKey(S_SERVER), segments: {} });
    assert.equal((await c.nextEvent(5000)).event, 'ping', 'ping after a put');
    await c.expectNoEvent(300);
    if (name.includes('/ping/')) {
      const pre = await call(relay, 'OPTIONS', `/ping/${ENV}`, { headers: { Origin: 'https://app.example' } });
      assertCors(pre, 'OPTIONS /ping', { origin: 'https://app.example', methods: 'GET,OPTIONS' });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Metrics

relayTest('flagrelay_http_requests_total labels the client-side routes by template', async (t, s) => {
  const { relay } = await setup(s, { flags: [S_BOTH] });
  const b = b64url(CTX);
  json200(await call(relay, 'GET', `/sdk/evalx/${ENV}/contexts/${b}`), 'browser GET');
  json200(await call(relay, 'GET', `/sdk/evalx/${ENV}/users/${b}`), 'browser GET users');
  json200(await call(relay, 'REPORT', `/sdk/evalx/${ENV}/context`, { body: CTX }), 'browser REPORT');
  json200(await call(relay, 'GET', `/sdk/evalx/contexts/${b}`, { headers: auth(SDK) }), 'server GET');
  json200(await call(relay, 'REPORT', '/sdk/evalx/context', { headers: auth(SDK), body: CTX }), 'server REPORT');
  json200(await call(relay, 'GET', `/msdk/evalx/contexts/${b}`, { headers: auth(MOB) }), 'mobile GET');
  json200(await call(relay, 'REPORT', '/msdk/evalx/context', { headers: auth(MOB), body: CTX }), 'mobile REPORT');
  assert.equal((await call(relay, 'GET', `/sdk/evalx/${ENV}/contexts/!!!`)).status, 400);
  assert.equal((await call(relay, 'GET', `/msdk/evalx/contexts/${b}`, { headers: auth(KEYS.wrong) })).status, 401);
  assert.equal((await call(relay, 'OPTIONS', `/eval/${ENV}`)).status, 200);
  for (const [url, headers] of [
    [`${relay.url}/eval/${ENV}/${b}`, {}],
    [`${relay.url}/meval/${b}`, auth(MOB)],
    [`${relay.url}/mping`, auth(MOB)],
    [`${relay.url}/ping/${ENV}`, {}],
  ]) {
    const c = await s.sse(url, { headers });
    await c.nextEvent(5000);
  }
  const c1 = await openSseWithBody(`${relay.url}/eval/${ENV}`, CTX);
  s.defer(() => c1.close());
  await c1.nextEvent(5000);
  const c2 = await openSseWithBody(`${relay.url}/meval`, CTX, { headers: auth(MOB) });
  s.defer(() => c2.close());
  await c2.nextEvent(5000);

  const m = await scrape(relay);
  assert.equal(m.status, 200);
  const expect = [
    ['/sdk/evalx/{envId}/contexts/{context}', 'GET', '2xx', 2],
    ['/sdk/evalx/{envId}/contexts/{context}', 'GET', '4xx', 1],
    ['/sdk/evalx/{envId}/context', 'REPORT', '2xx', 1],
    ['/sdk/evalx/contexts/{context}', 'GET', '2xx', 1],
    ['/sdk/evalx/context', 'REPORT', '2xx', 1],
    ['/msdk/evalx/contexts/{context}', 'GET', '2xx', 1],
    ['/msdk/evalx/contexts/{context}', 'GET', '4xx', 1],
    ['/msdk/evalx/context', 'REPORT', '2xx', 1],
    ['/eval/{envId}/{context}', 'GET', '2xx', 1],
    ['/eval/{envId}', 'REPORT', '2xx', 1],
    ['/meval/{context}', 'GET', '2xx', 1],
    ['/meval', 'REPORT', '2xx', 1],
    ['/mping', 'GET', '2xx', 1],
    ['/ping/{envId}', 'GET', '2xx', 1],
  ];
  const problems = [];
  for (const [route, method, status, atLeast] of expect) {
    const v = sampleSum(m.parsed, 'flagrelay_http_requests_total', { route, method, status });
    if (v === undefined || v < atLeast) problems.push(`route="${route}",method="${method}",status="${status}": ${v ?? 'missing'} (want ≥ ${atLeast})`);
  }
  const routes = [...new Set(findSamples(m.parsed, 'flagrelay_http_requests_total').map((x) => `${x.labels.method} ${x.labels.route}`))];
  assert.deepEqual(problems, [], `request counters; routes present: ${routes.join(', ')}`);
  // No per-context or per-envId label values (bounded cardinality).
  for (const r of routes) {
    assert.ok(!r.includes(b) && !r.includes(ENV), `label with a raw context or envId: ${r}`);
  }
  const preflight = sampleSum(m.parsed, 'flagrelay_http_requests_total', { method: 'OPTIONS', status: '2xx' }) ?? 0;
  assert.ok(preflight >= 1, `an OPTIONS 2xx counter for the preflight; routes present: ${routes.join(', ')}`);
});
