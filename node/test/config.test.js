'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Lane, LaneError, DEFAULT_LANES } = require('@a3s-lab/lane');

test('new Lane() has the six default lanes with min 1 each', () => {
  const lane = new Lane();
  const stats = lane.stats();
  assert.deepEqual(
    stats.lanes.map((s) => [s.laneId, s.priority, s.minConcurrency, s.maxConcurrency]),
    [
      ['system', 0, 1, 5],
      ['control', 1, 1, 3],
      ['query', 2, 1, 10],
      ['session', 3, 1, 5],
      ['skill', 4, 1, 3],
      ['prompt', 5, 1, 2],
    ],
  );
  assert.equal(stats.totalPending, 0);
  assert.equal(stats.totalActive, 0);
  assert.deepEqual(lane.laneIds, ['system', 'control', 'query', 'session', 'skill', 'prompt']);
  assert.equal(DEFAULT_LANES.length, 6);
  // Every lane can reach its max: the budget is the sum of the maxima.
  assert.equal(lane.maxWorkers, 28);
  for (const s of stats.lanes) {
    assert.equal(s.paused, false);
    for (const key of ['pending', 'active', 'submitted', 'dispatched', 'completed', 'failed', 'cancelled']) {
      assert.equal(s[key], 0, key);
    }
  }
});

test('Lane.withLanes takes the documented configs, in order', () => {
  const lane = Lane.withLanes([
    { laneId: 'high', priority: 0, minConcurrency: 1, maxConcurrency: 4 },
    { laneId: 'low', priority: 1, minConcurrency: 1, maxConcurrency: 2 },
  ]);
  assert.deepEqual(lane.stats().lanes.map((s) => [s.laneId, s.priority, s.minConcurrency, s.maxConcurrency]), [
    ['high', 0, 1, 4],
    ['low', 1, 1, 2],
  ]);
  assert.equal(lane.maxWorkers, 6);
});

test('withLanes defaults: priority 0, min 1, max 10; maxWorkers option', () => {
  const lane = Lane.withLanes([{ laneId: 'a' }, { laneId: 'b', priority: 3, minConcurrency: 0 }], { maxWorkers: 4 });
  assert.deepEqual(lane.stats().lanes.map((s) => [s.laneId, s.priority, s.minConcurrency, s.maxConcurrency]), [
    ['a', 0, 1, 10],
    ['b', 3, 0, 10],
  ]);
  assert.equal(lane.maxWorkers, 4);
  assert.equal(new Lane({ maxWorkers: 6 }).maxWorkers, 6);
});

function configThrows(fn, pattern) {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof LaneError, `expected a LaneError, got ${error}`);
    assert.ok(error instanceof Error);
    assert.equal(error.code, 'ERR_LANE_INVALID_CONFIG');
    assert.match(error.message, /^Configuration error: /);
    assert.match(error.message, pattern);
    return true;
  });
}

test('invalid lane configs throw an Error naming the problem', () => {
  configThrows(() => Lane.withLanes([{ laneId: 'x', minConcurrency: 3, maxConcurrency: 2 }]),
    /minConcurrency \(3\) exceeds maxConcurrency \(2\) of lane 'x'/);
  configThrows(() => Lane.withLanes([{ laneId: 'x', minConcurrency: 0, maxConcurrency: 0 }]),
    /maxConcurrency of lane 'x' must be between 1 and \d+, got 0/);
  configThrows(() => Lane.withLanes([{ laneId: 'x' }, { laneId: 'y' }, { laneId: 'x' }]),
    /duplicate lane id 'x'/);
  configThrows(() => Lane.withLanes([{ laneId: 'x', priority: -1 }]),
    /priority of lane 'x' must be between 0 and/);
  configThrows(() => Lane.withLanes([{ laneId: 'x', priority: 1.5 }]),
    /priority of lane 'x' must be an integer/);
  configThrows(() => Lane.withLanes([{ laneId: 'x', maxConcurrency: '4' }]),
    /maxConcurrency of lane 'x' must be an integer, got string/);
  configThrows(() => Lane.withLanes([{ laneId: '' }]), /laneId of lane config #0 must not be empty/);
  configThrows(() => Lane.withLanes([{ priority: 1 }]), /laneId of lane config #0 must be a string/);
  configThrows(() => Lane.withLanes([{ laneId: 'x', maxConcurency: 4 }]),
    /unknown field 'maxConcurency' of lane 'x'/);
  configThrows(() => Lane.withLanes([]), /at least one lane/);
  configThrows(() => Lane.withLanes('high'), /lanes must be an array/);
  configThrows(() => Lane.withLanes([null]), /lane config #0 must be an object/);
  configThrows(() => Lane.withLanes([{ laneId: 'a', minConcurrency: 2 }, { laneId: 'b', minConcurrency: 2 }], { maxWorkers: 3 }),
    /reservations \(4\) exceed maxWorkers \(3\)/);
  configThrows(() => new Lane({ maxWorkers: 0 }), /maxWorkers must be between 1/);
  configThrows(() => new Lane({ workers: 2 }), /unknown option 'workers'/);
});
