'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { Lane, EVENTS } = require('@a3s-lab/lane');
const { deferred, within, turn, collect } = require('./helpers');

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}\+00:00$/;

test('events of one command: submitted, started, completed, with the Python payload fields', async () => {
  const lane = new Lane();
  lane.start();
  const c = collect(lane);
  const result = lane.submit('query', 'my_command', '{"key":"value"}');
  assert.equal(result, '{"key":"value"}');
  assert.equal(c.events.length, 0, 'callbacks never run inside submit()');
  await c.waitFor((e) => e.key === EVENTS.COMMAND_COMPLETED);
  assert.deepEqual(c.keys(), ['queue.command.submitted', 'queue.command.started', 'queue.command.completed']);
  const [submitted, started, completed] = c.events.map((e) => JSON.parse(e.payload));
  assert.deepEqual(Object.keys(submitted), ['lane_id', 'command_id', 'command_type']);
  assert.deepEqual(Object.keys(started), ['lane_id', 'command_id', 'command_type']);
  assert.deepEqual(Object.keys(completed), ['lane_id', 'command_id']);
  assert.equal(submitted.lane_id, 'query');
  assert.equal(submitted.command_type, 'my_command');
  assert.equal(started.command_id, submitted.command_id);
  assert.equal(completed.command_id, submitted.command_id);
  for (const event of c.events) {
    assert.equal(typeof event.payload, 'string');
    assert.match(event.timestamp, RFC3339);
    assert.ok(Math.abs(Date.parse(event.timestamp) - Date.now()) < 60_000);
    assert.ok(Object.isFrozen(event));
  }
  const times = c.events.map((e) => e.timestamp);
  assert.deepEqual([...times].sort(), times);
});

test('failed, cancelled and shutdown events', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', minConcurrency: 0, maxConcurrency: 1 }]);
  const gate = deferred();
  lane.registerHandler('held', () => gate.promise);
  lane.registerHandler('boom', async () => {
    throw new TypeError('no good');
  });
  lane.start();
  const c = collect(lane);
  const held = lane.run('w', 'held');
  const doomed = lane.run('w', 'boom');
  const cancelled = lane.run('w', 'held');
  doomed.catch(() => {});
  cancelled.catch(() => {});
  await turn();
  assert.ok(lane.cancel(cancelled.commandId));
  gate.resolve();
  await held;
  await assert.rejects(doomed, /no good/);
  lane.shutdown();
  await within(lane.drain(5000));
  const byKey = (key) => c.events.filter((e) => e.key === key).map((e) => JSON.parse(e.payload));
  assert.deepEqual(byKey(EVENTS.COMMAND_FAILED), [{ lane_id: 'w', command_id: doomed.commandId, error: 'TypeError: no good' }]);
  assert.deepEqual(byKey(EVENTS.COMMAND_CANCELLED), [{ lane_id: 'w', command_id: cancelled.commandId }]);
  assert.deepEqual(c.events.slice(-2).map((e) => [e.key, e.payload]), [
    ['queue.shutdown.started', 'null'],
    ['queue.shutdown.complete', 'null'],
  ]);
  // Per command: submitted before started before completed/failed.
  for (const p of [held, doomed]) {
    const mine = c.events.filter((e) => JSON.parse(e.payload)?.command_id === p.commandId).map((e) => e.key);
    assert.equal(mine[0], 'queue.command.submitted');
    assert.equal(mine[1], 'queue.command.started');
  }
  // After shutdown and drain, subscriptions end.
  assert.equal(c.subscription.closed, true);
});

test('subscribeFiltered delivers exact key matches only; unsubscribe stops delivery', async () => {
  const lane = new Lane();
  lane.registerHandler('bad', () => {
    throw new Error('x');
  });
  lane.start();
  const failures = collect(lane, ['queue.command.failed', 'queue.command.timeout']);
  const all = collect(lane);
  await lane.run('query', 'ok').catch(() => {});
  await lane.run('query', 'bad').catch(() => {});
  await failures.waitFor((e) => e.key === 'queue.command.failed');
  await lane.drain(5000);
  assert.deepEqual(failures.keys(), ['queue.command.failed']);
  assert.equal(all.events.length, 6);
  all.subscription.unsubscribe();
  await lane.run('query', 'ok');
  await lane.drain(5000);
  assert.equal(all.events.length, 6);
});

test('a subscriber sees only events emitted after it subscribed', async () => {
  const lane = new Lane();
  lane.start();
  const early = collect(lane);
  lane.submit('query', 'one', '1');
  const late = collect(lane);
  lane.submit('query', 'two', '2');
  await lane.drain(5000);
  assert.equal(early.events.length, 6);
  assert.equal(late.events.length, 3);
  assert.equal(JSON.parse(late.events[0].payload).command_type, 'two');
});

test('a throwing subscriber is reported with a warning, stays subscribed, and others are unaffected', async () => {
  const lane = new Lane();
  lane.start();
  const warnings = [];
  const onWarning = (warning) => warnings.push(warning);
  process.on('warning', onWarning);
  try {
    let calls = 0;
    const thrower = lane.subscribe(() => {
      calls++;
      throw new Error('subscriber bug');
    });
    const good = collect(lane);
    lane.submit('query', 'a', '1');
    await good.waitFor((e) => e.key === 'queue.command.completed');
    await turn(2);
    assert.equal(calls, 3);
    assert.equal(thrower.callbackErrors, 3);
    assert.equal(thrower.closed, false);
    assert.equal(good.events.length, 3);
    lane.submit('query', 'b', '2');
    await lane.drain(5000);
    assert.equal(calls, 6);
    assert.equal(good.events.length, 6);
    await turn(2);
    assert.ok(warnings.length >= 1);
    assert.equal(warnings[0].code, 'A3S_LANE_SUBSCRIBER_ERROR');
    assert.match(warnings[0].message, /subscriber threw on queue\.command\.submitted: Error: subscriber bug.*stays subscribed/);
  } finally {
    process.off('warning', onWarning);
  }
});

test('a slow burst: events are buffered, delivered in order, and dropped past eventCapacity', async () => {
  const lane = new Lane({ eventCapacity: 10 });
  lane.start();
  const warnings = [];
  const onWarning = (warning) => warnings.push(warning);
  process.on('warning', onWarning);
  try {
    const c = collect(lane);
    for (let i = 0; i < 5; i++) lane.submit('query', 'x', String(i)); // 15 events
    await lane.drain(5000);
    assert.equal(c.events.length, 10);
    assert.equal(lane.droppedEvents, 5);
    await turn(2);
    assert.ok(warnings.some((w) => w.code === 'A3S_LANE_EVENTS_DROPPED'));
  } finally {
    process.off('warning', onWarning);
  }
});

test('callbacks run on the event loop, never inside a submit or a handler', async () => {
  const lane = Lane.withLanes([
    { laneId: 's', priority: 0, maxConcurrency: 2 },
    { laneId: 'q', priority: 1, maxConcurrency: 2 },
  ]);
  let inside = false;
  let overlaps = 0;
  let delivered = 0;
  lane.registerHandler('job', (n) => {
    inside = true;
    for (let i = 0; i < 100; i++) n += i;
    inside = false;
    return n;
  });
  lane.subscribe(() => {
    delivered++;
    if (inside) overlaps++;
  });
  lane.start();
  const all = [];
  for (let i = 0; i < 100; i++) {
    inside = true;
    all.push(lane.run('q', 'job', i));
    lane.submit('s', 'job', String(i));
    inside = false;
  }
  await Promise.all(all);
  await lane.drain(5000);
  assert.equal(delivered, 600);
  assert.equal(overlaps, 0);
});

test('subscriptions do not keep the process alive', () => {
  const script = `
    const { Lane } = require('@a3s-lab/lane');
    const lane = new Lane();
    lane.subscribe(() => {});
    lane.subscribeFiltered(['queue.command.failed'], () => {});
    lane.start();
    lane.submit('query', 'x', '{}');
    lane.run('query', 'y', 1).then(() => console.log('ran'));
  `;
  const started = Date.now();
  const output = execFileSync(process.execPath, ['-e', script], {
    cwd: path.join(__dirname, '..'),
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(output.trim(), 'ran');
  assert.ok(Date.now() - started < 20_000);
});
