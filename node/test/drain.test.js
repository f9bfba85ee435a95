'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Lane, LaneError } = require('@a3s-lab/lane');
const { deferred, within, turn, collect } = require('./helpers');

test('drain resolves once every queued and running command has finished', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', maxConcurrency: 3 }]);
  let done = 0;
  lane.registerHandler('work', async () => {
    await turn();
    done++;
  });
  lane.start();
  for (let i = 0; i < 100; i++) lane.run('w', 'work');
  await within(lane.drain(10_000));
  assert.equal(done, 100);
  assert.deepEqual([lane.stats().totalPending, lane.stats().totalActive], [0, 0]);
  // Idle already: resolves at once; without a timeout too.
  await within(lane.drain());
});

test('drain times out with a message saying what is left', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', minConcurrency: 0, maxConcurrency: 1 }]);
  const gate = deferred();
  lane.registerHandler('held', () => gate.promise);
  lane.start();
  const jobs = [lane.run('w', 'held'), lane.run('w', 'held'), lane.run('w', 'held')];
  await assert.rejects(lane.drain(20), (error) => {
    assert.ok(error instanceof LaneError);
    assert.equal(error.code, 'ERR_LANE_TIMEOUT');
    assert.equal(error.message, 'drain timed out after 20ms with 2 pending and 1 active (w: 2 pending, 1 active)');
    return true;
  });
  gate.resolve();
  await within(Promise.all(jobs));
  await within(lane.drain(1000));
});

test('drain before start with queued work rejects instead of waiting forever', async () => {
  const lane = new Lane();
  lane.run('query', 'x').catch(() => {});
  await assert.rejects(lane.drain(1000), (e) => e.code === 'ERR_LANE_NOT_STARTED' && /call start\(\) before drain\(\)/.test(e.message));
  lane.start();
  await within(lane.drain(1000));
});

test('drain rejects a bad timeout', async () => {
  const lane = new Lane();
  await assert.rejects(lane.drain(-1), RangeError);
  await assert.rejects(lane.drain('5'), /non-negative number of milliseconds/);
});

test('shutdown, then drain: queued work finishes, shutdown.complete is the last event', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', maxConcurrency: 2 }]);
  lane.registerHandler('work', async (n) => {
    await turn();
    return n;
  });
  lane.start();
  const c = collect(lane);
  const jobs = Array.from({ length: 10 }, (_, i) => lane.run('w', 'work', i));
  lane.shutdown();
  lane.shutdown(); // once only
  const drained = lane.drain(10_000);
  assert.deepEqual(await within(Promise.all(jobs)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  await within(drained);
  const keys = c.keys();
  assert.equal(keys.filter((k) => k === 'queue.shutdown.started').length, 1);
  assert.equal(keys.at(-1), 'queue.shutdown.complete');
  assert.equal(keys.filter((k) => k === 'queue.command.completed').length, 10);
  assert.equal(lane.isShuttingDown, true);
  // A second drain is fine and emits nothing more.
  await within(lane.drain(1000));
  assert.equal(c.events.length, keys.length);
});

test('several drains wait together', async () => {
  const lane = new Lane();
  const gate = deferred();
  lane.registerHandler('held', () => gate.promise);
  lane.start();
  const job = lane.run('query', 'held');
  const a = lane.drain(10_000);
  const b = lane.drain();
  await turn();
  gate.resolve(1);
  await within(Promise.all([a, b, job]));
});
