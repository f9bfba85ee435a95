'use strict';
// The original README's Node.js example, verbatim. It declares `const lane`
// twice, which JavaScript refuses in one scope, so each half runs in a block
// of its own; nothing else is changed. It runs in a child process to prove
// that it also exits by itself (subscriptions keep nothing alive).

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const SEED = `const { Lane } = require('@a3s-lab/lane');

// Default lanes
const lane = new Lane();
lane.start();

// Custom lanes
const lane = Lane.withLanes([
  { laneId: 'high', priority: 0, minConcurrency: 1, maxConcurrency: 4 },
  { laneId: 'low',  priority: 1, minConcurrency: 1, maxConcurrency: 2 },
]);
lane.start();

// Submit — returns JSON string
const result = JSON.parse(lane.submit('high', 'my_command', JSON.stringify({ key: 'value' })));

// Subscribe — callback receives (err, event) for every event
lane.subscribe((err, event) => {
  if (err) throw err;
  console.log(event.key, JSON.parse(event.payload));
});

// Filtered subscription — exact key match
lane.subscribeFiltered(
  ['queue.command.failed', 'queue.command.timeout'],
  (err, event) => { console.error('failure:', event.key); }
);

// Graceful shutdown
lane.shutdown();
lane.drain(30_000);  // timeout in ms
`;

function scoped(source) {
  const lines = source.split('\n');
  const split = lines.indexOf('// Custom lanes');
  assert.ok(lines[0].startsWith('const { Lane } = require('));
  assert.ok(split > 0);
  return [
    lines[0],
    '{',
    ...lines.slice(1, split),
    '}',
    '{',
    ...lines.slice(split),
    '}',
  ].join('\n');
}

const PACKAGE_DIR = path.join(__dirname, '..');

test('the seed example runs unchanged (each half in its own scope) and exits', () => {
  const output = execFileSync(process.execPath, ['-e', scoped(SEED)], {
    cwd: PACKAGE_DIR,
    encoding: 'utf8',
    timeout: 30_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  assert.deepEqual(output.trim().split('\n'), [
    'queue.shutdown.started null',
    'queue.shutdown.complete null',
  ]);
});

test('the seed calls return what the seed expects', async () => {
  const { Lane } = require('@a3s-lab/lane');
  const lane = Lane.withLanes([
    { laneId: 'high', priority: 0, minConcurrency: 1, maxConcurrency: 4 },
    { laneId: 'low', priority: 1, minConcurrency: 1, maxConcurrency: 2 },
  ]);
  lane.start();
  const result = JSON.parse(lane.submit('high', 'my_command', JSON.stringify({ key: 'value' })));
  assert.deepEqual(result, { key: 'value' });
  const seen = [];
  lane.subscribe((err, event) => {
    assert.equal(err, null);
    seen.push(event.key);
  });
  const failures = [];
  lane.subscribeFiltered(['queue.command.failed', 'queue.command.timeout'], (err, event) => {
    failures.push(event.key);
  });
  lane.shutdown();
  await lane.drain(30_000);
  assert.deepEqual(seen, ['queue.shutdown.started', 'queue.shutdown.complete']);
  assert.deepEqual(failures, []);
});
