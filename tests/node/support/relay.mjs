// Starting and stopping the flagrelay binary under test.
//
// startRelay() writes a YAML config into a temp dir, spawns `flagrelay --config FILE`, waits for
// `GET /healthz` to answer 200 (bounded) and returns a handle. Output (stderr + stdout) is kept in a
// bounded buffer so failing tests can print it. Every spawned child is SIGKILLed when the test
// process exits, whatever happened.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.mjs';
import { httpRequest, sleep, delayUnref } from './http.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_BIN = path.resolve(here, '../../../build/relay/flagrelay');

/** Path of the binary under test: $FLAGRELAY_BIN, else the default build location. */
export function relayBin() {
  return process.env.FLAGRELAY_BIN || DEFAULT_BIN;
}

/** Throws a readable error when the binary is missing (tests must fail, not silently pass). */
export function assertRelayBinExists() {
  const bin = relayBin();
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(
      `flagrelay binary not found or not executable at ${bin} (set FLAGRELAY_BIN to its path)`,
    );
  }
  return bin;
}

const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export function makeTempDir(prefix = 'flagrelay-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// ---------------------------------------------------------------------------------------------
// YAML: the config is a tree of plain objects, strings, numbers and booleans. Strings are written
// as JSON strings, which are valid YAML double-quoted scalars.
function yamlScalar(v) {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null) return 'null';
  return JSON.stringify(String(v));
}

export function toYaml(value, indent = 0) {
  const pad = ' '.repeat(indent);
  const lines = [];
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      lines.push(`${pad}${k}:`);
      lines.push(toYaml(v, indent + 2));
    } else if (Array.isArray(v)) {
      lines.push(`${pad}${k}:`);
      for (const item of v) lines.push(`${pad}  - ${yamlScalar(item)}`);
    } else {
      lines.push(`${pad}${k}: ${yamlScalar(v)}`);
    }
  }
  return lines.filter((l) => l !== '').join('\n');
}

function deepMerge(base, extra) {
  if (!extra) return base;
  const out = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object') {
      out[k] = deepMerge(out[k], v);
    } else {
      out[k] = v;
    }
  }
  return out;
}

/**
 * Builds the config object of the contract.
 * @param {object} o
 * @param {string} o.upstreamUrl   http://127.0.0.1:<port> of the fake upstream (stream/base/events)
 * @param {object} o.environments  { name: { sdkKey, mobileKey?, envId?, dataFile?, dataFilePollInterval? } }
 */
export function buildConfig({
  port,
  metricsPort = 0,
  upstreamUrl,
  environments,
  cacheDir,
  streams,
  upstream,
  logLevel = 'debug',
  extra,
}) {
  const cfg = {
    listen: { host: '127.0.0.1', port },
    metrics: { port: metricsPort },
    logLevel,
    upstream: {
      streamUri: upstreamUrl,
      baseUri: upstreamUrl,
      eventsUri: upstreamUrl,
      initialReconnectDelay: '100ms',
      maxReconnectDelay: '500ms',
      ...upstream,
    },
    streams: {
      heartbeatInterval: '1s',
      maxQueueEvents: 64,
      maxQueueBytes: 262144,
      ...streams,
    },
    cache: cacheDir ? { dir: cacheDir } : undefined,
    environments,
  };
  return deepMerge(cfg, extra);
}

class OutputBuffer {
  constructor(limit = 256 * 1024) {
    this.limit = limit;
    this.chunks = [];
    this.size = 0;
    this.dropped = 0;
  }
  push(chunk) {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.limit && this.chunks.length > 1) {
      const c = this.chunks.shift();
      this.size -= c.length;
      this.dropped += c.length;
    }
  }
  text() {
    const body = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped ? `[... ${this.dropped} earlier bytes dropped ...]\n${body}` : body;
  }
}

export class Relay {
  constructor({ bin, dir, configPath, config, port, metricsPort, label, env }) {
    this.bin = bin;
    this.dir = dir;
    this.configPath = configPath;
    this.config = config;
    this.port = port;
    this.metricsPort = metricsPort;
    this.label = label;
    this.extraEnv = env ?? {};
    this.url = `http://127.0.0.1:${port}`;
    this.metricsUrl = metricsPort ? `http://127.0.0.1:${metricsPort}` : null;
    this.out = new OutputBuffer();
    this.exitInfo = null;
  }

  spawn() {
    // Proxy variables of the test runner's environment would reroute loopback upstream traffic.
    const env = { ...process.env };
    for (const k of Object.keys(env)) {
      if (/^(https?|no|all)_proxy$/i.test(k)) delete env[k];
    }
    const child = spawn(this.bin, ['--config', this.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...env, ...this.extraEnv },
    });
    this.proc = child;
    liveChildren.add(child);
    child.stdout.on('data', (c) => this.out.push(c));
    child.stderr.on('data', (c) => this.out.push(c));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        liveChildren.delete(child);
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      child.once('error', (err) => {
        liveChildren.delete(child);
        this.exitInfo = { code: null, signal: null, error: err };
        resolve(this.exitInfo);
      });
    });
    return this;
  }

  get pid() {
    return this.proc?.pid;
  }

  output() {
    return this.out.text();
  }

  running() {
    return this.proc && !this.exitInfo;
  }

  /** Polls GET /healthz until 200 (bounded); fails early if the process exits. */
  async waitHealthy(timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no attempt';
    while (Date.now() < deadline) {
      if (this.exitInfo) {
        throw new Error(
          `flagrelay exited before becoming healthy (${JSON.stringify(this.exitInfo)})\n${this.diagnostics()}`,
        );
      }
      try {
        const res = await httpRequest(`${this.url}/healthz`, { timeoutMs: 1000 });
        if (res.status === 200) return;
        last = `status ${res.status}`;
      } catch (err) {
        last = err.message;
      }
      await sleep(50);
    }
    throw new Error(
      `flagrelay not healthy after ${timeoutMs} ms (last: ${last})\n${this.diagnostics()}`,
    );
  }

  /**
   * Rewrites the config file, merged with `extra` (or replaced by `extra` when it is YAML
   * text), and sends SIGHUP.
   */
  reload(extra) {
    if (typeof extra === 'string') {
      fs.writeFileSync(this.configPath, extra);
    } else {
      this.config = deepMerge(this.config, extra);
      fs.writeFileSync(this.configPath, `${toYaml(this.config)}\n`);
    }
    this.proc.kill('SIGHUP');
  }

  /** Sends SIGTERM and waits (bounded) for the exit; returns {code, signal}. */
  async terminate(timeoutMs = 5000) {
    if (this.exitInfo) return this.exitInfo;
    this.stopRequested = true;
    this.proc.kill('SIGTERM');
    const res = await Promise.race([this.exited, delayUnref(timeoutMs).then(() => null)]);
    if (!res) {
      await this.kill();
      throw new Error(`flagrelay did not exit within ${timeoutMs} ms of SIGTERM (SIGKILLed)`);
    }
    return res;
  }

  /** SIGKILL, then wait (bounded) for the exit. Idempotent. */
  async kill() {
    if (!this.proc || this.exitInfo) return this.exitInfo;
    this.stopRequested = true;
    try {
      this.proc.kill('SIGKILL');
    } catch {
      /* gone */
    }
    await Promise.race([this.exited, delayUnref(3000)]);
    return this.exitInfo;
  }

  diagnostics() {
    const cfg = fs.existsSync(this.configPath) ? fs.readFileSync(this.configPath, 'utf8') : '';
    return [
      `----- flagrelay ${this.label ?? ''} (pid ${this.pid}, ${this.bin}) exit=${JSON.stringify(this.exitInfo)}`,
      `----- config ${this.configPath}:`,
      cfg,
      '----- output (stderr+stdout):',
      this.output(),
      '----- end flagrelay output',
    ].join('\n');
  }
}

/**
 * Writes the config and starts the relay; resolves once /healthz is 200.
 * Options: all of buildConfig's, plus dir (reuse a temp dir, e.g. to keep the cache across
 * restarts), port/metricsPort (reuse ports), metrics (false = metrics.port 0), waitHealthy,
 * env (extra environment variables; the runner's *_PROXY variables are never passed on), bin (a
 * launcher to run instead of the binary, given the same arguments).
 */
export async function startRelay(opts) {
  const bin = opts.bin ?? assertRelayBinExists();
  const dir = opts.dir ?? makeTempDir();
  const port = opts.port ?? (await freePort());
  const metricsPort = opts.metrics === false ? 0 : (opts.metricsPort ?? (await freePort()));
  const cacheDir = opts.cacheDir === null ? undefined : (opts.cacheDir ?? path.join(dir, 'cache'));
  const config = buildConfig({ ...opts, port, metricsPort, cacheDir });
  const configPath = path.join(dir, opts.configName ?? 'relay.yaml');
  fs.writeFileSync(configPath, `${toYaml(config)}\n`);
  const relay = new Relay({ bin, dir, configPath, config, port, metricsPort, label: opts.label, env: opts.env });
  relay.spawn();
  if (opts.onSpawn) opts.onSpawn(relay);
  if (opts.waitHealthy !== false) await relay.waitHealthy(opts.healthTimeoutMs ?? 10000);
  return relay;
}

/** Runs the binary with arguments to completion (bounded); returns {code, signal, stdout, stderr}. */
export function runRelayCli(args, { timeoutMs = 10000 } = {}) {
  const bin = assertRelayBinExists();
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}
