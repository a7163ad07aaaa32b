// Flag and segment JSON in the shape LaunchDarkly's streaming service sends (protocol reference
// §2.5): a flag that is on and serves variation 0 (`value`) to everyone via the fallthrough, and
// variation 1 when switched off.

function offValueFor(value) {
  if (typeof value === 'boolean') return !value;
  if (typeof value === 'number') return value === -1 ? -2 : -1;
  if (typeof value === 'string') return `${value.slice(0, 16)}-off`;
  return null;
}

export function makeFlag(key, version, value, overrides = {}) {
  return {
    key,
    version,
    on: true,
    prerequisites: [],
    targets: [],
    contextTargets: [],
    rules: [],
    fallthrough: { variation: 0 },
    offVariation: 1,
    variations: [value, offValueFor(value)],
    clientSideAvailability: { usingMobileKey: false, usingEnvironmentId: false },
    clientSide: false,
    salt: `salt-${key}`,
    trackEvents: false,
    trackEventsFallthrough: false,
    debugEventsUntilDate: null,
    deleted: false,
    ...overrides,
  };
}

export function makeSegment(key, version, included = [], overrides = {}) {
  return {
    key,
    version,
    included,
    excluded: [],
    includedContexts: [],
    excludedContexts: [],
    rules: [],
    salt: `salt-${key}`,
    deleted: false,
    ...overrides,
  };
}

/** {key: item} map from a list of items. */
export function byKey(...items) {
  return Object.fromEntries(items.map((i) => [i.key, i]));
}

/** The value a flag built by makeFlag serves to everyone (variation 0 when on). */
export function servedValue(flag) {
  return flag.on ? flag.variations[flag.fallthrough.variation] : flag.variations[flag.offVariation];
}

// SDK keys in LaunchDarkly's format, distinct per use so masking checks are meaningful.
export const KEYS = {
  prod: 'sdk-0a1b2c3d-4e5f-6789-abcd-ef0123456789',
  prodMobile: 'mob-9f8e7d6c-5b4a-3210-fedc-ba9876543210',
  prodEnvId: '5f0c0ffee0ddba11cafe0001',
  staging: 'sdk-11112222-3333-4444-5555-666677778888',
  stagingMobile: 'mob-aaaabbbb-cccc-dddd-eeee-ffff00001111',
  stagingEnvId: '5f0c0ffee0ddba11cafe0002',
  wrong: 'sdk-deadbeef-dead-beef-dead-beefdeadbeef',
};
