'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Lane, LaneError } = require('@a3s-lab/lane');
const { deferred, within, turn, rng } = require('./helpers');

// A lane whose 'job' handler records its start and waits for a gate.
function gated(lane) {
  const started = [];
  const gates = new Map();
  lane.registerHandler('job', (name) => {
    started.push(name);
    const gate = deferred();
    gates.set(name, gate);
    return gate.promise;
  });
  return {
    started,
    finish(name, value = name) {
      gates.get(name).resolve(value);
    },
    fail(name, error) {
      gates.get(name).reject(error);
    },
  };
}

test('priority: a control job submitted after 100 queued prompt jobs starts before all of them', async () => {
  const lane = Lane.withLanes([
    { laneId: 'control', priority: 1, minConcurrency: 0, maxConcurrency: 2 },
    { laneId: 'prompt', priority: 5, minConcurrency: 0, maxConcurrency: 2 },
  ], { maxWorkers: 2 });
  const g = gated(lane);
  // Queued before start: nothing runs yet, so control goes first of all.
  const prompts = [];
  for (let i = 1; i <= 100; i++) prompts.push(lane.run('prompt', 'job', `p${i}`));
  const control = lane.run('control', 'job', 'c1');
  lane.start();
  await turn();
  assert.deepEqual(g.started, ['c1', 'p1']);
  g.finish('c1');
  assert.equal(await within(control), 'c1');
  assert.deepEqual(g.started, ['c1', 'p1', 'p2']);

  // Submitted while two prompts run and 97 wait: it takes the next worker.
  const late = lane.run('control', 'job', 'c2');
  await turn();
  assert.deepEqual(g.started.slice(-1), ['p2']);
  g.finish('p1');
  await within(prompts[0]);
  assert.deepEqual(g.started.slice(-1), ['c2']);
  g.finish('c2');
  g.finish('p2');
  await within(late);
  await within(prompts[1]);
  for (let i = 3; i <= 100; i++) {
    await turn();
    g.finish(`p${i}`);
  }
  await within(Promise.all(prompts));
  assert.deepEqual(g.started.filter((n) => n.startsWith('p')), prompts.map((_, i) => `p${i + 1}`));
});

test('default lanes: control starts at once while prompt floods (min reservations)', async () => {
  const lane = new Lane();
  const g = gated(lane);
  lane.start();
  const prompts = [];
  for (let i = 1; i <= 100; i++) prompts.push(lane.run('prompt', 'job', `p${i}`));
  await turn();
  assert.deepEqual(g.started, ['p1', 'p2']); // prompt's max is 2
  const control = lane.run('control', 'job', 'c1');
  await turn();
  assert.deepEqual(g.started, ['p1', 'p2', 'c1']); // no prompt had to finish
  g.finish('c1');
  await within(control);
  for (let i = 1; i <= 100; i++) {
    await turn();
    g.finish(`p${i}`);
  }
  await within(Promise.all(prompts));
});

test('FIFO inside a lane, also with submits between completions', async () => {
  const lane = Lane.withLanes([{ laneId: 'jobs', minConcurrency: 0, maxConcurrency: 1 }]);
  const order = [];
  lane.registerHandler('job', async (n) => {
    order.push(n);
    await turn();
  });
  lane.start();
  const all = [];
  for (let i = 0; i < 50; i++) all.push(lane.run('jobs', 'job', i));
  await within(all[10]);
  for (let i = 50; i < 100; i++) all.push(lane.run('jobs', 'job', i));
  await within(Promise.all(all));
  assert.deepEqual(order, Array.from({ length: 100 }, (_, i) => i));
});

test('equal priorities interleave by submission order', async () => {
  const lane = Lane.withLanes([
    { laneId: 'a', priority: 2, minConcurrency: 0, maxConcurrency: 5 },
    { laneId: 'b', priority: 2, minConcurrency: 0, maxConcurrency: 5 },
  ], { maxWorkers: 1 });
  const order = [];
  lane.registerHandler('job', async (n) => {
    order.push(n);
    await turn();
  });
  const all = ['b1', 'a1', 'a2', 'b2', 'a3'].map((n) => lane.run(n[0], 'job', n));
  lane.start();
  await within(Promise.all(all));
  assert.deepEqual(order, ['b1', 'a1', 'a2', 'b2', 'a3']);
});

test('min reservation: an idle reserved lane starts at once; others cannot take its worker', async () => {
  const lane = Lane.withLanes([
    { laneId: 'A', priority: 0, minConcurrency: 0, maxConcurrency: 3 },
    { laneId: 'B', priority: 5, minConcurrency: 1, maxConcurrency: 1 },
  ], { maxWorkers: 3 });
  const g = gated(lane);
  lane.start();
  const jobs = ['a1', 'a2', 'a3', 'a4', 'a5'].map((n) => lane.run('A', 'job', n));
  await turn();
  assert.deepEqual(g.started, ['a1', 'a2']); // the third worker is B's
  const b1 = lane.run('B', 'job', 'b1');
  await turn();
  assert.deepEqual(g.started, ['a1', 'a2', 'b1']);
  g.finish('a1');
  await within(jobs[0]);
  assert.deepEqual(g.started.slice(-1), ['a3']);
  g.finish('b1');
  await within(b1);
  await turn();
  assert.equal(g.started.length, 4); // B's reservation is free again: A may not take it
  const b2 = lane.run('B', 'job', 'b2');
  await turn();
  assert.deepEqual(g.started.slice(-1), ['b2']);
  for (const n of ['a2', 'a3', 'b2']) g.finish(n);
  await turn(2);
  g.finish('a4');
  await turn(2);
  g.finish('a5');
  await within(Promise.all([...jobs, b2]));
});

test('stress: 20,000 async jobs over 10 lanes never exceed any max or the budget', async () => {
  const random = rng(20_000);
  const configs = Array.from({ length: 10 }, (_, i) => {
    const max = 1 + Math.floor(random() * 4);
    return { laneId: `l${i}`, priority: Math.floor(random() * 4), minConcurrency: Math.floor(random() * 2), maxConcurrency: max };
  });
  const budget = 12;
  const lane = Lane.withLanes(configs, { maxWorkers: budget });
  const max = new Map(configs.map((c) => [c.laneId, c.maxConcurrency]));
  const active = new Map(configs.map((c) => [c.laneId, 0]));
  const startOrder = new Map(configs.map((c) => [c.laneId, []]));
  let total = 0;
  let peak = 0;
  let violations = 0;
  lane.registerHandler('work', async ({ n, hops, fail }, context) => {
    const id = context.laneId;
    active.set(id, active.get(id) + 1);
    total++;
    peak = Math.max(peak, total);
    if (active.get(id) > max.get(id) || total > budget) violations++;
    startOrder.get(id).push(n);
    try {
      for (let h = 0; h < hops; h++) {
        if (h % 3 === 2) await turn();
        else await null;
      }
      if (fail) throw new Error(`fail ${n}`);
      return n;
    } finally {
      active.set(id, active.get(id) - 1);
      total--;
    }
  });
  lane.start();
  const submitted = new Map(configs.map((c) => [c.laneId, []]));
  const promises = [];
  for (let n = 0; n < 20_000; n++) {
    const laneId = `l${Math.floor(random() * 10)}`;
    submitted.get(laneId).push(n);
    const fail = random() < 0.05;
    promises.push(lane.run(laneId, 'work', { n, hops: Math.floor(random() * 6), fail }));
    if (n % 997 === 0) await null; // submits arrive in bursts, some while work runs
  }
  const results = await within(Promise.allSettled(promises), 60_000, 'the stress run');
  assert.equal(violations, 0);
  assert.ok(peak <= budget);
  assert.ok(peak >= 2, `expected concurrency, peak was ${peak}`);
  for (const [laneId, order] of startOrder) assert.deepEqual(order, submitted.get(laneId), `FIFO in ${laneId}`);
  const failed = results.filter((r) => r.status === 'rejected').length;
  const stats = lane.stats();
  assert.equal(stats.totalActive, 0);
  assert.equal(stats.totalPending, 0);
  assert.equal(stats.lanes.reduce((s, l) => s + l.failed, 0), failed);
  assert.equal(stats.lanes.reduce((s, l) => s + l.completed, 0), 20_000 - failed);
  results.forEach((r, n) => r.status === 'fulfilled' && assert.equal(r.value, n));
});

test('a long run of synchronous jobs neither deepens the stack nor starves the event loop', async () => {
  const lane = Lane.withLanes([{ laneId: 'q', maxConcurrency: 4 }]);
  let count = 0;
  lane.registerHandler('sync', () => ++count);
  lane.start();
  let immediates = 0;
  const ticker = () => {
    immediates++;
    if (count < 50_000) setImmediate(ticker);
  };
  setImmediate(ticker);
  const all = [];
  for (let i = 0; i < 50_000; i++) all.push(lane.run('q', 'sync'));
  await within(Promise.all(all), 30_000);
  assert.equal(count, 50_000);
  assert.ok(immediates > 10, `the event loop turned only ${immediates} times`);
});

test('cancel by id and by AbortSignal removes a waiting command', async () => {
  const lane = Lane.withLanes([{ laneId: 'one', minConcurrency: 0, maxConcurrency: 1 }]);
  const g = gated(lane);
  lane.start();
  const first = lane.run('one', 'job', 'first');
  const second = lane.run('one', 'job', 'second');
  const controller = new AbortController();
  const third = lane.run('one', 'job', 'third', { signal: controller.signal });
  const fourth = lane.run('one', 'job', 'fourth');
  await turn();
  assert.equal(lane.cancel(first.commandId), false); // running
  assert.equal(lane.cancel(second.commandId), true);
  assert.equal(lane.cancel(second.commandId), false);
  assert.equal(lane.cancel('not-an-id'), false);
  await assert.rejects(second, (e) => e instanceof LaneError && e.code === 'ERR_LANE_CANCELLED' &&
    e.message === `Command ${second.commandId} was cancelled before it started`);
  controller.abort(new Error('user gave up'));
  await assert.rejects(third, (e) => e.code === 'ERR_LANE_CANCELLED' && e.cause.message === 'user gave up');
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(lane.run('one', 'job', 'never', { signal: aborted.signal }), (e) => e.code === 'ERR_LANE_CANCELLED');
  g.finish('first');
  await within(first);
  await turn();
  assert.deepEqual(g.started, ['first', 'fourth']);
  g.finish('fourth');
  await within(fourth);
  const s = lane.stats().lanes[0];
  assert.equal(s.cancelled, 2);
  assert.equal(s.completed, 2);
  assert.equal(s.submitted, 4);
});

test('pauseLane holds a lane; resumeLane restores FIFO', async () => {
  const lane = Lane.withLanes([
    { laneId: 'urgent', priority: 0, minConcurrency: 0, maxConcurrency: 2 },
    { laneId: 'other', priority: 5, minConcurrency: 0, maxConcurrency: 2 },
  ]);
  const g = gated(lane);
  lane.start();
  lane.pauseLane('urgent');
  const u = [lane.run('urgent', 'job', 'u1'), lane.run('urgent', 'job', 'u2')];
  const o = lane.run('other', 'job', 'o1');
  await turn();
  assert.deepEqual(g.started, ['o1']);
  assert.equal(lane.stats().lanes[0].paused, true);
  lane.resumeLane('urgent');
  await turn();
  assert.deepEqual(g.started, ['o1', 'u1', 'u2']);
  for (const n of ['o1', 'u1', 'u2']) g.finish(n);
  await within(Promise.all([...u, o]));
  assert.throws(() => lane.pauseLane('nope'), /Lane not found: nope/);
});
