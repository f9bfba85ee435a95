'use strict';
// runMany (many commands of one lane in one call: one a3s_submit_many per
// 500 in Redis mode, each batch whole or not at all; one submit each in
// process, the same API) and the worker's courier: one claim for every free
// slot carrying every finished command's ack, and the adoption of commands
// a claim leased to this worker when its reply was lost. A redis-server of
// this file's own runs on a free port; every wait is bounded.

const { before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const { Lane } = require('@a3s-lab/lane');
const { RedisServer, skipReason, uniqueQueue } = require('./redis-server');
const { within } = require('./helpers');

const skip = skipReason();
let server;
const made = [];

before(async () => {
  if (!skip) server = await new RedisServer().start();
});

after(async () => {
  for (const lane of made) await lane.close().catch(() => {});
  if (server) await server.stop();
});

const JOBS = [
  { laneId: 'jobs', priority: 0, minConcurrency: 0, maxConcurrency: 8 },
  { laneId: 'other', priority: 1, minConcurrency: 0, maxConcurrency: 8 },
];

function lane(configs, options) {
  const made1 = Lane.withLanes(configs, options);
  made.push(made1);
  return made1;
}

function redisTest(name, fn) {
  test(name, { skip, timeout: 30_000 }, () => fn(uniqueQueue(name)));
}

async function fcalls(url) {
  const redis = require('redis');
  const admin = redis.createClient({ url, RESP: 2 });
  await admin.connect();
  try {
    const info = String(await admin.sendCommand(['INFO', 'commandstats']));
    const match = /cmdstat_fcall:calls=(\d+)/.exec(info);
    return match ? Number(match[1]) : 0;
  } finally {
    admin.destroy();
  }
}

redisTest('runMany queues many commands in order, each resolving with its result', async (queue) => {
  const worker = lane(JOBS, { redis: server.url, queue, maxWorkers: 1 });
  const order = [];
  worker.registerHandler('double', (n) => {
    order.push(n);
    return n * 2;
  });
  worker.registerHandler('later', async (n) => n + 1);
  worker.start();
  const producer = lane(JOBS, { redis: server.url, queue });
  producer.start({ worker: false });
  const mixed = await within(producer.runMany('jobs', [['double', 1], { commandType: 'later', payload: 2 }, ['echo', { a: [1] }], ['echo']]));
  assert.equal(mixed.length, 4);
  assert.equal(new Set(mixed.map((p) => p.commandId)).size, 4);
  assert.ok(mixed.every((p) => /^[0-9a-f]{32}$/.test(p.commandId)));
  assert.deepEqual(await within(Promise.all(mixed)), [2, 3, { a: [1] }, null]);
  // 1,201 commands: three a3s_submit_many calls; FIFO inside the lane holds across them.
  order.length = 0;
  const n = 1201;
  const before1 = await fcalls(server.url);
  const promises = await within(producer.runMany('jobs', Array.from({ length: n }, (_, i) => ['double', i])));
  const submitCalls = (await fcalls(server.url)) - before1;
  assert.ok(submitCalls <= 3 + 40, `${submitCalls} FCALLs around a runMany of ${n}`); // + the worker's claims meanwhile
  assert.deepEqual(await within(Promise.all(promises)), Array.from({ length: n }, (_, i) => i * 2));
  assert.deepEqual(order, Array.from({ length: n }, (_, i) => i));
  assert.deepEqual(await within(producer.runMany('jobs', [])), []);
});

redisTest('runMany is all or none: a bad command or an unknown lane queues nothing', async (queue) => {
  const producer = lane(JOBS, { redis: server.url, queue });
  producer.start({ worker: false });
  await assert.rejects(producer.runMany('nope', [['echo', 1], ['echo', 2]]), { code: 'ERR_LANE_NOT_FOUND' });
  await assert.rejects(producer.runMany('jobs', [['echo', 1], ['echo', 2n]]),
    { code: 'ERR_LANE_INVALID_PAYLOAD', message: /^command 1: payload is not JSON-serialisable/ });
  await assert.rejects(producer.runMany('jobs', 'echo'), TypeError);
  await assert.rejects(producer.runMany('jobs', [['echo', 1], 7]), /command 1 must be \[commandType, payload\]/);
  await assert.rejects(producer.runMany('jobs', [[1, 1]]), TypeError);
  await assert.rejects(producer.runMany(3, []), TypeError);
  const stats = await producer.statsAsync();
  assert.deepEqual(stats.lanes.map((l) => [l.laneId, l.submitted, l.pending]), [['jobs', 0, 0], ['other', 0, 0]]);
});

redisTest('an aborted signal cancels the runMany commands that have not started', async (queue) => {
  const producer = lane(JOBS, { redis: server.url, queue });
  producer.start({ worker: false });
  producer.pauseLane('other');
  const controller = new AbortController();
  const promises = await within(producer.runMany('other', [['echo', 1], ['echo', 2], ['echo', 3]], { signal: controller.signal }));
  controller.abort(new Error('enough'));
  for (const p of promises) {
    await assert.rejects(within(p), (error) => error.code === 'ERR_LANE_CANCELLED' && error.cause.message === 'enough');
  }
  const other = (await producer.statsAsync()).lanes.find((l) => l.laneId === 'other');
  assert.deepEqual([other.pending, other.cancelled], [0, 3]);
  await assert.rejects(producer.runMany('other', [['echo', 1]], { signal: controller.signal }), { code: 'ERR_LANE_CANCELLED' });
});

test('runMany in process: the same API, one submit each', async () => {
  const local = Lane.withLanes(JOBS, { maxWorkers: 2 });
  made.push(local);
  local.registerHandler('double', (n) => n * 2);
  local.start();
  const promises = await within(local.runMany('jobs', [['double', 2], { commandType: 'echo', payload: 'x' }]));
  assert.equal(promises.length, 2);
  assert.ok(promises.every((p) => typeof p.commandId === 'string'));
  assert.deepEqual(await within(Promise.all(promises)), [4, 'x']);
  await assert.rejects(local.runMany('nope', [['echo', 1]]), { code: 'ERR_LANE_NOT_FOUND' });
  await assert.rejects(local.runMany('jobs', [['echo', 1], ['echo', 2n]]), { code: 'ERR_LANE_INVALID_PAYLOAD' });
  assert.equal(local.stats().lanes[0].submitted, 2); // nothing of the failed calls was queued
});

redisTest('the courier claims for every free slot and carries every finished ack in one call', async (queue) => {
  const worker = lane(JOBS, { redis: server.url, queue, maxWorkers: 8 });
  let running = 0;
  let most = 0;
  worker.registerHandler('sync', () => null);
  worker.registerHandler('wait', async () => {
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, 5));
    running--;
    return 'ok';
  });
  worker.start();
  const producer = lane(JOBS, { redis: server.url, queue });
  producer.start({ worker: false });
  await within(Promise.all(await producer.runMany('jobs', [['sync', null]]))); // warm
  const before1 = await fcalls(server.url);
  const n = 400;
  await within(Promise.all(await producer.runMany('jobs', Array.from({ length: n }, () => ['sync', null]))));
  const perJob = ((await fcalls(server.url)) - before1) / n;
  // One submit_many, results taken in bulk, and claims of up to 8 commands
  // with up to 8 acks each: well under one FCALL per command.
  assert.ok(perJob < 0.5, `${perJob.toFixed(2)} FCALLs per command`);
  const slow = await within(producer.runMany('jobs', Array.from({ length: 40 }, () => ['wait', null])));
  assert.deepEqual(new Set(await within(Promise.all(slow))), new Set(['ok']));
  assert.equal(most, 8); // async handlers run concurrently, up to the slots
  const stats = await producer.statsAsync();
  assert.equal(stats.totalActive, 0);
  assert.equal(stats.workers.find((w) => w.workerId === worker.workerId).active, 0);
});

redisTest('a command leased by a claim whose reply was lost is adopted and run', async (queue) => {
  const worker = lane(JOBS, { redis: server.url, queue, maxWorkers: 2 });
  worker.registerHandler('double', (n) => n * 2);
  worker.start();
  const producer = lane(JOBS, { redis: server.url, queue });
  producer.start({ worker: false });
  producer.pauseLane('jobs');
  const [lost] = await within(producer.runMany('jobs', [['double', 21]]));
  // A claim for this worker whose reply it never reads: the command is
  // leased to it in Redis, unknown to it.
  const fns = await worker._redis.functions();
  await fns.resume('jobs');
  const reply = await fns.claim(worker.workerId, 1, []);
  if (reply.claimed.length === 1) {
    assert.equal(reply.claimed[0].id, lost.commandId);
    const warned = new Promise((resolve) => process.once('warning', resolve));
    // What a claim that failed on the connection leaves: the courier is unsure.
    const courier = worker._redis.worker;
    courier.unsure = true;
    courier.woken = true;
    courier.poke();
    const warning = await within(warned);
    assert.match(warning.message, new RegExp(`command ${lost.commandId} was leased to it by a claim whose reply was lost`));
  } // else the courier's own claim took it first: nothing to adopt
  assert.equal(await within(lost), 42);
});

// ---- runMany(..., { results: false }): fire and forget ----------------------------

async function admin(url, fn) {
  const redis = require('redis');
  const client = redis.createClient({ url, RESP: 2 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    client.destroy();
  }
}

/** Resolves once `lane`'s stats show `count` completed in `laneId` (bounded). */
async function completed(lane1, laneId, count) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const stats = await lane1.statsAsync();
    const done = stats.lanes.find((l) => l.laneId === laneId).completed;
    if (done >= count) return done;
    if (Date.now() > deadline) throw new Error(`${done} of ${count} completed within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Records the reply-to of every a3s_submit_many call of `lane1`. */
async function spySubmitMany(lane1, replyTos, before1) {
  const fns = await lane1._redis.functions();
  const submitMany = fns.submitMany.bind(fns);
  fns.submitMany = async (batch, replyTo, nowMs) => {
    if (before1) await before1(replyTos.length);
    replyTos.push(replyTo);
    return submitMany(batch, replyTo, nowMs);
  };
}

redisTest('runMany { results: false } queues in order, resolves with the ids and delivers no result', async (queue) => {
  const worker = lane(JOBS, { redis: server.url, queue, maxWorkers: 1 });
  const seen = [];
  worker.registerHandler('double', (n, context) => {
    seen.push([context.commandId, n]);
    return n * 2;
  });
  worker.start();
  const producer = lane(JOBS, { redis: server.url, queue });
  producer.start({ worker: false });
  const replyTos = [];
  await spySubmitMany(producer, replyTos);
  const n = 1201; // three a3s_submit_many calls
  const ids = await within(producer.runMany('jobs', Array.from({ length: n }, (_, i) => ['double', i]), { results: false }));
  assert.equal(ids.length, n);
  assert.ok(ids.every((id) => typeof id === 'string' && /^[0-9a-f]{32}$/.test(id)));
  assert.equal(new Set(ids).size, n);
  assert.deepEqual(replyTos, ['', '', '']); // lanes.lua's deliver() skips ''
  assert.equal(producer._redis.pending.size, 0); // nothing tracked
  await completed(producer, 'jobs', n);
  // They ran, in their order, under the ids runMany returned.
  assert.deepEqual(seen, ids.map((id, i) => [id, i]));
  // No results list for this producer, and no reader of one started.
  const key = `a3s:{${queue}}:results:${producer._redis.clientId}`;
  assert.equal(await admin(server.url, (c) => c.exists([key, `${key}:taken`])), 0);
  assert.equal(producer._redis.resultsActive, false);
  assert.deepEqual(await within(producer.runMany('jobs', [], { results: false })), []);
  // { results: true } (the default) still hands out a promise each.
  const [promise] = await within(producer.runMany('jobs', [['double', 5]], { results: true }));
  assert.equal(await within(promise), 10);
});

redisTest('runMany { results: false } is all or none per batch; error.queued holds the queued ids', async (queue) => {
  const producer = lane(JOBS, { redis: server.url, queue });
  producer.start({ worker: false });
  producer.pauseLane('jobs');
  await assert.rejects(producer.runMany('nope', [['echo', 1]], { results: false }), { code: 'ERR_LANE_NOT_FOUND' });
  await assert.rejects(producer.runMany('jobs', [['echo', 1], ['echo', 2n]], { results: false }),
    { code: 'ERR_LANE_INVALID_PAYLOAD', message: /^command 1: payload is not JSON-serialisable/ });
  let stats = await producer.statsAsync();
  assert.deepEqual(stats.lanes.map((l) => [l.laneId, l.submitted]), [['jobs', 0], ['other', 0]]);
  // The second batch fails in Redis: the first stays queued, the rest is not.
  const fns = await producer._redis.functions();
  const submitMany = fns.submitMany.bind(fns);
  let calls = 0;
  fns.submitMany = (batch, replyTo, nowMs) => {
    if (++calls === 2) return Promise.reject(Object.assign(new Error('boom'), { code: 'ERR_LANE_REDIS' }));
    return submitMany(batch, replyTo, nowMs);
  };
  const failed = await producer.runMany('jobs', Array.from({ length: 1200 }, (_, i) => ['echo', i]), { results: false })
    .then(() => null, (error) => error);
  fns.submitMany = submitMany;
  assert.equal(failed && failed.message, 'boom');
  assert.equal(failed.queued.length, 500);
  assert.ok(failed.queued.every((id) => typeof id === 'string' && /^[0-9a-f]{32}$/.test(id)));
  stats = await producer.statsAsync();
  assert.deepEqual(stats.lanes.map((l) => [l.laneId, l.submitted, l.pending]), [['jobs', 500, 500], ['other', 0, 0]]);
  // The ids are what cancel() takes.
  assert.equal(producer.cancel(failed.queued[0]), true);
  assert.equal((await producer.statsAsync()).lanes[0].cancelled, 1);
});

redisTest('runMany { results: false }: the signal guards the queueing', async (queue) => {
  const producer = lane(JOBS, { redis: server.url, queue });
  producer.start({ worker: false });
  producer.pauseLane('jobs');
  const aborted = new AbortController();
  aborted.abort(new Error('early'));
  await assert.rejects(producer.runMany('jobs', [['echo', 1]], { results: false, signal: aborted.signal }),
    (error) => error.code === 'ERR_LANE_CANCELLED' && error.cause.message === 'early' && error.queued.length === 0);
  // Aborted while the first batch goes: the later batches are not queued.
  const controller = new AbortController();
  await spySubmitMany(producer, [], (sent) => {
    if (sent === 0) controller.abort(new Error('midway')); // as the first batch goes
  });
  const error = await producer.runMany('jobs', Array.from({ length: 1100 }, (_, i) => ['echo', i]),
    { results: false, signal: controller.signal }).then(() => null, (e) => e);
  assert.equal(error && error.code, 'ERR_LANE_CANCELLED');
  assert.equal(error.queued.length, 500);
  assert.equal((await producer.statsAsync()).lanes[0].submitted, 500);
});

test('runMany { results: false } in process: the ids, commands run, outcomes dropped', async () => {
  const local = Lane.withLanes(JOBS, { maxWorkers: 1 });
  made.push(local);
  const seen = [];
  local.registerHandler('double', (n, context) => {
    seen.push([context.commandId, n]);
    return n * 2;
  });
  local.registerHandler('fail', () => {
    throw new Error('nobody reads this');
  });
  const unhandled = [];
  const onUnhandled = (reason) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    local.start();
    local.pauseLane('other');
    const held = await within(local.runMany('other', [['echo', 1], ['echo', 2]], { results: false }));
    assert.deepEqual(held.map((id) => local.cancel(id)), [true, true]); // the ids are what cancel() takes
    const ids = await within(local.runMany('jobs', [['double', 1], ['fail', null], ['double', 3]], { results: false }));
    assert.equal(ids.length, 3);
    assert.ok(ids.every((id) => typeof id === 'string'));
    await within(waitIdle(local, 'jobs', 3));
    assert.deepEqual(seen, [[ids[0], 1], [ids[2], 3]]);
    const jobs = local.stats().lanes[0];
    assert.deepEqual([jobs.completed, jobs.failed], [2, 1]);
    await new Promise((resolve) => setTimeout(resolve, 20)); // unhandled rejections surface by then
    assert.deepEqual(unhandled, []);
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(local.runMany('jobs', [['echo', 1]], { results: false, signal: aborted.signal }),
      { code: 'ERR_LANE_CANCELLED' });
    await assert.rejects(local.runMany('nope', [['echo', 1]], { results: false }), { code: 'ERR_LANE_NOT_FOUND' });
    assert.equal(local.stats().lanes[0].submitted, 3);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

async function waitIdle(local, laneId, count) {
  for (let i = 0; i < 1000; i++) {
    const l = local.stats().lanes.find((x) => x.laneId === laneId);
    if (l.completed + l.failed >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('commands did not finish');
}

test('runMany checks options.results: a boolean or nothing', async () => {
  const local = Lane.withLanes(JOBS);
  made.push(local);
  local.start();
  for (const results of ['no', 0, 1, null, {}]) {
    await assert.rejects(local.runMany('jobs', [['echo', 1]], { results }),
      (error) => error instanceof TypeError && /^options\.results must be a boolean, got /.test(error.message));
  }
  assert.equal(local.stats().lanes[0].submitted, 0);
  const promises = await local.runMany('jobs', [['echo', 1]], {});
  assert.equal(await within(promises[0]), 1);
});

redisTest('runMany checks options.results in Redis mode too', async (queue) => {
  const producer = lane(JOBS, { redis: server.url, queue });
  await assert.rejects(producer.runMany('jobs', [['echo', 1]], { results: 'false' }),
    (error) => error instanceof TypeError && /options\.results must be a boolean, got string/.test(error.message));
});
