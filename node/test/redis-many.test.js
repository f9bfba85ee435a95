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
