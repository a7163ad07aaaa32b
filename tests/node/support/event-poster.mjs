// A worker thread that posts events bodies to a relay as fast as it answers, for the event
// flood test and bench/events.mjs: in its own thread, its client work does not delay the SDKs
// or the measuring on the main thread.
//
// workerData: { url, path ('/bulk'), key, bodies (JSON arrays, sent in turn), ms, maxPosts,
// connections (keep-alive) }. Posts { posts, statuses: {status or error code: count}, ms }.
import http from 'node:http';
import { Worker, parentPort, workerData, isMainThread } from 'node:worker_threads';

/**
 * `count` different JSON arrays of `size` realistic `feature` events (~356 bytes each: context
 * keys, a reason, 40 flags), so that compression sees variety rather than one repeated body.
 * Every event begins with `{"kind":"feature"`, and nothing inside one does.
 */
export function featureEventBodies(count = 20, size = 50) {
  const flags = Array.from({ length: 40 }, (_, i) => `${['checkout-redesign', 'search-ranking-v', 'dark-mode', 'new-onboarding'][i % 4]}-${i}`);
  const event = (i) =>
    JSON.stringify({
      kind: 'feature',
      creationDate: 1732000000000 + i * 37,
      key: flags[(i * 7) % flags.length],
      contextKeys: { user: `user-${(i * 7919) % 100003}`, org: `org-${i % 97}` },
      value: i % 3 === 0 ? 'treatment-b' : 'control',
      variation: i % 3 === 0 ? 1 : 0,
      version: 40 + (i % 5),
      default: 'control',
      reason: { kind: 'RULE_MATCH', ruleIndex: i % 4, ruleId: `rule-${((i * 131) % 1000).toString(16).padStart(8, '0')}-5d1e-4b9c-9f3a-71f2e4b0a6d1`, inExperiment: i % 2 === 0 },
      samplingRatio: 1,
      excludeFromSummaries: false,
    });
  return Array.from({ length: count }, (_, b) => `[${Array.from({ length: size }, (_, i) => event(b * size + i)).join(',')}]`);
}

/** Starts the poster; resolves with its result once `ms` or `maxPosts` is reached. */
export function postEvents(options) {
  const worker = new Worker(new URL(import.meta.url), { workerData: options });
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

async function run({ url, path = '/bulk', key, bodies, ms, maxPosts = Infinity, connections }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const headers = { Authorization: key, 'Content-Type': 'application/json', 'X-LaunchDarkly-Event-Schema': '4', 'User-Agent': 'NodeJSClient/9.13.7' };
  const statuses = {};
  const count = (what) => (statuses[what] = (statuses[what] ?? 0) + 1);
  const start = Date.now();
  let posts = 0;
  const post = () =>
    new Promise((resolve) => {
      const req = http.request(url + path, { method: 'POST', agent, headers }, (res) => {
        count(res.statusCode);
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', (err) => {
        count(err.code ?? 'error');
        resolve();
      });
      req.end(bodies[posts++ % bodies.length]);
    });
  const loop = async () => {
    while (Date.now() - start < ms && posts < maxPosts) await post();
  };
  await Promise.all(Array.from({ length: connections }, loop));
  agent.destroy();
  return { posts, statuses, ms: Date.now() - start };
}

if (!isMainThread && workerData?.bodies) parentPort.postMessage(await run(workerData));
