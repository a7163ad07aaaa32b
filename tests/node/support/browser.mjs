// The official LaunchDarkly browser SDK (@launchdarkly/js-client-sdk 4.x) in headless Debian
// Chromium (playwright-core), pointed at the relay.
//
//   const page = await openSdkPage(s);                  // browser + page server, closed in t.after
//   const r = await page.startClient(envId, context, { baseUri: relay.url, ... });
//   await page.variation('flag', 'default');
//   await page.waitForChange('flag');                    // the SDK's "change" event
//
// The SDK is bundled once per test process with esbuild (in memory, IIFE, global `LD`) and
// served with a small page from its own loopback HTTP server, so every request the SDK makes to
// the relay is cross-origin: the browser sends real CORS preflights and enforces the answers.
// A CDP session records the page's network activity (preflights included) with the CORS error
// Chromium reports for each blocked request. Chromium is started with a proxy that is a local
// black hole, so nothing it might try outside 127.0.0.1 leaves the machine (loopback bypasses
// proxies implicitly); the attempts are counted.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, delayUnref } from './http.mjs';
import { relayTest } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const testsRoot = path.resolve(here, '..');

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const BROWSER_TEST_TIMEOUT_MS = Number(process.env.FLAGRELAY_BROWSER_TEST_TIMEOUT_MS || 60000);

/** Throws a readable error when Chromium is missing (the tests must fail, not pass silently). */
export function assertChromiumExists() {
  try {
    fs.accessSync(CHROMIUM, fs.constants.X_OK);
  } catch {
    throw new Error(`Chromium not found at ${CHROMIUM} (scripts/install-deps --test installs Debian's chromium; or set CHROMIUM)`);
  }
  return CHROMIUM;
}

// ---------------------------------------------------------------------------------------------
// The SDK bundle: built once per process.
let bundlePromise = null;

export function sdkBundle() {
  bundlePromise ??= (async () => {
    const esbuild = await import('esbuild');
    const t0 = performance.now();
    const r = await esbuild.build({
      stdin: {
        contents: "export * from '@launchdarkly/js-client-sdk';\n",
        resolveDir: testsRoot,
        sourcefile: 'ld-entry.js',
        loader: 'js',
      },
      bundle: true,
      format: 'iife',
      globalName: 'LD',
      platform: 'browser',
      target: 'chrome110',
      write: false,
      logLevel: 'silent',
    });
    const code = r.outputFiles[0].text;
    const pkg = JSON.parse(fs.readFileSync(path.join(testsRoot, 'node_modules/@launchdarkly/js-client-sdk/package.json'), 'utf8'));
    return { code, bytes: Buffer.byteLength(code), ms: Math.round(performance.now() - t0), sdkVersion: pkg.version };
  })();
  return bundlePromise;
}

// ---------------------------------------------------------------------------------------------
// Code that runs in the page (serialized with toString: no closures over this module).
function pageMain() {
  const log = [];
  const changes = [];
  window.__log = log;
  window.__changes = changes;
  const fmt = (args) => args.map((a) => (typeof a === 'string' ? a : (() => {
    try {
      return JSON.stringify(a);
    } catch {
      return String(a);
    }
  })())).join(' ');
  const rec = (level) => (...args) => {
    const line = `${level}: ${fmt(args)}`;
    log.push(line);
    console.log(`[ld ${line}]`);
  };
  const logger = { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') };
  const errInfo = (e) => (e ? { name: e.name, message: String(e.message ?? e), status: e.status ?? null } : null);

  window.__startClient = async (envId, context, options, startOptions) => {
    const client = window.LD.createClient(envId, context, { ...options, logger });
    window.__client = client;
    client.on('change', (ctx, keys) => {
      const values = {};
      for (const k of keys) values[k] = client.variation(k, '<<default>>');
      changes.push({ at: Date.now(), keys, values, context: ctx });
    });
    client.on('error', (ctx, err) => log.push(`error-event: ${String(err?.message ?? err)}`));
    const t0 = performance.now();
    let result;
    try {
      result = await client.start(startOptions);
    } catch (e) {
      return { status: 'threw', error: errInfo(e), ms: performance.now() - t0 };
    }
    return { status: result.status, error: errInfo(result.error), ms: performance.now() - t0 };
  };

  /** fetch() from the page; never throws: {ok, status, text, headers} or {error}. */
  window.__fetch = async (url, init) => {
    try {
      const r = await fetch(url, init);
      return { ok: r.ok, status: r.status, text: await r.text(), headers: Object.fromEntries(r.headers) };
    } catch (e) {
      return { error: `${e.name}: ${e.message}` };
    }
  };

  /** Opens an EventSource; resolves with the first message of type `type` or an error. */
  window.__eventSourceFirst = (url, type, timeoutMs) => new Promise((resolve) => {
    const es = new EventSource(url);
    const done = (v) => {
      clearTimeout(timer);
      es.close();
      resolve(v);
    };
    const timer = setTimeout(() => done({ error: `no "${type}" event within ${timeoutMs} ms (readyState ${es.readyState})` }), timeoutMs);
    es.addEventListener(type, (ev) => done({ type, data: ev.data }));
    es.onerror = () => done({ error: `EventSource error (readyState ${es.readyState})` });
  });
  document.title = 'flagrelay browser test';
}

const PAGE_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>flagrelay browser test (loading)</title></head>
<body><h1>flagrelay browser test</h1>
<script src="/ld.js"></script>
<script src="/page.js"></script>
</body></html>
`;

/** Serves the page, the SDK bundle and the page helpers on 127.0.0.1 (its own origin). */
export async function startPageServer() {
  const bundle = await sdkBundle();
  const pageJs = `(${pageMain.toString()})();\n`;
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const send = (status, type, body) => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return send(405, 'text/plain', 'method not allowed');
    if (req.url === '/' || req.url.startsWith('/?')) return send(200, 'text/html; charset=utf-8', PAGE_HTML);
    if (req.url === '/ld.js') return send(200, 'text/javascript; charset=utf-8', bundle.code);
    if (req.url === '/page.js') return send(200, 'text/javascript; charset=utf-8', pageJs);
    if (req.url === '/trivial') return send(200, 'text/html; charset=utf-8', '<!doctype html><title>trivial</title><p id="p">hello</p>');
    return send(404, 'text/plain', 'not found');
  });
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  const { port } = server.address();
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/`,
    bundle,
    async close() {
      for (const sock of sockets) sock.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP listener that accepts and drops every connection (the browser's proxy), counting them. */
async function startBlackHole() {
  const state = { connections: 0, targets: [] };
  const sockets = new Set();
  const server = net.createServer((sock) => {
    state.connections++;
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    // Read the request line (CONNECT host:port / GET http://...) for the record, then drop.
    sock.once('data', (chunk) => {
      const line = chunk.toString('latin1').split('\r\n')[0];
      if (state.targets.length < 50) state.targets.push(line.slice(0, 200));
      sock.destroy();
    });
    setTimeout(() => sock.destroy(), 1000).unref();
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  state.port = server.address().port;
  state.close = () => new Promise((resolve) => {
    for (const sock of sockets) sock.destroy();
    server.close(() => resolve());
  });
  return state;
}

/** Launches headless Chromium; returns {browser, blackHole, close()}. */
export async function launchBrowser() {
  assertChromiumExists();
  const { chromium } = await import('playwright-core');
  const blackHole = await startBlackHole();
  // The runner's proxy variables must not reach Chromium (it reads them on Linux).
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(https?|no|all)_proxy$/i.test(k)) delete env[k];
  }
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      env,
      timeout: 30000,
      args: [
        '--headless=new',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-dev-shm-usage',
        '--disable-component-update',
        '--disable-sync',
        '--disable-domain-reliability',
        '--disable-client-side-phishing-detection',
        '--no-first-run',
        '--no-default-browser-check',
        // Everything not on loopback goes to a local black hole (loopback bypasses proxies).
        `--proxy-server=http://127.0.0.1:${blackHole.port}`,
      ],
    });
  } catch (err) {
    await blackHole.close();
    throw err;
  }
  return {
    browser,
    blackHole,
    async close() {
      try {
        await Promise.race([browser.close(), delayUnref(10000)]);
      } finally {
        await blackHole.close();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
/** One page of the test: the SDK helpers, console output, network log from CDP. */
export class SdkPage {
  constructor(s, page, server, cdp) {
    this.s = s;
    this.page = page;
    this.server = server;
    this.origin = server.origin;
    this.cdp = cdp;
    this.console = [];
    this.net = new Map(); // requestId -> {method, url, type, status, headers, failed, corsError, reqHeaders}
    this.netOrder = [];
    this.changeCursor = 0;
    this.sse = []; // SSE messages the page received: {url, event, data, time}
  }

  /** SSE messages received from streams whose URL starts with `prefix`. */
  sseFrom(prefix) {
    return this.sse.filter((m) => m.url && m.url.startsWith(prefix));
  }

  /** Waits (bounded) for an SSE message from `prefix` (after index `from`) satisfying `pred`. */
  async waitForSse(prefix, pred, { from = 0, timeoutMs = 10000, what = 'SSE message' } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.sseFrom(prefix).slice(from).find(pred);
      if (m) return m;
      if (Date.now() > deadline) {
        throw new Error(`no ${what} from ${prefix} within ${timeoutMs} ms; received: ${JSON.stringify(this.sseFrom(prefix).map((x) => `${x.event} ${x.data.slice(0, 200)}`))}`);
      }
      await sleep(25);
    }
  }

  /** Records the network activity of the page (preflights included) through CDP. */
  async attachNetworkLog() {
    const entry = (id) => {
      let e = this.net.get(id);
      if (!e) {
        e = { id, method: null, url: null, type: null, status: null, headers: null, failed: null, corsError: null, reqHeaders: null };
        this.net.set(id, e);
        this.netOrder.push(e);
      }
      return e;
    };
    this.cdp.on('Network.requestWillBeSent', (p) => {
      const e = entry(p.requestId);
      e.method = p.request.method;
      e.url = p.request.url;
      e.type = p.type ?? null;
      e.reqHeaders = p.request.headers;
      e.time = Date.now();
    });
    this.cdp.on('Network.responseReceived', (p) => {
      const e = entry(p.requestId);
      e.status = p.response.status;
      e.headers = p.response.headers;
      e.type ??= p.type ?? null;
    });
    this.cdp.on('Network.loadingFailed', (p) => {
      const e = entry(p.requestId);
      e.failed = p.errorText;
      e.corsError = p.corsErrorStatus ?? null;
      e.type ??= p.type ?? null;
    });
    this.cdp.on('Network.eventSourceMessageReceived', (p) => {
      const e = this.net.get(p.requestId);
      this.sse.push({ url: e?.url ?? null, event: p.eventName, data: p.data, time: Date.now() });
    });
    await this.cdp.send('Network.enable');
  }

  /** Network log entries whose URL starts with `prefix` (e.g. the relay URL). */
  requestsTo(prefix) {
    return this.netOrder.filter((e) => e.url && e.url.startsWith(prefix));
  }

  /** Waits (bounded) until a network log entry to `prefix` satisfies `pred`; returns it. */
  async waitForRequest(prefix, pred, { timeoutMs = 5000, what = 'request' } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.requestsTo(prefix).find(pred);
      if (e) return e;
      if (Date.now() > deadline) throw new Error(`no ${what} to ${prefix} within ${timeoutMs} ms; network log:\n  ${this.netSummary(prefix)}`);
      await sleep(25);
    }
  }

  netSummary(prefix = '') {
    return this.requestsTo(prefix)
      .map((e) => `${e.type ?? '?'} ${e.method} ${e.url} -> ${e.status ?? '-'}${e.failed ? ` FAILED ${e.failed}` : ''}${e.corsError ? ` CORS ${JSON.stringify(e.corsError)}` : ''}`)
      .join('\n  ');
  }

  async goto(pathname = '/') {
    await this.page.goto(`${this.server.url.replace(/\/$/, '')}${pathname}`, { waitUntil: 'load', timeout: 15000 });
  }

  /** createClient + start() in the page; resolves {status: complete|failed|timeout, error, ms}. */
  async startClient(envId, context, options = {}, startOptions = {}) {
    const r = await this.page.evaluate(
      ([e, c, o, so]) => window.__startClient(e, c, o, so),
      [envId, context, options, { timeout: 15, ...startOptions }],
    );
    this.s.notes.push(`startClient(${envId}, ${JSON.stringify(context)}) -> ${JSON.stringify(r)}`);
    return r;
  }

  /** client.identify() in the page; resolves the SDK's result ({status, ...}). */
  async identify(context, options = {}) {
    const r = await this.page.evaluate(async ([c, o]) => {
      const res = await window.__client.identify(c, o);
      if (res === undefined) return { status: 'completed' };
      return { ...res, error: res.error ? { name: res.error.name, message: String(res.error.message), status: res.error.status ?? null } : undefined };
    }, [context, options]);
    this.s.notes.push(`identify(${JSON.stringify(context)}) -> ${JSON.stringify(r)}`);
    return r;
  }

  variation(key, def) {
    return this.page.evaluate(([k, d]) => window.__client.variation(k, d), [key, def]);
  }

  variationDetail(key, def) {
    return this.page.evaluate(([k, d]) => window.__client.variationDetail(k, d), [key, def]);
  }

  allFlags() {
    return this.page.evaluate(() => window.__client.allFlags());
  }

  sdkLog() {
    return this.page.evaluate(() => window.__log.slice());
  }

  changes() {
    return this.page.evaluate(() => window.__changes.slice());
  }

  /**
   * Waits for a "change" event (after the ones already consumed) whose keys include `key` and
   * whose values satisfy `pred(values)`; returns {at, keys, values}. Bounded.
   */
  async waitForChange(key, { timeoutMs = 10000, pred = () => true } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const all = await this.changes();
      for (let i = this.changeCursor; i < all.length; i++) {
        if (all[i].keys.includes(key) && pred(all[i].values)) {
          this.changeCursor = i + 1;
          return all[i];
        }
      }
      if (Date.now() > deadline) {
        throw new Error(`no SDK "change" event for ${key} within ${timeoutMs} ms; changes seen: ${JSON.stringify(all.slice(this.changeCursor))}`);
      }
      await sleep(50);
    }
  }

  /** Change events after the last one consumed (by waitForChange/skipChanges), not consuming them. */
  async pendingChanges() {
    return (await this.changes()).slice(this.changeCursor);
  }

  /** Marks every change event seen so far as consumed. */
  async skipChanges() {
    this.changeCursor = (await this.changes()).length;
  }

  /** fetch() from the page (subject to CORS): {ok, status, text, headers} or {error}. */
  fetch(url, init = {}) {
    return this.page.evaluate(([u, i]) => window.__fetch(u, i), [url, init]);
  }

  eventSourceFirst(url, type, timeoutMs = 5000) {
    return this.page.evaluate(([u, t, ms]) => window.__eventSourceFirst(u, t, ms), [url, type, timeoutMs]);
  }

  /** Console messages of the page that mention `needle` (e.g. 'CORS policy'). */
  consoleMatching(needle) {
    return this.console.filter((m) => m.text.includes(needle));
  }
}

/**
 * A browser (one per test scope), the page server, and a fresh context + page loaded with the
 * SDK. Everything is closed when the test ends; on failure the notes hold the page's console,
 * the SDK log and the network log.
 */
export async function openSdkPage(s, { goto = '/' } = {}) {
  if (!s.browserHandle) {
    const server = await startPageServer();
    s.defer(() => server.close());
    const handle = await launchBrowser();
    s.defer(() => handle.close());
    s.browserHandle = { server, handle };
    s.notes.push(`SDK bundle: @launchdarkly/js-client-sdk ${server.bundle.sdkVersion}, ${server.bundle.bytes} bytes, built in ${server.bundle.ms} ms; page origin ${server.origin}; chromium ${handle.browser.version()}`);
  }
  const { server, handle } = s.browserHandle;
  const context = await handle.browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const p = new SdkPage(s, page, server, cdp);
  (s.sdkPages ??= []).push(p);
  s.defer(() => Promise.race([context.close(), delayUnref(5000)]));
  page.on('console', (m) => {
    const line = { type: m.type(), text: m.text() };
    p.console.push(line);
    if (!line.text.startsWith('[ld debug')) s.notes.push(`console ${line.type}: ${line.text}`);
  });
  page.on('pageerror', (err) => s.notes.push(`pageerror: ${err.message}`));
  await p.attachNetworkLog();
  if (goto) await p.goto(goto);
  return p;
}

/** Adds each page's SDK log and network log to the scope's notes (printed on failure). */
export async function collectBrowserDiagnostics(s) {
  const bh = s.browserHandle?.handle.blackHole;
  if (bh) s.notes.push(`chromium made ${bh.connections} non-loopback connection attempt(s) (to the black-hole proxy): ${JSON.stringify(bh.targets)}`);
  for (const p of s.sdkPages ?? []) {
    try {
      const log = await Promise.race([p.sdkLog(), delayUnref(2000).then(() => ['(SDK log unavailable: page busy)'])]);
      s.notes.push(`--- SDK log (page ${p.origin}):\n  ${log.join('\n  ')}`);
    } catch (err) {
      s.notes.push(`--- SDK log unavailable: ${err.message}`);
    }
    s.notes.push(`--- browser network log (page ${p.origin}):\n  ${p.netSummary()}`);
    s.notes.push(`--- SSE messages received (page ${p.origin}):\n  ${p.sse.map((m) => `${m.event} ${m.data.slice(0, 400)}`).join('\n  ')}`);
  }
}

/**
 * relayTest for browser tests: a longer bound (FLAGRELAY_BROWSER_TEST_TIMEOUT_MS, default 60 s),
 * and on failure — including the body running out of time, 3 s before the test's own bound — the
 * pages' SDK and network logs join the diagnostics.
 */
export function browserTest(name, fn, opts = {}) {
  const { timeout = BROWSER_TEST_TIMEOUT_MS, ...rest } = opts;
  return relayTest(name, async (t, s) => {
    let timer;
    const bound = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`browser test body did not finish within ${timeout - 3000} ms`)), timeout - 3000);
    });
    try {
      await Promise.race([fn(t, s), bound]);
    } catch (err) {
      await collectBrowserDiagnostics(s);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }, { timeout, ...rest });
}
