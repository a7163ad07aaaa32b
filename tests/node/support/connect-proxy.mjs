// An HTTP CONNECT proxy on 127.0.0.1 for the tests: tunnels to 127.0.0.1 targets only,
// optionally requiring `Proxy-Authorization: Basic base64(user:pass)` (407 otherwise).
// Plain (absolute-form) proxy requests are not supported: they are logged in `plainRequests`
// and answered 405, so a client that does not tunnel is seen as such.
import http from 'node:http';
import net from 'node:net';

export class ConnectProxy {
  /** hang: accept CONNECT requests and never answer them (a black-holed proxy). */
  constructor({ user = null, pass = null, hang = false } = {}) {
    this.hang = hang;
    this.expectedAuth = user !== null ? `Basic ${Buffer.from(`${user}:${pass ?? ''}`).toString('base64')}` : null;
    this.connects = []; // {target, auth, time, status}
    this.plainRequests = []; // {method, url, time}
    this.sockets = new Set();
    this.server = null;
    this.port = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Successful tunnels (status 200) to `target` ("host:port"), or all when omitted. */
  tunnels(target) {
    return this.connects.filter((c) => c.status === 200 && (target === undefined || c.target === target));
  }

  track(sock) {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
  }

  async start() {
    const server = http.createServer((req, res) => {
      this.plainRequests.push({ method: req.method, url: req.url, time: Date.now() });
      req.resume();
      res.writeHead(405, { 'Content-Type': 'text/plain', Connection: 'close' });
      res.end('this test proxy only supports CONNECT');
    });
    server.on('connection', (sock) => this.track(sock));
    server.on('connect', (req, client, head) => this.onConnect(req, client, head));
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.port = server.address().port;
    return this;
  }

  onConnect(req, client, head) {
    const entry = { target: req.url, auth: req.headers['proxy-authorization'] ?? null, time: Date.now(), status: 0 };
    this.connects.push(entry);
    if (this.hang) {
      this.track(client);
      return;
    }
    const refuse = (status, text, extra = '') => {
      entry.status = status;
      client.end(`HTTP/1.1 ${status} ${text}\r\n${extra}Content-Length: 0\r\nConnection: close\r\n\r\n`);
    };
    if (this.expectedAuth !== null && entry.auth !== this.expectedAuth) {
      refuse(407, 'Proxy Authentication Required', 'Proxy-Authenticate: Basic realm="flagrelay-test"\r\n');
      return;
    }
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(req.url ?? '');
    if (!m || !['127.0.0.1', 'localhost'].includes(m[1])) {
      refuse(403, 'Forbidden');
      return;
    }
    const target = net.connect({ host: '127.0.0.1', port: Number(m[2]) });
    this.track(target);
    target.once('connect', () => {
      entry.status = 200;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head?.length) target.write(head);
      target.pipe(client);
      client.pipe(target);
    });
    target.on('error', () => {
      if (entry.status === 0) refuse(502, 'Bad Gateway');
      else client.destroy();
    });
    client.on('close', () => target.destroy());
    target.on('close', () => client.destroy());
  }

  async close() {
    if (!this.server) return;
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise((resolve) => server.close(() => resolve()));
  }
}

export async function startConnectProxy(opts) {
  return new ConnectProxy(opts).start();
}
