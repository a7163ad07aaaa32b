// The Helm chart's test support: the Go renderer (tests/helm/render, `helm template` for the
// chart, built with Debian's Go packages), YAML parsing as Kubernetes reads it, Kubernetes
// schema validation with unknown-field detection, and pod-spec helpers.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../../..');
export const CHART = path.join(REPO, 'helm/flagrelay');
export const HELM_TESTS = path.join(REPO, 'tests/helm');
export const valuesFile = (name) => path.join(HELM_TESTS, 'values', `${name}.yaml`);

export const GO = process.env.GO || 'go';
let rendererPath = null;

/** Go in GOPATH mode on Debian's packaged sources: no module proxy, nothing fetched. */
export function goEnv() {
  return {
    ...process.env,
    GO111MODULE: 'off',
    GOPATH: '/usr/share/gocode',
    GOFLAGS: '',
    GOENV: 'off', // no user go.env: the same build on every machine
    CGO_ENABLED: '0', // pure Go; no C toolchain involved
    GOCACHE: path.join(os.tmpdir(), 'flagrelay-helm-gocache'),
  };
}

/**
 * Builds the renderer once per process (GO111MODULE=off against Debian's GOPATH, offline) into a
 * temp dir removed at exit; the Go build cache stays in the system temp dir across runs.
 */
export function renderer() {
  if (rendererPath) return rendererPath;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flagrelay-helm-render-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'render');
  const r = spawnSync(GO, ['build', '-o', out, '.'], {
    cwd: path.join(HELM_TESTS, 'render'),
    encoding: 'utf8',
    timeout: 120000,
    env: goEnv(),
  });
  if (r.error || r.status !== 0) {
    throw new Error(
      `building tests/helm/render failed (needs golang-go, golang-github-masterminds-sprig-dev and ` +
        `golang-k8s-sigs-yaml-dev: scripts/install-deps --test):\n${r.error ?? ''}${r.stderr}`,
    );
  }
  rendererPath = out;
  return out;
}

/** Kubernetes (sigs.k8s.io/yaml, yaml.v2) reads YAML 1.1: `on`, `yes` are booleans there. */
export function parseYaml(text) {
  return YAML.parse(text, { version: '1.1', uniqueKeys: true, prettyErrors: true });
}

/**
 * Renders a chart. Options: values (files), set (a.b=v strings), name, namespace, chart, notes.
 * Returns {code, stdout, stderr, docs: [{source, obj}]}; docs only when the render succeeded.
 */
export function render({ values = [], set = [], name = 'regional', namespace = 'flags', chart = CHART, notes = false } = {}) {
  const args = ['--name', name, '--namespace', namespace];
  for (const f of values) args.push('-f', f);
  for (const s of set) args.push('--set', s);
  if (notes) args.push('--notes');
  args.push(chart);
  const r = spawnSync(renderer(), args, { encoding: 'utf8', timeout: 30000 });
  if (r.error) throw r.error;
  const result = { code: r.status, stdout: r.stdout, stderr: r.stderr, docs: [] };
  if (r.status === 0 && !notes) {
    for (const part of r.stdout.split(/^---$/m)) {
      const source = /^# Source: (.*)$/m.exec(part)?.[1];
      if (!source) continue;
      result.docs.push({ source, obj: parseYaml(part) });
    }
  }
  return result;
}

/** Renders and fails loudly on an error. */
export function renderOk(opts) {
  const r = render(opts);
  if (r.code !== 0) throw new Error(`render failed (exit ${r.code}):\n${r.stderr}`);
  return r;
}

/** Writes values (an object) to a temp file and returns its path. */
export function valuesTemp(dir, name, obj) {
  const p = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(p, YAML.stringify(obj));
  return p;
}

export const find = (docs, kind, pred = () => true) => docs.map((d) => d.obj).filter((o) => o.kind === kind && pred(o));
export const one = (docs, kind) => {
  const all = find(docs, kind);
  if (all.length !== 1) throw new Error(`expected one ${kind}, got ${all.length}`);
  return all[0];
};

// ---------------------------------------------------------------------------------------------
// Schema validation. The packages' validators are compiled JSON Schema (ajv), which accepts
// unknown fields; the API server (kubectl's and Helm's strict field validation) rejects them.
// So the object is wrapped in proxies that record which properties the validator reads: a key
// it never read is not in the schema. A validator that enumerates an object's keys (a map, or
// preserve-unknown-fields) marks all of them as known.

const SCHEMAS = {
  'v1/ConfigMap': ['kubernetes-models', 'IoK8sApiCoreV1ConfigMap'],
  'v1/Service': ['kubernetes-models', 'IoK8sApiCoreV1Service'],
  'v1/ServiceAccount': ['kubernetes-models', 'IoK8sApiCoreV1ServiceAccount'],
  'v1/PersistentVolumeClaim': ['kubernetes-models', 'IoK8sApiCoreV1PersistentVolumeClaim'],
  'v1/Pod': ['kubernetes-models', 'IoK8sApiCoreV1Pod'],
  'apps/v1/Deployment': ['kubernetes-models', 'IoK8sApiAppsV1Deployment'],
  'apps/v1/StatefulSet': ['kubernetes-models', 'IoK8sApiAppsV1StatefulSet'],
  'autoscaling/v2/HorizontalPodAutoscaler': ['kubernetes-models', 'IoK8sApiAutoscalingV2HorizontalPodAutoscaler'],
  'policy/v1/PodDisruptionBudget': ['kubernetes-models', 'IoK8sApiPolicyV1PodDisruptionBudget'],
  'monitoring.coreos.com/v1/ServiceMonitor': [
    '@kubernetes-models/prometheus-operator',
    'ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1ServiceMonitor',
  ],
  'monitoring.coreos.com/v1/PodMonitor': [
    '@kubernetes-models/prometheus-operator',
    'ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1PodMonitor',
  ],
  'monitoring.coreos.com/v1/PrometheusRule': [
    '@kubernetes-models/prometheus-operator',
    'ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1PrometheusRule',
  ],
};

const validators = new Map();

// The validators are not in the packages' exports, so they are imported by file URL.
async function validator(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (!SCHEMAS[key]) throw new Error(`no schema for ${key}: add it to SCHEMAS in support/helm.mjs`);
  if (!validators.has(key)) {
    const [pkg, name] = SCHEMAS[key];
    const entry = fileURLToPath(import.meta.resolve(pkg));
    let dir = path.dirname(entry);
    while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
    const mod = await import(pathToFileURL(path.join(dir, '_schemas', `${name}.js`)).href);
    validators.set(key, mod.validate);
  }
  return validators.get(key);
}

function track(value, where, records) {
  if (value === null || typeof value !== 'object') return value;
  const rec = { where, keys: Object.keys(value), read: new Set(), enumerated: false };
  if (!Array.isArray(value)) records.push(rec);
  const children = new Map();
  return new Proxy(value, {
    get(target, prop, receiver) {
      if (typeof prop !== 'string') return Reflect.get(target, prop, receiver);
      rec.read.add(prop);
      if (!children.has(prop)) children.set(prop, track(target[prop], `${where}.${prop}`, records));
      return children.get(prop);
    },
    ownKeys(target) {
      rec.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

/** Returns a list of problems: schema errors and unknown fields ("" when valid). */
export async function schemaProblems(obj) {
  const validate = await validator(obj.apiVersion, obj.kind);
  const records = [];
  const ok = validate(track(obj, '', records));
  const problems = [];
  if (!ok) {
    for (const e of validate.errors) problems.push(`${e.instancePath} ${e.message ?? `${e.keyword} ${JSON.stringify(e.params)}`}`);
    return problems; // the validator stops early, so unread keys prove nothing
  }
  for (const r of records) {
    if (r.enumerated) continue;
    for (const k of r.keys) if (!r.read.has(k)) problems.push(`${r.where}.${k}: unknown field`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

/** The pod templates of the workloads in a render: [{owner, pod: {metadata, spec}}]. */
export function podTemplates(docs) {
  return docs
    .map((d) => d.obj)
    .filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind))
    .map((o) => ({ owner: o, pod: o.spec.template }));
}

/** The flagrelay container in a pod spec (in containers or, as a native sidecar, initContainers). */
export function relayContainer(podSpec) {
  const all = [...(podSpec.containers ?? []), ...(podSpec.initContainers ?? [])];
  return all.find((c) => /(^|\/)flagrelay[:@]/.test(c.image));
}

/** config.yaml of the chart's ConfigMap in a render, as text. */
export function configMap(docs) {
  const cms = find(docs, 'ConfigMap', (o) => o.data?.['config.yaml'] !== undefined);
  if (cms.length !== 1) throw new Error(`expected one config ConfigMap, got ${cms.length}`);
  return cms[0];
}

export const configText = (docs) => configMap(docs).data['config.yaml'];

/** A relay duration in ms ("1m30s" -> 90000), as docs/configuration.md defines it. */
export function durationMs(d) {
  const m = /^(?:\d+(?:ms|h|m|s))+$/.exec(d);
  if (!m) throw new Error(`not a duration: ${d}`);
  const scale = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  let ms = 0;
  for (const [, n, unit] of d.matchAll(/(\d+)(ms|h|m|s)/g)) ms += Number(n) * scale[unit];
  return ms;
}
