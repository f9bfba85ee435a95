'use strict';
// index.d.ts type-checks against a usage file that touches every public member.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const TSC = path.join(__dirname, '..', 'node_modules', 'typescript', 'bin', 'tsc');

test('index.d.ts type-checks (tsc --noEmit)', { skip: !fs.existsSync(TSC) && 'typescript is not installed' }, () => {
  const result = spawnSync(process.execPath, [TSC, '--noEmit', '-p', path.join(__dirname, 'types', 'tsconfig.json')], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
});
