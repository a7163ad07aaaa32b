// Official Node server SDK (@launchdarkly/node-server-sdk) in streaming mode against the relay.
import assert from 'node:assert/strict';
import { relayTest, prodEnv } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { sdkClient, nextEmit } from '../support/sdk.mjs';

const user = (key) => ({ kind: 'user', key });

function segmentFlag(version) {
  // Serves "in-segment" to members of segment "vips", "everyone-else" otherwise.
  return makeFlag('segment-flag', version, 'in-segment', {
    variations: ['in-segment', 'everyone-else'],
    rules: [
      {
        id: 'rule-vips',
        variation: 0,
        clauses: [{ attribute: 'key', op: 'segmentMatch', values: ['vips'], negate: false }],
        trackEvents: false,
      },
    ],
    fallthrough: { variation: 1 },
    offVariation: 1,
  });
}

relayTest('streaming SDK initializes through /all, evaluates, and follows patches and deletes', async (t, s) => {
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: byKey(makeFlag('bool-flag', 1, true), makeFlag('str-flag', 1, 'hello'), segmentFlag(1)),
    segments: byKey(makeSegment('vips', 1, ['vip-user'])),
  });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });

  const client = sdkClient(s, relay, KEYS.prod, { stream: true });
  await client.waitForInitialization({ timeout: 10 });
  assert.ok(client.initialized(), 'SDK initialized');
  assert.equal(await client.variation('bool-flag', user('u1'), false), true);
  assert.equal(await client.variation('str-flag', user('u1'), 'default'), 'hello');
  assert.equal(await client.variation('segment-flag', user('vip-user'), 'default'), 'in-segment', 'segment rule (segments served)');
  assert.equal(await client.variation('segment-flag', user('u1'), 'default'), 'everyone-else');
  assert.equal(await client.variation('missing', user('u1'), 'fallback'), 'fallback');

  // Patch: upstream push -> SDK update event; measure the latency through the relay.
  const samples = [];
  for (let i = 2; i <= 6; i++) {
    const anyUpdate = nextEmit(client, 'update', 5000);
    const keyed = nextEmit(client, 'update:str-flag', 5000);
    const pushedAt = performance.now();
    up.pushPatch(makeFlag('str-flag', i, `value-${i}`));
    const [{ arg }, { at }] = await Promise.all([anyUpdate, keyed]);
    assert.equal(arg?.key, 'str-flag', `update event payload: ${JSON.stringify(arg)}`);
    samples.push(at - pushedAt);
    assert.equal(await client.variation('str-flag', user('u1'), 'default'), `value-${i}`);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const msg = `upstream push -> SDK update latency (ms): first ${samples[0].toFixed(1)}, median ${sorted[2].toFixed(1)}, max ${sorted[4].toFixed(1)}`;
  t.diagnostic(msg);
  console.log(`# ${msg}`);
  assert.ok(sorted[4] < 2000, msg);

  // Segment patch changes a segment-based evaluation.
  const segUpdate = nextEmit(client, 'update:segment-flag', 5000);
  up.pushPatchSegment(makeSegment('vips', 2, ['vip-user', 'u1']));
  await segUpdate;
  assert.equal(await client.variation('segment-flag', user('u1'), 'default'), 'in-segment');

  // Delete: the SDK falls back to the default value.
  const del = nextEmit(client, 'update:bool-flag', 5000);
  up.pushDelete('flags', 'bool-flag', 2);
  await del;
  assert.equal(await client.variation('bool-flag', user('u1'), false), false, 'deleted flag serves the default');

  // A stale patch leaves the evaluated value unchanged.
  let staleSeen = false;
  client.on('update:str-flag', () => {
    staleSeen = true;
  });
  up.pushPatchOnly(makeFlag('str-flag', 3, 'stale'));
  const marker = nextEmit(client, 'update:marker', 5000);
  up.pushPatch(makeFlag('marker', 1, 'm'));
  await marker;
  assert.equal(await client.variation('str-flag', user('u1'), 'default'), 'value-6');
  assert.equal(staleSeen, false, 'stale patch produced an SDK update');

  // allFlagsState reflects the relay's data.
  const state = await client.allFlagsState(user('u1'));
  assert.ok(state.valid);
  assert.deepEqual(
    Object.keys(state.allValues()).sort(),
    ['marker', 'segment-flag', 'str-flag'],
  );
});

relayTest('streaming SDK with a wrong SDK key fails initialization (relay answers 401)', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('f', 1, true)) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  const client = sdkClient(s, relay, KEYS.wrong, { stream: true });
  await assert.rejects(client.waitForInitialization({ timeout: 5 }), 'initialization must fail with an unknown key');
  assert.equal(client.initialized(), false);
  assert.equal(await client.variation('f', user('u1'), 'default'), 'default');
});

relayTest('several streaming SDK clients share one upstream connection and all see a patch', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('shared', 1, 'v1')) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  const clients = [0, 1, 2, 3].map((i) => sdkClient(s, relay, KEYS.prod, { stream: true }, `sdk${i}`));
  await Promise.all(clients.map((c) => c.waitForInitialization({ timeout: 10 })));
  const updates = clients.map((c) => nextEmit(c, 'update:shared', 5000));
  up.pushPatch(makeFlag('shared', 2, 'v2'));
  await Promise.all(updates);
  for (const c of clients) assert.equal(await c.variation('shared', user('u'), 'd'), 'v2');
  assert.equal(up.streamRequests(KEYS.prod).length, 1, 'one upstream stream for four SDK clients');
});
