// Data and set-up shared by the browser tests: flags whose evaluation for the test contexts is
// known, a relay with one JS-enabled environment in front of the fake upstream, and the page.
import { makeFlag, makeSegment, byKey, KEYS } from '../support/flags.mjs';
import { openSdkPage } from '../support/browser.mjs';
import { waitEnv } from '../support/faults.mjs';
import { b64url } from '../support/contexts.mjs';

export const ENV_ID = KEYS.prodEnvId;
export const SDK_KEY = KEYS.prod;

/** The page's context: targeted by key, matched by the country rule. */
export const ADA = { kind: 'user', key: 'browser-user-1', name: 'Ada', country: 'fr' };
/** A second context that matches neither. */
export const BOB = { kind: 'user', key: 'browser-user-2', name: 'Bob', country: 'us' };

/** Overrides that make a flag invisible to JS. */
export const NOT_JS_OVERRIDES = { clientSideAvailability: { usingEnvironmentId: false, usingMobileKey: false }, clientSide: false };
const JS = { clientSideAvailability: { usingEnvironmentId: true, usingMobileKey: false }, clientSide: true };
const MOBILE_ONLY = { clientSideAvailability: { usingEnvironmentId: false, usingMobileKey: true }, clientSide: false };

export function countryRule(countries, id = 'rule-country') {
  return { id, clauses: [{ contextKind: 'user', attribute: 'country', op: 'in', values: countries, negate: false }], variation: 0, trackEvents: false };
}

export const FLAGS = {
  targeted: makeFlag('targeted', 1, 'for-you', {
    ...JS,
    variations: ['for-you', 'for-others'],
    targets: [{ variation: 0, values: [ADA.key] }],
    fallthrough: { variation: 1 },
  }),
  byCountry: makeFlag('by-country', 1, 'bonjour', {
    ...JS,
    variations: ['bonjour', 'hello'],
    rules: [countryRule(['fr'])],
    fallthrough: { variation: 1 },
  }),
  number: makeFlag('everyone-number', 1, 42, JS),
  off: makeFlag('switched-off', 1, true, { ...JS, on: false }),
  json: makeFlag('json-flag', 1, { a: 1, b: [true, 'x'] }, { ...JS, variations: [{ a: 1, b: [true, 'x'] }, {}] }),
  doomed: makeFlag('doomed', 1, 'still-here', JS),
  inSegment: makeFlag('in-segment', 1, 'beta', {
    ...JS,
    variations: ['beta', 'stable'],
    rules: [{ id: 'rule-segment', clauses: [{ attribute: 'segmentMatch', op: 'segmentMatch', values: ['beta-testers'], negate: false }], variation: 0, trackEvents: false }],
    fallthrough: { variation: 1 },
  }),
  serverOnly: makeFlag('server-only', 1, 'secret', NOT_JS_OVERRIDES),
  mobileOnly: makeFlag('mobile-only', 1, 'mobile', MOBILE_ONLY),
};

export const SEGMENTS = { betaTesters: makeSegment('beta-testers', 1, []) };

/** What the SDK must see for ADA and BOB with FLAGS (allFlags()). */
export const EXPECTED_ADA = {
  targeted: 'for-you',
  'by-country': 'bonjour',
  'everyone-number': 42,
  'switched-off': false,
  'json-flag': { a: 1, b: [true, 'x'] },
  doomed: 'still-here',
  'in-segment': 'stable',
};
export const EXPECTED_BOB = { ...EXPECTED_ADA, targeted: 'for-others', 'by-country': 'hello' };
export const INVISIBLE = ['server-only', 'mobile-only'];

/** SDK options pointing every service at the relay; no events, goals or cache. */
export function sdkOptions(relay, extra = {}) {
  return {
    baseUri: relay.url,
    streamUri: relay.url,
    eventsUri: relay.url,
    sendEvents: false,
    diagnosticOptOut: true,
    fetchGoals: false,
    disableCache: true,
    streaming: true,
    ...extra,
  };
}

/**
 * A page (first, so its origin is known), the fake upstream with FLAGS/SEGMENTS and a relay with
 * env `prod` plus `envExtra` (an object, or a function of the page origin returning one).
 */
export async function setup(s, { envExtra = {}, goto = '/' } = {}) {
  const page = await openSdkPage(s, { goto });
  const up = await s.upstream({ sdkKey: SDK_KEY, flags: byKey(...Object.values(FLAGS)), segments: byKey(...Object.values(SEGMENTS)) });
  const extra = typeof envExtra === 'function' ? envExtra(page.origin) : envExtra;
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: { prod: { sdkKey: SDK_KEY, mobileKey: KEYS.prodMobile, envId: ENV_ID, ...extra } },
  });
  // /healthz answers before the environment has data (evaluations are 503 until then).
  await waitEnv(relay, (e) => e.connectionStatus?.state === 'VALID', { timeoutMs: 10000, what: 'prod VALID' });
  return { up, relay, page };
}

/** The relay's /sdk/evalx/{envId}/contexts/{b64} URL for a context. */
export function evalxUrl(relay, context, query = '') {
  return `${relay.url}/sdk/evalx/${ENV_ID}/contexts/${b64url(context)}${query}`;
}

export function streamUrl(relay, context, query = '') {
  return `${relay.url}/eval/${ENV_ID}/${b64url(context)}${query}`;
}

/** Waits (bounded) until the page's SDK stream to the relay is open (EventSource 200). */
export function streamOpen(page, relay, path = `/eval/${ENV_ID}`) {
  return page.waitForRequest(`${relay.url}${path}`, (e) => e.method === 'GET' && e.status === 200, { timeoutMs: 10000, what: 'open SDK stream' });
}
