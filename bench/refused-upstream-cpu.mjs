// CPU and memory of a relay whose upstream refuses every connection, with the default backoff
// (upstream.initialReconnectDelay 1s, maxReconnectDelay 30s): a busy loop or a leak in the
// reconnect path shows here.
//
//   node bench/refused-upstream-cpu.mjs [--seconds 60] [--envs 1]
//       (uses build/relay/flagrelay or FLAGRELAY_BIN, and tests/node/support)
//
// Prints CPU seconds (utime+stime from /proc/<pid>/stat) and RSS every 10 s and at the end, with
// the reconnect attempts counted by flagrelay_upstream_reconnects_total. Everything runs on
// 127.0.0.1 and stops by itself; the relay is SIGKILLed on exit whatever happens.
import fs from 'node:fs';
import { startRelay, makeTempDir } from '../tests/node/support/relay.mjs';
import { freePort } from '../tests/node/support/ports.mjs';
import { scrape, sampleSum } from '../tests/node/support/prom.mjs';
import { sleep } from '../tests/node/support/http.mjs';
import { cpuSeconds, rssKiB } from '../tests/node/support/faults.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const seconds = arg('--seconds', 60);
const envCount = arg('--envs', 1);

async function reconnects(relay) {
  try {
    const { parsed } = await scrape(relay);
    return sampleSum(parsed, 'flagrelay_upstream_reconnects_total') ?? 0;
  } catch {
    return NaN;
  }
}

const dir = makeTempDir('flagrelay-bench-refused-');
const port = await freePort(); // nothing listens there: every connection is refused
const environments = {};
for (let i = 0; i < envCount; i++) {
  environments[`env${i}`] = { sdkKey: `sdk-bench000-0000-0000-0000-${String(i).padStart(12, '0')}` };
}
const relay = await startRelay({
  dir,
  cacheDir: null,
  logLevel: 'info',
  upstreamUrl: `http://127.0.0.1:${port}`,
  // undefined: the relay's defaults (1 s .. 30 s), not the tests' fast backoff.
  upstream: { initialReconnectDelay: undefined, maxReconnectDelay: undefined },
  environments,
});
try {
  const cpu0 = cpuSeconds(relay.pid);
  const start = Date.now();
  console.log(`relay pid ${relay.pid}, ${envCount} environment(s), upstream 127.0.0.1:${port} refusing, ${seconds} s, default backoff`);
  console.log('   t(s)  cpu(s)  rss(KiB)  reconnects');
  const row = async () => {
    const t = ((Date.now() - start) / 1000).toFixed(0).padStart(6);
    const cpu = (cpuSeconds(relay.pid) - cpu0).toFixed(2).padStart(7);
    console.log(`${t} ${cpu} ${String(rssKiB(relay.pid)).padStart(9)} ${String(await reconnects(relay)).padStart(11)}`);
  };
  await row();
  while (Date.now() - start < seconds * 1000) {
    await sleep(Math.min(10000, seconds * 1000 - (Date.now() - start)));
    if (!relay.running()) throw new Error(`relay exited: ${JSON.stringify(relay.exitInfo)}`);
    await row();
  }
  const used = cpuSeconds(relay.pid) - cpu0;
  const elapsed = (Date.now() - start) / 1000;
  console.log(`\nCPU ${used.toFixed(2)} s in ${elapsed.toFixed(1)} s (${((100 * used) / elapsed).toFixed(2)} % of one core), RSS ${rssKiB(relay.pid)} KiB, reconnect attempts ${await reconnects(relay)}`);
} finally {
  await relay.kill();
  fs.rmSync(dir, { recursive: true, force: true });
}
