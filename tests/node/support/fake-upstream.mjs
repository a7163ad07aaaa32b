// A fake LaunchDarkly streaming service on 127.0.0.1 (protocol reference §2.1).
//
// GET /all: Authorization must equal one of the configured SDK keys (else 401). On connect the
// stream gets `event: put` with {"path":"/","data":{"flags":{...},"segments":{...}}} (unless
// sendPut is false: then it stays silent, like an upstream that accepts but never sends data).
// Pushed patches/deletes/puts also update the per-key state so the next connection's put matches.
//
// Fault injection (tests/node/faults): `allStatus` / `statusByKey` answer /all with a forced
// status; `dropStreams` / `endStreams` cut the open streams; `drip` writes bytes slowly; `tls`
// serves HTTPS; GET /sdk/latest-all answers polls with an ETag (304 on If-None-Match), logged in
// `polls`, with `pollStatus` to force an error.
import http from 'node:http';
import https from 'node:https';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { sleep } from './http.mjs';

function clone(v) {
  return JSON.parse(JSON.stringify(v));
}

export class FakeUpstream {
  /**
   * @param {object} o
   * @param {string} o.sdkKey primary SDK key (the default target of push methods)
   * @param {object} [o.flags] initial flags map for the primary key
   * @param {object} [o.segments] initial segments map for the primary key
   * @param {object} [o.environments] more keys: { [sdkKey]: {flags, segments} }
   * @param {boolean} [o.sendPut=true] send the initial put on connect
   * @param {number} [o.heartbeatMs=0] send ":" comment lines this often (0 = never)
   * @param {object} [o.tls] serve HTTPS: https.createServer options ({key, cert, maxVersion, ...})
   * @param {number|null} [o.allStatus] answer every GET /all with this status (null = normal)
   */
  constructor({ sdkKey, flags = {}, segments = {}, environments = {}, sendPut = true, heartbeatMs = 0, tls = null, allStatus = null }) {
    this.sdkKey = sdkKey;
    this.state = new Map();
    this.state.set(sdkKey, { flags: clone(flags), segments: clone(segments) });
    for (const [k, d] of Object.entries(environments)) {
      this.state.set(k, { flags: clone(d.flags ?? {}), segments: clone(d.segments ?? {}) });
    }
    this.sendPut = sendPut;
    this.heartbeatMs = heartbeatMs;
    this.requests = []; // {method, url, headers, time}
    this.connections = 0; // accepted /all streams (status 200), all keys
    this.connectionsByKey = new Map();
    this.rejected = 0; // /all requests answered 401
    this.streams = new Set(); // {res, key}
    this.sockets = new Set();
    this.port = 0;
    this.server = null;
    this.listening = false;
    this.connectWaiters = [];
    this.tls = tls;
    this.allStatus = allStatus; // forced status for every /all request (null = normal)
    this.statusByKey = new Map(); // forced status for /all requests of one SDK key
    this.failed = 0; // /all requests answered with a forced status
    this.pollStatus = null; // forced status for GET /sdk/latest-all (null = normal)
    this.polls = []; // {time, key, ifNoneMatch, status, etag}
    this.tlsErrors = []; // {time, message}: TLS handshakes the client aborted
    this.pollGzip = false; // gzip /sdk/latest-all bodies when the request accepts gzip
    this.connectPayload = null; // raw text written on connect instead of the put (string, Buffer or fn(key))
    this.endAfterConnectPayload = false; // then end the stream at once
  }

  get url() {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  get openStreams() {
    return this.streams.size;
  }

  connectionsFor(key = this.sdkKey) {
    return this.connectionsByKey.get(key) ?? 0;
  }

  streamRequests(key) {
    return this.requests.filter(
      (r) => r.method === 'GET' && r.path === '/all' && (key === undefined || r.headers.authorization === key),
    );
  }

  data(key = this.sdkKey) {
    return this.state.get(key);
  }

  async start(port = 0) {
    const handler = (req, res) => this.handle(req, res);
    const server = this.tls ? https.createServer({ ...this.tls }, handler) : http.createServer(handler);
    if (this.tls) {
      server.on('tlsClientError', (err) => this.tlsErrors.push({ time: Date.now(), message: err.message }));
    }
    server.on('connection', (sock) => {
      sock.setNoDelay(true);
      sock.on('error', () => {});
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
    });
    server.keepAliveTimeout = 60000;
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.port = server.address().port;
    this.listening = true;
    this.setHeartbeat(this.heartbeatMs);
    return this;
  }

  /** (Re)starts ":" heartbeats every `ms` (0 = stop). */
  setHeartbeat(ms) {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    this.heartbeatMs = ms;
    if (ms > 0 && this.server) {
      this.heartbeatTimer = setInterval(() => this.broadcast(null, ':\n'), ms);
      this.heartbeatTimer.unref();
    }
  }

  handle(req, res) {
    const u = new URL(req.url, 'http://x');
    const entry = { method: req.method, url: req.url, path: u.pathname, headers: { ...req.headers }, time: Date.now(), status: 0 };
    this.requests.push(entry);
    res.on('error', () => {});
    if (req.method === 'GET' && u.pathname === '/sdk/latest-all') {
      this.handlePoll(req, res, entry);
      return;
    }
    if (req.method === 'GET' && u.pathname === '/all') {
      const key = req.headers.authorization;
      const forced = this.statusByKey.get(key) ?? this.allStatus;
      if (forced) {
        this.failed++;
        entry.status = forced;
        res.writeHead(forced, { 'Content-Type': 'text/plain' });
        res.end(`forced status ${forced}`);
        return;
      }
      if (!key || !this.state.has(key)) {
        entry.status = 401;
        this.rejected++;
        res.writeHead(401, { 'Content-Type': 'text/plain' });
        res.end('unauthorized');
        return;
      }
      entry.status = 200;
      this.connections++;
      this.connectionsByKey.set(key, (this.connectionsByKey.get(key) ?? 0) + 1);
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache',
        Connection: 'keep-alive',
      });
      res.flushHeaders();
      const stream = { res, key };
      this.streams.add(stream);
      const drop = () => this.streams.delete(stream);
      res.on('close', drop);
      req.on('close', drop);
      if (this.connectPayload !== null) {
        res.write(typeof this.connectPayload === 'function' ? this.connectPayload(key) : this.connectPayload);
        if (this.endAfterConnectPayload) res.end();
      } else if (this.sendPut) {
        const s = this.state.get(key);
        res.write(this.frame('put', { path: '/', data: { flags: s.flags, segments: s.segments } }));
      }
      const waiters = this.connectWaiters;
      this.connectWaiters = [];
      for (const w of waiters) w();
      return;
    }
    if (req.method === 'POST') {
      // Events / diagnostics: accept and discard.
      req.resume();
      req.on('end', () => {
        res.writeHead(202);
        res.end();
      });
      return;
    }
    req.resume();
    entry.status = 404;
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
  }

  /** The ETag of the /sdk/latest-all body for `key` (a hash of the data). */
  etagFor(key = this.sdkKey) {
    const s = this.state.get(key);
    const body = JSON.stringify({ flags: s.flags, segments: s.segments });
    return `"${createHash('sha1').update(body).digest('hex').slice(0, 20)}"`;
  }

  handlePoll(req, res, entry) {
    const key = req.headers.authorization;
    const poll = { time: Date.now(), key, ifNoneMatch: req.headers['if-none-match'] ?? null, acceptEncoding: req.headers['accept-encoding'] ?? null, status: 0, etag: null, gzip: false };
    this.polls.push(poll);
    const answer = (status, headers, body) => {
      poll.status = status;
      entry.status = status;
      res.writeHead(status, headers);
      res.end(body);
    };
    if (this.pollStatus) return answer(this.pollStatus, { 'Content-Type': 'text/plain' }, `forced status ${this.pollStatus}`);
    if (!key || !this.state.has(key) || this.statusByKey.has(key)) return answer(401, { 'Content-Type': 'text/plain' }, 'unauthorized');
    const s = this.state.get(key);
    const etag = this.etagFor(key);
    poll.etag = etag;
    const inm = (poll.ifNoneMatch ?? '').split(',').map((x) => x.trim().replace(/^W\//, ''));
    if (inm.includes(etag)) return answer(304, { ETag: etag }, undefined);
    const body = JSON.stringify({ flags: s.flags, segments: s.segments });
    if (this.pollGzip && /\bgzip\b/.test(poll.acceptEncoding ?? '')) {
      poll.gzip = true;
      return answer(200, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', ETag: etag }, zlib.gzipSync(body));
    }
    return answer(200, { 'Content-Type': 'application/json', ETag: etag }, body);
  }

  frame(event, data) {
    return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  /** Writes raw text to every open stream of `key` (null = all keys). Returns streams written. */
  broadcast(key, text) {
    let n = 0;
    for (const s of this.streams) {
      if (key !== null && s.key !== key) continue;
      s.res.write(text);
      n++;
    }
    return n;
  }

  /** Upserts a flag (or segment with kind 'segments') and sends `patch`. */
  pushPatch(item, { kind = 'flags', key = this.sdkKey } = {}) {
    const s = this.state.get(key);
    s[kind][item.key] = clone(item);
    return this.broadcast(key, this.frame('patch', { path: `/${kind}/${item.key}`, data: item }));
  }

  pushPatchSegment(segment, opts = {}) {
    return this.pushPatch(segment, { ...opts, kind: 'segments' });
  }

  /** Sends a patch without changing the state served to later connections (e.g. a stale one). */
  pushPatchOnly(item, { kind = 'flags', key = this.sdkKey } = {}) {
    return this.broadcast(key, this.frame('patch', { path: `/${kind}/${item.key}`, data: item }));
  }

  pushDelete(kind, itemKey, version, { key = this.sdkKey } = {}) {
    const s = this.state.get(key);
    delete s[kind][itemKey];
    return this.broadcast(key, this.frame('delete', { path: `/${kind}/${itemKey}`, version }));
  }

  /** Replaces the whole data set of `key` and sends `put`. */
  pushPut(data, { key = this.sdkKey } = {}) {
    this.setData(data, { key });
    const s = this.state.get(key);
    return this.broadcast(key, this.frame('put', { path: '/', data: { flags: s.flags, segments: s.segments } }));
  }

  /** Replaces the data of `key` without sending anything (seen by the next connection). */
  setData(data, { key = this.sdkKey } = {}) {
    this.state.set(key, { flags: clone(data.flags ?? {}), segments: clone(data.segments ?? {}) });
  }

  pushRaw(text, { key = this.sdkKey } = {}) {
    return this.broadcast(key, text);
  }

  /** Resolves once at least `n` /all streams have been accepted in total (bounded). */
  async waitForConnections(n, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (this.connections < n) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`fake upstream: expected ${n} stream connection(s), got ${this.connections} within ${timeoutMs} ms`);
      }
      await Promise.race([new Promise((r) => this.connectWaiters.push(r)), sleep(Math.min(left, 100))]);
    }
  }

  /** Resolves once an accepted stream of `key` is open (bounded). */
  async waitForOpenStream(key = this.sdkKey, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (![...this.streams].some((s) => s.key === key)) {
      if (Date.now() > deadline) throw new Error(`fake upstream: no open stream for key within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Destroys every open /all stream at once (abrupt close, no terminating chunk). */
  dropStreams(key = null) {
    let n = 0;
    for (const s of [...this.streams]) {
      if (key !== null && s.key !== key) continue;
      s.res.destroy();
      this.streams.delete(s);
      n++;
    }
    return n;
  }

  /** Ends every open /all stream cleanly (terminating chunk: the body ends). */
  endStreams(key = null) {
    let n = 0;
    for (const s of [...this.streams]) {
      if (key !== null && s.key !== key) continue;
      s.res.end();
      this.streams.delete(s);
      n++;
    }
    return n;
  }

  /**
   * Writes `data` (string or Buffer) to the open streams of `key`, `chunkBytes` bytes every
   * `intervalMs` ms (a slow drip). Resolves when everything is written; returns the bytes written.
   */
  async drip(data, { key = this.sdkKey, chunkBytes = 1, intervalMs = 1 } = {}) {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
    const targets = [...this.streams].filter((s) => s.key === key);
    if (targets.length === 0) throw new Error('fake upstream: drip with no open stream');
    for (let i = 0; i < buf.length; i += chunkBytes) {
      for (const s of targets) s.res.write(buf.subarray(i, i + chunkBytes));
      await sleep(intervalMs);
    }
    return buf.length;
  }

  /** Drops every connection and stops listening. */
  async close() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    if (!this.server) return;
    const server = this.server;
    this.server = null;
    this.listening = false;
    for (const s of this.streams) s.res.destroy();
    this.streams.clear();
    for (const sock of this.sockets) sock.destroy();
    this.sockets.clear();
    await new Promise((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port (after close()). */
  async restart() {
    if (this.server) return this;
    return this.start(this.port);
  }
}

export async function startFakeUpstream(opts) {
  const up = new FakeUpstream(opts);
  await up.start(opts.port ?? 0);
  return up;
}
