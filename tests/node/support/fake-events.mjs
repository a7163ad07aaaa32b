// A fake LaunchDarkly events service for the events tests: records every POST (path, headers,
// gunzipped body) and answers what the test scripts (a status per request, or a stall).
import http from 'node:http';
import zlib from 'node:zlib';

export class FakeEvents {
  constructor() {
    this.received = [];  // { method, url, headers, body (string), events (parsed or null) }
    this.script = [];    // statuses (or 'stall') for the next requests, then `status`
    this.status = 202;
    this.stalled = [];
    this.connections = 0; // TCP connections the relay opened
    this.sockets = new Set();
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  /** Closes every connection, as a service does with idle keep-alive connections. */
  dropConnections() {
    for (const socket of this.sockets) socket.destroy();
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  handle(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = zlib.gunzipSync(raw);
      const body = raw.toString('utf8');
      let events = null;
      try {
        events = JSON.parse(body);
      } catch {
        events = null;
      }
      const next = this.script.length ? this.script.shift() : this.status;
      this.received.push({ method: req.method, url: req.url, headers: req.headers, body, events, answered: next });
      if (next === 'stall') {
        this.stalled.push(res);
        return;
      }
      res.writeHead(next);
      res.end();
    });
  }

  /** Analytics events received on `path` (answered 2xx or not), flattened. */
  eventsAt(path) {
    return this.received.filter((r) => r.url === path && Array.isArray(r.events)).flatMap((r) => r.events);
  }

  async close() {
    for (const res of this.stalled) res.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

export async function startFakeEvents() {
  return new FakeEvents().listen();
}
