// The reference side of the differential evaluation test: the official Node server SDK
// (@launchdarkly/node-server-sdk) fed the same data as the relay, its allFlagsState() converted to
// the shape of the relay's evalx responses (protocol reference §1.5), and a field-by-field diff.
import { isDeepStrictEqual } from 'node:util';
import { init } from '@launchdarkly/node-server-sdk';

/** A logger that counts and keeps the first few lines per level (the SDK logs every eval error). */
export function countingLogger(keep = 20) {
  const counts = { error: 0, warn: 0, info: 0, debug: 0 };
  const lines = [];
  const log = (level) => (...args) => {
    counts[level]++;
    if (lines.length < keep && level !== 'debug') lines.push(`${level}: ${args.map(String).join(' ')}`);
  };
  return { logger: { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug') }, counts, lines };
}

/**
 * Starts the SDK in streaming mode against `upstreamUrl` (the fake upstream's GET /all), no events.
 * Resolves once it is initialized. Caller closes it.
 */
export async function startSdk(upstreamUrl, sdkKey, logger) {
  const client = init(sdkKey, {
    streamUri: upstreamUrl,
    baseUri: upstreamUrl,
    eventsUri: upstreamUrl,
    sendEvents: false,
    diagnosticOptOut: true,
    stream: true,
    logger,
  });
  try {
    await client.waitForInitialization({ timeout: 15 });
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
}

/**
 * allFlagsState() in the relay's evalx shape: {flagKey: {value, variation, version, trackEvents?,
 * trackReason?, reason?, debugEventsUntilDate?, prerequisites?}}.
 * `filter(flagKey)` drops flags (mobile: usingMobileKey only).
 */
export async function sdkEvalx(client, context, { clientSideOnly = false, withReasons = true, filter = null } = {}) {
  const state = await client.allFlagsState(context, { withReasons, clientSideOnly });
  if (!state.valid) throw new Error(`SDK: invalid allFlagsState for context ${JSON.stringify(context)}`);
  return stateToEvalx(state.toJSON(), filter);
}

/**
 * allFlagsState's JSON (values at the top, metadata under `$flagsState`) in the relay's evalx
 * shape, keys sorted; `filter(key)` may leave flags out.
 */
export function stateToEvalx(json, filter = null) {
  const out = {};
  for (const key of Object.keys(json.$flagsState).sort()) {
    if (filter && !filter(key)) continue;
    const meta = json.$flagsState[key];
    const e = { value: json[key] === undefined ? null : json[key], variation: meta.variation ?? null, version: meta.version };
    if (meta.trackEvents) e.trackEvents = true;
    if (meta.trackReason) e.trackReason = true;
    if (meta.reason) e.reason = meta.reason;
    if (meta.debugEventsUntilDate) e.debugEventsUntilDate = meta.debugEventsUntilDate;
    if (meta.prerequisites?.length) e.prerequisites = meta.prerequisites;
    out[key] = e;
  }
  return out;
}

/** The relay's entry with the one tolerated representation difference removed. */
function normalizeRelayEntry(e) {
  if (!e || typeof e !== 'object' || Array.isArray(e)) return e;
  const out = { ...e };
  // null / absent / 0 all mean "no debugging" (ld-relay writes it only when non-zero).
  if (out.debugEventsUntilDate === null || out.debugEventsUntilDate === 0) delete out.debugEventsUntilDate;
  return out;
}

/**
 * Differences between the SDK's map and the relay's body for one request.
 * Returns [{flagKey, field, sdk, relay}], one per differing flag (field lists what differs).
 */
export function diffEvalx(expected, actual) {
  const diffs = [];
  if (!actual || typeof actual !== 'object' || Array.isArray(actual)) {
    return [{ flagKey: '*', field: 'body', sdk: '(object)', relay: actual }];
  }
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  for (const key of [...keys].sort()) {
    const sdk = expected[key];
    const relay = normalizeRelayEntry(actual[key]);
    if (sdk === undefined) {
      diffs.push({ flagKey: key, field: 'extra flag in relay response', sdk, relay });
      continue;
    }
    if (relay === undefined) {
      diffs.push({ flagKey: key, field: 'flag missing from relay response', sdk, relay });
      continue;
    }
    const fields = new Set([...Object.keys(sdk), ...(relay && typeof relay === 'object' ? Object.keys(relay) : [])]);
    const differing = [];
    for (const f of fields) {
      if (isDeepStrictEqual(sdk[f], relay?.[f])) continue;
      // Known divergence 1: with an ERROR result the prerequisite list may differ.
      if (f === 'prerequisites' && sdk.reason?.kind === 'ERROR') continue;
      differing.push(f);
    }
    if (differing.length) diffs.push({ flagKey: key, field: differing.sort().join(','), sdk, relay: actual[key] });
  }
  return diffs;
}

/** Coverage figures of one SDK result map (reason kinds etc.), accumulated into `acc`. */
export function accumulateCoverage(acc, map) {
  for (const e of Object.values(map)) {
    const r = e.reason ?? {};
    const k = r.kind ?? 'none';
    acc[k] = (acc[k] ?? 0) + 1;
    if (r.kind === 'ERROR') acc[`ERROR:${r.errorKind}`] = (acc[`ERROR:${r.errorKind}`] ?? 0) + 1;
    if (r.inExperiment) acc.inExperiment = (acc.inExperiment ?? 0) + 1;
    if (r.bigSegmentsStatus) acc[`bigSegments:${r.bigSegmentsStatus}`] = (acc[`bigSegments:${r.bigSegmentsStatus}`] ?? 0) + 1;
    if (e.trackReason) acc.trackReason = (acc.trackReason ?? 0) + 1;
    if (e.trackEvents) acc.trackEvents = (acc.trackEvents ?? 0) + 1;
    if (e.prerequisites) acc.withPrerequisites = (acc.withPrerequisites ?? 0) + 1;
    if (e.variation === null) acc.nullVariation = (acc.nullVariation ?? 0) + 1;
    if (e.debugEventsUntilDate) acc.debugEventsUntilDate = (acc.debugEventsUntilDate ?? 0) + 1;
  }
  return acc;
}
