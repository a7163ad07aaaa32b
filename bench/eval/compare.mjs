// Sanity check for the client-side evaluation benchmark: the C++ engine and the Node SDK must have
// evaluated the same thing. Compares the result files both write with --dump (one evalx-shaped
// JSON object per line, one line per context, same context order).
//
//   node bench/eval/compare.mjs CPP.jsonl NODE.jsonl [--show 0]
//
// Every flag's value and variation must agree (exit status 1 otherwise); the other fields
// (version, reason, trackEvents, prerequisites...) are compared too and reported. `--show I`
// prints context I's results from both sides, one flag per line.
import fs from 'node:fs';
import { isDeepStrictEqual } from 'node:util';

const [cppPath, nodePath] = process.argv.slice(2);
if (!cppPath || !nodePath) {
  console.error('usage: node bench/eval/compare.mjs CPP.jsonl NODE.jsonl [--show I]');
  process.exit(2);
}
const read = (p) => fs.readFileSync(p, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const cpp = read(cppPath);
const node = read(nodePath);
const showAt = process.argv.indexOf('--show');
const show = showAt > 0 ? Number(process.argv[showAt + 1]) : -1;

// Objects compared regardless of member order (JSON.parse keeps the writer's order).
const canonical = (v) => (Array.isArray(v) ? v.map(canonical)
  : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])])) : v);

let valueDiffs = 0;
let otherDiffs = 0;
let flags = 0;
const examples = [];
if (cpp.length !== node.length) {
  console.log(`FAIL: ${cpp.length} C++ results, ${node.length} Node results`);
  process.exit(1);
}
for (let i = 0; i < cpp.length; i++) {
  const a = cpp[i];
  const b = node[i];
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    flags++;
    const x = a[key] ? canonical(a[key]) : undefined;
    const y = b[key] ? canonical(b[key]) : undefined;
    if (x && x.debugEventsUntilDate == null) delete x.debugEventsUntilDate;
    if (!x || !y || !isDeepStrictEqual(x.value, y.value) || x.variation !== y.variation) {
      valueDiffs++;
      if (examples.length < 5) examples.push({ context: i, flag: key, cpp: x, node: y });
    } else if (!isDeepStrictEqual(x, y)) {
      otherDiffs++;
      if (examples.length < 5) examples.push({ context: i, flag: key, cpp: x, node: y });
    }
  }
}
if (show >= 0 && show < cpp.length) {
  console.log(`context ${show}: ${Object.keys(cpp[show]).length} flags`);
  for (const key of Object.keys(cpp[show])) {
    console.log(`  ${key}\n    C++  ${JSON.stringify(cpp[show][key])}\n    Node ${JSON.stringify(node[show][key])}`);
  }
}
for (const e of examples) console.log(`  differs: context ${e.context} flag ${e.flag}\n    C++  ${JSON.stringify(e.cpp)}\n    Node ${JSON.stringify(e.node)}`);
const verdict = valueDiffs === 0 ? 'OK' : 'FAIL';
console.log(`${verdict}: ${cpp.length} contexts, ${flags} flag results compared; ` +
  `${valueDiffs} differ in value/variation, ${otherDiffs} differ only in other fields`);
process.exit(valueDiffs === 0 ? 0 : 1);
