'use strict';
// The cross-language tests (../tests/test_cross_language.py: Python and Node
// processes on one Redis queue) run from npm test too, through the
// repository's Python environment (.venv, made by tests/run_all.sh): pytest
// starts its own redis-server and the Node processes (test/redis-agent.js).
// Skipped, saying why, where there is no such environment.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { skipReason } = require('./redis-server');

const ROOT = path.join(__dirname, '..', '..');
const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
const FILE = path.join('tests', 'test_cross_language.py');

function why() {
  const redis = skipReason();
  if (redis) return redis;
  if (!fs.existsSync(path.join(ROOT, FILE))) return `${FILE} is not there (not a repository checkout)`;
  if (!fs.existsSync(PYTHON)) return 'no Python environment at .venv (bash tests/run_all.sh makes it)';
  const probe = spawnSync(PYTHON, ['-c', 'import pytest, redis, pylane'], { encoding: 'utf8', timeout: 60_000 });
  if (probe.status !== 0) return `the .venv lacks pytest, redis or pylane: ${probe.stderr.trim().split('\n').pop()}`;
  return false;
}

const skip = why();

test('Python and Node processes on one Redis queue (pytest tests/test_cross_language.py)', { skip, timeout: 180_000 }, (t) => {
  const run = spawnSync(PYTHON, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', FILE], {
    cwd: ROOT, encoding: 'utf8', timeout: 170_000,
  });
  const output = `${run.stdout}${run.stderr}`;
  const summary = output.trim().split('\n').pop();
  t.diagnostic(summary);
  assert.equal(run.status, 0, output);
  assert.match(summary, /\b\d+ passed\b/);
  assert.doesNotMatch(summary, /skipped/, output);
});
