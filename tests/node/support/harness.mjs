// Per-test resource scope: everything started through it (relays, fake upstreams, SSE clients,
// temp dirs) is torn down in t.after — also when the test throws or times out — and the relays'
// output is printed when the test did not pass.
import { test } from 'node:test';
import fs from 'node:fs';
import { startRelay, makeTempDir } from './relay.mjs';
import { startFakeUpstream } from './fake-upstream.mjs';
import { openSse } from './sse-client.mjs';
import { startConnectProxy } from './connect-proxy.mjs';
import { KEYS } from './flags.mjs';

export const TEST_TIMEOUT_MS = Number(process.env.FLAGRELAY_TEST_TIMEOUT_MS || 20000);

export class Scope {
  constructor(t) {
    this.t = t;
    this.cleanups = [];
    this.relays = [];
    this.upstreams = [];
    this.notes = [];
  }

  defer(fn) {
    this.cleanups.push(fn);
  }

  /** Records a line printed with the diagnostics on failure (and as a TAP diagnostic). */
  note(msg) {
    this.notes.push(msg);
    this.t.diagnostic(msg);
  }

  tmpDir(prefix) {
    const dir = makeTempDir(prefix);
    this.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  async upstream(opts) {
    const up = await startFakeUpstream(opts);
    this.upstreams.push(up);
    this.defer(() => up.close());
    return up;
  }

  /** startRelay() with cleanup: SIGKILL at the end of the test whatever happens. */
  async relay(opts) {
    const dir = opts.dir ?? this.tmpDir();
    return startRelay({
      ...opts,
      dir,
      onSpawn: (r) => {
        this.relays.push(r);
        this.defer(() => r.kill());
      },
    });
  }

  /** An HTTP CONNECT proxy (support/connect-proxy.mjs), closed at the end of the test. */
  async proxy(opts) {
    const p = await startConnectProxy(opts);
    this.defer(() => p.close());
    return p;
  }

  async sse(url, opts) {
    const c = await openSse(url, opts);
    this.defer(() => c.close());
    return c;
  }

  async cleanup(passed) {
    if (!passed) {
      const parts = [`===== diagnostics for failed test "${this.t.name}" =====`];
      for (const n of this.notes) parts.push(`note: ${n}`);
      for (const up of this.upstreams) {
        parts.push(
          `fake upstream :${up.port}: accepted streams=${up.connections}, rejected=${up.rejected}, open=${up.openStreams}, requests=${JSON.stringify(
            up.requests.slice(-20).map((r) => `${r.method} ${r.url} auth=${r.headers.authorization ?? '-'}`),
          )}`,
        );
      }
      for (const r of this.relays) parts.push(r.diagnostics());
      process.stderr.write(`${parts.join('\n')}\n`);
    }
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`cleanup error in "${this.t.name}": ${err.stack}\n`);
      }
    }
  }
}

/**
 * test() with a time bound and a Scope: `relayTest('name', async (t, s) => {...})`.
 * Options: timeout (ms), skip, only.
 */
export function relayTest(name, fn, opts = {}) {
  const { timeout = TEST_TIMEOUT_MS, ...rest } = opts;
  return test(name, { timeout, ...rest }, async (t) => {
    const s = new Scope(t);
    let passed = false;
    t.after(() => s.cleanup(passed));
    await fn(t, s);
    passed = true;
  });
}

/** The standard production environment of the contract (upstream-backed). */
export function prodEnv(extra = {}) {
  return { prod: { sdkKey: KEYS.prod, mobileKey: KEYS.prodMobile, envId: KEYS.prodEnvId, ...extra } };
}

export const auth = (key) => ({ Authorization: key });
