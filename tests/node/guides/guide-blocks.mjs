// The guides' own commands and config files, read from the markdown (docs/guides/*.md), so that
// the docs and these tests cannot drift apart.
//
// A fenced block whose info string carries `id=NAME` (```yaml id=sidecar) is one the tests use;
// GitHub renders it by its first word and ignores the rest. A table is found by the HTML comment
// `<!-- table: NAME -->` on the line before it. Values that name real hosts, ports and
// directories are rewritten to loopback ones with `rewrite`, which fails when a text it was told
// to replace is not there (so a changed guide fails its test instead of silently testing less).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Relay, relayBin, assertRelayBinExists } from '../support/relay.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../../..');
export const GUIDES = path.join(REPO, 'docs/guides');

export function readGuide(name) {
  return fs.readFileSync(path.join(GUIDES, name), 'utf8');
}

/** Every fenced block: {lang, id, text, line}. */
export function fencedBlocks(markdown) {
  const out = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, info] = open;
    const body = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j].startsWith(`${indent}${fence}`); j++) {
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j]);
    }
    const words = info.trim().split(/\s+/);
    const id = words.find((w) => w.startsWith('id='))?.slice(3) ?? null;
    out.push({ lang: words[0] ?? '', id, text: `${body.join('\n')}\n`, line: i + 1 });
    i = j;
  }
  return out;
}

/** The text of the block tagged `id=NAME` (exactly one must exist). */
export function block(markdown, id) {
  const found = fencedBlocks(markdown).filter((b) => b.id === id);
  if (found.length !== 1) {
    throw new Error(`guide: expected exactly one fenced block with id=${id}, found ${found.length}`);
  }
  return found[0].text;
}

/** Ids of every tagged block, for checking that each one is used by a test. */
export function blockIds(markdown) {
  return fencedBlocks(markdown).filter((b) => b.id).map((b) => b.id);
}

/**
 * Replaces every occurrence of each `from` by its `to` (plain strings, in order). Throws when a
 * `from` does not occur: the guide changed and the test must be told what to rewrite now.
 */
export function rewrite(text, pairs) {
  let out = text;
  for (const [from, to] of pairs) {
    if (!out.includes(from)) {
      throw new Error(`guide rewrite: '${from}' does not occur in:\n${out}`);
    }
    out = out.split(from).join(String(to));
  }
  return out;
}

/** The rows of the table after `<!-- table: NAME -->`, as arrays of cell texts (header dropped). */
export function table(markdown, name) {
  const lines = markdown.split('\n');
  const at = lines.findIndex((l) => l.trim() === `<!-- table: ${name} -->`);
  if (at < 0) throw new Error(`guide: no table marked <!-- table: ${name} -->`);
  const rows = [];
  for (let i = at + 1; i < lines.length && lines[i].trim().startsWith('|'); i++) rows.push(lines[i]);
  if (rows.length < 3) throw new Error(`guide: table ${name} has no rows`);
  return rows.slice(2).map((row) =>
    row
      .trim()
      .replace(/^\||\|$/g, '')
      .split(/(?<!\\)\|/)
      .map((c) => c.trim()),
  );
}

/** The `code` spans of a table cell: "`A`, `B`" -> ['A', 'B']. */
export function codeSpans(cell) {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
}

/** A directory holding a `flagrelay` link to the binary under test, to put first on PATH. */
export function binDir(s) {
  const dir = s.tmpDir('flagrelay-guide-bin-');
  fs.symlinkSync(assertRelayBinExists(), path.join(dir, 'flagrelay'));
  return dir;
}

/**
 * Runs a shell block with bash (-e -u -o pipefail) in `cwd`, `flagrelay` being the binary under
 * test. Asynchronous (the fake servers live in this process) and bounded. Resolves
 * {code, signal, stdout, stderr}.
 */
export function runShell(s, script, { cwd, env = {}, timeoutMs = 10000 } = {}) {
  const bin = binDir(s);
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], {
      cwd,
      env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, script });
    });
  });
}

/** Formats a shell result for assertion messages. */
export function shellReport(r) {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- script:\n${r.script}--- stdout:\n${r.stdout}--- stderr:\n${r.stderr}`;
}

/**
 * Starts `flagrelay --config FILE` on YAML text (already rewritten to loopback), cleaned up with
 * the test's scope. `port`/`metricsPort` are the ones the YAML listens on. Waits for /healthz
 * unless waitHealthy is false.
 */
export async function startYamlRelay(s, { yaml, port, metricsPort = 0, env = {}, label, dir, file = 'relay.yaml', waitHealthy = true }) {
  const where = dir ?? s.tmpDir('flagrelay-guide-');
  const configPath = path.join(where, file);
  fs.mkdirSync(path.dirname(configPath), { recursive: true });
  fs.writeFileSync(configPath, yaml);
  const relay = new Relay({ bin: relayBin(), dir: where, configPath, config: null, port, metricsPort, label, env });
  relay.spawn();
  s.relays.push(relay);
  s.defer(() => relay.kill());
  if (waitHealthy) await relay.waitHealthy(10000);
  return relay;
}
