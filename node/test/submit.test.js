'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Lane, LaneError } = require('@a3s-lab/lane');
const { deferred, within, turn } = require('./helpers');

function isLaneError(code, pattern) {
  return (error) => {
    assert.ok(error instanceof LaneError, `expected a LaneError, got ${error && error.stack}`);
    assert.equal(error.code, code);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

test('sync submit echoes its payload as a JSON string', () => {
  const lane = new Lane();
  lane.start();
  assert.equal(lane.submit('query', 'echo', JSON.stringify({ key: 'value', n: [1, 2] })), '{"key":"value","n":[1,2]}');
  // Key order is kept (the original sorted keys).
  assert.equal(lane.submit('query', 'echo', '{"b":1,"a":2}'), '{"b":1,"a":2}');
  assert.equal(lane.submit('query', 'echo'), 'null');
  assert.equal(lane.submit('query', 'echo', '"text"'), '"text"');
  const s = lane.stats().lanes.find((l) => l.laneId === 'query');
  assert.equal(s.submitted, 4);
  assert.equal(s.completed, 4);
  assert.equal(s.active, 0);
});

test('sync submit runs a synchronous handler inline and returns its result', () => {
  const lane = new Lane();
  const contexts = [];
  lane.registerHandler('add', (payload, context) => {
    contexts.push(context);
    return { sum: payload.a + payload.b };
  });
  lane.start();
  assert.equal(lane.submit('control', 'add', JSON.stringify({ a: 2, b: 3 })), '{"sum":5}');
  assert.equal(contexts[0].laneId, 'control');
  assert.equal(contexts[0].commandType, 'add');
  assert.match(contexts[0].commandId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
});

test('sync submit rethrows what a synchronous handler throws; the lane goes on', () => {
  const lane = new Lane();
  const boom = new TypeError('bad input');
  lane.registerHandler('bad', () => {
    throw boom;
  });
  lane.start();
  assert.throws(() => lane.submit('query', 'bad', '{}'), (error) => error === boom);
  assert.equal(lane.submit('query', 'echo', '1'), '1');
  const s = lane.stats().lanes.find((l) => l.laneId === 'query');
  assert.equal(s.failed, 1);
  assert.equal(s.completed, 1);
  assert.equal(s.active, 0);
});

test('sync submit never blocks: async handlers and busy lanes throw ERR_LANE_WOULD_BLOCK', async () => {
  const lane = Lane.withLanes([{ laneId: 'one', maxConcurrency: 1 }]);
  lane.registerHandler('slow', async () => 'done');
  const gate = deferred();
  lane.registerHandler('held', () => gate.promise);
  lane.start();
  assert.throws(() => lane.submit('one', 'slow', '{}'), isLaneError('ERR_LANE_WOULD_BLOCK', /is async.*use submitAsync\(\)/));
  const held = lane.submitAsync('one', 'held');
  await turn();
  assert.equal(lane.stats().lanes[0].active, 1);
  assert.throws(() => lane.submit('one', 'echo', '{}'), isLaneError('ERR_LANE_WOULD_BLOCK', /lane 'one' cannot start the command now.*use submitAsync\(\)/));
  gate.resolve('ok');
  assert.equal(await within(held), '"ok"');
  // A plain function that returns a Promise: the command keeps running.
  const later = deferred();
  lane.registerHandler('sneaky', () => later.promise);
  assert.throws(() => lane.submit('one', 'sneaky', '{}'), isLaneError('ERR_LANE_WOULD_BLOCK', /returned a Promise/));
  assert.equal(lane.stats().lanes[0].active, 1);
  later.resolve(1);
  await within(lane.drain(5000));
  assert.equal(lane.stats().lanes[0].active, 0);
});

test('sync submit before start() throws ERR_LANE_NOT_STARTED instead of hanging', () => {
  const lane = new Lane();
  assert.throws(() => lane.submit('query', 'echo', '{}'), isLaneError('ERR_LANE_NOT_STARTED', /call start\(\)/));
  assert.equal(lane.stats().lanes.find((l) => l.laneId === 'query').submitted, 0);
});

test('handlers: sync and async, via submitAsync (JSON) and run (values)', async () => {
  const lane = new Lane();
  lane.registerHandler('double', (n) => n * 2);
  lane.registerHandler('fetch', async (payload, context) => {
    await turn();
    return { url: payload.url, lane: context.laneId };
  });
  lane.start();
  assert.equal(await lane.submitAsync('query', 'double', '21'), '42');
  assert.equal(await lane.run('query', 'double', 21), 42);
  assert.deepEqual(await lane.run('session', 'fetch', { url: 'u' }), { url: 'u', lane: 'session' });
  assert.equal(await lane.submitAsync('session', 'fetch', '{"url":"v"}'), '{"url":"v","lane":"session"}');
  // No handler: the payload comes back (a copy).
  const payload = { nested: { a: 1 } };
  const echoed = await lane.run('query', 'nothing', payload);
  assert.deepEqual(echoed, payload);
  assert.notEqual(echoed, payload);
  // Handlers registered after submit but before the start of a command are used.
  const queued = Lane.withLanes([{ laneId: 'q' }]);
  const promise = queued.run('q', 'late', 1);
  queued.registerHandler('late', (n) => n + 1);
  queued.start();
  assert.equal(await within(promise), 2);
});

test('add() runs a function as a command', async () => {
  const lane = new Lane();
  lane.start();
  const context = await lane.add('skill', async (ctx) => ctx);
  assert.equal(context.laneId, 'skill');
  assert.equal(context.commandType, 'function');
  assert.equal(await lane.add('skill', function named() { return 7; }), 7);
  const seen = [];
  lane.subscribe((err, event) => seen.push(JSON.parse(event.payload)));
  await lane.add('skill', () => 1, { commandType: 'custom' });
  await lane.drain(5000);
  assert.equal(seen.find((p) => p.command_type).command_type, 'custom');
});

test('a handler error rejects its own promise only and the queue carries on', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', maxConcurrency: 2 }]);
  const boom = new Error('boom');
  lane.registerHandler('fail', async () => {
    throw boom;
  });
  lane.registerHandler('failSync', () => {
    throw new RangeError('sync boom');
  });
  lane.registerHandler('ok', async (n) => n);
  lane.start();
  const results = await Promise.allSettled([
    lane.run('w', 'ok', 1),
    lane.run('w', 'fail'),
    lane.run('w', 'ok', 2),
    lane.submitAsync('w', 'failSync'),
    lane.run('w', 'ok', 3),
  ]);
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
  assert.equal(results[1].reason, boom);
  assert.ok(results[3].reason instanceof RangeError);
  assert.deepEqual([results[0].value, results[2].value, results[4].value], [1, 2, 3]);
  const s = lane.stats().lanes[0];
  assert.equal(s.completed, 3);
  assert.equal(s.failed, 2);
  assert.equal(s.active, 0);
});

test('a result that is not JSON fails a JSON submit with ERR_LANE_INVALID_RESULT', async () => {
  const lane = new Lane();
  lane.registerHandler('big', () => 10n);
  lane.start();
  await assert.rejects(lane.submitAsync('query', 'big'), isLaneError('ERR_LANE_INVALID_RESULT', /not JSON-serialisable/));
  assert.throws(() => lane.submit('query', 'big'), isLaneError('ERR_LANE_INVALID_RESULT'));
  assert.equal(await lane.run('query', 'big'), 10n); // values are not JSON-checked
});

test('bad input throws a LaneError naming the problem and leaves the queue intact', async () => {
  const lane = new Lane();
  lane.start();
  const before = lane.stats();
  assert.throws(() => lane.submit('nope', 'x', '{}'),
    isLaneError('ERR_LANE_NOT_FOUND', /^Lane not found: nope \(known lanes: system, control, query, session, skill, prompt\)$/));
  await assert.rejects(lane.submitAsync('nope', 'x', '{}'), isLaneError('ERR_LANE_NOT_FOUND', /Lane not found: nope/));
  await assert.rejects(lane.run('nope', 'x'), isLaneError('ERR_LANE_NOT_FOUND'));
  await assert.rejects(lane.add('nope', () => 1), isLaneError('ERR_LANE_NOT_FOUND'));
  assert.throws(() => lane.submit('query', 'x', '{not json'), isLaneError('ERR_LANE_INVALID_PAYLOAD', /^Invalid JSON payload: /));
  await assert.rejects(lane.submitAsync('query', 'x', '{not json'), isLaneError('ERR_LANE_INVALID_PAYLOAD'));
  assert.throws(() => lane.submit('query', 'x', { key: 'value' }), isLaneError('ERR_LANE_INVALID_PAYLOAD', /expected a JSON string/));
  const cyclic = {};
  cyclic.self = cyclic;
  await assert.rejects(lane.run('query', 'x', cyclic), isLaneError('ERR_LANE_INVALID_PAYLOAD', /not JSON-serialisable/));
  assert.throws(() => lane.submit('query', 42, '{}'), /commandType must be a string, got number/);
  assert.throws(() => lane.registerHandler('x', 'nope'), /handler for 'x' must be a function/);
  assert.deepEqual(lane.stats(), before);
  // The queue still works.
  assert.equal(lane.submit('query', 'echo', '[1]'), '[1]');
  assert.deepEqual(await lane.run('query', 'echo', [2]), [2]);
});

test('submit after shutdown throws; already queued commands still run', async () => {
  const lane = Lane.withLanes([{ laneId: 'a', maxConcurrency: 1 }]);
  const gate = deferred();
  lane.registerHandler('held', () => gate.promise);
  lane.start();
  const first = lane.run('a', 'held');
  const second = lane.run('a', 'echo', 'queued');
  lane.shutdown();
  assert.throws(() => lane.submit('a', 'echo', '{}'),
    isLaneError('ERR_LANE_SHUTTING_DOWN', /^Queue is shutting down, not accepting new commands$/));
  await assert.rejects(lane.submitAsync('a', 'echo', '{}'), isLaneError('ERR_LANE_SHUTTING_DOWN'));
  await assert.rejects(lane.run('a', 'echo'), isLaneError('ERR_LANE_SHUTTING_DOWN'));
  gate.resolve('held done');
  assert.equal(await within(first), 'held done');
  assert.equal(await within(second), 'queued');
  await within(lane.drain(5000));
  assert.throws(() => lane.start(), isLaneError('ERR_LANE_SHUTTING_DOWN'));
});

test('command ids: a UUID-shaped prefix per queue plus the ticket', async () => {
  const a = new Lane();
  const b = new Lane();
  a.start();
  const p1 = a.run('query', 'echo', 1);
  const p2 = a.run('query', 'echo', 2);
  const p3 = b.run('query', 'echo', 3);
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  for (const p of [p1, p2, p3]) assert.match(p.commandId, uuid);
  assert.equal(p1.commandId.slice(0, 24), p2.commandId.slice(0, 24));
  assert.notEqual(p1.commandId.slice(0, 24), p3.commandId.slice(0, 24));
  assert.equal(parseInt(p2.commandId.slice(24), 16), parseInt(p1.commandId.slice(24), 16) + 1);
  await Promise.all([p1, p2]);
  b.start();
  await p3;
});

test('sync submit after async submits in the same tick: queued work is dispatched first', async () => {
  const lane = new Lane();
  const gate = deferred();
  lane.registerHandler('held', () => gate.promise);
  lane.start();
  const held = lane.run('system', 'held'); // more urgent, queued a moment ago
  assert.equal(lane.submit('query', 'echo', '1'), '1');
  assert.equal(lane.stats().lanes[0].active, 1);
  lane.pauseLane('skill');
  assert.throws(() => lane.submit('skill', 'echo', '1'), /lane 'skill' cannot start the command now \(it is paused\)/);
  gate.resolve(2);
  assert.equal(await within(held), 2);
});
