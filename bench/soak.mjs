// Soak test: never lose, never crash, never leak (not run in CI).
//
//   node bench/soak.mjs [--minutes 10] [--subscribers 2000] [--bin PATH] [--csv FILE] [--plot FILE.png]
//
// Starts the relay (a private copy of the binary, so a rebuild cannot swap it mid-run) with an
// LMDB cache, a fake upstream and a fake events service, all on 127.0.0.1, then for the given
// time runs at once:
//   - SDK streams that connect and disconnect continuously: each lives 1–20 s (uniform) and is
//     replaced at once, so about `--subscribers` are open. 90 % on /all (SDK key), 5 % on /flags,
//     5 % on the client-side /eval/{envId}/{base64url context}. Every /flags and /eval stream and
//     one /all stream in six are "sampled": they parse every event and check it;
//   - polling of /sdk/latest-all at 50 requests/s (plain, gzip, and each with If-None-Match);
//   - a patch of one flag every 100 ms from the upstream (version + 1 each time, the send time in
//     its first variation's value, so sampled streams measure delivery and spot gaps);
//   - 20 event batches/s of 50 feature events to /bulk (a quarter gzipped).
// Every 10 s it samples the relay's RSS, open fds, threads, CPU, LMDB file size and /metrics, and
// the load's own counters; then it stops the load, lets the connections drain, samples again and
// checks: no crash, RSS at the end within 10 % of RSS after warm-up (the first minute of load),
// fds back to the pre-load baseline (± 4), no errors, nothing lost (streams and events).
// Exits 1 on any FAIL. Samples go to a CSV (path printed), the relay's output next to it; with
// --plot, RSS and fds over time are drawn with gnuplot if it is installed (else skipped).
//
// The load runs in worker threads of this process (one per 500 streams, one for polls and
// events); the fakes and the sampling on the main thread. Bounded: it stops itself after the
// duration plus at most ~2 min of draining and checks; the relay is SIGKILLed on any exit.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startRelay } from '../tests/node/support/relay.mjs';
import { startFakeUpstream } from '../tests/node/support/fake-upstream.mjs';
import { startFakeEvents } from '../tests/node/support/fake-events.mjs';
import { featureEventBodies } from '../tests/node/support/event-poster.mjs';
import { makeFlag, makeSegment, byKey } from '../tests/node/support/flags.mjs';
import { httpRequest, sleep } from '../tests/node/support/http.mjs';
import { scrape, sampleSum } from '../tests/node/support/prom.mjs';

const SDK_KEY = 'sdk-50a50a50-0000-4000-8000-00000000000a';
const ENV_ID = '5f0c0ffee0ddba11cafe5050';
const ENV = 'soak';
const TICK = 'soak-tick'; // the flag patched every PATCH_MS
const SAMPLE_MS = 10_000;
const WARMUP_MS = 60_000;
const PATCH_MS = 100;
const POLLS_PER_S = 50;
const POSTS_PER_S = 20;
const BATCH = 50;
const LIFE_MIN_MS = 1000;
const LIFE_MAX_MS = 20_000;
const SUBS_PER_WORKER = 500;
const FD_TOLERANCE = 4;
const RSS_TOLERANCE = 0.1;
const DRAIN_MS = 20_000; // at most, waiting for connections to close and events to be delivered
const SETTLE_MS = 3000; // then this long before the final sample
const HIST_MS = 10_000; // latency histogram: 1 ms buckets up to 10 s

const tickOverrides = { clientSide: true, clientSideAvailability: { usingMobileKey: false, usingEnvironmentId: true } };
const tickFlag = (version, seq) => makeFlag(TICK, version, `soak ${seq} ${Date.now()}`, tickOverrides);
const sentAtOf = (value) => Number(String(value).split(' ')[2]);

const count = (map, key, n = 1) => (map[key] = (map[key] ?? 0) + n);

// ---------------------------------------------------------------------------------------------
// Worker: SDK streams.
function runSubscribers({ url, first, n }) {
  const c = {
    connects: 0,
    opened: 0, // 200 responses
    planned: 0, // closed by us at the end of their life
    bytes: 0,
    events: 0,
    puts: 0,
    reputs: 0,
    patches: 0, // tick patches seen by sampled streams
    missed: 0, // versions skipped on /all or /flags (must be 0)
    gaps: 0,
    dupes: 0, // a version not above the one held (must be 0)
    folded: 0, // versions skipped on /eval (allowed: changes pending together are folded)
    latSum: 0,
    latMax: 0,
    errors: {},
    byKind: { all: 0, flags: 0, eval: 0 },
  };
  const examples = [];
  let hist = new Uint32Array(HIST_MS);
  let stopping = false;
  let open = 0;
  const live = new Set();
  const t0 = Date.now();

  const error = (what, s) => {
    count(c.errors, what);
    if (examples.length < 20) examples.push({ at: new Date().toISOString(), what, kind: s?.slot.kind, livedMs: s ? Date.now() - s.startedAt : undefined });
  };

  const slots = Array.from({ length: n }, (_, j) => {
    const i = first + j;
    const r = i % 20;
    const kind = r === 0 ? 'flags' : r === 1 ? 'eval' : 'all';
    const ctx = Buffer.from(JSON.stringify({ kind: 'user', key: `soak-user-${i}`, name: `Soak ${i}` })).toString('base64url');
    return {
      i,
      kind,
      sampled: kind !== 'all' || r % 6 === 2,
      url: kind === 'eval' ? `${url}/eval/${ENV_ID}/${ctx}` : `${url}/${kind}`,
      headers: kind === 'eval' ? { Accept: 'text/event-stream' } : { Authorization: SDK_KEY, Accept: 'text/event-stream' },
    };
  });

  function tickOfPut(kind, body) {
    if (kind === 'all') return body?.data?.flags?.[TICK]?.version;
    return body?.[TICK]?.version;
  }

  function onEvent(s, event, data) {
    c.events++;
    const now = Date.now();
    let body;
    try {
      body = JSON.parse(data);
    } catch {
      error(`${s.slot.kind}: ${event} data is not JSON`, s);
      return;
    }
    if (event === 'put') {
      const v = tickOfPut(s.slot.kind, body);
      if (typeof v !== 'number') return error(`${s.slot.kind}: put without ${TICK}`, s);
      if (s.gotPut) c.reputs++;
      c.puts++;
      s.gotPut = true;
      s.version = Math.max(s.version, v);
      return;
    }
    if (event !== 'patch') return error(`${s.slot.kind}: unexpected '${event}' event`, s);
    let key;
    let version;
    let value;
    if (s.slot.kind === 'eval') {
      ({ key, version, value } = body);
    } else {
      const prefix = s.slot.kind === 'all' ? '/flags/' : '/';
      key = typeof body.path === 'string' && body.path.startsWith(prefix) ? body.path.slice(prefix.length) : body.path;
      version = body.data?.version;
      value = body.data?.variations?.[0];
    }
    if (key !== TICK) return error(`${s.slot.kind}: patch of an unexpected item ${key}`, s);
    if (!s.gotPut) return error(`${s.slot.kind}: patch before put`, s);
    c.patches++;
    const lat = Math.max(0, now - sentAtOf(value));
    if (Number.isFinite(lat)) {
      hist[Math.min(HIST_MS - 1, Math.round(lat))]++;
      c.latSum += lat;
      c.latMax = Math.max(c.latMax, lat);
    }
    if (version <= s.version) {
      c.dupes++;
      error(`${s.slot.kind}: patch version ${version} not above ${s.version}`, s);
      return;
    }
    if (version > s.version + 1) {
      c.gaps++;
      if (s.slot.kind === 'eval') {
        c.folded += version - s.version - 1;
      } else {
        c.missed += version - s.version - 1;
        error(`${s.slot.kind}: versions ${s.version + 1}..${version - 1} missed`, s);
      }
    }
    s.version = version;
  }

  function onChunk(s, chunk) {
    c.bytes += chunk.length;
    s.bytes += chunk.length;
    s.buf += chunk;
    let start = 0;
    for (let nl = s.buf.indexOf('\n'); nl >= 0; nl = s.buf.indexOf('\n', start)) {
      let line = s.buf.slice(start, nl);
      start = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (s.data.length) onEvent(s, s.event || 'message', s.data.join('\n'));
        s.event = '';
        s.data = [];
      } else if (line.startsWith(':')) {
        // heartbeat
      } else if (line.startsWith('event:')) {
        s.event = line.slice(6).trim();
      } else if (line.startsWith('data:')) {
        s.data.push(line.slice(line[5] === ' ' ? 6 : 5));
      }
    }
    s.buf = s.buf.slice(start);
  }

  function finish(s, why) {
    if (s.done) return;
    s.done = true;
    clearTimeout(s.lifeTimer);
    clearTimeout(s.headerTimer);
    live.delete(s);
    if (s.open) open--;
    const lived = Date.now() - s.startedAt;
    if (stopping) return;
    if (s.planned) {
      c.planned++;
      if (s.open && lived >= 3000 && (s.slot.sampled ? !s.gotPut : s.bytes === 0)) error(`${s.slot.kind}: no put in ${Math.round(lived / 1000)} s`, s);
    } else if (s.open) {
      error(`${s.slot.kind}: stream closed by the relay (${why})`, s);
    } else if (!s.statusCounted) {
      error(`${s.slot.kind}: connect failed (${why})`, s);
    }
    setTimeout(() => connect(s.slot), s.planned ? Math.random() * 20 : 250);
  }

  function connect(slot) {
    if (stopping) return;
    c.connects++;
    c.byKind[slot.kind]++;
    const s = { slot, startedAt: Date.now(), version: -1, gotPut: false, bytes: 0, buf: '', event: '', data: [], open: false, planned: false, done: false };
    live.add(s);
    const req = http.request(slot.url, { agent: false, headers: slot.headers });
    s.req = req;
    s.lifeTimer = setTimeout(() => {
      s.planned = true;
      req.destroy();
      finish(s, 'planned');
    }, LIFE_MIN_MS + Math.random() * (LIFE_MAX_MS - LIFE_MIN_MS));
    s.headerTimer = setTimeout(() => req.destroy(new Error('no response headers within 10 s')), 10_000);
    req.on('response', (res) => {
      clearTimeout(s.headerTimer);
      res.on('error', () => {});
      if (res.statusCode !== 200) {
        s.statusCounted = true;
        error(`${slot.kind}: status ${res.statusCode}`, s);
        res.resume();
        return;
      }
      c.opened++;
      s.open = true;
      open++;
      if (slot.sampled) {
        res.setEncoding('utf8');
        res.on('data', (chunk) => onChunk(s, chunk));
      } else {
        res.on('data', (chunk) => {
          c.bytes += chunk.length;
          s.bytes += chunk.length;
        });
      }
      res.on('end', () => finish(s, 'end of body'));
      res.on('close', () => finish(s, 'connection closed'));
    });
    req.on('error', (err) => finish(s, err.code ?? err.message));
    req.on('close', () => finish(s, 'connection closed'));
    req.end();
  }

  const ops = {
    start() {
      for (const slot of slots) setTimeout(() => connect(slot), Math.random() * 2000);
      return {};
    },
    stats() {
      const out = { c: structuredClone(c), open, hist, examples: examples.splice(0) };
      hist = new Uint32Array(HIST_MS);
      return out;
    },
    // Which version each open sampled stream holds once the patches have stopped.
    final({ version }) {
      const r = { current: 0, behind: 0, noPut: 0, behindExamples: [] };
      for (const s of live) {
        if (!s.open || !s.slot.sampled) continue;
        if (!s.gotPut) r.noPut++;
        else if (s.version === version) r.current++;
        else {
          r.behind++;
          if (r.behindExamples.length < 10) r.behindExamples.push({ kind: s.slot.kind, version: s.version, livedMs: Date.now() - s.startedAt });
        }
      }
      return r;
    },
    stop() {
      stopping = true;
      for (const s of [...live]) {
        s.req.destroy();
        finish(s, 'stop');
      }
      return { c: structuredClone(c), ms: Date.now() - t0, examples: examples.splice(0) };
    },
  };
  parentPort.on('message', (m) => parentPort.postMessage({ id: m.id, ...ops[m.op](m) }));
}

// ---------------------------------------------------------------------------------------------
// Worker: polling and event posts at steady rates.
function runLoad({ url }) {
  const c = { polls: 0, pollStatus: {}, pollGzip: 0, pollBytes: 0, posts: 0, postStatus: {}, eventsPosted: 0, errors: {}, late: 0 };
  const examples = [];
  const error = (what) => {
    count(c.errors, what);
    if (examples.length < 20) examples.push({ at: new Date().toISOString(), what });
  };
  const pollAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const postAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const bodies = featureEventBodies(20, BATCH);
  const gzipped = bodies.map((b) => zlib.gzipSync(b));
  const etags = { plain: null, gzip: null };
  const inflight = new Set();
  let stopping = false;
  let timer = null;

  function request(target, { method = 'GET', headers, body, agent }) {
    return new Promise((resolve) => {
      const req = http.request(target, { method, headers, agent }, (res) => {
        const chunks = [];
        res.on('data', (ch) => chunks.push(ch));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (err) => resolve({ error: err.code ?? err.message }));
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (err) => resolve({ error: err.code ?? err.message }));
      req.end(body);
    });
  }

  async function poll(i) {
    const gzip = i % 2 === 1;
    const conditional = i % 4 >= 2;
    const enc = gzip ? 'gzip' : 'plain';
    const headers = { Authorization: SDK_KEY };
    if (gzip) headers['Accept-Encoding'] = 'gzip';
    if (conditional && etags[enc]) headers['If-None-Match'] = etags[enc];
    const r = await request(`${url}/sdk/latest-all`, { headers, agent: i % 8 < 4 ? pollAgent : false });
    c.polls++;
    if (r.error) return error(`poll: ${r.error}`);
    count(c.pollStatus, r.status);
    if (r.status === 304) {
      if (!headers['If-None-Match']) error('poll: 304 without If-None-Match');
      return;
    }
    if (r.status !== 200) return error(`poll: status ${r.status}`);
    c.pollBytes += r.body.length;
    etags[enc] = r.headers.etag ?? null;
    if (!etags[enc]) error('poll: no ETag');
    let text;
    try {
      if (r.headers['content-encoding'] === 'gzip') {
        c.pollGzip++;
        text = zlib.gunzipSync(r.body).toString('utf8');
      } else {
        if (gzip) error('poll: gzip asked for, not given');
        text = r.body.toString('utf8');
      }
      const body = JSON.parse(text);
      if (typeof body?.flags?.[TICK]?.version !== 'number') error(`poll: body without ${TICK}`);
    } catch (err) {
      error(`poll: bad body (${err.message.slice(0, 60)})`);
    }
  }

  async function post(i) {
    const gzip = i % 4 === 3;
    const headers = { Authorization: SDK_KEY, 'Content-Type': 'application/json', 'X-LaunchDarkly-Event-Schema': '4', 'User-Agent': 'NodeJSClient/9.13.7' };
    if (gzip) headers['Content-Encoding'] = 'gzip';
    const r = await request(`${url}/bulk`, { method: 'POST', headers, body: gzip ? gzipped[i % bodies.length] : bodies[i % bodies.length], agent: postAgent });
    c.posts++;
    if (r.error) return error(`post: ${r.error}`);
    count(c.postStatus, r.status);
    if (r.status === 202) c.eventsPosted += BATCH;
    else error(`post: status ${r.status}`);
  }

  const track = (p) => {
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  };

  const ops = {
    start() {
      const t0 = performance.now();
      let polls = 0;
      let posts = 0;
      // Catch-up scheduler: issues what is due every 10 ms; more than 1 s behind is skipped.
      const step = () => {
        const now = performance.now() - t0;
        for (const [rate, get, set, fn] of [
          [POLLS_PER_S, () => polls, (v) => (polls = v), poll],
          [POSTS_PER_S, () => posts, (v) => (posts = v), post],
        ]) {
          let k = get();
          if (now - (k * 1000) / rate > 1000) {
            const skip = Math.floor((now - 1000) * rate / 1000) - k;
            c.late += skip;
            k += skip;
          }
          while ((k * 1000) / rate <= now) track(fn(k++));
          set(k);
        }
        if (!stopping) timer = setTimeout(step, 10);
      };
      step();
      return {};
    },
    stats() {
      return { c: structuredClone(c), inflight: inflight.size, examples: examples.splice(0) };
    },
    async stop() {
      stopping = true;
      clearTimeout(timer);
      await Promise.race([Promise.allSettled([...inflight]), sleep(12_000)]);
      pollAgent.destroy();
      postAgent.destroy();
      return { c: structuredClone(c), inflight: inflight.size, examples: examples.splice(0) };
    },
  };
  parentPort.on('message', async (m) => parentPort.postMessage({ id: m.id, ...(await ops[m.op](m)) }));
}

// ---------------------------------------------------------------------------------------------
// Main thread.
function parseArgs(argv) {
  const o = { minutes: 10, subscribers: 2000, bin: '/work/main/build/relay/flagrelay', csv: null, plot: null };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--minutes') o.minutes = Number(v);
    else if (a === '--subscribers') o.subscribers = Number(v);
    else if (a === '--bin') o.bin = v;
    else if (a === '--csv') o.csv = v;
    else if (a === '--plot') o.plot = v;
    else throw new Error(`unknown argument ${a} (use --minutes N --subscribers N --bin PATH --csv FILE --plot FILE.png)`);
    i++;
  }
  if (!(o.minutes > 0) || !(o.subscribers >= 1) || !o.bin) throw new Error('bad --minutes, --subscribers or --bin');
  return o;
}

function spawnWorker(role, data) {
  const w = new Worker(new URL(import.meta.url), { workerData: { role, ...data } });
  let id = 0;
  const pending = new Map();
  w.on('message', (m) => {
    const p = pending.get(m.id);
    if (p) {
      pending.delete(m.id);
      p(m);
    }
  });
  w.failure = null;
  w.on('error', (err) => (w.failure = err));
  w.on('exit', (code) => {
    if (!w.stopped && !w.failure) w.failure = new Error(`worker ${role} exited (${code})`);
  });
  w.ask = (op, extra = {}, timeoutMs = 15_000) =>
    new Promise((resolve, reject) => {
      const myId = ++id;
      pending.set(myId, resolve);
      w.postMessage({ op, ...extra, id: myId });
      setTimeout(() => {
        if (pending.delete(myId)) reject(new Error(`worker ${role} did not answer '${op}' within ${timeoutMs} ms`));
      }, timeoutMs).unref();
    });
  return w;
}

/** Sums numbers (and nested objects of numbers) of b into a; max for fields named *Max. */
function mergeInto(a, b) {
  for (const [k, v] of Object.entries(b)) {
    if (typeof v === 'number') a[k] = k.endsWith('Max') ? Math.max(a[k] ?? 0, v) : (a[k] ?? 0) + v;
    else if (v && typeof v === 'object') mergeInto((a[k] ??= {}), v);
  }
  return a;
}

function percentile(hist, q) {
  let total = 0;
  for (const x of hist) total += x;
  if (!total) return null;
  const want = Math.ceil(total * q);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= want) return i;
  }
  return hist.length - 1;
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

function procStats(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1]);
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    rss: field('VmRSS'),
    anon: field('RssAnon'),
    file: field('RssFile'),
    threads: field('Threads'),
    fds: fs.readdirSync(`/proc/${pid}/fd`).length,
    cpuS: (Number(after[11]) + Number(after[12])) / CLK_TCK,
  };
}

/** The relay's open fds by kind; sockets named by their role (local/remote port, state). */
function fdKinds(pid, ports) {
  const sockets = new Map();
  for (const f of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${f}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const p = line.trim().split(/\s+/);
      if (p.length < 10) continue;
      const lport = parseInt(p[1].split(':')[1], 16);
      const rport = parseInt(p[2].split(':')[1], 16);
      sockets.set(p[9], { lport, rport, st: p[3] });
    }
  }
  const kinds = {};
  let entries = [];
  try {
    entries = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return kinds;
  }
  for (const fd of entries) {
    let link;
    try {
      link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(link);
    let kind;
    if (m) {
      const s = sockets.get(m[1]);
      if (!s) kind = 'socket (not TCP)';
      else if (s.st === '0A') kind = `listening :${s.lport}`;
      else if (s.lport === ports.relay) kind = 'client connection';
      else if (s.lport === ports.metrics) kind = 'metrics connection';
      else if (s.rport === ports.upstream) kind = 'to fake upstream';
      else if (s.rport === ports.events) kind = 'to fake events';
      else kind = `other TCP (${s.lport}->${s.rport})`;
    } else {
      kind = link.replace(/\[\d+\]$/, '').replace(/^\/tmp\/flagrelay-soak-[^/]+/, '<dir>');
    }
    count(kinds, kind);
  }
  return kinds;
}

function dirBytes(dir) {
  let total = 0;
  try {
    for (const f of fs.readdirSync(dir)) total += fs.statSync(path.join(dir, f)).size;
  } catch {
    return null;
  }
  return total;
}

const mib = (kib) => (kib == null ? '-' : (kib / 1024).toFixed(1));
const fmtT = (ms) => `${Math.floor(ms / 60000)}:${String(Math.floor((ms % 60000) / 1000)).padStart(2, '0')}`;

async function main() {
  const opts = parseArgs(process.argv);
  const loadMs = Math.round(opts.minutes * 60_000);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const csvPath = path.resolve(opts.csv ?? path.join(os.tmpdir(), `flagrelay-soak-${stamp}.csv`));
  const logPath = csvPath.replace(/\.csv$/, '') + '.relay.log';

  // Bounded, and the relay dies with us whatever happens (relay.mjs SIGKILLs it on 'exit').
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flagrelay-soak-'));
  process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));
  const boundMs = loadMs + 180_000;
  setTimeout(() => {
    console.log(`FAIL soak did not finish within its bound (${boundMs / 1000} s); killing everything`);
    process.exit(2);
  }, boundMs).unref();

  const bin = path.join(tmp, 'flagrelay');
  fs.copyFileSync(opts.bin, bin);
  fs.chmodSync(bin, 0o755);
  process.env.FLAGRELAY_BIN = bin;

  const nofile = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim();
  const need = opts.subscribers * 2 + 1000;
  if (nofile !== 'unlimited' && Number(nofile) < need) {
    throw new Error(`ulimit -n is ${nofile}; the soak needs about ${need} (run 'ulimit -n ${need}' first)`);
  }

  const statics = Array.from({ length: 30 }, (_, i) =>
    makeFlag(`soak-flag-${i}`, 1, [true, `variant-${i}`, i * 10][i % 3], {
      targets: [{ variation: 1, values: [`soak-user-${i}`, `soak-user-${i + 100}`] }],
      clientSide: i % 2 === 0,
      clientSideAvailability: { usingMobileKey: false, usingEnvironmentId: i % 2 === 0 },
    }),
  );
  let tickVersion = 1;
  let tickSeq = 0;
  const up = await startFakeUpstream({
    sdkKey: SDK_KEY,
    flags: byKey(tickFlag(tickVersion, tickSeq), ...statics),
    segments: byKey(makeSegment('soak-seg-a', 1, ['soak-user-1']), makeSegment('soak-seg-b', 1, ['soak-user-2'])),
  });
  const sink = await startFakeEvents();
  let sinkEvents = 0;
  const drainSink = () => {
    for (const r of sink.received.splice(0)) {
      if (r.url === '/bulk' && Array.isArray(r.events)) sinkEvents += r.events.filter((e) => e.kind === 'feature').length;
    }
    return sinkEvents;
  };

  const problemLines = []; // WARN/ERROR lines of the relay
  let problemCount = 0;
  const relay = await startRelay({
    dir: tmp,
    upstreamUrl: up.url,
    environments: { [ENV]: { sdkKey: SDK_KEY, envId: ENV_ID } },
    logLevel: 'info',
    streams: { heartbeatInterval: '15s', maxQueueEvents: 256, maxQueueBytes: 8 * 1024 * 1024 },
    extra: { upstream: { eventsUri: sink.url }, events: { flushInterval: '1s' } },
    onSpawn(r) {
      let tail = '';
      const scan = (chunk) => {
        const lines = (tail + chunk.toString('utf8')).split('\n');
        tail = lines.pop();
        for (const l of lines) {
          if (/^\S+Z (WARN|ERROR) /.test(l)) {
            problemCount++;
            if (problemLines.length < 50) problemLines.push(l);
          }
        }
      };
      r.proc.stdout.on('data', scan);
      r.proc.stderr.on('data', scan);
    },
  });
  const cacheDir = path.join(tmp, 'cache');
  const ports = { relay: relay.port, metrics: relay.metricsPort, upstream: up.port, events: sink.port };
  let crash = null;
  relay.exited.then((info) => {
    if (!relay.stopRequested) crash = { ...info, at: Date.now() };
  });
  const saveLog = () => fs.writeFileSync(logPath, relay.diagnostics());

  // Data in, upstream connected.
  await up.waitForOpenStream(SDK_KEY, 10_000);
  for (let i = 0; i < 100; i++) {
    const r = await httpRequest(`${relay.url}/readyz`).catch(() => null);
    if (r?.status === 200) break;
    await sleep(100);
  }

  console.log(`flagrelay soak: ${opts.minutes} min, ${opts.subscribers} streams, ${POLLS_PER_S} polls/s, a patch every ${PATCH_MS} ms, ${POSTS_PER_S}×${BATCH} events/s`);
  console.log(`binary ${opts.bin} (copied to ${bin}), pid ${relay.pid}, ${os.cpus().length} cores, ulimit -n ${nofile}, Node ${process.version}`);
  console.log(`samples every ${SAMPLE_MS / 1000} s; warm-up = the first ${WARMUP_MS / 1000} s of load; CSV ${csvPath}`);

  // ---- sampling
  const samples = [];
  let prevCpu = null;
  let prevSubs = null;
  let prevLoad = null;
  const subWorkers = [];
  let loadWorker = null;
  const totals = { subs: null, load: null };
  const errorExamples = [];
  let t0 = Date.now();

  async function metricsView() {
    try {
      const { parsed } = await scrape(relay);
      if (!parsed) return null;
      const sum = (name, labels = {}) => sampleSum(parsed, name, labels) ?? 0;
      return {
        connections: sum('flagrelay_http_connections'),
        rejected: sum('flagrelay_http_connections_rejected_total'),
        streams: sum('flagrelay_sdk_streams', { env: ENV }),
        streamConnects: sum('flagrelay_sdk_stream_connections_total', { env: ENV }),
        slow: sum('flagrelay_sdk_stream_slow_disconnects_total', { env: ENV }),
        evReceived: sum('flagrelay_events_received_total', { env: ENV }),
        evDropped: sum('flagrelay_events_dropped_total', { env: ENV }),
        evForwarded: sum('flagrelay_events_forwarded_total', { env: ENV }),
        evQueued: sum('flagrelay_events_queued', { env: ENV }),
        cacheErrors: sum('flagrelay_cache_commits_total', { env: ENV, result: 'error' }),
        updates: sum('flagrelay_updates_total', { env: ENV, kind: 'patch', result: 'applied' }),
        stale: sum('flagrelay_updates_total', { env: ENV, result: 'stale' }),
        upstreamConnected: sum('flagrelay_upstream_connected', { env: ENV }),
      };
    } catch (err) {
      errorExamples.push({ at: new Date().toISOString(), what: `metrics scrape: ${err.message}` });
      return null;
    }
  }

  async function collect() {
    const hist = new Uint32Array(HIST_MS);
    let subs = null;
    let open = 0;
    for (const w of subWorkers) {
      const r = await w.ask('stats');
      subs = mergeInto(subs ?? {}, r.c);
      open += r.open;
      for (let i = 0; i < HIST_MS; i++) hist[i] += r.hist[i];
      errorExamples.push(...r.examples);
    }
    let load = null;
    if (loadWorker) {
      const r = await loadWorker.ask('stats');
      load = r.c;
      errorExamples.push(...r.examples);
    }
    return { subs, open, hist, load };
  }

  async function sample(phase) {
    const t = Date.now() - t0;
    let p = null;
    if (!relay.exitInfo) {
      try {
        p = procStats(relay.pid);
      } catch {
        p = null;
      }
    }
    const m = relay.exitInfo ? null : await metricsView();
    const { subs, open, hist, load } = phase === 'load' || phase === 'warm-up' ? await collect() : { subs: totals.subs, open: 0, hist: new Uint32Array(HIST_MS), load: totals.load };
    if (subs) totals.subs = subs;
    if (load) totals.load = load;
    const cpuPct = p && prevCpu ? (100 * (p.cpuS - prevCpu.cpuS)) / ((Date.now() - prevCpu.at) / 1000) : null;
    if (p) prevCpu = { cpuS: p.cpuS, at: Date.now() };
    const d = (now, prev, f) => (now ? f(now) - (prev ? f(prev) : 0) : 0);
    const s = {
      t,
      phase,
      rss: p?.rss ?? null,
      anon: p?.anon ?? null,
      file: p?.file ?? null,
      fds: p?.fds ?? null,
      threads: p?.threads ?? null,
      cpuPct,
      cacheBytes: dirBytes(cacheDir),
      ...(m ?? {}),
      sinkEvents: drainSink(),
      subsOpen: open,
      connects: subs?.connects ?? 0,
      dConnects: d(subs, prevSubs, (x) => x.connects),
      subErrors: subs ? Object.values(subs.errors).reduce((a, b) => a + b, 0) : 0,
      patchesSeen: subs?.patches ?? 0,
      dPatches: d(subs, prevSubs, (x) => x.patches),
      missed: subs?.missed ?? 0,
      dupes: subs?.dupes ?? 0,
      folded: subs?.folded ?? 0,
      latP50: percentile(hist, 0.5),
      latP99: percentile(hist, 0.99),
      latMax: (() => {
        for (let i = HIST_MS - 1; i >= 0; i--) if (hist[i]) return i;
        return null;
      })(),
      polls: load?.polls ?? 0,
      dPolls: d(load, prevLoad, (x) => x.polls),
      polls304: load?.pollStatus?.[304] ?? 0,
      posts: load?.posts ?? 0,
      eventsPosted: load?.eventsPosted ?? 0,
      loadErrors: load ? Object.values(load.errors).reduce((a, b) => a + b, 0) : 0,
    };
    if (subs) prevSubs = subs;
    if (load) prevLoad = load;
    samples.push(s);
    printRow(s);
    return s;
  }

  const cols = [
    ['time', 6, (s) => (s.phase === 'base' ? 'base' : s.phase === 'end' ? 'end' : fmtT(s.t))],
    ['RSS MiB', 8, (s) => mib(s.rss)],
    ['anon', 6, (s) => mib(s.anon)],
    ['fds', 5, (s) => s.fds ?? '-'],
    ['thr', 4, (s) => s.threads ?? '-'],
    ['cpu%', 5, (s) => (s.cpuPct == null ? '-' : s.cpuPct.toFixed(0))],
    ['lmdb KiB', 8, (s) => (s.cacheBytes == null ? '-' : Math.round(s.cacheBytes / 1024))],
    ['conns', 6, (s) => s.connections ?? '-'],
    ['streams', 7, (s) => s.streams ?? '-'],
    ['slow', 5, (s) => s.slow ?? '-'],
    ['open', 5, (s) => s.subsOpen],
    ['conn/s', 6, (s) => (s.phase === 'load' || s.phase === 'warm-up' ? (s.dConnects / (SAMPLE_MS / 1000)).toFixed(0) : '-')],
    ['errs', 5, (s) => s.subErrors + s.loadErrors],
    ['patches', 7, (s) => (s.phase === 'load' || s.phase === 'warm-up' ? s.dPatches : '-')],
    ['p50ms', 5, (s) => s.latP50 ?? '-'],
    ['p99ms', 5, (s) => s.latP99 ?? '-'],
    ['maxms', 5, (s) => s.latMax ?? '-'],
    ['polls/s', 7, (s) => (s.phase === 'load' || s.phase === 'warm-up' ? (s.dPolls / (SAMPLE_MS / 1000)).toFixed(0) : '-')],
    ['ev recv', 8, (s) => s.evReceived ?? '-'],
    ['ev drop', 7, (s) => s.evDropped ?? '-'],
    ['ev fwd', 8, (s) => s.evForwarded ?? '-'],
  ];
  const printRow = (s) => console.log(cols.map(([, w, f]) => String(f(s)).padStart(w)).join(' '));
  console.log(cols.map(([h, w]) => h.padStart(w)).join(' '));

  // ---- baseline before any load
  await sleep(2000);
  t0 = Date.now();
  const base = await sample('base');
  const baseFds = fdKinds(relay.pid, ports);

  // ---- load
  const nWorkers = Math.ceil(opts.subscribers / SUBS_PER_WORKER);
  for (let k = 0; k < nWorkers; k++) {
    const first = Math.floor((k * opts.subscribers) / nWorkers);
    const last = Math.floor(((k + 1) * opts.subscribers) / nWorkers);
    subWorkers.push(spawnWorker('subscribers', { url: relay.url, first, n: last - first }));
  }
  loadWorker = spawnWorker('load', { url: relay.url });
  const workers = [...subWorkers, loadWorker];
  t0 = Date.now();
  const patchTimer = setInterval(() => {
    tickVersion++;
    tickSeq++;
    up.pushPatch(tickFlag(tickVersion, tickSeq));
  }, PATCH_MS);
  for (const w of workers) await w.ask('start');
  const loadEnd = t0 + loadMs;
  let warm = null;
  let failure = null;
  for (let k = 1; ; k++) {
    const due = t0 + k * SAMPLE_MS;
    while (Date.now() < Math.min(due, loadEnd) && !crash && !workers.some((w) => w.failure)) await sleep(Math.min(250, Math.max(1, Math.min(due, loadEnd) - Date.now())));
    if (crash) break;
    const wf = workers.find((w) => w.failure);
    if (wf) {
      failure = `load generator failed: ${wf.failure.stack ?? wf.failure}`;
      break;
    }
    if (due > loadEnd) break;
    const s = await sample(k * SAMPLE_MS <= WARMUP_MS ? 'warm-up' : 'load');
    if (!warm && s.t >= WARMUP_MS - 500) warm = s;
    if (due >= loadEnd) break;
  }
  const lastLoad = samples.at(-1);

  // ---- stop: patches first, then check that every open sampled stream holds the last version
  clearInterval(patchTimer);
  const finalVersion = tickVersion;
  let final = null;
  if (!crash && !failure) {
    await sleep(2000);
    final = { current: 0, behind: 0, noPut: 0, behindExamples: [] };
    for (const w of subWorkers) {
      const r = await w.ask('final', { version: finalVersion });
      mergeInto(final, { current: r.current, behind: r.behind, noPut: r.noPut });
      final.behindExamples.push(...r.behindExamples);
    }
  }
  let subsTotal = null;
  for (const w of subWorkers) {
    const r = await w.ask('stop').catch((err) => ({ error: err.message }));
    if (r.error) failure ??= `stream worker did not stop: ${r.error}`;
    else {
      subsTotal = mergeInto(subsTotal ?? {}, r.c);
      errorExamples.push(...r.examples);
    }
  }
  if (subsTotal) totals.subs = subsTotal;
  const loadStop = await loadWorker.ask('stop', {}, 20_000).catch((err) => ({ c: totals.load, error: err.message, examples: [] }));
  totals.load = loadStop.c;
  errorExamples.push(...(loadStop.examples ?? []));
  for (const w of workers) {
    w.stopped = true;
    await w.terminate();
  }
  const stoppedAt = Date.now();

  // ---- drain: connections closed, events delivered
  let drained = null;
  if (!crash) {
    const deadline = Date.now() + DRAIN_MS;
    while (Date.now() < deadline && !crash) {
      const m = await metricsView();
      drainSink();
      if (m && m.connections <= (base.connections ?? 0) && m.evQueued === 0 && sinkEvents >= m.evForwarded && m.evReceived >= (totals.load?.eventsPosted ?? 0)) {
        drained = Date.now() - stoppedAt;
        break;
      }
      await sleep(250);
    }
    await sleep(SETTLE_MS);
  }
  const end = crash ? null : await sample('end');
  const endFds = crash ? null : fdKinds(relay.pid, ports);

  // ---- shut the relay down cleanly
  let exit = null;
  if (!crash) {
    try {
      exit = await relay.terminate(15_000);
    } catch (err) {
      exit = { error: err.message };
    }
  }
  saveLog();
  await up.close();
  await sink.close();

  // ---- report
  const ran = Date.now() - t0;
  console.log('');
  console.log(`load ran ${fmtT(Math.min(ran, loadMs))} (planned ${fmtT(loadMs)}); relay output saved to ${logPath}`);
  const subs = totals.subs ?? {};
  const load = totals.load ?? {};
  const checks = [];
  const check = (name, ok, detail) => {
    checks.push({ name, ok, detail });
  };

  check('no crash: the relay never exited during the soak', !crash, crash ? `exited (code ${crash.code}, signal ${crash.signal}) at ${fmtT(crash.at - t0)} of the load` : `pid ${relay.pid} up throughout`);
  check('clean shutdown: SIGTERM → exit code 0', !crash && exit?.code === 0, crash ? 'not reached (crashed)' : JSON.stringify(exit));
  if (failure) check('load generator ran to the end', false, failure);
  if (warm && end) {
    const ratio = end.rss / warm.rss;
    check(`RSS: end ≤ warm-up + ${RSS_TOLERANCE * 100} %`, ratio <= 1 + RSS_TOLERANCE, `warm-up (${fmtT(warm.t)}) ${mib(warm.rss)} MiB, end ${mib(end.rss)} MiB (${((ratio - 1) * 100).toFixed(1)} %); anon ${mib(warm.anon)} → ${mib(end.anon)} MiB; peak under load ${mib(Math.max(...samples.filter((x) => x.rss).map((x) => x.rss)))} MiB`);
  } else {
    check(`RSS: end ≤ warm-up + ${RSS_TOLERANCE * 100} %`, false, warm ? 'no end sample' : `no warm-up sample (the load must run ≥ ${WARMUP_MS / 1000} s)`);
  }
  if (end) {
    const diff = end.fds - base.fds;
    const kinds = [...new Set([...Object.keys(baseFds), ...Object.keys(endFds)])].sort();
    const changed = kinds.filter((k) => (baseFds[k] ?? 0) !== (endFds[k] ?? 0)).map((k) => `${k}: ${baseFds[k] ?? 0} → ${endFds[k] ?? 0}`);
    check(`fds: end = baseline ± ${FD_TOLERANCE}`, Math.abs(diff) <= FD_TOLERANCE, `baseline ${base.fds}, end ${end.fds} (${diff >= 0 ? '+' : ''}${diff})${changed.length ? `; changed: ${changed.join(', ')}` : ''}`);
    check('connections drained after the load', end.connections <= (base.connections ?? 0) && end.streams === 0, `relay http_connections ${end.connections} (baseline ${base.connections}), sdk streams ${end.streams}${drained == null ? `, not drained within ${DRAIN_MS / 1000} s` : `, drained ${(drained / 1000).toFixed(1)} s after the load stopped`}`);
  }
  const subErrors = Object.entries(subs.errors ?? {});
  const loadErrors = Object.entries(load.errors ?? {});
  const relayErrs = end ? (end.slow ?? 0) + (end.rejected ?? 0) + (end.cacheErrors ?? 0) : null;
  const errCount = subErrors.reduce((a, [, n]) => a + n, 0) + loadErrors.reduce((a, [, n]) => a + n, 0) + problemCount + (relayErrs ?? 1);
  check('no errors (streams, polls, posts, relay WARN/ERROR lines, slow disconnects, rejected connections, cache commit errors)', errCount === 0 && !errorExamples.some((e) => e.what.startsWith('metrics scrape')),
    [
      `stream errors ${JSON.stringify(subs.errors ?? {})}`,
      `poll/post errors ${JSON.stringify(load.errors ?? {})}`,
      `relay WARN/ERROR lines ${problemCount}`,
      `slow disconnects ${end?.slow ?? '?'}, rejected ${end?.rejected ?? '?'}, cache commit errors ${end?.cacheErrors ?? '?'}`,
      `metrics scrape failures ${errorExamples.filter((e) => e.what.startsWith('metrics scrape')).length}`,
    ].join('; '));
  check('streams: nothing lost (sampled streams: no version missed or repeated on /all and /flags; every open sampled stream holds the last version)',
    subs.patches > 0 && subs.missed === 0 && subs.dupes === 0 && final && final.behind === 0 && final.noPut === 0,
    `${subs.patches ?? 0} patches checked on sampled streams, ${subs.puts ?? 0} puts; missed ${subs.missed ?? '?'}, repeated ${subs.dupes ?? '?'}; /eval versions folded ${subs.folded ?? 0}; last version ${finalVersion}: held by ${final?.current ?? '?'} open sampled streams, behind ${final?.behind ?? '?'}${final?.behindExamples?.length ? ` ${JSON.stringify(final.behindExamples)}` : ''}, no put yet ${final?.noPut ?? '?'}`);
  if (end) {
    drainSink();
    const posted = load.eventsPosted ?? 0;
    check('events: nothing lost (posted = received = forwarded = delivered to the fake service; none dropped)',
      posted > 0 && end.evReceived === posted && end.evForwarded === posted && sinkEvents === posted && end.evDropped === 0,
      `posted ${posted} (in ${load.postStatus?.[202] ?? 0} batches answered 202), relay received ${end.evReceived}, forwarded ${end.evForwarded}, dropped ${end.evDropped}, fake events service got ${sinkEvents}`);
  }

  // Load summary.
  const underLoad = samples.filter((s) => s.phase === 'load' || s.phase === 'warm-up');
  const latAll = underLoad.filter((s) => s.latP99 != null);
  console.log('');
  console.log(`streams: ${subs.connects ?? 0} connects (${JSON.stringify(subs.byKind ?? {})}), ${subs.opened ?? 0} answered 200, ${subs.planned ?? 0} closed at the end of their life; ${((subs.connects ?? 0) / (Math.min(ran, loadMs) / 1000)).toFixed(0)} connects/s; open on average ${(underLoad.reduce((a, s) => a + s.subsOpen, 0) / Math.max(1, underLoad.length)).toFixed(0)}`);
  console.log(`deliveries: ${subs.patches ?? 0} patches on sampled streams, ${subs.events ?? 0} events parsed, ${((subs.bytes ?? 0) / 1048576).toFixed(0)} MiB read by all streams; latency (upstream send → stream) p99 per 10 s window ${latAll.length ? `${Math.min(...latAll.map((s) => s.latP99))}–${Math.max(...latAll.map((s) => s.latP99))} ms` : '-'}, max ${Math.round(subs.latMax ?? 0)} ms, mean ${subs.patches ? ((subs.latSum ?? 0) / subs.patches).toFixed(1) : '-'} ms`);
  console.log(`polls: ${load.polls ?? 0} (${JSON.stringify(load.pollStatus ?? {})}, ${load.pollGzip ?? 0} gzip), ${load.late ?? 0} skipped for being late; posts: ${load.posts ?? 0} (${JSON.stringify(load.postStatus ?? {})}), ${load.eventsPosted ?? 0} events`);
  console.log(`relay: patches applied ${end?.updates ?? lastLoad?.updates ?? '?'} of ${tickSeq} sent, stale ${end?.stale ?? '?'}; LMDB files ${end?.cacheBytes ?? '?'} bytes (baseline ${base.cacheBytes})`);
  if (errorExamples.length) {
    const firstOfKind = new Map();
    for (const e of errorExamples) if (!firstOfKind.has(e.what)) firstOfKind.set(e.what, e);
    console.log(`errors: first example of each kind (of ${errorExamples.length} examples kept):`);
    for (const e of [...firstOfKind.values()].slice(0, 30)) console.log(`  ${JSON.stringify(e)}`);
  }
  if (problemLines.length) {
    console.log(`relay WARN/ERROR lines (${problemCount}, first ${problemLines.length}):`);
    for (const l of problemLines) console.log(`  ${l}`);
  }
  if (crash) {
    console.log('relay output (tail):');
    console.log(relay.output().split('\n').slice(-100).join('\n'));
  }

  // Per-minute curve (markdown), for docs/reliability.md.
  console.log('');
  console.log('| time | RSS MiB | anon MiB | fds | threads | LMDB KiB | SDK streams | connections | relay CPU % | stream connects/s | delivery p99 ms | errors |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  const perMinute = samples.filter((s) => s.phase === 'base' || s.phase === 'end' || (s.t % 60_000 < SAMPLE_MS / 2 && s.t >= 60_000 - SAMPLE_MS / 2) || s === lastLoad);
  for (const s of [...new Set(perMinute)]) {
    const label = s.phase === 'base' ? 'before load' : s.phase === 'end' ? `end (${fmtT(s.t)}, drained)` : fmtT(Math.round(s.t / 1000) * 1000);
    const loaded = s.phase === 'load' || s.phase === 'warm-up';
    const kib = s.cacheBytes == null ? '-' : Math.round(s.cacheBytes / 1024);
    console.log(`| ${label} | ${mib(s.rss)} | ${mib(s.anon)} | ${s.fds ?? '-'} | ${s.threads ?? '-'} | ${kib} | ${s.streams ?? '-'} | ${s.connections ?? '-'} | ${s.cpuPct == null ? '-' : s.cpuPct.toFixed(0)} | ${loaded ? (s.dConnects / (SAMPLE_MS / 1000)).toFixed(0) : '-'} | ${loaded ? (s.latP99 ?? '-') : '-'} | ${s.subErrors + s.loadErrors} |`);
  }

  // CSV.
  const fields = ['t', 'phase', 'rss', 'anon', 'file', 'fds', 'threads', 'cpuPct', 'cacheBytes', 'connections', 'rejected', 'streams', 'streamConnects', 'slow', 'evReceived', 'evDropped', 'evForwarded', 'evQueued', 'sinkEvents', 'cacheErrors', 'updates', 'subsOpen', 'connects', 'subErrors', 'patchesSeen', 'missed', 'dupes', 'folded', 'latP50', 'latP99', 'latMax', 'polls', 'polls304', 'posts', 'eventsPosted', 'loadErrors'];
  const header = fields.map((f) => ({ t: 't_s', rss: 'rss_kib', anon: 'rss_anon_kib', file: 'rss_file_kib', cpuPct: 'cpu_pct' })[f] ?? f);
  const csv = [header.join(','), ...samples.map((s) => fields.map((f) => (f === 't' ? (s.t / 1000).toFixed(1) : typeof s[f] === 'number' ? (Number.isInteger(s[f]) ? s[f] : s[f].toFixed(2)) : (s[f] ?? ''))).join(','))].join('\n');
  fs.writeFileSync(csvPath, `${csv}\n`);
  console.log('');
  console.log(`samples written to ${csvPath}`);

  if (opts.plot) {
    const gp = spawnSync('sh', ['-c', 'command -v gnuplot'], { encoding: 'utf8' }).stdout.trim();
    if (!gp) {
      console.log('plot skipped: gnuplot is not installed');
    } else {
      const script = [
        `set terminal pngcairo size 900,420 font ',10'`,
        `set output '${path.resolve(opts.plot)}'`,
        `set datafile separator ','`,
        `set key autotitle columnhead bottom center horizontal`,
        `set title 'flagrelay soak: ${opts.subscribers} churning streams, ${POLLS_PER_S} polls/s, 10 patches/s, ${POSTS_PER_S * BATCH} events/s'`,
        `set xlabel 'minutes (load from 0 to ${(loadMs / 60000).toFixed(1)}; last point after drain)'`,
        `set ylabel 'MiB'`,
        `set y2label 'open fds'`,
        `set y2tics`,
        `set ytics nomirror`,
        `set yrange [0:*]`,
        `set y2range [0:*]`,
        `set grid`,
        `plot '${csvPath}' using ($1/60):($3/1024) with linespoints title 'RSS', '' using ($1/60):($4/1024) with lines title 'RSS anon', '' using ($1/60):6 axes x1y2 with lines title 'fds'`,
      ].join('\n');
      const r = spawnSync(gp, [], { input: script, encoding: 'utf8' });
      console.log(r.status === 0 ? `plot written to ${path.resolve(opts.plot)}` : `plot failed: ${r.stderr.trim()}`);
    }
  }

  console.log('');
  for (const c of checks) console.log(`${c.ok ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`);
  const ok = checks.every((c) => c.ok);
  console.log(ok ? 'soak PASSED' : 'soak FAILED');
  process.exit(ok ? 0 : 1);
}

if (isMainThread) {
  main().catch((err) => {
    console.error(`soak aborted: ${err.stack ?? err}`);
    process.exit(2);
  });
} else if (workerData?.role === 'subscribers') {
  runSubscribers(workerData);
} else if (workerData?.role === 'load') {
  runLoad(workerData);
}
