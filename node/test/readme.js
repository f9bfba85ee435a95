'use strict';
// The README's Node examples, for tests that run them against an installed
// copy of the package: the Quick start (its `// -> ` comments say what it
// prints) and the seed's example (the original SDK's, under "The original SDK
// surface"; it declares `const lane` twice, so each half runs in a block of
// its own, as in seed.test.js).

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const README = path.join(__dirname, '..', 'README.md');

function jsBlocks() {
  const readme = fs.readFileSync(README, 'utf8');
  return [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
}

/** The first example that requires the package, and what it prints. */
function quickStart() {
  const code = jsBlocks().find((b) => b.includes("require('@a3s-lab/lane')"));
  assert.ok(code, 'the README has a Node example');
  const expected = [...code.matchAll(/^\s*\/\/ -> (.*)$/gm)].map((m) => m[1]);
  assert.ok(expected.length > 0, 'the example says what it prints');
  return { code, expected };
}

/** The seed's example, each half in its own scope, and what it prints. */
function seedExample() {
  const block = jsBlocks().find((b) => b.includes('// Custom lanes') && b.includes('lane.drain(30_000)'));
  assert.ok(block, "the README has the seed's example");
  const lines = block.split('\n');
  const split = lines.indexOf('// Custom lanes');
  assert.ok(lines[0].startsWith("const { Lane } = require('@a3s-lab/lane')") && split > 0);
  const code = [lines[0], '{', ...lines.slice(1, split), '}', '{', ...lines.slice(split), '}'].join('\n');
  return { code, expected: ['queue.shutdown.started null', 'queue.shutdown.complete null'] };
}

module.exports = { quickStart, seedExample };
