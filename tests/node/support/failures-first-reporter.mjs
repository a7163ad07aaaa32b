// A node:test reporter for ctest: prints the whole run only once it is over, with the failures
// first (each with its assertion and the harness's diagnostics block for it), then every result,
// diagnostic and stderr line in order. CI shows the start of a failing test's output, and a
// failure at the end of a long suite was cut off there.
//   node --test --test-reporter=./support/failures-first-reporter.mjs --test-reporter-destination=stdout ...
const MAX_ERROR_LINES = 25;
const MAX_DIAGNOSTIC_LINES = 120;

const head = (text, n) => {
  const lines = String(text).split('\n');
  return lines.length <= n ? lines : [...lines.slice(0, n), `... (${lines.length - n} more lines)`];
};

function describeError(error) {
  // node:test wraps what the test threw in ERR_TEST_FAILURE, with the thrown value as its cause.
  const cause = error?.cause ?? error;
  const text = cause?.stack ?? String(cause);
  return text
    .split('\n')
    .filter((l) => !/^\s+at .*\((node:|node:internal)/.test(l) && !/^\s+at (async )?node:/.test(l))
    .join('\n');
}

// The harness (support/harness.mjs) writes one block per failed test to stderr, starting with
// `===== diagnostics for failed test "<name>" =====`.
function diagnosticsBlock(stderrLines, name) {
  const start = stderrLines.findIndex((l) => l.startsWith(`===== diagnostics for failed test "${name}"`));
  if (start < 0) return [];
  let end = stderrLines.findIndex((l, i) => i > start && l.startsWith('===== diagnostics for failed test '));
  if (end < 0) end = stderrLines.length;
  return head(stderrLines.slice(start, end).join('\n'), MAX_DIAGNOSTIC_LINES);
}

export default async function* failuresFirst(source) {
  const log = [];
  const failures = [];
  const stderrByFile = new Map();
  let passed = 0;
  for await (const event of source) {
    const { data } = event;
    switch (event.type) {
      case 'test:pass':
        if (data.nesting === 0) passed++;
        log.push(`${'  '.repeat(data.nesting)}ok - ${data.name} (${Math.round(data.details?.duration_ms ?? 0)} ms)`);
        break;
      case 'test:fail': {
        const error = describeError(data.details?.error);
        if (data.nesting === 0 || !failures.length) failures.push({ name: data.name, file: data.file, error });
        log.push(`${'  '.repeat(data.nesting)}not ok - ${data.name} (${Math.round(data.details?.duration_ms ?? 0)} ms)`);
        for (const line of head(error, MAX_ERROR_LINES)) log.push(`${'  '.repeat(data.nesting)}  ${line}`);
        break;
      }
      case 'test:diagnostic':
        log.push(`${'  '.repeat(data.nesting)}# ${data.message}`);
        break;
      case 'test:stderr':
      case 'test:stdout': {
        const lines = String(data.message).replace(/\n$/, '').split('\n');
        if (event.type === 'test:stderr') {
          const key = data.file ?? '';
          if (!stderrByFile.has(key)) stderrByFile.set(key, []);
          stderrByFile.get(key).push(...lines);
        }
        log.push(...lines);
        break;
      }
      default:
        break;
    }
  }
  const out = [];
  if (failures.length) {
    out.push(`===== ${failures.length} FAILED (${passed} passed) =====`);
    for (const f of failures) {
      out.push(`--- FAILED: ${f.name}${f.file ? ` (${f.file})` : ''}`);
      out.push(...head(f.error, MAX_ERROR_LINES));
      out.push(...diagnosticsBlock(stderrByFile.get(f.file ?? '') ?? [], f.name));
    }
    out.push('===== full output =====');
  }
  out.push(...log);
  yield `${out.join('\n')}\n`;
}
