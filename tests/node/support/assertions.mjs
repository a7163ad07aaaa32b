// Shared assertions about LaunchDarkly payloads.
import assert from 'node:assert/strict';

/** The fields that decide evaluation; the relay may re-serialize the rest. */
export function flagEssentials(f) {
  if (!f || typeof f !== 'object') return f;
  return {
    key: f.key,
    version: f.version,
    on: f.on,
    variations: f.variations,
    fallthrough: f.fallthrough,
    offVariation: f.offVariation,
  };
}

export function segmentEssentials(s) {
  if (!s || typeof s !== 'object') return s;
  return { key: s.key, version: s.version, included: s.included };
}

export function assertFlagsMap(actual, expected, msg = 'flags map') {
  assert.ok(actual && typeof actual === 'object' && !Array.isArray(actual), `${msg}: not an object: ${JSON.stringify(actual)}`);
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${msg}: keys differ`);
  for (const [k, v] of Object.entries(actual)) {
    assert.notEqual(v, null, `${msg}: item ${k} is null (deleted items must be omitted)`);
    assert.deepEqual(flagEssentials(v), flagEssentials(expected[k]), `${msg}: flag ${k} differs`);
  }
}

export function assertSegmentsMap(actual, expected, msg = 'segments map') {
  assert.ok(actual && typeof actual === 'object' && !Array.isArray(actual), `${msg}: not an object: ${JSON.stringify(actual)}`);
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${msg}: keys differ`);
  for (const [k, v] of Object.entries(actual)) {
    assert.notEqual(v, null, `${msg}: item ${k} is null (deleted items must be omitted)`);
    assert.deepEqual(segmentEssentials(v), segmentEssentials(expected[k]), `${msg}: segment ${k} differs`);
  }
}

/** `/all` put event: {"path":"/","data":{"flags":{...},"segments":{...}}}. */
export function assertAllPut(ev, flags, segments, msg = '/all put') {
  assert.equal(ev.event, 'put', `${msg}: expected a put event, got ${ev.event}: ${ev.data.slice(0, 300)}`);
  const body = ev.json();
  assert.equal(body.path, '/', `${msg}: path`);
  assert.ok(body.data && typeof body.data === 'object', `${msg}: data missing`);
  assertFlagsMap(body.data.flags, flags, `${msg} flags`);
  assertSegmentsMap(body.data.segments, segments, `${msg} segments`);
  return body;
}

export function assertSseHeaders(c, msg = 'SSE response') {
  assert.equal(c.status, 200, `${msg}: status ${c.status}, body ${c.body.slice(0, 200)}`);
  assert.equal(
    c.headers['content-type']?.toLowerCase().replace(/\s+/g, ''),
    'text/event-stream;charset=utf-8',
    `${msg}: Content-Type ${c.headers['content-type']}`,
  );
  assert.equal(c.headers['x-accel-buffering'], 'no', `${msg}: X-Accel-Buffering`);
  assert.equal(c.headers['content-encoding'], undefined, `${msg}: SSE must not be compressed`);
}
