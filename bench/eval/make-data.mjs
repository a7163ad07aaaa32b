// Data for the client-side evaluation benchmark (issue 4): a seeded, deterministic environment of
// flags of realistic LaunchDarkly shape plus the contexts to evaluate them for.
//
//   node bench/eval/make-data.mjs --out DIR [--seed 4] [--flags 200] [--contexts 100] [--no-rollouts]
//
// Writes DIR/data.json ({"flags":{..},"segments":{..}}, the streaming `put` shape, readable by
// protocol::ParseAllData and by the Node SDK's file data source) and DIR/contexts.jsonl (one
// context object per line). Same arguments => byte-identical files (mulberry32, no Math.random/Date).
//
// Every flag: on, ~10-key user targets for two variations, contextTargets (the user placeholder
// plus an organization target), 5 rules of 2-4 clauses mixing in / startsWith / endsWith /
// contains / matches / greaterThan / semVerGreaterThan / before / segmentMatch, some rules and the
// fallthrough as percentage rollouts, boolean / string / JSON-object variations,
// clientSideAvailability {usingEnvironmentId, usingMobileKey}, salt, version, trackEvents false;
// about 10 % have a prerequisite. Segments: "beta-testers" (≈50 included keys, rules; referenced
// by the segmentMatch clauses) and "staff". `--no-rollouts` (a diagnostic variant, not the
// benchmark's data) replaces every percentage rollout by a fixed variation, everything else equal,
// to show what bucketing costs.
//
// The inputs stay clear of the known Go-vs-Node evaluation divergences listed at the top of
// tests/node/support/corpus.mjs (RFC 3339 dates with Z, plain semvers, simple regexes, non-zero
// seeds, user contextTargets entries empty, no weighted segment rules), so the C++ engine and the
// Node SDK must agree on every result; bench/eval/run.sh checks that they do.
import fs from 'node:fs';
import path from 'node:path';
import { makeRng } from '../../tests/node/support/corpus.mjs';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}


export function generate({ seed = 4, flagCount = 200, contextCount = 100, rollouts = true } = {}) {
  const rng = makeRng(seed);
  const pad = (i, n = 4) => String(i).padStart(n, '0');

  // Shared vocabularies, so that clauses sometimes match and sometimes do not.
  const userKeys = Array.from({ length: 400 }, (_, i) => `user-${pad(i)}`);
  const orgKeys = Array.from({ length: 40 }, (_, i) => `org-${pad(i, 3)}`);
  const countries = ['us', 'ca', 'gb', 'de', 'fr', 'jp', 'br', 'in', 'au', 'nl'];
  const plans = ['free', 'starter', 'pro', 'enterprise'];
  const groups = ['admins', 'beta', 'qa', 'support', 'sales', 'eng', 'design', 'ops'];
  const domains = ['example.com', 'corp.example', 'beta.example', 'mail.test', 'acme.io'];
  const firstNames = ['ana', 'bo', 'chen', 'dara', 'eli', 'fatima', 'gus', 'hana', 'ivan', 'june'];
  const lastNames = ['smith', 'ng', 'okafor', 'garcia', 'muller', 'sato', 'silva', 'patel'];
  const tiers = ['bronze', 'silver', 'gold', 'platinum'];
  const isoDate = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const DAY = 86400000;
  const EPOCH_2020 = 1577836800000;

  const segments = {
    'beta-testers': {
      key: 'beta-testers',
      version: 7,
      included: rng.sample(userKeys, 50).sort(),
      excluded: rng.sample(userKeys, 5).sort(),
      includedContexts: [{ contextKind: 'organization', values: rng.sample(orgKeys, 4).sort() }],
      excludedContexts: [],
      salt: rng.hex(32),
      rules: [
        { id: 'seg-rule-0', clauses: [{ contextKind: 'user', attribute: 'email', op: 'endsWith', values: ['@beta.example'], negate: false }] },
        { id: 'seg-rule-1', clauses: [
          { contextKind: 'user', attribute: 'groups', op: 'in', values: ['beta', 'qa'], negate: false },
          { contextKind: 'user', attribute: 'plan', op: 'in', values: ['pro', 'enterprise'], negate: false },
        ] },
      ],
      unbounded: false,
      deleted: false,
    },
    staff: {
      key: 'staff',
      version: 3,
      included: rng.sample(userKeys, 20).sort(),
      excluded: [],
      includedContexts: [],
      excludedContexts: [],
      salt: rng.hex(32),
      rules: [{ id: 'seg-rule-0', clauses: [{ contextKind: 'user', attribute: 'email', op: 'endsWith', values: ['@corp.example'], negate: false }] }],
      unbounded: false,
      deleted: false,
    },
  };

  // One clause of each kind the brief names; values are drawn from the vocabularies above.
  const clauseMakers = [
    () => ({ attribute: 'country', op: 'in', values: rng.sample(countries, rng.range(2, 4)) }),
    () => ({ attribute: 'plan', op: 'in', values: rng.sample(plans, rng.range(1, 2)) }),
    () => ({ attribute: 'groups', op: 'in', values: rng.sample(groups, rng.range(1, 3)) }),
    () => ({ attribute: 'email', op: 'endsWith', values: rng.sample(domains, rng.range(1, 2)).map((d) => `@${d}`) }),
    () => ({ attribute: 'email', op: 'startsWith', values: rng.sample(firstNames, 2).map((n) => `${n}.`) }),
    () => ({ attribute: 'name', op: 'contains', values: [rng.pick(lastNames)] }),
    () => ({ attribute: 'email', op: 'matches', values: [rng.pick(['^[a-f][a-z]*\\.[a-z]+@', '^[a-z]+\\.(smith|ng|sato)@', '@(corp|beta)\\.example$', '^[g-z][a-z]+\\.'])] }),
    () => ({ attribute: 'loginCount', op: 'greaterThan', values: [rng.range(5, 400)] }),
    () => ({ attribute: 'version', op: 'semVerGreaterThan', values: [`${rng.range(1, 4)}.${rng.range(0, 9)}.${rng.range(0, 5)}`] }),
    () => ({ attribute: 'created', op: 'before', values: [isoDate(EPOCH_2020 + rng.range(100, 1800) * DAY)] }),
    () => ({ contextKind: 'organization', attribute: 'tier', op: 'in', values: rng.sample(tiers, rng.range(1, 2)) }),
  ];
  const makeClause = () => {
    const c = rng.pick(clauseMakers)();
    return { contextKind: c.contextKind ?? 'user', attribute: c.attribute, op: c.op, values: c.values, negate: rng.chance(0.1) };
  };
  const segmentClause = () => ({ attribute: 'segmentMatch', op: 'segmentMatch', values: ['beta-testers'], negate: false });

  const variationSets = [
    () => [true, false],
    () => ['control', 'treatment-a', 'treatment-b'],
    () => [
      { color: 'blue', size: 3, enabled: true },
      { color: 'green', size: 5, enabled: true },
      { color: 'red', size: 1, enabled: false, tags: ['x', 'y'] },
    ],
  ];
  const rollout = (n) => {
    // Weights summing to 100000, one per variation.
    const cuts = Array.from({ length: n - 1 }, () => rng.range(1, 99999)).sort((a, b) => a - b);
    const bounds = [0, ...cuts, 100000];
    const r = { variations: Array.from({ length: n }, (_, v) => ({ variation: v, weight: bounds[v + 1] - bounds[v] })) };
    if (rng.chance(0.2)) r.seed = rng.range(1, 1e6);
    if (rng.chance(0.15)) r.bucketBy = 'email';
    // The variant draws the same random numbers, so everything else stays identical.
    return rollouts ? r : undefined;
  };

  const flags = {};
  const flagKeys = [];
  for (let i = 0; i < flagCount; i++) {
    const area = rng.pick(['checkout', 'search', 'onboarding', 'billing', 'profile', 'mobile', 'ui', 'api']);
    const key = `${area}-${rng.pick(['new', 'v2', 'beta', 'redesign', 'experiment', 'rollout'])}-${pad(i, 3)}`;
    const variations = variationSets[i % 3]();
    const n = variations.length;
    const rules = [];
    const segmentRule = rng.int(5);  // one rule in each flag refers to the segment
    for (let r = 0; r < 5; r++) {
      const clauses = Array.from({ length: rng.range(2, 4) }, makeClause);
      // The segmentMatch goes last (its evaluation is the most expensive, and see corpus.mjs §15).
      if (r === segmentRule) clauses[clauses.length - 1] = segmentClause();
      const rule = { id: `${key}-rule-${r}-${rng.hex(8)}`, clauses, trackEvents: false };
      if (rng.chance(0.35)) rule.rollout = rollout(n); else rule.variation = rng.int(n);
      if (rule.rollout === undefined && rule.variation === undefined) { delete rule.rollout; rule.variation = r % n; }
      rules.push(rule);
    }
    const targetVariations = rng.sample([...Array(n).keys()], 2);
    const flag = {
      key,
      version: rng.range(1, 300),
      on: true,
      prerequisites: [],
      salt: rng.hex(32),
      targets: targetVariations.map((v) => ({ values: rng.sample(userKeys, rng.range(8, 12)).sort(), variation: v })),
      contextTargets: [
        ...targetVariations.map((v) => ({ contextKind: 'user', values: [], variation: v })),
        { contextKind: 'organization', values: rng.sample(orgKeys, 3).sort(), variation: rng.int(n) },
      ],
      rules,
      fallthrough: rollouts ? { rollout: rollout(n) } : (rollout(n), { variation: i % n }),
      offVariation: n - 1,
      variations,
      clientSideAvailability: { usingEnvironmentId: true, usingMobileKey: true },
      clientSide: true,
      trackEvents: false,
      trackEventsFallthrough: false,
      debugEventsUntilDate: null,
      deleted: false,
    };
    // About 10 % depend on an earlier flag (which never errors: every variation index is valid).
    if (flagKeys.length > 0 && rng.chance(0.1)) {
      const required = flags[rng.pick(flagKeys)];
      flag.prerequisites.push({ key: required.key, variation: rng.int(required.variations.length) });
    }
    flags[key] = flag;
    flagKeys.push(key);
  }

  const contexts = [];
  for (let i = 0; i < contextCount; i++) {
    const first = rng.pick(firstNames);
    const last = rng.pick(lastNames);
    const user = {
      kind: 'user',
      key: rng.chance(0.7) ? rng.pick(userKeys) : `visitor-${rng.hex(12)}`,
      name: `${first[0].toUpperCase()}${first.slice(1)} ${last[0].toUpperCase()}${last.slice(1)}`,
      email: `${first}.${last}@${rng.pick(domains)}`,
      country: rng.pick(countries),
      plan: rng.pick(plans),
      version: `${rng.range(1, 4)}.${rng.range(0, 9)}.${rng.range(0, 9)}`,
      created: isoDate(EPOCH_2020 + rng.range(0, 2000) * DAY + rng.range(0, 86399) * 1000),
      loginCount: rng.range(0, 500),
      groups: rng.sample(groups, rng.range(0, 3)),
    };
    if (i % 10 < 7) {
      contexts.push(user);
    } else {
      const multi = {
        kind: 'multi',
        user: Object.fromEntries(Object.entries(user).filter(([k]) => k !== 'kind')),
        organization: { key: rng.pick(orgKeys), name: `Org ${i}`, tier: rng.pick(tiers), seats: rng.range(5, 5000) },
      };
      if (i % 10 === 9) multi.device = { key: `device-${rng.hex(10)}`, os: rng.pick(['ios', 'android']), model: 'x' };
      contexts.push(multi);
    }
  }
  return { data: { flags, segments }, contexts };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = arg('out', null);
  if (!out) {
    console.error('usage: node bench/eval/make-data.mjs --out DIR [--seed 4] [--flags 200] [--contexts 100]');
    process.exit(2);
  }
  const { data, contexts } = generate({
    seed: Number(arg('seed', 4)),
    flagCount: Number(arg('flags', 200)),
    contextCount: Number(arg('contexts', 100)),
    rollouts: !process.argv.includes('--no-rollouts'),
  });
  fs.mkdirSync(out, { recursive: true });
  const dataJson = JSON.stringify(data);
  fs.writeFileSync(path.join(out, 'data.json'), dataJson);
  fs.writeFileSync(path.join(out, 'contexts.jsonl'), contexts.map((c) => `${JSON.stringify(c)}\n`).join(''));
  console.log(`wrote ${path.join(out, 'data.json')} (${Object.keys(data.flags).length} flags, ` +
    `${Object.keys(data.segments).length} segments, ${dataJson.length} bytes) and ` +
    `${path.join(out, 'contexts.jsonl')} (${contexts.length} contexts)`);
}
