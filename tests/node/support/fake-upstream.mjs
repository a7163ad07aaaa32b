// A fake LaunchDarkly streaming service on 127.0.0.1 (protocol reference §2.1).
//
// GET /all: Authorization must equal one of the configured SDK keys (else 401). On connect the
// stream gets `event: put` with {"path":"/","data":{"flags":{...},"segments":{...}}} (unless
// sendPut is false: then it stays silent, like an upstream that accepts but never sends data).
// Pushed patches/deletes/puts also update the per-key state so the next connection's put matches.
import http from 'node:http';
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
   */
  constructor({ sdkKey, flags = {}, segments = {}, environments = {}, sendPut = true, heartbeatMs = 0 }) {
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
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
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
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (sock) => {
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
    if (this.heartbeatMs > 0) {
      this.heartbeatTimer = setInterval(() => this.broadcast(null, ':\n'), this.heartbeatMs);
      this.heartbeatTimer.unref();
    }
    return this;
  }

  handle(req, res) {
    const u = new URL(req.url, 'http://x');
    this.requests.push({ method: req.method, url: req.url, path: u.pathname, headers: { ...req.headers }, time: Date.now() });
    if (req.method === 'GET' && u.pathname === '/all') {
      const key = req.headers.authorization;
      if (!key || !this.state.has(key)) {
        this.rejected++;
        res.writeHead(401, { 'Content-Type': 'text/plain' });
        res.end('unauthorized');
        return;
      }
      this.connections++;
      this.connectionsByKey.set(key, (this.connectionsByKey.get(key) ?? 0) + 1);
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache',
        Connection: 'keep-alive',
      });
      res.flushHeaders();
      const entry = { res, key };
      this.streams.add(entry);
      const drop = () => this.streams.delete(entry);
      res.on('close', drop);
      req.on('close', drop);
      if (this.sendPut) {
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
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
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

  /** Drops every connection and stops listening. */
  async close() {
    clearInterval(this.heartbeatTimer);
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
