// Minimal Server-Sent-Events client over node:http.
//
//   const c = await openSse(`${relay.url}/all`, { headers: { Authorization: key } });
//   const ev = await c.nextEvent(5000);   // {event, data, json(), receivedAt}
//
// Comment lines (":" heartbeats) are counted, not returned. A client opened with {paused: true}
// never reads the body (res.pause(), no 'data' listener) to simulate a stalled reader; resume()
// starts reading (and so lets it notice that the server closed the connection).
import http from 'node:http';
import { delayUnref } from './http.mjs';

export class SseClient {
  constructor(url, req) {
    this.url = url;
    this.req = req;
    this.res = null;
    this.status = 0;
    this.headers = {};
    this.events = [];
    this.cursor = 0;
    this.comments = 0;
    this.bytes = 0;
    this.body = ''; // raw text received (only kept for non-200 responses and the first 64 KiB)
    this.closedInfo = null;
    this.waiters = new Set();
    this._buf = '';
    this._scanned = 0;
    this._event = '';
    this._data = [];
    this._hasData = false;
    this.closed = new Promise((resolve) => {
      this._resolveClosed = resolve;
    });
  }

  _attach(res, paused) {
    this.res = res;
    this.status = res.statusCode;
    this.headers = res.headers;
    res.setEncoding('utf8');
    const done = (reason) => {
      if (this.closedInfo) return;
      this.closedInfo = { reason, at: Date.now() };
      this._resolveClosed(this.closedInfo);
      this._wake();
    };
    res.on('end', () => done('end'));
    res.on('aborted', () => done('aborted'));
    res.on('close', () => done('close'));
    res.on('error', (err) => done(`error: ${err.message}`));
    this.req.on('error', (err) => done(`error: ${err.message}`));
    if (paused) {
      res.pause();
    } else {
      this.resume();
    }
  }

  /** Starts (or restarts) reading the body. */
  resume() {
    if (!this._listening) {
      this._listening = true;
      this.res.on('data', (chunk) => this._onChunk(chunk));
    }
    this.res.resume();
  }

  _onChunk(chunk) {
    this.bytes += Buffer.byteLength(chunk);
    if (this.body.length < 65536) this.body += chunk.slice(0, 65536 - this.body.length);
    this._buf += chunk;
    // Lines end in \r\n, \n or \r. Keep an unterminated tail (and a trailing \r that may be
    // the first half of \r\n) for the next chunk. The tail kept last time holds no line end
    // (except perhaps a final \r), so scanning resumes where it stopped: linear in the event size.
    let start = 0;
    for (let i = Math.max(0, this._scanned - 1); i < this._buf.length; i++) {
      const ch = this._buf[i];
      if (ch !== '\n' && ch !== '\r') continue;
      if (ch === '\r' && i === this._buf.length - 1) break;
      const line = this._buf.slice(start, i);
      if (ch === '\r' && this._buf[i + 1] === '\n') i++;
      start = i + 1;
      this._onLine(line);
    }
    this._buf = this._buf.slice(start);
    this._scanned = this._buf.length;
  }

  _onLine(line) {
    if (line === '') {
      if (this._hasData) {
        const data = this._data.join('\n');
        const ev = {
          event: this._event || 'message',
          data,
          receivedAt: Date.now(),
          json() {
            return JSON.parse(data);
          },
        };
        this.events.push(ev);
        this._wake();
      }
      this._event = '';
      this._data = [];
      this._hasData = false;
      return;
    }
    if (line.startsWith(':')) {
      this.comments++;
      this.lastCommentAt = Date.now();
      this._wake();
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this._event = value;
    else if (field === 'data') {
      this._data.push(value);
      this._hasData = true;
    }
    // id / retry / unknown fields are ignored.
  }

  _wake() {
    for (const w of this.waiters) w();
  }

  _waitChange(ms) {
    return new Promise((resolve) => {
      const w = () => {
        clearTimeout(t);
        this.waiters.delete(w);
        resolve();
      };
      const t = setTimeout(w, ms);
      this.waiters.add(w);
    });
  }

  get isClosed() {
    return this.closedInfo !== null;
  }

  /** The next event not yet returned by nextEvent/waitForEvent; rejects on timeout or close. */
  async nextEvent(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.cursor < this.events.length) return this.events[this.cursor++];
      if (this.closedInfo) {
        throw new Error(`SSE ${this.url}: stream closed (${this.closedInfo.reason}) while waiting for an event`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`SSE ${this.url}: no event within ${timeoutMs} ms (got ${this.events.length} so far)`);
      await this._waitChange(left);
    }
  }

  /** Consumes events until one satisfies `pred`; returns it. Skipped events stay in `events`. */
  async waitForEvent(pred, timeoutMs = 5000, what = 'matching event') {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.events.map((e) => `${e.event} ${e.data.slice(0, 120)}`).join('\n  ');
        throw new Error(`SSE ${this.url}: no ${what} within ${timeoutMs} ms; events seen:\n  ${seen}`);
      }
      let ev;
      try {
        ev = await this.nextEvent(left);
      } catch (err) {
        if (/no event within/.test(err.message)) continue;
        throw err;
      }
      if (pred(ev)) return ev;
    }
  }

  /** Resolves if no new event arrives within `ms`; throws (naming the event) otherwise. */
  async expectNoEvent(ms) {
    const before = this.events.length;
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (this.events.length > before) {
        const ev = this.events[before];
        throw new Error(`SSE ${this.url}: unexpected event ${ev.event} ${ev.data.slice(0, 300)}`);
      }
      await this._waitChange(deadline - Date.now());
    }
    if (this.events.length > before) {
      const ev = this.events[before];
      throw new Error(`SSE ${this.url}: unexpected event ${ev.event} ${ev.data.slice(0, 300)}`);
    }
  }

  /** Waits until `n` comment lines (heartbeats) have arrived in total. */
  async waitForComments(n, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (this.comments < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`SSE ${this.url}: ${this.comments} comment line(s) within ${timeoutMs} ms, wanted ${n}`);
      if (this.closedInfo) throw new Error(`SSE ${this.url}: closed while waiting for comments`);
      await this._waitChange(left);
    }
  }

  /** Resolves with the close info if the server closes the stream within `ms`, else null. */
  async waitClosed(ms) {
    return Promise.race([this.closed, delayUnref(ms).then(() => null)]);
  }

  close() {
    this.req.destroy();
    this.res?.destroy();
  }
}

/**
 * Opens an SSE request; resolves once the response headers are in (any status).
 * Options: headers, paused (stalled reader), timeoutMs (for the headers), method.
 */
export function openSse(url, { headers = {}, paused = false, timeoutMs = 5000, method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method,
      headers: { Accept: 'text/event-stream', ...headers },
      agent: false,
    });
    const client = new SseClient(url, req);
    const timer = setTimeout(() => {
      req.destroy(new Error(`SSE ${url}: no response headers within ${timeoutMs} ms`));
    }, timeoutMs);
    req.once('response', (res) => {
      clearTimeout(timer);
      client._attach(res, paused);
      resolve(client);
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
