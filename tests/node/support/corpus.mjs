// Seeded generator of a LaunchDarkly evaluation corpus (flags, segments, contexts) for the
// differential test in tests/node/eval: the same data is served to the relay and to the official
// Node server SDK, and their evaluations must agree exactly.
//
//   const corpus = generateCorpus(seed, { flags: 300, segments: 60, contexts: 320 });
//   corpus.flagsJson / segmentsJson  exact JSON text of the {key: item} maps (streaming shape, §2.5)
//   corpus.contextsJson[i]           exact JSON text of context i (new-style, multi-kind, old users)
//   corpus.flags / segments / contexts   the same, as a JSON parser sees them (integers beyond 2^53
//                                    rounded): what the SDK is given, and what reports print
//   corpus.info[flagKey]             {canError, malformation, prereqDepth} (for reports)
//
// Same seed => byte-identical corpus (mulberry32 PRNG; no Math.random, no Date.now).
//
// KNOWN, DELIBERATE DIVERGENCES between the Go evaluation engine (go-server-sdk-evaluation v3,
// used by ld-relay; flagrelay follows it) and the Node SDK (js-server-sdk-common 2.x). The
// generator never produces these inputs; the C++ unit tests cover the Go behaviour instead:
//  1. A prerequisite whose own result is an error (bad variation index, empty rollout): Go gives
//     the parent PREREQUISITE_FAILED, Node gives ERROR. => flags that can end in an error are
//     never used as prerequisites; no prerequisite cycles. The comparison also ignores the
//     `prerequisites` list of results whose reason kind is ERROR.
//  2. Rollout `seed: 0`: Node treats 0 as "no seed". => seeds are non-zero.
//  3. Segment includedContexts/excludedContexts entries of kind "user": Go only consults them for
//     non-user contexts. => those lists only name non-user kinds (user keys go in included/excluded).
//  4. Weighted segment rule when the context lacks the rule's rolloutContextKind: Go does not
//     match, Node buckets at 0 and matches. => every weighted segment rule starts with the guard
//     clause {contextKind: K, attribute: "key", op: "in", values: ["__never__"], negate: true}
//     (K = rolloutContextKind or "user"), which is true exactly when the context has kind K.
//  5. Attribute references with `~` escapes, `_meta` references and `/kind` paths. => plain names
//     and simple `/a/b` paths; the attribute "kind" only as the literal `kind`.
//  6. `in` with object or array clause values. => scalar clause values only for `in`.
//  7. Flags with the legacy `clientSide` but no `clientSideAvailability` (Go assumes mobile=true).
//     => `clientSideAvailability` is always present.
//  8. Old-user `secondary` (Go appends it to the bucketing key; Node ignores it). => never emitted.
//  9. Old users: non-string keys or built-ins, custom attributes named like built-ins. => string key
//     and string built-ins only; custom names never collide with built-ins.
// 10. Dates: Go parses RFC 3339 with nanoseconds, Node uses Date.parse (milliseconds, lenient).
//     Go truncates epoch-ms numbers to whole milliseconds. => RFC 3339 with `Z` or `±hh:mm`, at most
//     3 fractional digits, or integer epoch-ms numbers far from the small fractional pool numbers.
// 11. SemVer: lenient parsing differs at the edges. => only `1`, `1.2`, `1.2.3`, `1.2.3-pre.1`,
//     `1.2.3+build` forms (no leading `v`/`=`/spaces, no prerelease on partial versions).
// 12. Regexes: RE2 vs ECMAScript. => simple patterns (anchors, classes, quantifiers, alternation,
//     no \s), and `matches` never sees astral-plane characters (UTF-8 runes vs UTF-16 units for
//     `.`) nor \r, U+2028, U+2029 (line terminators for ECMAScript `.`, not for RE2). Multi-byte
//     BMP characters and \n are fine: both engines see characters, `.` skips \n, ^/$ are text anchors.
// 13. contextTargets entries of kind "user" with values: Go checks the values, Node looks the
//     variation up in `targets`. => user entries have empty values and a matching `targets` entry.
// 14. Unbounded segments without `generation` or with generation 0 (Node: `!generation`). =>
//     unbounded segments always have a non-zero generation and an unboundedContextKind.
// 15. Node keeps evaluating a rule's clauses after one fails with an error and lets a later clause
//     overwrite the error (js-server-sdk-common _ruleMatchContext / segmentRuleMatchContext); Go stops
//     with the error. => a clause that can fail (empty attribute, segmentMatch of a segment that can
//     fail) is always the last clause of its rule.
// 16. Empty-string `contextKind` on clauses/rollouts (Node: no such kind; Go: "user"). => omitted.
// 17. New-style contexts: Go rejects a non-string `name` or non-boolean `anonymous`. => never emitted.
// 18. Integers of 2^63 and more: Go's IsInt is false (bucketing fails), Node buckets them. => the
//     big integers used stay near 2^53..2^54.
// Bucketing: Go computes buckets and weight sums in float32, Node in float64; a bucket within ~1e-7
// of a weight boundary could land differently. Rare (deterministic per seed); check first when a
// rollout result differs.

export const DEFAULT_SEED = 20260521;

/** mulberry32: small, fast, deterministic 32-bit PRNG. */
export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rng = {
    next,
    int: (n) => Math.floor(next() * n), // [0, n)
    range: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), // [lo, hi]
    chance: (p) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    sample: (arr, k) => {
      const copy = [...arr];
      const out = [];
      while (out.length < k && copy.length) out.push(copy.splice(Math.floor(next() * copy.length), 1)[0]);
      return out;
    },
    hex: (n) => Array.from({ length: n }, () => Math.floor(next() * 16).toString(16)).join(''),
  };
  return rng;
}

// ------------------------------------------------------------------------------------------------
// Value pools shared by contexts and clauses, so that clauses actually match some contexts.

const NON_USER_KINDS = ['org', 'device', 'svc.v2_x'];
const ALL_KINDS = ['user', ...NON_USER_KINDS];

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));
const KEYS = {
  user: [...range(40, (i) => `u${i}`), 'shared-1', 'shared-2', 'üser-ß', 'user with space', 'u/slash', 'u"quote', '用户-1', 'u✓'],
  org: [...range(15, (i) => `o${i}`), 'shared-1', 'shared-2', 'org:colon'],
  device: [...range(20, (i) => `d${i}`), 'shared-1', 'dev%20pct'],
  'svc.v2_x': [...range(6, (i) => `s${i}`), 'shared-2'],
};

const NAMES = ['Alice', 'alice', 'Bob', 'Carol', 'Dave', 'Eve', 'Zoë', '日本太郎', 'Ann-Marie', "O'Brien", 'alphabet', 'Alpha', 'beta', ''];
const EMAILS = ['alice@example.com', 'bob@example.com', 'carol@test.org', 'dave@EXAMPLE.com', 'eve@sub.example.com', 'zoë@例え.jp', 'nobody', '@example.com'];
const COUNTRIES = ['US', 'DE', 'FR', 'JP', 'BR', 'us', 'GB', 'U'];
const PLANS = ['free', 'pro', 'enterprise', 'Pro', 'pro ', 'pro-trial', 'team'];
const CITIES = ['Berlin', 'Paris', 'Tokyo', 'São Paulo', 'New York', 'berlin', 'Köln'];
const IPS = ['10.0.0.1', '192.168.1.20', '::1', '2001:db8::7'];
// Integers beyond 2^53 cannot be written from a JavaScript number, so they are carried as marker
// strings and written as raw JSON digits by toWireJson(). Go (float64) and Node (double) both round
// them when parsing, so `in` compares and bucketing hash the rounded value.
const RAW_PREFIX = '\u0000raw-number:';
const raw = (digits) => `${RAW_PREFIX}${digits}`;
const isRaw = (v) => typeof v === 'string' && v.startsWith(RAW_PREFIX);
const BIG_INTS = [raw('9007199254740993'), raw('9007199254740992'), raw('9007199254740995'), raw('18014398509481985'), raw('-9007199254740993'),
  raw('1.8014398509481984E16'), raw('9.007199254740994e15')];
// Other spellings of numbers (a JSON parser must see 1.0 as 1, 1e2 as 100, -0.0 as 0).
const NUM_SPELLINGS = [raw('1.0'), raw('1e2'), raw('100.000'), raw('2.50'), raw('-0.0'), raw('7E0')];
const NUMS = [0, 1, -1, 2, 2.5, 3, 10, 42, 99.99, 100, 1000, -273.15, 1e6, 0.001, 7, ...BIG_INTS, ...NUM_SPELLINGS];
const AGES = [0, 5, 17, 18, 21, 30, 45, 65, 99, 18.5];
const SEMVERS = ['1', '1.2', '1.2.3', '1.2.3-beta.1', '1.2.3-beta.2', '1.2.3-beta.11', '1.2.3-alpha', '1.2.3+build.5', '1.2.3-rc.1+exp.sha.5114f85',
  '2.0.0', '2', '0.9.12', '1.10.0', '1.9.9', '10.0.0-rc.1', '0.0.1', 'not-a-version', 'banana'];
const DATE_STRINGS = ['2020-01-01T00:00:00Z', '2021-06-15T12:30:00.5Z', '2021-06-15T12:30:00.123+02:00', '2019-12-31T23:59:59-05:00',
  '2030-01-01T00:00:00Z', '2022-02-28T08:00:00.25+05:30', '1999-12-31T23:59:59.999Z', '2021-06-15T10:30:00.123Z', 'yesterday', '2024-02-29T12:00:00+00:00'];
// Epoch milliseconds; some equal to a string above (ties: before/after are strict).
// Go truncates epoch-ms numbers to whole milliseconds, so no clause value is near the small
// fractional numbers of the other pools (a context number 0.001 vs a clause value 0 would differ).
const DATE_NUMBERS = [1577836800000, 1623760200500, 1623753000123, 1577854799000, 1893456000000, 946684799999, 1700000000000, 1709208000000, raw('1.5778368E12')];
const DATES = [...DATE_STRINGS, ...DATE_NUMBERS];
const GROUPS = ['admins', 'beta-testers', 'staff', 'qa', 'Admins', 'eu', 'us'];
const TAGS = ['a', 'b', 'c', 1, 2, true, 'x y', 'ü'];
const REGEXES = ['^alpha', 'beta$', '^[a-z]+$', 'a.c', '\\d{3}', '^(US|DE)$', '@example\\.com$', '[A-Z]', 'x*y+', '^$', '^u\\d+$', 'o[0-9]', 'abc', '^pro\\b', ' ', '^.{5}$', '^.{4}$', '[^a-z]', '^nl', 'b.n'];
// No astral-plane characters or U+2028/U+2029 here: `matches` would see them differently (item 12).
// Newlines: RE2 and ECMAScript agree that `.` does not match \n and that ^/$ are text anchors.
const STRING_JUNK = ['', ' ', 'ALPHA', '\u0001ctl', 'tab\tnl\n', 'ab\nnb', 'quote"back\\slash', 'é', 'ß'];

// Attribute catalogue: type drives which operators and values are generated for clauses.
const ATTRS = {
  name: { type: 'str', pool: NAMES },
  email: { type: 'str', pool: EMAILS },
  country: { type: 'str', pool: COUNTRIES },
  plan: { type: 'str', pool: PLANS },
  'a/b': { type: 'str', pool: ['slash', 'a/b', 'b'], literalOnly: true }, // addressable only as a literal name
  score: { type: 'num', pool: NUMS },
  age: { type: 'num', pool: AGES },
  tier: { type: 'mixed', pool: [1, 2, 3, '2', 'gold', 2.5, true] },
  beta: { type: 'bool', pool: [true, false] },
  groups: { type: 'arr', pool: GROUPS },
  tags: { type: 'arr', pool: TAGS },
  version: { type: 'semver', pool: SEMVERS },
  signup: { type: 'date', pool: DATES },
  lastSeen: { type: 'date', pool: DATES },
  address: { type: 'obj' },
  nested: { type: 'obj' },
};
// Paths into nested attributes (only in clauses that have a contextKind).
const PATHS = {
  '/address/city': { type: 'str', pool: CITIES },
  '/address/zip': { type: 'mixed', pool: ['10115', 75001, '100-0001', 10115] },
  '/address/geo/lat': { type: 'num', pool: [52.52, 48.85, 35.68, -23.55, 0] },
  '/nested/deep/x': { type: 'mixed', pool: ['alpha', 1, true, 'beta'] },
  '/name': { type: 'str', pool: NAMES },
  '/email': { type: 'str', pool: EMAILS },
  '/key': { type: 'key' },
};
const OLD_BUILTINS = ['name', 'email', 'country', 'ip', 'firstName', 'lastName', 'avatar'];
const OLD_CUSTOM = ['plan', 'a/b', 'score', 'age', 'tier', 'beta', 'groups', 'tags', 'version', 'signup', 'lastSeen', 'address', 'nested'];

const OPS = {
  in: 14,
  startsWith: 4,
  endsWith: 4,
  contains: 4,
  matches: 4,
  lessThan: 3,
  lessThanOrEqual: 3,
  greaterThan: 3,
  greaterThanOrEqual: 3,
  before: 3,
  after: 3,
  semVerEqual: 3,
  semVerLessThan: 3,
  semVerGreaterThan: 3,
  segmentMatch: 8,
  unknown: 1,
};
const UNKNOWN_OPS = ['equals', 'notAnOperator', 'regex', 'IN'];
const OP_FAMILY = {
  in: 'in',
  startsWith: 'str',
  endsWith: 'str',
  contains: 'str',
  matches: 'regex',
  lessThan: 'num',
  lessThanOrEqual: 'num',
  greaterThan: 'num',
  greaterThanOrEqual: 'num',
  before: 'date',
  after: 'date',
  semVerEqual: 'semver',
  semVerLessThan: 'semver',
  semVerGreaterThan: 'semver',
};

function weightedPick(rng, table) {
  const entries = Object.entries(table);
  let total = 0;
  for (const [, w] of entries) total += w;
  let r = rng.next() * total;
  for (const [k, w] of entries) {
    r -= w;
    if (r < 0) return k;
  }
  return entries[entries.length - 1][0];
}

function scalarPool(def) {
  if (!def) return [...NAMES, ...NUMS];
  if (def.type === 'key') return [...KEYS.user, ...KEYS.org];
  if (def.type === 'obj') return ['Berlin', 1];
  return def.pool;
}

// ------------------------------------------------------------------------------------------------

class Generator {
  constructor(seed) {
    this.seed = seed;
    this.rng = makeRng(seed);
    this.segments = []; // {seg, canError}
    this.flags = []; // {flag, canError, depth, nVar}
    this.info = {};
    this.ruleSeq = 0;
  }

  // ---- attribute values ----
  valueFor(attr, { forContext = false } = {}) {
    const r = this.rng;
    const def = ATTRS[attr];
    switch (def.type) {
      case 'arr': {
        const n = r.int(4);
        const arr = r.sample(def.pool, n);
        if (forContext && r.chance(0.1)) arr.push(r.pick([{ nested: 'obj' }, [def.pool[0]], null]));
        return arr;
      }
      case 'obj':
        if (attr === 'address') {
          const a = { city: r.pick(CITIES) };
          if (r.chance(0.7)) a.zip = r.pick(PATHS['/address/zip'].pool);
          if (r.chance(0.5)) a.geo = { lat: r.pick(PATHS['/address/geo/lat'].pool), lon: r.pick(NUMS) };
          if (r.chance(0.1)) return r.pick(['Berlin', 5, ['Berlin']]); // wrong shape: paths find nothing
          return a;
        }
        return r.chance(0.8) ? { deep: { x: r.pick(PATHS['/nested/deep/x'].pool), y: [1, 2] } } : { deep: 'flat' };
      case 'str':
        return r.chance(0.08) ? r.pick([...STRING_JUNK, 42]) : r.pick(def.pool);
      default:
        return r.pick(def.pool);
    }
  }

  contextAttrs(target, names, p) {
    for (const a of names) {
      if (this.rng.chance(p)) target[a] = this.rng.chance(0.03) ? null : this.valueFor(a, { forContext: true });
    }
  }

  // ---- contexts ----
  singleContext(kind) {
    const r = this.rng;
    const c = { kind, key: r.pick(KEYS[kind]) };
    if (r.chance(0.6)) c.name = r.pick(NAMES);
    if (r.chance(0.2)) c.anonymous = r.chance(0.5);
    this.contextAttrs(c, Object.keys(ATTRS).filter((a) => a !== 'name'), 0.45);
    if (r.chance(0.15)) c._meta = { privateAttributes: r.sample(['email', '/address/city', 'plan'], 2) };
    return c;
  }

  oldUser() {
    const r = this.rng;
    const u = { key: r.pick(KEYS.user) };
    for (const b of OLD_BUILTINS) {
      if (!r.chance(0.45)) continue;
      if (b === 'name') u.name = r.pick(NAMES);
      else if (b === 'email') u.email = r.pick(EMAILS);
      else if (b === 'country') u.country = r.pick(COUNTRIES);
      else if (b === 'ip') u.ip = r.pick(IPS);
      else u[b] = r.pick([...NAMES, 'https://example.com/a.png']);
    }
    if (r.chance(0.25)) u.anonymous = r.chance(0.5);
    if (r.chance(0.8)) {
      u.custom = {};
      this.contextAttrs(u.custom, OLD_CUSTOM, 0.45);
    }
    if (r.chance(0.2)) u.privateAttributeNames = r.sample(['email', 'plan', 'a/b'], 2);
    return u;
  }

  context(i) {
    const r = this.rng;
    const shape = i % 10; // fixed mix: 4 user, 2 other kinds, 2 multi, 2 old-style
    if (shape < 4) return this.singleContext('user');
    if (shape < 6) return this.singleContext(r.pick(NON_USER_KINDS));
    if (shape < 8) {
      const kinds = r.sample(ALL_KINDS, r.range(2, 4));
      const m = { kind: 'multi' };
      for (const k of kinds) {
        const c = this.singleContext(k);
        delete c.kind;
        m[k] = c;
      }
      return m;
    }
    return this.oldUser();
  }

  // ---- clauses ----
  /** A clause that can never produce an evaluation error. */
  safeClause({ segmentKeys }) {
    const r = this.rng;
    let op = weightedPick(r, OPS);
    if (op === 'segmentMatch') {
      if (!segmentKeys.length) op = 'in';
      else {
        const values = r.sample(segmentKeys, r.chance(0.8) ? 1 : 2);
        if (r.chance(0.05)) values.push('no-such-segment');
        const c = { attribute: r.pick(['', 'key', 'segmentMatch']), op, values, negate: r.chance(0.2) };
        if (r.chance(0.2)) c.contextKind = 'user';
        return c;
      }
    }
    if (op === 'unknown') op = r.pick(UNKNOWN_OPS);
    const family = OP_FAMILY[op] ?? 'in';
    const clause = { attribute: '', op, values: [], negate: r.chance(0.2) };

    // Attribute: new-style (with contextKind; names or /a/b paths) or old-style (literal names).
    const newStyle = r.chance(0.7);
    let def;
    const special = r.next();
    if (special < 0.07) {
      clause.attribute = 'kind';
      def = { type: 'kindAttr' };
    } else if (special < 0.15) {
      clause.attribute = 'key';
      def = { type: 'key' };
    } else if (special < 0.18) {
      clause.attribute = 'anonymous';
      def = { type: 'bool', pool: [true, false] };
    } else {
      const byType = (t) => Object.keys(ATTRS).filter((a) => ATTRS[a].type === t || (t === 'str' && ATTRS[a].type === 'arr'));
      const wantType = { in: null, str: 'str', regex: 'str', num: 'num', date: 'date', semver: 'semver' }[family];
      let candidates = wantType && r.chance(0.8) ? byType(wantType) : Object.keys(ATTRS);
      if (newStyle) {
        const paths = Object.keys(PATHS).filter((p) => !wantType || PATHS[p].type === wantType || PATHS[p].type === 'mixed');
        if (r.chance(0.25) && paths.length) candidates = paths;
        candidates = candidates.filter((a) => !ATTRS[a]?.literalOnly);
      } else if (r.chance(0.05)) {
        candidates = ['/address/city']; // literal name with a slash: matches nothing
      }
      clause.attribute = r.pick(candidates);
      def = ATTRS[clause.attribute] ?? PATHS[clause.attribute];
    }
    if (newStyle) clause.contextKind = r.chance(0.6) ? 'user' : r.pick(NON_USER_KINDS);

    // Values by operator family.
    const n = r.range(1, 3);
    const pool = def.type === 'kindAttr' ? [...ALL_KINDS, 'multi', 'us'] : scalarPool(def);
    const strPool = pool.filter((v) => typeof v === 'string' && !isRaw(v));
    const vals = [];
    for (let i = 0; i < n; i++) {
      switch (family) {
        case 'in':
          vals.push(r.chance(0.9) ? r.pick(pool) : r.pick([...NUMS, ...NAMES, true, false, 'US']));
          break;
        case 'str': {
          // Slice by code points: a lone surrogate would decode differently (Go: U+FFFD).
          const base = Array.from(strPool.length && r.chance(0.85) ? r.pick(strPool) : r.pick(NAMES));
          const k = r.int(base.length + 1);
          if (op === 'startsWith') vals.push(base.slice(0, k).join(''));
          else if (op === 'endsWith') vals.push(base.slice(base.length - k).join(''));
          else vals.push(base.slice(r.int(k + 1), k).join(''));
          if (r.chance(0.05)) vals.push(r.pick([1, true]));
          break;
        }
        case 'regex':
          vals.push(r.pick(REGEXES));
          break;
        case 'num':
          vals.push(r.chance(0.9) ? r.pick([...NUMS, ...AGES]) : r.pick(['10', true]));
          break;
        case 'date':
          vals.push(r.pick(DATES));
          break;
        case 'semver':
          vals.push(r.pick(SEMVERS));
          break;
        default:
          vals.push(r.pick(pool));
      }
    }
    clause.values = r.chance(0.03) ? [] : vals;
    return clause;
  }

  /** A clause that can fail: empty attribute, or segmentMatch of a segment that can fail. */
  errorClause({ badSegmentKeys }) {
    const r = this.rng;
    if (badSegmentKeys.length && r.chance(0.5)) {
      return { attribute: '', op: 'segmentMatch', values: [r.pick(badSegmentKeys)], negate: r.chance(0.3) };
    }
    const c = { attribute: '', op: r.pick(['in', 'startsWith', 'notAnOperator']), values: ['x'], negate: r.chance(0.3) };
    if (r.chance(0.5)) c.contextKind = 'user';
    return c;
  }

  /** min..max clauses, biased towards few (a rule with many ANDed clauses rarely matches). */
  clauses(ctx, min, max) {
    const out = [];
    const n = Math.min(this.rng.range(min, max), this.rng.range(min, max));
    for (let i = 0; i < n; i++) out.push(this.safeClause(ctx));
    return out;
  }

  // ---- segments ----
  segment(j) {
    const r = this.rng;
    const key = `seg-${j}`;
    const safeKeys = this.segments.filter((s) => !s.canError).map((s) => s.seg.key);
    const badKeys = this.segments.filter((s) => s.canError).map((s) => s.seg.key);
    const seg = {
      key,
      version: r.range(1, 30),
      included: [],
      excluded: [],
      includedContexts: [],
      excludedContexts: [],
      rules: [],
      salt: r.chance(0.9) ? `salt-${key}-${r.int(1000)}` : '',
      deleted: false,
    };
    let canError = false;
    const unbounded = j % 12 === 7; // 5 of 60: enough that every seed evaluates some
    if (unbounded) {
      seg.unbounded = true;
      seg.unboundedContextKind = r.pick(['user', 'user', 'org']);
      seg.generation = r.range(1, 9);
    } else {
      seg.included = r.sample(KEYS.user, r.int(6));
      if (r.chance(0.1)) {
        // A long, unsorted list (Node switches to a Set above 100 entries).
        seg.included.push(...range(150, (n) => `bulk-${(n * 7919) % 1000}-${j}`));
        seg.included.push(...r.sample(KEYS.user, 3));
      }
      seg.excluded = r.sample(KEYS.user, r.int(5));
      if (r.chance(0.45)) {
        const kind = r.pick(NON_USER_KINDS);
        seg.includedContexts.push({ contextKind: kind, values: r.sample(KEYS[kind], r.range(1, 5)) });
      }
      if (r.chance(0.35)) {
        const kind = r.pick(NON_USER_KINDS);
        seg.excludedContexts.push({ contextKind: kind, values: r.sample(KEYS[kind], r.range(1, 4)) });
      }
    }
    const nRules = unbounded ? (r.chance(0.5) ? 1 : 0) : r.pick([0, 1, 1, 2, 2, 3]);
    for (let k = 0; k < nRules; k++) {
      const rule = { id: `${key}-rule-${k}`, clauses: [] };
      const weighted = r.chance(0.35);
      if (weighted) {
        const rk = r.chance(0.5) ? r.pick(ALL_KINDS) : undefined;
        if (rk) rule.rolloutContextKind = rk;
        rule.clauses.push({ contextKind: rk ?? 'user', attribute: 'key', op: 'in', values: ['__never__'], negate: true });
        rule.weight = r.pick([0, 100000, r.int(100001), r.int(100001), 50000]);
        if (r.chance(0.5)) {
          rule.bucketBy = rk ? r.pick(['key', 'email', 'score', '/address/city', 'name', 'missing']) : r.pick(['key', 'email', 'score', 'name', 'a/b']);
        }
      }
      rule.clauses.push(...this.clauses({ segmentKeys: safeKeys }, weighted || r.chance(0.04) ? 0 : 1, 3));
      if (j >= 8 && r.chance(0.06)) {
        rule.clauses.push(this.errorClause({ badSegmentKeys: badKeys }));
        canError = true;
      }
      seg.rules.push(rule);
    }
    this.segments.push({ seg, canError });
    return seg;
  }

  // ---- flags ----
  variations(type) {
    const r = this.rng;
    switch (type) {
      case 'bool':
        return r.chance(0.85) ? [true, false] : [false, true, false];
      case 'string': {
        const n = r.range(2, 5);
        return range(n, (i) => r.pick([`v${i}`, `val-${i}-${r.int(100)}`, `ü-${i}`, `"q${i}"\\`, `line\n${i}`, `😀${i}`, `\u2028${i}`, `ctl\u0001${i}`]));
      }
      case 'number':
        return range(r.range(2, 4), (i) => r.pick([i, i + 0.5, -i - 1, 1e21 + i, 123456789012 + i, 0.1 * (i + 1), 9007199254740993 + i * 10]));
      case 'json':
        return range(r.range(2, 4), (i) => r.pick([
          { i, nested: { a: [1, 'two', null, true], b: null } },
          [i, `x${i}`, { k: i }],
          `json-str-${i}`,
          null,
          { [`k${i}`]: `ü${i}`, empty: {}, arr: [] },
          i * 3,
        ]));
      default:
        throw new Error(type);
    }
  }

  rollout(nVar, { bad = false } = {}) {
    const r = this.rng;
    const n = r.range(1, 4);
    let weights;
    const mode = r.next();
    if (mode < 0.6) {
      // sums to 100000
      const cuts = range(n - 1, () => r.int(100001)).sort((a, b) => a - b);
      weights = range(n, (i) => (i === n - 1 ? 100000 : cuts[i]) - (i === 0 ? 0 : cuts[i - 1]));
    } else if (mode < 0.8) {
      weights = range(n, () => r.pick([0, 10000, 33333, 50000, 100000]));
    } else {
      weights = range(n, () => r.int(40000)); // usually less than 100000: falls off the end
    }
    const variations = weights.map((w) => {
      const v = { variation: r.int(nVar), weight: w };
      if (r.chance(0.15)) v.untracked = true;
      return v;
    });
    if (bad) variations[r.int(variations.length)].variation = nVar + r.int(3);
    const rollout = { variations };
    const kindR = r.next();
    if (kindR < 0.35) rollout.kind = 'experiment';
    else if (kindR < 0.5) rollout.kind = 'rollout';
    if (r.chance(0.4)) rollout.contextKind = r.pick(ALL_KINDS);
    if (r.chance(0.35)) rollout.seed = r.pick([1, 42, 61, -7, 123456789, r.range(1, 100000)]);
    if (r.chance(0.4)) {
      rollout.bucketBy = rollout.contextKind
        ? r.pick(['key', 'email', 'score', 'age', 'name', '/address/city', '/address/zip', 'missing', 'groups'])
        : r.pick(['key', 'email', 'score', 'age', 'name', 'a/b', 'missing', '/address/city']);
    }
    return rollout;
  }

  varOrRollout(nVar, pRollout = 0.3) {
    return this.rng.chance(pRollout) ? { rollout: this.rollout(nVar) } : { variation: this.rng.int(nVar) };
  }

  flag(i) {
    const r = this.rng;
    const type = r.pick(['bool', 'bool', 'bool', 'string', 'string', 'number', 'json']);
    const key = `flag-${i}-${type}`;
    const variations = this.variations(type);
    const nVar = variations.length;
    const malformations = ['fallthroughIndex', 'offIndex', 'ruleIndex', 'emptyRollout', 'rolloutIndex', 'emptyAttr', 'noFallthrough', 'targetIndex', 'badSegment', 'negativeIndex', 'noVariations'];
    const malformation = i >= 20 && r.chance(0.09) ? r.pick(malformations) : null;

    const segSafe = this.segments.filter((s) => !s.canError).map((s) => s.seg.key);
    const segBad = this.segments.filter((s) => s.canError).map((s) => s.seg.key);

    const flag = {
      key,
      version: r.range(1, 500),
      on: r.chance(0.85),
      prerequisites: [],
      targets: [],
      contextTargets: [],
      rules: [],
      fallthrough: { variation: 0 },
      offVariation: r.int(nVar),
      variations,
      clientSideAvailability: { usingMobileKey: r.chance(0.6), usingEnvironmentId: r.chance(0.5) },
      clientSide: false,
      salt: r.chance(0.92) ? `${key}-salt-${r.int(1 << 20).toString(16)}` : '',
      trackEvents: r.chance(0.15),
      trackEventsFallthrough: r.chance(0.15),
      debugEventsUntilDate: r.pick([null, null, null, null, 0, 1700000000000, 4102444800000]),
      deleted: false,
    };
    flag.clientSide = flag.clientSideAvailability.usingEnvironmentId;
    const offR = r.next();
    if (offR < 0.12) delete flag.offVariation;
    else if (offR < 0.18) flag.offVariation = null;

    // Prerequisites: only flags that cannot end in an error; depth of the chain <= 3.
    let depth = 0;
    if (r.chance(0.25)) {
      const candidates = this.flags.filter((f) => !f.canError && f.depth < 3);
      for (const p of r.sample(candidates, r.range(1, 2))) {
        const variation = r.chance(0.9) ? r.int(p.nVar) : p.nVar + 1;
        flag.prerequisites.push({ key: p.flag.key, variation });
        depth = Math.max(depth, p.depth + 1);
      }
      if (r.chance(0.08)) flag.prerequisites.push({ key: `missing-flag-${i}`, variation: 0 });
    }

    // Targets: old style (targets only) or context-aware (contextTargets + targets for users).
    const nTargets = r.pick([0, 0, 1, 1, 2, 3]);
    const usedVars = r.sample(range(nVar, (v) => v), Math.min(nTargets, nVar));
    const contextAware = r.chance(0.5);
    for (const v of usedVars) {
      const kind = contextAware ? r.pick(ALL_KINDS) : 'user';
      if (kind === 'user') {
        flag.targets.push({ values: r.sample(KEYS.user, r.range(1, 6)), variation: v });
        if (contextAware) flag.contextTargets.push({ contextKind: 'user', values: [], variation: v });
      } else {
        flag.contextTargets.push({ contextKind: kind, values: r.sample(KEYS[kind], r.range(1, 4)), variation: v });
      }
    }

    // Rules.
    const nRules = r.pick([0, 1, 1, 2, 2, 3, 4, 5]);
    for (let k = 0; k < nRules; k++) {
      const rule = { id: `rule-${this.ruleSeq++}`, ...this.varOrRollout(nVar), clauses: this.clauses({ segmentKeys: segSafe }, r.chance(0.03) ? 0 : 1, 4), trackEvents: r.chance(0.15) };
      if (rule.variation !== undefined && r.chance(0.03)) rule.rollout = this.rollout(nVar); // the variation wins
      flag.rules.push(rule);
    }
    flag.fallthrough = this.varOrRollout(nVar, 0.35);

    // Malformations (the flag is then never used as a prerequisite).
    let canError = false;
    const ruleOrNew = () => {
      if (!flag.rules.length) flag.rules.push({ id: `rule-${this.ruleSeq++}`, variation: 0, clauses: this.clauses({ segmentKeys: segSafe }, 1, 2), trackEvents: false });
      return flag.rules[r.int(flag.rules.length)];
    };
    switch (malformation) {
      case 'fallthroughIndex':
        flag.fallthrough = { variation: nVar + r.int(3) };
        break;
      case 'negativeIndex':
        flag.fallthrough = { variation: -1 };
        break;
      case 'noVariations':
        flag.variations = [];
        break;
      case 'offIndex':
        flag.offVariation = nVar + r.int(3);
        if (r.chance(0.5)) flag.on = false;
        break;
      case 'ruleIndex': {
        const rule = ruleOrNew();
        delete rule.rollout;
        rule.variation = nVar + r.int(2);
        break;
      }
      case 'emptyRollout':
        if (r.chance(0.5)) flag.fallthrough = { rollout: { variations: [] } };
        else {
          const rule = ruleOrNew();
          delete rule.variation;
          rule.rollout = { variations: [] };
        }
        break;
      case 'rolloutIndex':
        flag.fallthrough = { rollout: this.rollout(nVar, { bad: true }) };
        break;
      case 'emptyAttr':
        ruleOrNew().clauses.push(this.errorClause({ badSegmentKeys: [] }));
        break;
      case 'noFallthrough':
        if (r.chance(0.5)) flag.fallthrough = {};
        else delete flag.fallthrough;
        break;
      case 'targetIndex':
        flag.targets.push({ values: r.sample(KEYS.user, 8), variation: nVar + 1 });
        if (flag.contextTargets.length) flag.contextTargets.push({ contextKind: 'user', values: [], variation: nVar + 1 });
        break;
      case 'badSegment':
        if (segBad.length) ruleOrNew().clauses.push(this.errorClause({ badSegmentKeys: segBad }));
        else ruleOrNew().clauses.push(this.errorClause({ badSegmentKeys: [] }));
        break;
      default:
        break;
    }
    if (malformation) canError = true;
    // Rules that reference a segment that can fail can fail too (only as a last clause, never here).
    for (const rule of flag.rules) {
      for (const c of rule.clauses) {
        if (c.op === 'segmentMatch' && c.values.some((v) => segBad.includes(v))) canError = true;
      }
    }
    this.flags.push({ flag, canError, depth, nVar });
    this.info[key] = { canError, malformation, prereqDepth: depth };
    return flag;
  }
}

/**
 * Generates the corpus for `seed`. Options: flags, segments, contexts (counts).
 * Returns {seed, flags, segments, contexts, info, stats}.
 */
export function generateCorpus(seed = DEFAULT_SEED, { flags = 300, segments = 60, contexts = 320 } = {}) {
  const g = new Generator(seed);
  for (let j = 0; j < segments; j++) g.segment(j);
  for (let i = 0; i < flags; i++) g.flag(i);
  const ctxs = [];
  for (let i = 0; i < contexts; i++) ctxs.push(g.context(i));
  // A few hand-written contexts that exercise the edges the random mix may miss.
  ctxs.push(
    { kind: 'user', key: 'shared-1', anonymous: true },
    { kind: 'multi', org: { key: 'shared-1' }, device: { key: 'shared-1', name: 'Alpha' } },
    { key: 'u1', custom: { 'a/b': 'slash', address: { city: 'Berlin', geo: { lat: 52.52 } } } },
    { key: 'u✓', name: 'alphabet', anonymous: false, email: 'alice@example.com' },
  );
  const flagMap = Object.fromEntries(g.flags.map((f) => [f.flag.key, f.flag]));
  const segMap = Object.fromEntries(g.segments.map((s) => [s.seg.key, s.seg]));
  const stats = {
    flags: g.flags.length,
    canErrorFlags: g.flags.filter((f) => f.canError).length,
    withPrereqs: g.flags.filter((f) => f.flag.prerequisites.length).length,
    maxPrereqDepth: Math.max(...g.flags.map((f) => f.depth)),
    segments: g.segments.length,
    unboundedSegments: g.segments.filter((s) => s.seg.unbounded).length,
    canErrorSegments: g.segments.filter((s) => s.canError).length,
    contexts: ctxs.length,
  };
  const flagsJson = toWireJson(flagMap);
  const segmentsJson = toWireJson(segMap);
  const contextsJson = ctxs.map((c) => toWireJson(c));
  return {
    seed,
    // What a JSON parser sees (big integers rounded): for the SDK and for reports.
    flags: JSON.parse(flagsJson),
    segments: JSON.parse(segmentsJson),
    contexts: contextsJson.map((c) => JSON.parse(c)),
    // The exact wire text: the put payload and each context's JSON.
    flagsJson,
    segmentsJson,
    contextsJson,
    info: g.info,
    stats,
  };
}

/** JSON text of `value`, with big-integer markers written as raw digits. */
export function toWireJson(value) {
  const escaped = JSON.stringify(RAW_PREFIX).slice(1, -1);
  const number = '(-?[0-9]+(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)';
  return JSON.stringify(value).replace(new RegExp(`"${escaped.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}${number}"`, 'g'), '$1');
}

/** The seed from $FLAGRELAY_DIFF_SEED (decimal), else DEFAULT_SEED. */
export function seedFromEnv() {
  const s = process.env.FLAGRELAY_DIFF_SEED;
  if (s === undefined || s === '') return DEFAULT_SEED;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`FLAGRELAY_DIFF_SEED must be an integer in [0, 2^32): ${s}`);
  return n;
}
