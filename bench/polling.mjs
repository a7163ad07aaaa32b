// Polling throughput (issue 7): flagrelay's `/sdk/latest-all` against nginx serving the very same
// bytes as static files (identity and, with gzip_static, the relay's own gzip body), both under
// wrk with the same settings, one after the other in the same run, on loopback.
//
//   node bench/polling.mjs [--runs 3] [--seconds 5] [--connections 32] [--threads 1]
//
// Cases: 2 kB and 100 kB payloads × identity, gzip and 304 revalidation (If-None-Match with
// each server's own ETag). Prints requests/s and p99 per server and the relay/nginx ratio
// (median over --runs). --json adds one JSON line. Options: --bin RELAY (default
// build/relay/flagrelay).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startRelay } from '../tests/node/support/relay.mjs';
import { freePort } from '../tests/node/support/ports.mjs';
import { httpRequest } from '../tests/node/support/http.mjs';
import { startNginx, requireCommand } from './peers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  return typeof fallback === 'boolean' ? true : args[i + 1];
};
const runs = Number(opt('runs', 3));
const seconds = Number(opt('seconds', 5));
const connections = Number(opt('connections', 32));
const wrkThreads = Number(opt('threads', 1));
const relayBin = path.resolve(opt('bin', path.join(root, 'build/relay/flagrelay')));
const json = opt('json', false);
const SDK_KEY = 'sdk-bench-0000-0000-0000-000000000000';

requireCommand('wrk', 'wrk');

// Flags of realistic shape until the `put` body reaches about `bytes`.
function flagsOfSize(bytes) {
  const flags = {};
  for (let i = 0; JSON.stringify({ flags, segments: {} }).length < bytes; i++) {
    flags[`flag-${i}`] = {
      key: `flag-${i}`, version: 3, on: true, salt: `salt-${i}`,
      variations: [true, false], offVariation: 1, fallthrough: { variation: 0 },
      targets: [{ values: [`user-${i}`], variation: 0 }], rules: [], prerequisites: [],
      trackEvents: false, deleted: false,
    };
  }
  return { flags, segments: {} };
}

function wrk(url, headers) {
  const argv = ['-t', String(wrkThreads), '-c', String(connections), '-d', `${seconds}s`, '--latency'];
  for (const [k, v] of Object.entries(headers)) argv.push('-H', `${k}: ${v}`);
  argv.push(url);
  const r = spawnSync('wrk', argv, { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const out = r.stdout ?? '';
  const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const p99Text = out.match(/^\s+99%\s+([\d.]+)(us|ms|s)/m);
  const p99 = p99Text ? Number(p99Text[1]) * { us: 0.001, ms: 1, s: 1000 }[p99Text[2]] : NaN;
  const non2xx = Number(out.match(/Non-2xx or 3xx responses:\s+(\d+)/)?.[1] ?? 0);
  const errors = out.match(/Socket errors:.*/)?.[0] ?? '';
  return { rps, p99, non2xx, errors, raw: out };
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

async function main() {
  const results = [];
  for (const size of [2000, 100000]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flagrelay-polling-'));
    const dataFile = path.join(dir, 'flags.json');
    fs.writeFileSync(dataFile, JSON.stringify(flagsOfSize(size)));
    const relay = await startRelay({
      bin: relayBin,
      upstreamUrl: 'http://127.0.0.1:9',
      environments: { bench: { sdkKey: SDK_KEY, dataFile, events: { enabled: false } } },
      logLevel: 'warn',
    });
    const webRoot = path.join(dir, 'www');
    fs.mkdirSync(path.join(webRoot, 'sdk'), { recursive: true });
    fs.chmodSync(dir, 0o755); // nginx's workers run as another user
    const url = `${relay.url}/sdk/latest-all`;
    const auth = { Authorization: SDK_KEY };
    // The relay's own bytes, identity and gzip, become nginx's files.
    const plain = await httpRequest(url, { headers: auth });
    const gz = await httpRequest(url, { headers: { ...auth, 'Accept-Encoding': 'gzip' } });
    if (gz.headers['content-encoding'] !== 'gzip') throw new Error('the relay did not gzip');
    fs.writeFileSync(path.join(webRoot, 'sdk', 'latest-all'), plain.body);
    fs.writeFileSync(path.join(webRoot, 'sdk', 'latest-all.gz'), gz.body);
    const nginx = await startNginx({ port: await freePort(), root: webRoot });
    const nginxUrl = `${nginx.url}/sdk/latest-all`;
    const nginxEtag = (await httpRequest(nginxUrl)).headers.etag;
    const relayEtag = plain.headers.etag;
    const cases = [
      ['identity', {}, {}],
      ['gzip', { 'Accept-Encoding': 'gzip' }, { 'Accept-Encoding': 'gzip' }],
      ['304', { 'If-None-Match': relayEtag }, { 'If-None-Match': nginxEtag }],
    ];
    try {
      for (const [name, relayHeaders, nginxHeaders] of cases) {
        // Both must answer this case properly before it is measured.
        const expected = name === '304' ? 304 : 200;
        for (const [u, h] of [[url, { ...auth, ...relayHeaders }], [nginxUrl, nginxHeaders]]) {
          const res = await httpRequest(u, { headers: h });
          if (res.status !== expected) throw new Error(`${u} ${JSON.stringify(h)}: ${res.status}, expected ${expected}`);
        }
        const row = { payload: `${Math.round(Buffer.byteLength(plain.body) / 1000)} kB`, case: name, relay: [], nginx: [] };
        for (let i = 0; i < runs; i++) {
          row.relay.push(wrk(url, { ...auth, ...relayHeaders }));
          row.nginx.push(wrk(nginxUrl, nginxHeaders));
        }
        results.push(row);
        const r = median(row.relay.map((x) => x.rps));
        const n = median(row.nginx.map((x) => x.rps));
        console.error(`${row.payload} ${name}: flagrelay ${Math.round(r)} req/s, nginx ${Math.round(n)} req/s, ratio ${(r / n).toFixed(2)}`);
      }
    } finally {
      await nginx.stop();
      await relay.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log('| payload | case | flagrelay req/s | p99 ms | nginx req/s | p99 ms | flagrelay / nginx | errors (flagrelay / nginx) |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const row of results) {
    const r = median(row.relay.map((x) => x.rps));
    const n = median(row.nginx.map((x) => x.rps));
    const bad = `${row.relay.reduce((s, x) => s + x.non2xx, 0)} / ${row.nginx.reduce((s, x) => s + x.non2xx, 0)}`;
    console.log(`| ${row.payload} | ${row.case} | ${Math.round(r)} | ${median(row.relay.map((x) => x.p99)).toFixed(2)} | ${Math.round(n)} | ${median(row.nginx.map((x) => x.p99)).toFixed(2)} | ${(r / n).toFixed(2)} | ${bad} |`);
  }
  console.log(`(wrk -t ${wrkThreads} -c ${connections} -d ${seconds}s, median of ${runs} runs each, alternating)`);
  if (json) {
    console.log(JSON.stringify(results.map((row) => ({
      payload: row.payload, case: row.case,
      relay_rps: median(row.relay.map((x) => x.rps)), relay_p99_ms: median(row.relay.map((x) => x.p99)),
      nginx_rps: median(row.nginx.map((x) => x.rps)), nginx_p99_ms: median(row.nginx.map((x) => x.p99)),
    }))));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
