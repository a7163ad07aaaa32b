// The peers the performance benchmarks run side by side with flagrelay (issue 7): Pushpin
// (Debian `pushpin` 1.36) for SSE fan-out and nginx (Debian `nginx-light`) serving the same bytes
// as static files for polling. Each runs from a private temp dir on loopback and is stopped by the
// caller (or at exit).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { sleep } from '../tests/node/support/http.mjs';

const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export function requireCommand(name, pkg) {
  if (spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0) {
    throw new Error(`${name} is not installed: run scripts/install-deps --bench (Debian ${pkg})`);
  }
}

// Sum of VmRSS over a process and its descendants, in KiB.
export function treeRssKiB(rootPid) {
  const parents = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      /* exited */
    }
  }
  const inTree = (pid) => {
    for (let p = pid, hops = 0; p > 1 && hops < 10; p = parents.get(p), hops++) {
      if (p === rootPid) return true;
    }
    return false;
  };
  let total = 0;
  for (const pid of parents.keys()) if (inTree(pid)) total += statusKiB(pid, 'VmRSS');
  return total;
}

export function statusKiB(pid, field) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function startGroup(cmd, args, opts) {
  const child = spawn(cmd, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout.on('data', (c) => (out = (out + c).slice(-8192)));
  child.stderr.on('data', (c) => (out = (out + c).slice(-8192)));
  child.output = () => out;
  child.once('exit', () => children.delete(child));
  return child;
}

async function stopGroup(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await Promise.race([exited.then(() => true), sleep(3000).then(() => false)])) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  await exited;
}

async function waitPort(port, child, what) {
  const net = await import('node:net');
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited: ${child.output()}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${what} did not listen on ${port}: ${child.output()}`);
}

/**
 * Pushpin on 127.0.0.1:`port`, routing every request to the origin at 127.0.0.1:`originPort`
 * (the load generator's `--grip` origin); publish on 127.0.0.1:`publishPort`. The delivery-rate
 * limit and queue cap are off (`message_rate`/`message_hwm` = 0): with Debian's defaults (2,500/s,
 * 25,000) a change to 5,000 subscribers alone takes 2 s.
 */
export async function startPushpin({ port = 7999, publishPort = 5561, originPort }) {
  requireCommand('pushpin', 'pushpin');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flagrelay-pushpin-'));
  fs.mkdirSync(path.join(dir, 'run'));
  fs.mkdirSync(path.join(dir, 'log'));
  fs.writeFileSync(path.join(dir, 'routes'), `* 127.0.0.1:${originPort}\n`);
  fs.writeFileSync(
    path.join(dir, 'pushpin.conf'),
    `[global]
include={libdir}/internal.conf
rundir=${dir}/run
ipc_prefix=pushpin-
port_offset=0

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:${port}
logdir=${dir}/log
log_level=2
client_buffer_size=8192
client_maxconn=50000

[proxy]
routesfile=routes
zurl_out_specs=ipc://{rundir}/{ipc_prefix}zurl-in
zurl_out_stream_specs=ipc://{rundir}/{ipc_prefix}zurl-in-stream
zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out
sig_key=changeme

[handler]
push_in_http_addr=127.0.0.1
push_in_http_port=${publishPort}
push_in_spec=tcp://127.0.0.1:5560
push_in_sub_specs=tcp://127.0.0.1:5562
command_spec=tcp://127.0.0.1:5563
stats_spec=ipc://{rundir}/{ipc_prefix}stats
message_rate=0
message_hwm=0
`,
  );
  const child = startGroup('pushpin', ['--config', path.join(dir, 'pushpin.conf')], { cwd: dir });
  await waitPort(port, child, 'pushpin');
  await waitPort(publishPort, child, 'pushpin (publish)');
  return {
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    rssKiB: () => treeRssKiB(child.pid),
    output: () => child.output() + readLogs(path.join(dir, 'log')),
    stop: async () => {
      await stopGroup(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readLogs(dir) {
  try {
    return fs
      .readdirSync(dir)
      .map((f) => `--- ${f}\n${fs.readFileSync(path.join(dir, f), 'utf8').slice(-2000)}`)
      .join('\n');
  } catch {
    return '';
  }
}

/**
 * nginx on 127.0.0.1:`port` serving `root` as static files, with `gzip_static` (a request with
 * `Accept-Encoding: gzip` gets FILE.gz when it exists), ETag and If-None-Match (304) as nginx does
 * by default; one worker per core, like the relay's one I/O thread per core.
 */
export async function startNginx({ port, root }) {
  requireCommand('nginx', 'nginx-light');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flagrelay-nginx-'));
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off;
worker_processes ${os.availableParallelism()};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { application/json json; }
  default_type application/json;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  gzip_static on;
  gzip_vary on;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`,
  );
  const child = startGroup('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { cwd: dir });
  await waitPort(port, child, 'nginx');
  return {
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    rssKiB: () => treeRssKiB(child.pid),
    stop: async () => {
      await stopGroup(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
