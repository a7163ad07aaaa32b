// Prometheus text exposition: parsing samples and validating with promtool.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export const PROMTOOL = process.env.PROMTOOL || '/usr/bin/promtool';

/** Parses the text format into {samples: [{name, labels, value}], types: {name: type}}. */
export function parseMetrics(text) {
  const samples = [];
  const types = {};
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^#\s+TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (m) types[m[1]] = m[2];
      continue;
    }
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
    const name = line.slice(0, i);
    const labels = {};
    if (line[i] === '{') {
      i++;
      while (i < line.length && line[i] !== '}') {
        const eq = line.indexOf('=', i);
        const lname = line.slice(i, eq).trim().replace(/^,/, '').trim();
        i = eq + 1;
        if (line[i] !== '"') throw new Error(`bad metrics line: ${line}`);
        i++;
        let val = '';
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\') {
            const n = line[i + 1];
            val += n === 'n' ? '\n' : n;
            i += 2;
          } else {
            val += line[i++];
          }
        }
        i++; // closing quote
        labels[lname] = val;
        while (line[i] === ',' || line[i] === ' ') i++;
      }
      i++; // '}'
    }
    const rest = line.slice(i).trim().split(/\s+/);
    samples.push({ name, labels, value: Number(rest[0]) });
  }
  return { samples, types };
}

/** Samples named `name` whose labels include every pair of `labels`. */
export function findSamples(parsed, name, labels = {}) {
  return parsed.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/** Sum of the matching samples' values (NaN-free), or undefined when none match. */
export function sampleSum(parsed, name, labels = {}) {
  const m = findSamples(parsed, name, labels);
  if (m.length === 0) return undefined;
  return m.reduce((a, s) => a + s.value, 0);
}

/** Metric family names present (histogram/summary children map to their base name too). */
export function familyNames(parsed) {
  const names = new Set(Object.keys(parsed.types));
  for (const s of parsed.samples) {
    names.add(s.name);
    names.add(s.name.replace(/_(bucket|sum|count|total|created)$/, ''));
  }
  return names;
}

export function promtoolAvailable() {
  return fs.existsSync(PROMTOOL);
}

/** Pipes the body to `promtool check metrics`; returns {code, output}. */
export function promtoolCheck(body) {
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 10000 });
  if (r.error) throw r.error;
  return { code: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** GET {metricsUrl}/metrics; returns {status, text, parsed}. */
export async function scrape(relay) {
  if (!relay.metricsUrl) throw new Error('relay started without a metrics port');
  const { httpRequest } = await import('./http.mjs');
  const r = await httpRequest(`${relay.metricsUrl}/metrics`);
  return { status: r.status, headers: r.headers, text: r.text, parsed: r.status === 200 ? parseMetrics(r.text) : null };
}
