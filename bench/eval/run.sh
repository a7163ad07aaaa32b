#!/usr/bin/env bash
# Client-side evaluation benchmark (issue 4): the flagrelay C++ engine against the official Node
# server SDK on the same data (by default 200 flags and 100 contexts), in one run.
#
#   bench/eval/run.sh [--build] [--runs 3] [--keep] [BENCH_BINARY]
#
# BENCH_BINARY defaults to the first of build-release/, build/, build-bench/ that has
# bench/eval/flagrelay_eval_bench. Nothing is built unless --build is given, which configures and
# builds build-bench/ (Release, one job). The data is generated into a temp dir (removed unless
# --keep). The two implementations run interleaved (C++, Node, C++, Node, ... --runs times each),
# then the per-run medians, the Node/C++ ratio per run and overall (median of the medians), and a
# cross-check that both computed the same value and variation for every flag and context.
# Extra arguments: CPP_ARGS="--rounds 100" NODE_ARGS="--rounds 20" for the two programs,
# DATA_ARGS="--no-rollouts" for make-data.mjs (a diagnostic variant of the data).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs=3
build=0
keep=0
bin=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=1 ;;
    --keep) keep=1 ;;
    --runs) runs="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) bin="$1" ;;
  esac
  shift
done

if [[ $build == 1 ]]; then
  cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$root/build-bench" -j1 --target flagrelay_eval_bench
  bin="${bin:-$root/build-bench/bench/eval/flagrelay_eval_bench}"
fi
if [[ -z $bin ]]; then
  for dir in build-release build build-bench; do
    if [[ -x "$root/$dir/bench/eval/flagrelay_eval_bench" ]]; then
      bin="$root/$dir/bench/eval/flagrelay_eval_bench"
      break
    fi
  done
fi
if [[ -z $bin || ! -x $bin ]]; then
  echo "run.sh: no flagrelay_eval_bench binary (build it, pass its path, or use --build)" >&2
  exit 2
fi
if [[ ! -d "$root/tests/node/node_modules/@launchdarkly/node-server-sdk" ]]; then
  echo "run.sh: tests/node/node_modules has no @launchdarkly/node-server-sdk (npm ci in tests/node)" >&2
  exit 2
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/flagrelay-eval-bench.XXXXXX")"
if [[ $keep == 0 ]]; then trap 'rm -rf "$tmp"' EXIT; else echo "data and results kept in $tmp"; fi

read -ra data_args <<<"${DATA_ARGS:-}"
read -ra cpp_args <<<"${CPP_ARGS:-}"
read -ra node_args <<<"${NODE_ARGS:-}"
node "$here/make-data.mjs" --out "$tmp" "${data_args[@]}"
echo "binary: $bin"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

for ((i = 1; i <= runs; i++)); do
  echo "== run $i/$runs: C++"
  "$bin" --data "$tmp/data.json" --contexts "$tmp/contexts.jsonl" --dump "$tmp/cpp.jsonl" --components "${cpp_args[@]}" | tee "$tmp/cpp-$i.txt"
  echo "== run $i/$runs: Node"
  node "$here/eval-node.mjs" --data "$tmp/data.json" --contexts "$tmp/contexts.jsonl" --dump "$tmp/node.jsonl" "${node_args[@]}" | tee "$tmp/node-$i.txt"
done

echo
echo "== cross-check (every context, every flag)"
node "$here/compare.mjs" "$tmp/cpp.jsonl" "$tmp/node.jsonl"

echo
node - "$tmp" "$runs" <<'EOF'
const fs = require('node:fs');
const [dir, runs] = [process.argv[2], Number(process.argv[3])];
// The data's size as the C++ program counted it (its first line: "...: N flags, M contexts, ...").
const counted = /(\d+) flags, (\d+) contexts/.exec(fs.readFileSync(`${dir}/cpp-1.txt`, 'utf8').split('\n')[0]);
const size = counted ? `${counted[1]} flags, ${counted[2]} contexts` : 'data size not reported';
console.log(`== summary (median µs per all-flags evaluation for one context, ${size})`);
const field = (file, name) => {
  const line = fs.readFileSync(`${dir}/${file}`, 'utf8').split('\n').find((l) => l.startsWith('RESULT '));
  const m = new RegExp(`\\b${name}=([0-9.]+)`).exec(line);
  return Number(m[1]);
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const rows = [];
for (let i = 1; i <= runs; i++) {
  rows.push({
    cpp: field(`cpp-${i}.txt`, 'median_us'), cppParse: field(`cpp-${i}.txt`, 'with_parse_median_us'),
    node: field(`node-${i}.txt`, 'median_us'), nodeJson: field(`node-${i}.txt`, 'with_json_median_us'),
  });
}
const f = (x) => x.toFixed(1).padStart(8);
console.log('run   C++ eval+JSON   C++ +parse   Node allFlagsState   Node +stringify   ratio Node/C++');
rows.forEach((r, i) => console.log(`${String(i + 1).padStart(3)}  ${f(r.cpp)} µs   ${f(r.cppParse)} µs   ${f(r.node)} µs        ${f(r.nodeJson)} µs      ${(r.node / r.cpp).toFixed(1)}x`));
const m = (k) => median(rows.map((r) => r[k]));
console.log(`all  ${f(m('cpp'))} µs   ${f(m('cppParse'))} µs   ${f(m('node'))} µs        ${f(m('nodeJson'))} µs      ${(m('node') / m('cpp')).toFixed(1)}x`);
console.log(`targets: C++ median <= 50 µs: ${m('cpp') <= 50 ? 'met' : 'MISSED'} (${m('cpp').toFixed(1)} µs); ` +
  `Node/C++ >= 20x: ${m('node') / m('cpp') >= 20 ? 'met' : 'MISSED'} (${(m('node') / m('cpp')).toFixed(1)}x; ` +
  `with parse and stringify on both sides ${(m('nodeJson') / m('cppParse')).toFixed(1)}x)`);
EOF
