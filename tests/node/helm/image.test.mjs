// The container image without a Docker engine: the Dockerfile checked against the chart (user,
// ports, config path, cache path, arguments), against the binary (every shared library it links
// comes from a package the runtime stage installs), against the build context (.dockerignore),
// and its baked-in config run for real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Relay, assertRelayBinExists, makeTempDir } from '../support/relay.mjs';
import { freePort } from '../support/ports.mjs';
import { httpRequest } from '../support/http.mjs';
import { CHART, REPO, configText, parseYaml, podTemplates, relayContainer, renderOk, valuesFile } from '../support/helm.mjs';

const dockerfile = fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
// Instructions with their continuation lines joined; comments dropped.
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))
  .map((l) => {
    const [, op, rest] = /^(\w+)\s+(.*)$/.exec(l);
    return { op: op.toUpperCase(), args: rest.replace(/\s+/g, ' ') };
  });
const stages = [];
for (const ins of instructions) {
  if (ins.op === 'FROM') stages.push({ from: ins.args, ins: [] });
  else stages.at(-1).ins.push(ins);
}
const runtime = stages.at(-1);
const argsOf = (op) => runtime.ins.filter((i) => i.op === op).map((i) => i.args);
const json = (op) => JSON.parse(argsOf(op).at(-1));

const chartValues = parseYaml(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));
const defaultRender = renderOk({ values: [valuesFile('standalone')] });
const defaultConfig = parseYaml(configText(defaultRender.docs));

test('stages: built on debian:bookworm with the project\'s dependency list, run on debian:bookworm-slim', () => {
  assert.equal(stages.length, 2);
  assert.equal(stages[0].from, 'debian:bookworm AS build');
  assert.equal(runtime.from, 'debian:bookworm-slim');
  const build = stages[0].ins.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
  assert.match(build, /^scripts\/install-deps( |$)/m, 'the builder installs what scripts/install-deps lists');
  assert.match(build, /-DCMAKE_BUILD_TYPE=Release/);
  assert.match(build, /--target flagrelay/);
  // Everything CMake configures with tests and benchmarks off is in the build stage.
  const copied = stages[0].ins.filter((i) => i.op === 'COPY').map((i) => i.args.split(' ')[0]);
  const cmake = fs.readFileSync(path.join(REPO, 'CMakeLists.txt'), 'utf8');
  for (const [, dir] of cmake.matchAll(/^add_subdirectory\((\w+)\)$/gm)) assert.ok(copied.includes(dir), `COPY ${dir}`);
  assert.ok(copied.includes('cmake') && copied.includes('CMakeLists.txt'));
});

test('the runtime packages cover every library `ldd flagrelay` lists, and nothing else but the CA store', (t) => {
  const bin = assertRelayBinExists();
  const ldd = spawnSync('ldd', [bin], { encoding: 'utf8', timeout: 10000 });
  assert.equal(ldd.status, 0, ldd.stderr);
  // scripts/test runs this suite on the Release build and again on the sanitizer build, whose
  // Debug link differs (sanitizer runtimes, more Boost libraries); the image is built Release.
  if (/\blib(asan|ubsan|tsan)\.so/.test(ldd.stdout)) {
    t.skip(`${bin} is a sanitizer build; the Release pass checks the image's libraries`);
    return;
  }
  const libs = [];
  for (const line of ldd.stdout.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]);
  }
  assert.ok(libs.length >= 10, `ldd found ${libs.length} libraries`);
  const needed = new Map();
  for (const lib of libs) {
    // dpkg knows the path the package ships, which usrmerge may have moved: try the real path
    // and both sides of /usr.
    const real = fs.realpathSync(lib);
    const candidates = [lib, real, ...[lib, real].map((p) => (p.startsWith('/usr/') ? p.slice(4) : `/usr${p}`))];
    let pkg = null;
    for (const c of candidates) {
      const r = spawnSync('dpkg', ['-S', c], { encoding: 'utf8' });
      if (r.status === 0) {
        pkg = r.stdout.split(':')[0];
        break;
      }
    }
    assert.ok(pkg, `no package ships ${lib}`);
    needed.set(pkg, lib);
  }
  const install = argsOf('RUN').find((a) => a.includes('apt-get install'));
  const listed = install.split('apt-get install')[1].split('&&')[0].split(' ').filter((w) => w && !w.startsWith('-'));
  for (const [pkg, lib] of needed) assert.ok(listed.includes(pkg), `${pkg} (for ${lib}) is installed in the runtime stage`);
  assert.deepEqual(listed.filter((p) => !needed.has(p)), ['ca-certificates'], 'no package the binary does not need');
  assert.deepEqual(listed, [...listed].sort(), 'sorted, one a line');
  for (const p of listed) {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', p], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${p} is a bookworm package name`);
  }
});

test('user, ports, paths and arguments agree with the chart', () => {
  const uid = chartValues.podSecurityContext.runAsUser;
  assert.equal(uid, 10001);
  for (const k of ['runAsUser', 'runAsGroup', 'fsGroup']) assert.equal(chartValues.podSecurityContext[k], uid, k);
  for (const k of ['runAsUser', 'runAsGroup']) assert.equal(chartValues.securityContext[k], uid, k);
  assert.equal(argsOf('USER').at(-1), `${uid}:${uid}`, 'USER is numeric, so runAsNonRoot can verify it');
  const setup = argsOf('RUN').join('\n');
  assert.match(setup, new RegExp(`groupadd [^\\n]*--gid ${uid} flagrelay`));
  assert.match(setup, new RegExp(`useradd [^\\n]*--uid ${uid} --gid ${uid}`));
  const cacheDir = defaultConfig.cache.dir;
  assert.match(setup, new RegExp(`install -d -o ${uid} -g ${uid} -m 0750 ${cacheDir}( |$)`), `${cacheDir} owned by ${uid}`);

  const exposed = argsOf('EXPOSE').join(' ').split(' ').map(Number);
  assert.deepEqual(exposed, [defaultConfig.listen.port, defaultConfig.metrics.port]);

  // The chart's args replace CMD and keep ENTRYPOINT: the same command line either way.
  const { pod } = podTemplates(defaultRender.docs)[0];
  const c = relayContainer(pod.spec);
  assert.equal(c.command, undefined, 'the chart keeps the image\'s ENTRYPOINT');
  assert.deepEqual(json('ENTRYPOINT'), ['/usr/local/bin/flagrelay']);
  assert.deepEqual(json('CMD'), c.args);
  const configPath = c.args[1];
  const mount = c.volumeMounts.find((m) => configPath.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `the chart mounts the directory of ${configPath}`);
  assert.ok(argsOf('COPY').includes(`examples/container.yaml ${configPath}`), 'the default config is baked in where the chart mounts its own');
});

test('the baked-in config serves the example flags', async (t) => {
  const dir = makeTempDir('flagrelay-image-');
  let relay;
  try {
    const text = fs.readFileSync(path.join(REPO, 'examples/container.yaml'), 'utf8');
    const dataCopy = argsOf('COPY').find((a) => a.startsWith('examples/flags.json ')).split(' ')[1];
    const cfg = parseYaml(text);
    assert.equal(cfg.environments.example.dataFile, dataCopy, 'the data file is where the image puts it');
    assert.equal(cfg.listen.host, '0.0.0.0', 'reachable through published ports');
    // Run it here on loopback, with the image's paths mapped into the repository and a temp dir.
    const port = await freePort();
    const metricsPort = await freePort();
    const local = text
      .replace('host: 0.0.0.0', 'host: 127.0.0.1')
      .replace(/port: 8030$/m, `port: ${port}`)
      .replace(/port: 8031$/m, `port: ${metricsPort}`)
      .replace(cfg.cache.dir, path.join(dir, 'cache'))
      .replace(dataCopy, path.join(REPO, 'examples/flags.json'));
    const configPath = path.join(dir, 'config.yaml');
    fs.writeFileSync(configPath, local);
    relay = new Relay({ bin: assertRelayBinExists(), dir, configPath, config: null, port, metricsPort, label: 'image' }).spawn();
    await relay.waitHealthy();
    const res = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: { Authorization: 'sdk-00000000-0000-0000-0000-000000000000' } });
    assert.equal(res.status, 200, relay.output());
    const flags = JSON.parse(fs.readFileSync(path.join(REPO, 'examples/flags.json'), 'utf8')).flags;
    assert.deepEqual(Object.keys(JSON.parse(res.text).flags).sort(), Object.keys(flags).sort());
  } catch (err) {
    if (relay) t.diagnostic(relay.output());
    throw err;
  } finally {
    await relay?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('.dockerignore keeps the build context to what the Dockerfile copies', () => {
  const lines = fs.readFileSync(path.join(REPO, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  assert.equal(lines[0], '*', 'everything is excluded first');
  const kept = lines.slice(1).map((l) => {
    assert.match(l, /^![\w./-]+$/, `only exceptions after "*": ${l}`);
    return l.slice(1);
  });
  // Docker's rule for this shape: a path is in the context when it is, or is under, an exception.
  const inContext = (p) => kept.some((k) => p === k || p.startsWith(`${k}/`));
  const sources = stages.flatMap((s) => s.ins.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from')).map((i) => i.args.split(' ')[0]));
  for (const src of sources) {
    assert.ok(inContext(src), `COPY ${src} is in the context`);
    assert.ok(fs.existsSync(path.join(REPO, src)), `${src} exists`);
  }
  for (const p of kept) assert.ok(sources.includes(p), `${p} is kept but never copied`);
  for (const p of ['build', 'build-asan', '.git', 'tests/node/node_modules', 'flagrelay-cache', 'bench', 'helm']) {
    assert.ok(!inContext(p), `${p} stays out of the context`);
  }
});

test('hadolint, when installed (Debian does not package it)', (t) => {
  const which = spawnSync('sh', ['-c', 'command -v hadolint'], { encoding: 'utf8' });
  if (which.status !== 0) {
    t.skip('hadolint is not installed');
    return;
  }
  const r = spawnSync('hadolint', [path.join(REPO, 'Dockerfile')], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
