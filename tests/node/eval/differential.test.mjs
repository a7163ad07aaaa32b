// Differential test of the relay's evaluation endpoints (protocol reference §1.5) against the
// official Node server SDK.
//
// A seeded generator (support/corpus.mjs) builds ~300 flags, ~60 segments and ~320 contexts. The fake
// upstream serves them on GET /all to both the relay and an in-process @launchdarkly/node-server-sdk
// client (streaming, no events). For every context the relay's
//   GET /sdk/evalx/{envId}/contexts/{b64}   (JS: clientSideAvailability.usingEnvironmentId flags)
//   GET /msdk/evalx/contexts/{b64}          (mobile key: usingMobileKey flags)
//   GET /sdk/evalx/contexts/{b64}           (SDK key: all flags)
// with ?withReasons=true must equal the SDK's allFlagsState({withReasons: true[, clientSideOnly]})
// converted to the relay's shape (eval/oracle.mjs): zero differences. Some contexts are also asked
// without reasons, with padded base64url, and through the REPORT variants (body = context JSON).
// The put and the contexts are sent as exact JSON text, including integers beyond 2^53 (which Go and
// Node both parse as doubles); the SDK is given the parsed contexts.
//
// The generator avoids the known Go/Node divergences (listed in support/corpus.mjs). On failure the
// first differences are printed with the flag, the segments it uses, the context and both results;
// the complete list is written to a JSON file named in the output.
//
//   FLAGRELAY_BIN=... node --test --test-concurrency=1 eval/
//   FLAGRELAY_DIFF_SEED=<uint32>       another corpus (the seed is printed as a diagnostic)
//   FLAGRELAY_DIFF_MAX_REPORT=<n>      differences printed in detail (default 8)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { relayTest, prodEnv } from '../support/harness.mjs';
import { KEYS } from '../support/flags.mjs';
import { generateCorpus, seedFromEnv } from '../support/corpus.mjs';
import { b64url, b64urlPadded } from '../support/contexts.mjs';
import { sleep } from '../support/http.mjs';
import { countingLogger, startSdk, sdkEvalx, diffEvalx, accumulateCoverage } from './oracle.mjs';

const TIMEOUT_MS = Number(process.env.FLAGRELAY_DIFF_TIMEOUT_MS || 85000);
const MAX_REPORT = Number(process.env.FLAGRELAY_DIFF_MAX_REPORT || 8);
const CONCURRENCY = 4;

/** One request over a keep-alive agent; resolves {status, text, json (parsed or undefined)}. */
function request(agent, url, { method = 'GET', headers = {}, body, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function pool(items, n, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** Segment keys a flag (or segment) reaches through segmentMatch clauses, transitively. */
function segmentsUsed(item, segments, seen = new Set()) {
  for (const rule of item?.rules ?? []) {
    for (const c of rule.clauses ?? []) {
      if (c.op !== 'segmentMatch') continue;
      for (const k of c.values) {
        if (seen.has(k) || !segments[k]) continue;
        seen.add(k);
        segmentsUsed(segments[k], segments, seen);
      }
    }
  }
  return seen;
}

/** Flag keys reachable through prerequisites. */
function prereqsUsed(flag, flags, seen = new Set()) {
  for (const p of flag?.prerequisites ?? []) {
    if (seen.has(p.key) || !flags[p.key]) continue;
    seen.add(p.key);
    prereqsUsed(flags[p.key], flags, seen);
  }
  return seen;
}

function clip(s, n = 6000) {
  return s.length > n ? `${s.slice(0, n)}... [${s.length - n} more chars]` : s;
}

function countBy(list, f) {
  const m = new Map();
  for (const x of list) m.set(f(x), (m.get(f(x)) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1]);
}

function report(corpus, diffs, reportFile) {
  const lines = [];
  lines.push(`===== evalx differential: ${diffs.length} difference(s), seed ${corpus.seed} =====`);
  lines.push(`by endpoint: ${JSON.stringify(countBy(diffs, (d) => d.endpoint))}`);
  lines.push(`by field: ${JSON.stringify(countBy(diffs, (d) => d.field))}`);
  const byFlag = countBy(diffs, (d) => d.flagKey);
  lines.push(`flags involved (${byFlag.length}): ${JSON.stringify(byFlag.slice(0, 30))}`);
  // Detail: one difference per (flag, field) first, so distinct problems show up.
  const seen = new Set();
  const picked = [];
  for (const d of diffs) {
    const k = `${d.flagKey}|${d.field}`;
    if (seen.has(k)) continue;
    seen.add(k);
    picked.push(d);
    if (picked.length >= MAX_REPORT) break;
  }
  for (const [n, d] of picked.entries()) {
    lines.push(`--- difference ${n + 1}: ${d.endpoint} context #${d.contextIndex} flag ${d.flagKey}: ${d.field}`);
    lines.push(`context: ${d.contextJson}`);
    lines.push(`sdk:     ${JSON.stringify(d.sdk)}`);
    lines.push(`relay:   ${JSON.stringify(d.relay)}`);
    const flag = corpus.flags[d.flagKey];
    if (flag) {
      lines.push(`flag info: ${JSON.stringify(corpus.info[d.flagKey])}`);
      lines.push(`flag: ${clip(JSON.stringify(flag))}`);
      const pre = [...prereqsUsed(flag, corpus.flags)];
      for (const k of pre) lines.push(`prerequisite flag ${k}: ${clip(JSON.stringify(corpus.flags[k]), 3000)}`);
      const segs = new Set();
      for (const f of [flag, ...pre.map((k) => corpus.flags[k])]) segmentsUsed(f, corpus.segments, segs);
      for (const k of segs) lines.push(`segment ${k}: ${clip(JSON.stringify(corpus.segments[k]), 3000)}`);
    }
  }
  lines.push(`complete list: ${reportFile}`);
  return lines.join('\n');
}

relayTest(
  'evalx endpoints agree with the Node server SDK on a generated corpus (zero differences)',
  async (t, s) => {
    const t0 = performance.now();
    const seed = seedFromEnv();
    t.diagnostic(`FLAGRELAY_DIFF_SEED=${seed}`);
    const corpus = generateCorpus(seed);
    t.diagnostic(`corpus: ${JSON.stringify(corpus.stats)}`);
    const { flags, contexts, contextsJson } = corpus;

    // The put is written as raw text (corpus.flagsJson keeps integers beyond 2^53 exact); the SDK
    // and the relay read the same bytes.
    const up = await s.upstream({ sdkKey: KEYS.prod });
    up.connectPayload = `event: put\ndata: {"path":"/","data":{"flags":${corpus.flagsJson},"segments":${corpus.segmentsJson}}}\n\n`;
    const sdkLog = countingLogger();
    const client = await startSdk(up.url, KEYS.prod, sdkLog.logger);
    s.defer(() => client.close());
    const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), logLevel: 'info' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    s.defer(() => agent.destroy());

    // Wait until the relay has the data (evalx answers 200 with the full flag set).
    const probe = `${relay.url}/sdk/evalx/contexts/${b64url('{"kind":"user","key":"probe"}')}`;
    const deadline = Date.now() + 15000;
    for (;;) {
      const r = await request(agent, probe, { headers: { Authorization: KEYS.prod } }).catch((err) => ({ status: 0, text: err.message }));
      if (r.status === 200 && r.json && Object.keys(r.json).length === Object.keys(flags).length) break;
      if (Date.now() > deadline) {
        throw new Error(`relay evalx not ready within 15 s: last answer ${r.status} ${String(r.text).slice(0, 300)}`);
      }
      await sleep(100);
    }
    const tReady = performance.now();

    const mobileFlag = (k) => flags[k].clientSideAvailability?.usingMobileKey === true;
    const diffs = [];
    const coverage = {};
    let requests = 0;
    let bytes = 0;

    const check = async (endpoint, ctxIndex, expected, req) => {
      const contextJson = contextsJson[ctxIndex];
      requests++;
      let r;
      try {
        // One retry for a connection-level failure (e.g. a reused keep-alive socket the relay
        // had just closed); a relay that is really gone fails the retry too.
        r = await request(agent, req.url, req).catch(() => request(agent, req.url, req));
      } catch (err) {
        diffs.push({ endpoint, contextIndex: ctxIndex, contextJson, flagKey: '*', field: `request failed: ${err.message}`, sdk: null, relay: null });
        return;
      }
      bytes += r.text.length;
      if (r.status !== 200 || r.json === undefined) {
        diffs.push({ endpoint, contextIndex: ctxIndex, contextJson, flagKey: '*', field: `HTTP ${r.status}`, sdk: null, relay: r.text.slice(0, 500) });
        return;
      }
      for (const d of diffEvalx(expected, r.json)) diffs.push({ endpoint, contextIndex: ctxIndex, contextJson, ...d });
    };

    // REPORT for the first context of each shape (user, other kind, multi-kind, old user).
    const reportIdx = new Set([0, 4, 6, 8, contexts.length - 1]);

    await pool(contexts, CONCURRENCY, async (context, i) => {
      const enc = i % 11 === 5 ? b64urlPadded(contextsJson[i]) : b64url(contextsJson[i]);
      const [jsExp, allExp] = await Promise.all([
        sdkEvalx(client, context, { clientSideOnly: true }),
        sdkEvalx(client, context, {}),
      ]);
      const mobExp = Object.fromEntries(Object.entries(allExp).filter(([k]) => mobileFlag(k)));
      accumulateCoverage(coverage, allExp);
      const q = '?withReasons=true';
      const jobs = [
        check('GET js', i, jsExp, { url: `${relay.url}/sdk/evalx/${KEYS.prodEnvId}/contexts/${enc}${q}` }),
        check('GET server', i, allExp, { url: `${relay.url}/sdk/evalx/contexts/${enc}${q}`, headers: { Authorization: KEYS.prod } }),
        check('GET mobile', i, mobExp, { url: `${relay.url}/msdk/evalx/contexts/${enc}${q}`, headers: { Authorization: KEYS.prodMobile } }),
      ];
      if (i % 8 === 3) {
        const noReasons = await sdkEvalx(client, context, { withReasons: false });
        jobs.push(check('GET server (no reasons)', i, noReasons, { url: `${relay.url}/sdk/evalx/contexts/${enc}`, headers: { Authorization: KEYS.prod } }));
      }
      if (reportIdx.has(i)) {
        const body = contextsJson[i];
        const h = { 'Content-Type': 'application/json' };
        jobs.push(
          check('REPORT js', i, jsExp, { url: `${relay.url}/sdk/evalx/${KEYS.prodEnvId}/context${q}`, method: 'REPORT', headers: h, body }),
          check('REPORT server', i, allExp, { url: `${relay.url}/sdk/evalx/context${q}`, method: 'REPORT', headers: { ...h, Authorization: KEYS.prod }, body }),
          check('REPORT mobile', i, mobExp, { url: `${relay.url}/msdk/evalx/context${q}`, method: 'REPORT', headers: { ...h, Authorization: KEYS.prodMobile }, body }),
        );
      }
      await Promise.all(jobs);
    });
    const tDone = performance.now();

    t.diagnostic(
      `timing: setup ${Math.round(tReady - t0)} ms, compare ${Math.round(tDone - tReady)} ms; ${requests} requests, ${(bytes / 1e6).toFixed(1)} MB of responses`,
    );
    t.diagnostic(`coverage (server evaluations by the SDK): ${JSON.stringify(coverage)}`);
    t.diagnostic(`SDK log lines: ${JSON.stringify(sdkLog.counts)}`);
    if (sdkLog.counts.warn) s.notes.push(`SDK warnings: ${sdkLog.lines.join(' | ')}`);

    if (diffs.length) {
      const reportFile = path.join(os.tmpdir(), `flagrelay-evalx-diff-${seed}.json`);
      fs.writeFileSync(reportFile, JSON.stringify({ seed, count: diffs.length, diffs }, null, 1));
      process.stderr.write(`${report(corpus, diffs, reportFile)}\n`);
    }
    assert.equal(diffs.length, 0, `${diffs.length} evalx difference(s) between the relay and the Node SDK (seed ${seed}); see the report above`);

    // The corpus must keep exercising every outcome (guards against a generator that degenerates).
    for (const k of ['OFF', 'FALLTHROUGH', 'TARGET_MATCH', 'RULE_MATCH', 'PREREQUISITE_FAILED', 'ERROR', 'inExperiment', 'bigSegments:NOT_CONFIGURED', 'trackReason', 'withPrerequisites']) {
      assert.ok(coverage[k] > 0, `corpus coverage: no ${k} result among the SDK's evaluations (seed ${seed})`);
    }
  },
  { timeout: TIMEOUT_MS },
);
