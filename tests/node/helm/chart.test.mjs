// The Helm chart (helm/flagrelay) rendered for each values file in tests/helm/values and for the
// parent chart that includes the sidecar templates: Kubernetes schemas, the invariants the chart
// promises (probes, security, config mounted as a directory, grace period, keys only from
// Secrets), the rendered config accepted by the real binary, and the renders that must fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { assertRelayBinExists, makeTempDir } from '../support/relay.mjs';
import {
  CHART, HELM_TESTS, REPO, configMap, configText, durationMs, find, one, parseYaml, podTemplates,
  relayContainer, render, renderOk, schemaProblems, valuesFile, valuesTemp,
} from '../support/helm.mjs';

const PARENT = path.join(HELM_TESTS, 'parent-chart');
const UID = 10001;

// Every rendered case, with the objects it must produce (kind multiset).
const CASES = {
  standalone: { values: ['standalone'], kinds: ['ConfigMap', 'Deployment', 'Service', 'ServiceAccount'] },
  sidecar: { values: ['sidecar'], kinds: ['ConfigMap'] },
  pvc: { values: ['pvc'], kinds: ['ConfigMap', 'StatefulSet', 'Service', 'ServiceAccount'] },
  tls: { values: ['tls'], kinds: ['ConfigMap', 'Deployment', 'Service', 'ServiceAccount'] },
  full: {
    values: ['full'],
    kinds: ['ConfigMap', 'ConfigMap', 'Deployment', 'Service', 'ServiceAccount', 'HorizontalPodAutoscaler',
      'PodDisruptionBudget', 'ServiceMonitor', 'PrometheusRule'],
  },
  'existing-claim': {
    values: ['standalone'],
    set: ['persistence.enabled=true', 'persistence.existingClaim=relay-cache', 'replicaCount=1'],
    kinds: ['ConfigMap', 'Deployment', 'Service', 'ServiceAccount'],
  },
  parent: { chart: PARENT, name: 'shop', namespace: 'shop', kinds: ['ConfigMap', 'PodMonitor', 'Deployment'] },
  'parent-native': {
    chart: PARENT, name: 'shop', namespace: 'shop', set: ['flagrelay.sidecar.native=true'],
    kinds: ['ConfigMap', 'PodMonitor', 'Deployment'],
  },
  'parent-pvc': {
    chart: PARENT, name: 'shop', namespace: 'shop', set: ['flagrelay.persistence.enabled=true'],
    kinds: ['ConfigMap', 'PersistentVolumeClaim', 'PodMonitor', 'Deployment'],
  },
};

const renders = new Map();
function renderCase(name) {
  if (!renders.has(name)) {
    const c = CASES[name];
    renders.set(name, renderOk({ ...c, values: (c.values ?? []).map(valuesFile) }));
  }
  return renders.get(name);
}

const chartDefaults = parseYaml(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));

function merge(base, over) {
  if (over === null || typeof over !== 'object' || Array.isArray(over)) return over;
  const out = { ...(base && typeof base === 'object' && !Array.isArray(base) ? base : {}) };
  for (const [k, v] of Object.entries(over)) out[k] = merge(out[k], v);
  return out;
}

const isSubset = (small, big) => Object.entries(small).every(([k, v]) => big?.[k] === v);

test('Chart.yaml is Helm 3 (apiVersion v2) and the versions agree: appVersion, image.tag, CMake, the binary', () => {
  const chart = parseYaml(fs.readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8'));
  assert.equal(chart.apiVersion, 'v2');
  assert.equal(chart.name, 'flagrelay');
  assert.match(chart.version, /^\d+\.\d+\.\d+$/);
  const cmake = /project\(flagrelay VERSION (\S+)/.exec(fs.readFileSync(path.join(REPO, 'CMakeLists.txt'), 'utf8'))[1];
  assert.equal(chart.appVersion, cmake, 'Chart.yaml appVersion = the CMake project version');
  assert.equal(chartDefaults.image.tag, chart.appVersion, 'values.yaml image.tag = appVersion');
  const r = spawnSync(assertRelayBinExists(), ['--version'], { encoding: 'utf8', timeout: 5000 });
  assert.equal(r.stdout.trim(), `flagrelay ${chart.appVersion}`);
});

for (const name of Object.keys(CASES)) {
  test(`${name}: renders the expected objects, each valid against its Kubernetes schema with no unknown field`, async () => {
    const { docs } = renderCase(name);
    assert.deepEqual(docs.map((d) => d.obj.kind).sort(), [...CASES[name].kinds].sort());
    const ids = docs.map((d) => `${d.obj.kind}/${d.obj.metadata.name}`);
    assert.equal(new Set(ids).size, ids.length, `duplicate objects: ${ids}`);
    for (const { source, obj } of docs) {
      assert.deepEqual(await schemaProblems(obj), [], `${source}: ${obj.kind} ${obj.metadata.name}`);
      assert.ok(obj.metadata.name.length <= 63, `${obj.metadata.name} longer than 63`);
    }
  });
}

test('the schema check itself rejects a wrong type and an unknown field', async () => {
  const { docs } = renderCase('standalone');
  const dep = structuredClone(one(docs, 'Deployment'));
  dep.spec.template.spec.containers[0].livenessProbe.httpGet.pathh = '/healthz';
  assert.deepEqual(await schemaProblems(dep), ['.spec.template.spec.containers.0.livenessProbe.httpGet.pathh: unknown field']);
  dep.spec.replicas = 'two';
  assert.match((await schemaProblems(dep))[0], /^\/spec\/replicas .*integer/);
});

for (const name of Object.keys(CASES).filter((n) => !['sidecar'].includes(n))) {
  test(`${name}: the relay's pod keeps the chart's promises`, () => {
    const { docs } = renderCase(name);
    const cfg = parseYaml(configText(docs));
    const sidecar = name.startsWith('parent');
    const [{ owner, pod }] = podTemplates(docs);
    const spec = pod.spec;
    const c = relayContainer(spec);
    assert.ok(c, 'a flagrelay container');
    assert.deepEqual(c.args, ['--config', '/etc/flagrelay/config.yaml']);

    // Ports: the SDK port and the metrics port from the config; names unique and <= 15 chars.
    const httpPort = c.ports.find((p) => p.containerPort === (cfg.listen?.port ?? 8030));
    const metricsPort = c.ports.find((p) => p.containerPort === (cfg.metrics?.port ?? 8031));
    assert.ok(httpPort && metricsPort, `ports ${JSON.stringify(c.ports)}`);
    assert.equal(httpPort.name, sidecar ? 'flagrelay' : 'http');
    assert.equal(metricsPort.name, sidecar ? 'flagrelay-prom' : 'metrics');
    const podPorts = [...spec.containers, ...(spec.initContainers ?? [])].flatMap((x) => x.ports ?? []).map((p) => p.name);
    assert.equal(new Set(podPorts).size, podPorts.length, `port names unique in the pod: ${podPorts}`);
    for (const p of podPorts) assert.ok(p.length <= 15, `port name ${p}`);

    // Readiness on the SDK port, HTTPS exactly when the relay serves TLS (a full SDK port takes
    // the pod out of the Service). Startup and liveness on the metrics port, plain HTTP: a relay
    // whose SDK port is full must not be restarted.
    const scheme = cfg.listen?.tls ? 'HTTPS' : 'HTTP';
    assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: httpPort.name, scheme }, 'readinessProbe');
    for (const probe of ['startupProbe', 'livenessProbe']) {
      assert.deepEqual(c[probe]?.httpGet, { path: '/healthz', port: metricsPort.name, scheme: 'HTTP' }, probe);
    }

    // Security: the container's own context (a sidecar cannot rely on its pod's).
    const sc = c.securityContext;
    assert.equal(sc.runAsNonRoot, true);
    assert.equal(sc.runAsUser, UID);
    assert.equal(sc.runAsGroup, UID);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    assert.equal(sc.seccompProfile.type, 'RuntimeDefault');
    if (!sidecar) {
      const psc = spec.securityContext;
      assert.deepEqual([psc.runAsNonRoot, psc.runAsUser, psc.runAsGroup, psc.fsGroup], [true, UID, UID, UID]);
      assert.equal(psc.seccompProfile.type, 'RuntimeDefault');
      assert.equal(spec.automountServiceAccountToken, false);
    }

    // The config: the whole ConfigMap mounted as a directory (no subPath), read-only.
    const cm = configMap(docs);
    const cfgMount = c.volumeMounts.find((m) => m.mountPath === '/etc/flagrelay');
    assert.ok(cfgMount, 'a mount at /etc/flagrelay');
    assert.equal(cfgMount.subPath, undefined);
    assert.equal(cfgMount.readOnly, true);
    for (const m of c.volumeMounts) assert.equal(m.subPath, undefined, `${m.name} uses subPath`);
    const cfgVolume = spec.volumes.find((v) => v.name === cfgMount.name);
    assert.equal(cfgVolume.configMap.name, cm.metadata.name);
    assert.equal(cfgVolume.configMap.items, undefined, 'every key of the ConfigMap, as a directory');

    // The cache at cache.dir: an emptyDir, the existing claim, the chart's claim, or the
    // StatefulSet's claim template.
    const cacheMount = c.volumeMounts.find((m) => m.mountPath === cfg.cache.dir);
    assert.ok(cacheMount, `a mount at ${cfg.cache.dir}`);
    const cacheVolume = spec.volumes.find((v) => v.name === cacheMount.name);
    if (owner.kind === 'StatefulSet') {
      assert.equal(cacheVolume, undefined);
      assert.ok(owner.spec.volumeClaimTemplates.some((t) => t.metadata.name === cacheMount.name));
    } else if (name === 'existing-claim') {
      assert.equal(cacheVolume.persistentVolumeClaim.claimName, 'relay-cache');
      assert.equal(owner.spec.strategy.type, 'Recreate');
    } else if (name === 'parent-pvc') {
      assert.equal(cacheVolume.persistentVolumeClaim.claimName, one(docs, 'PersistentVolumeClaim').metadata.name);
    } else {
      assert.ok(cacheVolume.emptyDir, 'an emptyDir');
      assert.equal(cacheVolume.emptyDir.medium, undefined, 'on disk, not in memory');
    }

    // Keys: every ${VAR} the config uses is defined in the container, and the key variables
    // come from Secrets.
    const text = configText(docs);
    const env = new Map((c.env ?? []).map((e) => [e.name, e]));
    for (const [, v] of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) {
      assert.ok(env.has(v), `\${${v}} is defined in the container`);
      assert.ok(env.get(v).valueFrom?.secretKeyRef, `${v} comes from a Secret`);
      assert.equal(env.get(v).value, undefined);
    }

    // The grace period outlasts the drain and the events flush.
    const drain = durationMs(cfg.shutdown?.drainDelay ?? '0s');
    const flush = durationMs(cfg.events?.shutdownTimeout ?? '5s');
    assert.ok(spec.terminationGracePeriodSeconds * 1000 >= drain + flush + 5000,
      `terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} vs drain ${drain} ms + flush ${flush} ms`);

    assert.ok(c.resources.requests.memory && c.resources.limits.memory, 'memory request and limit');
    if (sidecar) {
      const native = name === 'parent-native';
      assert.equal((spec.initContainers ?? []).includes(c), native, 'a native sidecar is an init container');
      assert.equal(c.restartPolicy, native ? 'Always' : undefined);
    }
  });
}

test('the Service, StatefulSet, HPA, PDB and monitors point at the pods and ports that exist', () => {
  for (const name of ['standalone', 'pvc', 'tls', 'full']) {
    const { docs } = renderCase(name);
    const [{ owner, pod }] = podTemplates(docs);
    const c = relayContainer(pod.spec);
    const svc = one(docs, 'Service');
    assert.ok(isSubset(svc.spec.selector, pod.metadata.labels), `${name}: Service selector`);
    for (const p of svc.spec.ports) assert.ok(c.ports.some((cp) => cp.name === p.targetPort), `${name}: targetPort ${p.targetPort}`);
    assert.ok(isSubset(owner.spec.selector.matchLabels, pod.metadata.labels));
    if (owner.kind === 'StatefulSet') assert.equal(owner.spec.serviceName, svc.metadata.name);
    for (const hpa of find(docs, 'HorizontalPodAutoscaler')) {
      assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: owner.kind, name: owner.metadata.name });
      assert.equal(owner.spec.replicas, undefined, 'replicas are left to the HPA');
    }
    for (const pdb of find(docs, 'PodDisruptionBudget')) assert.ok(isSubset(pdb.spec.selector.matchLabels, pod.metadata.labels));
    for (const sm of find(docs, 'ServiceMonitor')) {
      assert.ok(isSubset(sm.spec.selector.matchLabels, svc.metadata.labels), 'ServiceMonitor selects the Service');
      assert.ok(svc.spec.ports.some((p) => p.name === sm.spec.endpoints[0].port));
      assert.equal(sm.spec.endpoints[0].path, '/metrics');
    }
  }
  const { docs } = renderCase('parent');
  const [{ pod }] = podTemplates(docs);
  const pm = one(docs, 'PodMonitor');
  assert.ok(isSubset(pm.spec.selector.matchLabels, pod.metadata.labels), 'PodMonitor selects the pods with the sidecar');
  assert.ok(relayContainer(pod.spec).ports.some((p) => p.name === pm.spec.podMetricsEndpoints[0].port));
});

test('config.yaml is .Values.config one to one (the chart defaults merged with the values file)', () => {
  for (const name of ['standalone', 'sidecar', 'pvc', 'tls', 'full']) {
    const given = parseYaml(fs.readFileSync(valuesFile(name), 'utf8'));
    const expected = merge(chartDefaults.config, given.config);
    assert.deepEqual(parseYaml(configText(renderCase(name).docs)), expected, name);
  }
});

// Dummy values for the variables a config refers to, distinct so that keys stay unique.
function dummyEnv(text) {
  const env = {};
  for (const [, v] of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) {
    env[v] = v.includes('MOBILE') ? `mob-dummy-${v.toLowerCase()}` : `sdk-dummy-${v.toLowerCase()}`;
  }
  return env;
}

function checkConfig(text, dir) {
  // Files the config names under the chart's mount points are created in the temp dir: the
  // loader checks that they are readable.
  let rewritten = text;
  for (const [, file] of text.matchAll(/(\/etc\/flagrelay-[a-z]+\/[\w.]+)/g)) {
    const local = path.join(dir, file.replaceAll('/', '_'));
    fs.writeFileSync(local, 'not parsed by --check-config\n');
    rewritten = rewritten.replaceAll(file, local);
  }
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, rewritten);
  const r = spawnSync(assertRelayBinExists(), ['--check-config', file], {
    encoding: 'utf8',
    timeout: 10000,
    env: { PATH: process.env.PATH, ...dummyEnv(text) },
  });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

test('every rendered config.yaml passes `flagrelay --check-config` with the secret variables set', () => {
  const dir = makeTempDir('flagrelay-helm-config-');
  try {
    for (const name of Object.keys(CASES)) {
      const r = checkConfig(configText(renderCase(name).docs), dir);
      assert.equal(r.code, 0, `${name}: ${r.output}`);
    }
    // And the check can fail: a key the relay does not know.
    const bad = checkConfig(`${configText(renderCase('standalone').docs)}\nshutdown:\n  drainDelay: 5s\n  drainDelya: 1s\n`, dir);
    assert.equal(bad.code, 1, bad.output);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('no ConfigMap holds anything that looks like a key or a password, and no Secret is rendered', () => {
  const looksSecret = [
    /\b(sdk|mob)-[0-9a-f]{8}-[0-9a-f]{4}-/i, // LaunchDarkly SDK and mobile keys
    /\b(sdk|mob|api)-[A-Za-z0-9-]{16,}/,
    /[a-z]+:\/\/[^\s/@:]+:(?!\$\{)[^\s/@]+@/, // a URL with a literal password
  ];
  for (const name of Object.keys(CASES)) {
    const { docs } = renderCase(name);
    assert.equal(find(docs, 'Secret').length, 0);
    for (const cm of find(docs, 'ConfigMap')) {
      for (const [key, value] of Object.entries(cm.data)) {
        for (const re of looksSecret) assert.doesNotMatch(value, re, `${name}: ConfigMap ${cm.metadata.name} ${key}`);
      }
    }
  }
});

test('rollOnConfigChange: the pod template carries the checksum of config.yaml, which follows the config', () => {
  const { docs } = renderCase('full');
  const dep = one(docs, 'Deployment');
  const text = configText(docs).replace(/\n$/, '');
  const sum = crypto.createHash('sha256').update(text).digest('hex');
  assert.equal(dep.spec.template.metadata.annotations['checksum/config'], sum);
  const changed = renderOk({ values: [valuesFile('full')], set: ['config.logLevel=debug'] });
  assert.notEqual(one(changed.docs, 'Deployment').spec.template.metadata.annotations['checksum/config'], sum);
  assert.equal(one(renderCase('standalone').docs, 'Deployment').spec.template.metadata.annotations, undefined, 'off by default');
});

test('the grace period is derived from drainDelay and events.shutdownTimeout', () => {
  const grace = (set) => one(renderOk({ values: [valuesFile('standalone')], set }).docs, 'Deployment').spec.template.spec.terminationGracePeriodSeconds;
  assert.equal(grace([]), 5 + 5 + 10);
  assert.equal(grace(['config.shutdown.drainDelay=1m30s', 'config.events.shutdownTimeout=2500ms']), 90 + 3 + 10);
  assert.equal(grace(['terminationGracePeriodSeconds=60']), 60);
});

// Renders that must fail, with the message that tells the user why.
const FAILURES = [
  ['a literal sdkKey', { config: { environments: { production: { sdkKey: 'sdk-12345678-aaaa-bbbb-cccc-1234567890ab' } } } },
    /config\.environments\.production\.sdkKey holds a literal value/],
  ['a literal mobileKey', { config: { environments: { production: { mobileKey: 'mob-12345678-aaaa-bbbb-cccc-1234567890ab' } } } },
    /config\.environments\.production\.mobileKey holds a literal value/],
  ['a literal expiringSdkKey.key',
    { config: { environments: { production: { expiringSdkKey: { key: 'sdk-12345678-aaaa-bbbb-cccc-1234567890ab', expiry: '2026-12-01T00:00:00Z' } } } } },
    /config\.environments\.production\.expiringSdkKey\.key holds a literal value/],
  ['a literal expiringMobileKey.key',
    { config: { environments: { staging: { expiringMobileKey: { key: 'mob-12345678-aaaa-bbbb-cccc-1234567890ab', expiry: '2026-12-01T00:00:00Z' } } } } },
    /config\.environments\.staging\.expiringMobileKey\.key holds a literal value/],
  ['a literal key as a ${VAR:-default}', { config: { environments: { production: { sdkKey: '${LD_SDK_KEY_PRODUCTION:-sdk-12345678-aaaa-bbbb-cccc-1234567890ab}' } } } },
    /sdkKey holds a literal value/],
  ['a number as a key', { config: { environments: { staging: { sdkKey: 123456789 } } } }, /staging\.sdkKey holds a literal value/],
  ['a ${VAR} nothing defines', { config: { environments: { staging: { sdkKey: '${LD_SDK_KEY_STAGNG}' } } } },
    /staging\.sdkKey refers to \$\{LD_SDK_KEY_STAGNG\}, which neither secretEnv nor env defines/],
  ['an LD_ENV_ variable with a literal value', { env: [{ name: 'LD_ENV_qa', value: 'sdk-12345678-aaaa-bbbb-cccc-1234567890ab' }] },
    /env LD_ENV_qa holds a literal key/],
  ['an ld-relay variable name for an environment that does not exist',
    { secretEnv: [{ name: 'LD_MOBILE_KEY_PRODUCTION', secretName: 'flag-keys', key: 'production-mobile-key' }],
      config: { environments: { production: { mobileKey: '${LD_MOBILE_KEY_PRODUCTION}' } } } },
    /variable LD_MOBILE_KEY_PRODUCTION: the relay reads LD_MOBILE_KEY_<environment> .* there is no environment "PRODUCTION"/],
  ['a literal proxy password', { config: { proxy: { url: 'http://relay:hunter22@proxy:3128' } } }, /proxy\.url holds a literal password/],
  ['a secretEnv entry without its Secret', { secretEnv: [{ name: 'LD_SDK_KEY_PRODUCTION', key: 'production-sdk-key' }] },
    /secretEnv entries need name, secretName and key/],
  ['no environment at all', { config: { environments: null }, secretEnv: [] }, /config\.environments is empty/],
  ['a pinned grace period too short for drain + flush', { terminationGracePeriodSeconds: 10 },
    /terminationGracePeriodSeconds \(10\) must exceed shutdown\.drainDelay \+ events\.shutdownTimeout \(10 s\)/],
  ['a drainDelay that is not a duration', { config: { shutdown: { drainDelay: '5 seconds' } } }, /"5 seconds" is not a duration/],
  ['one existing claim for two replicas', { persistence: { enabled: true, existingClaim: 'relay-cache' } }, /persistence\.existingClaim is one ReadWriteOnce volume/],
  ['an unknown mode', { mode: 'daemonset' }, /mode must be standalone or sidecar, not "daemonset"/],
  ['both PDB bounds', { podDisruptionBudget: { enabled: true, minAvailable: 1, maxUnavailable: 1 } }, /set exactly one of minAvailable and maxUnavailable/],
  ['a sidecar PodMonitor without a pod selector', { mode: 'sidecar', monitoring: { serviceMonitor: { enabled: true } } },
    /podSelector is required in sidecar mode/],
  ['a ServiceMonitor with metrics off', { config: { metrics: { port: 0 } }, monitoring: { serviceMonitor: { enabled: true } } },
    /needs the metrics listener/],
  ['a listen port from a variable', { config: { listen: { port: '${PORT}' } } }, /config\.listen\.port must be a number/],
  ['the SDK port on loopback', { config: { listen: { host: '127.0.0.1' } } },
    /config\.listen\.host is 127\.0\.0\.1, but the kubelet's probes connect to the pod's IP/],
  ['the metrics port on loopback', { config: { metrics: { host: 'localhost' } } },
    /config\.metrics\.host is localhost, but the kubelet's probes connect to the pod's IP/],
  ['a relative cache dir', { config: { cache: { dir: 'cache' } } }, /config\.cache\.dir must be an absolute path/],
];

test('renders that must fail do, with a message naming the problem (and never echoing a key)', () => {
  const dir = makeTempDir('flagrelay-helm-fail-');
  try {
    FAILURES.forEach(([what, override, message], i) => {
      const r = render({ values: [valuesFile('standalone'), valuesTemp(dir, `f${i}`, override)] });
      assert.equal(r.code, 1, `${what}: exit ${r.code}\n${r.stdout}`);
      assert.match(r.stderr, /execution error at \(flagrelay\/templates\//, what);
      assert.match(r.stderr, message, what);
      assert.doesNotMatch(r.stderr, /1234567890ab|hunter22/, `${what}: the error shows the secret`);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('with the metrics listener off, every probe goes to the SDK port', () => {
  const dir = makeTempDir('flagrelay-helm-probes-');
  try {
    const { docs } = renderOk({ values: [valuesFile('standalone'), valuesTemp(dir, 'p', { config: { metrics: { port: 0 } } })] });
    const c = relayContainer(one(docs, 'Deployment').spec.template.spec);
    assert.deepEqual(c.ports.map((p) => p.name), ['http']);
    for (const [probe, p] of [['startupProbe', '/healthz'], ['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']]) {
      assert.deepEqual(c[probe]?.httpGet, { path: p, port: 'http', scheme: 'HTTP' }, probe);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('what the key check lets through: ${VAR:-} for optional keys, envFrom, LD_ENV_ from a Secret', () => {
  const dir = makeTempDir('flagrelay-helm-ok-');
  try {
    const ok = (override) => renderOk({ values: [valuesFile('standalone'), valuesTemp(dir, 'ok', override)] });
    ok({ config: { environments: { staging: { mobileKey: '${LD_MOBILE_KEY_STAGING:-}' } } } });
    ok({ envFrom: [{ secretRef: { name: 'all-flag-keys' } }], config: { environments: { staging: { sdkKey: '${FROM_ENVFROM}' } } } });
    const r = ok({ config: { environments: null }, secretEnv: [{ name: 'LD_ENV_production', secretName: 'flag-keys', key: 'production-sdk-key' }] });
    assert.doesNotMatch(configText(r.docs), /environments/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the sidecar template refuses a flagrelay dependency left in standalone mode', () => {
  const r = render({ chart: PARENT, name: 'shop', set: ['flagrelay.mode=standalone'] });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /set the flagrelay chart's mode to sidecar/);
});

test('NOTES.txt renders in both modes and tells where to point sidecars and SDKs', () => {
  const standalone = render({ values: [valuesFile('standalone')], notes: true });
  assert.equal(standalone.code, 0, standalone.stderr);
  assert.match(standalone.stdout, /streamUri: http:\/\/regional-flagrelay\.flags\.svc:8030/);
  const tls = render({ values: [valuesFile('tls')], notes: true });
  assert.match(tls.stdout, /streamUri: https:\/\/regional-flagrelay\.flags\.svc:443/);
  const sidecar = render({ values: [valuesFile('sidecar')], notes: true });
  assert.equal(sidecar.code, 0, sidecar.stderr);
  assert.match(sidecar.stdout, /include "flagrelay\.sidecar\.container"/);
  assert.match(sidecar.stdout, /terminationGracePeriodSeconds: 20/);
});

test('docs/kubernetes.md: the plain-YAML sidecar is what the include route renders', async () => {
  const md = fs.readFileSync(path.join(REPO, 'docs/kubernetes.md'), 'utf8');
  const block = /^```yaml id=plain-sidecar\n([\s\S]*?)^```$/m.exec(md);
  assert.ok(block, 'docs/kubernetes.md has the block ```yaml id=plain-sidecar');
  const docs = block[1].split(/^---$/m).map(parseYaml).filter(Boolean);
  for (const obj of docs) assert.deepEqual(await schemaProblems(obj), [], `${obj.kind} in docs/kubernetes.md`);
  const plainPod = docs.find((o) => o.kind === 'Deployment').spec.template.spec;
  const plainCm = docs.find((o) => o.kind === 'ConfigMap');
  const rendered = renderCase('parent').docs;
  const pod = podTemplates(rendered)[0].pod.spec;
  assert.deepEqual(relayContainer(plainPod), relayContainer(pod), 'the flagrelay container');
  const volumes = (spec) => spec.volumes.filter((v) => v.name.startsWith('flagrelay-'));
  assert.deepEqual(volumes(plainPod), volumes(pod), 'the flagrelay volumes');
  assert.equal(plainPod.terminationGracePeriodSeconds, pod.terminationGracePeriodSeconds);
  assert.deepEqual(parseYaml(plainCm.data['config.yaml']), parseYaml(configText(rendered)), 'config.yaml');
  assert.equal(plainCm.metadata.name, configMap(rendered).metadata.name);
});

test('docs: every values example (blocks tagged id=values-*) renders, and its config passes --check-config', () => {
  const dir = makeTempDir('flagrelay-helm-docs-');
  try {
    const sources = [path.join(REPO, 'docs/kubernetes.md'), path.join(CHART, 'README.md')];
    let n = 0;
    for (const file of sources) {
      for (const [, id, body] of fs.readFileSync(file, 'utf8').matchAll(/^```yaml id=(values-[\w-]+)\n([\s\S]*?)^```$/gm)) {
        n++;
        const snippet = path.join(dir, `${id}.yaml`);
        fs.writeFileSync(snippet, body);
        // A parent chart's values go to the parent chart; an example with keys and environments
        // renders alone; a fragment (TLS, chaining) is laid over a complete standalone values
        // file, as a user adds it to theirs.
        const values = parseYaml(body);
        const complete = values.secretEnv || values.config?.environments;
        const r = 'flagrelay' in values
          ? render({ chart: PARENT, name: 'shop', namespace: 'shop', values: [snippet] })
          : render({ values: complete ? [snippet] : [valuesFile('standalone'), snippet] });
        assert.equal(r.code, 0, `${path.basename(file)} ${id}: ${r.stderr}`);
        const docs = r.docs;
        const check = checkConfig(configText(docs), dir);
        assert.equal(check.code, 0, `${path.basename(file)} ${id}: ${check.output}`);
      }
    }
    assert.ok(n >= 7, `found ${n} values examples`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

