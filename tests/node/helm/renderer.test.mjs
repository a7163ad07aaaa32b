// The renderer's own unit tests (tests/helm/render/main_test.go): Helm's value coalescing, its
// template functions and error wording, document splitting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { GO, HELM_TESTS, goEnv } from '../support/helm.mjs';

test('go test tests/helm/render', () => {
  const r = spawnSync(GO, ['test', '-count=1', '.'], {
    cwd: path.join(HELM_TESTS, 'render'), encoding: 'utf8', timeout: 120000, env: goEnv(),
  });
  assert.ifError(r.error);
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^ok\s/m);
});
