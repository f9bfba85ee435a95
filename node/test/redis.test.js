'use strict';
// Redis mode in one process: { redis, queue } on new Lane() and withLanes(),
// the synchronous start() and seed submit(), the promise API resolved from
// whichever worker ran the command, handlers sync and async, echoes, events
// read back from the queue's stream, cluster-wide stats, cancel and pause
// held in Redis, drain, the library version check, and the errors of bad
// options and unreachable servers. Several Lanes in one process stand for
// several processes here (each is its own client and worker); the
// cross-process cases (Node processes from redis-agent.js) are in
// redis-faults.test.js and redis-sync.test.js, the cross-language ones in
// ../tests/test_cross_language.py (run by cross-language.test.js). A
// redis-server of this file's own runs on a free port; every wait is bounded.

const { before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { Lane, LaneError } = require('@a3s-lab/lane');
const { RedisServer, skipReason, uniqueQueue, freePort } = require('./redis-server');
const { within, deferred } = require('./helpers');

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

const TWO_LANES = [
  { laneId: 'high', priority: 0, minConcurrency: 1, maxConcurrency: 4 },
  { laneId: 'low', priority: 1, minConcurrency: 1, maxConcurrency: 2 },
];

function lane(configs, options) {
  const made1 = configs ? Lane.withLanes(configs, options) : new Lane(options);
  made.push(made1);
  return made1;
}

function redisTest(name, options, fn) {
  if (typeof options === 'function') {
    fn = options;
    options = {};
  }
  test(name, { skip, timeout: 30_000, ...options }, (t) => fn(t, uniqueQueue(name)));
}

redisTest('the seed calls work with only { redis, queue } added', async (t, queue) => {
  const defaults = lane(undefined, { redis: server.url, queue });
  defaults.start();
  const custom = lane(TWO_LANES, { redis: server.url, queue });
  custom.start();
  // Synchronous submit: this process's workers have no handlers, so the
  // bridge waits (and echoes on their behalf) without this event loop.
  const result = JSON.parse(custom.submit('high', 'my_command', JSON.stringify({ key: 'value' })));
  assert.deepEqual(result, { key: 'value' });
  const seen = [];
  custom.subscribe((err, event) => {
    assert.equal(err, null);
    seen.push(event.key);
  });
  const failures = [];
  custom.subscribeFiltered(['queue.command.failed', 'queue.command.timeout'], (err, event) => failures.push(event.key));
  custom.shutdown();
  await within(custom.drain(30_000), 10_000, 'drain');
  assert.deepEqual(seen, ['queue.shutdown.started', 'queue.shutdown.complete']);
  assert.deepEqual(failures, []);
  const stats = defaults.stats();
  assert.deepEqual(stats.lanes.map((l) => l.laneId),
    ['system', 'control', 'query', 'session', 'skill', 'prompt', 'high', 'low']);
  assert.equal(stats.lanes.find((l) => l.laneId === 'high').completed, 1);
});

redisTest('handlers run on the worker, async and sync; unknown types echo; failures reject clearly', async (t, queue) => {
  const worker = lane(TWO_LANES, { redis: server.url, queue });
  worker.registerHandler('add', ({ a, b }) => a + b);
  worker.registerHandler('later', async (p, ctx) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { got: p, lane: ctx.laneId, type: ctx.commandType, id: ctx.commandId };
  });
  worker.registerHandler('boom', () => {
    throw new RangeError('bad input');
  });
  worker.start();
  const producer = lane(TWO_LANES, { redis: server.url, queue });
  producer.start({ worker: false });
  assert.equal(producer.workerId, null);
  assert.equal(await within(producer.run('high', 'add', { a: 2, b: 3 })), 5);
  const later = producer.run('low', 'later', [1]);
  const value = await within(later);
  assert.deepEqual(value, { got: [1], lane: 'low', type: 'later', id: later.commandId });
  assert.match(later.commandId, /^[0-9a-f]{32}$/);
  assert.equal(await within(producer.submitAsync('low', 'unknown', '[1,"x"]')), '[1,"x"]');
  await assert.rejects(producer.run('high', 'boom', null), (error) => {
    assert.ok(error instanceof LaneError);
    assert.equal(error.code, 'ERR_LANE_COMMAND_FAILED');
    assert.equal(error.message, 'RangeError: bad input');
    return true;
  });
  await assert.rejects(producer.run('nope', 'add', {}), { code: 'ERR_LANE_NOT_FOUND', message: /nope/ });
  const stats = producer.stats();
  const high = stats.lanes.find((l) => l.laneId === 'high');
  assert.equal(high.completed, 1);
  assert.equal(high.failed, 1);
  assert.equal(stats.slots, 6); // the default budget: max 4 + max 2
  assert.deepEqual(stats.workers.map((w) => [w.workerId, w.slots, w.types]),
    [[worker.workerId, 6, [`a3s.fn:${worker.workerId}`, 'add', 'boom', 'later']]]);
  assert.match(stats.workers[0].info, new RegExp(` pid ${process.pid}$`));
  // add(): a function runs on this process's worker, under the lane's rules.
  assert.equal(await within(worker.add('high', (ctx) => `ran as ${ctx.commandType}`, { commandType: 'mine' })), 'ran as mine');
  await assert.rejects(producer.add('high', () => 1), { code: 'ERR_LANE_INVALID_ARGUMENT', message: /started as a worker/ });
  // A worker with handlers cannot wait synchronously: it could need this loop.
  assert.throws(() => worker.submit('high', 'other', '1'), { code: 'ERR_LANE_WOULD_BLOCK', message: /submitAsync/ });
});

redisTest('events of every worker reach every subscriber, with the Python payload fields', async (t, queue) => {
  const a = lane(TWO_LANES, { redis: server.url, queue });
  const b = lane(TWO_LANES, { redis: server.url, queue });
  a.registerHandler('who', () => 'a');
  b.registerHandler('who', () => 'b');
  a.start();
  b.start();
  const watcher = lane(TWO_LANES, { redis: server.url, queue });
  const events = [];
  const done = deferred();
  watcher.subscribeFiltered(['queue.command.started', 'queue.command.completed'], (err, event) => {
    events.push({ key: event.key, payload: JSON.parse(event.payload), timestamp: event.timestamp });
    if (events.filter((e) => e.key === 'queue.command.completed').length === 12) done.resolve();
  });
  const results = await within(Promise.all(Array.from({ length: 12 }, () => watcher.run('low', 'who', null))));
  await within(done.promise, 10_000, 'the events');
  const started = events.filter((e) => e.key === 'queue.command.started');
  assert.equal(started.length, 12);
  for (const e of started) {
    assert.deepEqual(Object.keys(e.payload).sort(), ['command_id', 'command_type', 'lane_id', 'worker_id']);
    assert.match(e.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\+00:00$/);
  }
  const workers = new Set(started.map((e) => e.payload.worker_id));
  assert.ok([...workers].every((w) => w === a.workerId || w === b.workerId));
  assert.ok(results.every((r) => r === 'a' || r === 'b'));
});

redisTest('pause, resume and cancel are held in Redis', async (t, queue) => {
  const worker = lane(TWO_LANES, { redis: server.url, queue });
  worker.start();
  worker.pauseLane('low');
  const jobs = [0, 1, 2].map((n) => worker.run('low', 'echo', n));
  const controller = new AbortController();
  const aborted = worker.run('low', 'echo', 3, { signal: controller.signal });
  await within(new Promise((resolve) => setTimeout(resolve, 30)));
  let low = worker.stats().lanes.find((l) => l.laneId === 'low');
  assert.deepEqual([low.pending, low.active, low.paused, low.waiting], [4, 0, true, 'paused']);
  assert.equal(worker.cancel(jobs[1].commandId), true);
  assert.equal(worker.cancel(jobs[1].commandId), false);
  await assert.rejects(jobs[1], { code: 'ERR_LANE_CANCELLED' });
  controller.abort(new Error('no longer needed'));
  await assert.rejects(within(aborted), (error) => error.code === 'ERR_LANE_CANCELLED' && error.cause.message === 'no longer needed');
  worker.resumeLane('low');
  assert.deepEqual(await within(Promise.all([jobs[0], jobs[2]])), [0, 2]);
  low = worker.stats().lanes.find((l) => l.laneId === 'low');
  assert.deepEqual([low.cancelled, low.completed], [2, 2]);
  assert.equal(worker.cancel(jobs[0].commandId), false);
});

redisTest('drain waits for the whole queue and times out naming what is left', async (t, queue) => {
  const worker = lane(TWO_LANES, { redis: server.url, queue });
  const gate = deferred();
  worker.registerHandler('hold', () => gate.promise.then(() => 'released'));
  worker.start();
  const producer = lane(TWO_LANES, { redis: server.url, queue });
  const job = producer.run('low', 'hold', null);
  await assert.rejects(producer.drain(300), { code: 'ERR_LANE_TIMEOUT', message: /1 active/ });
  gate.resolve();
  await within(producer.drain(10_000));
  // drain resolved after the result was handed out.
  let settled = false;
  job.then(() => {
    settled = true;
  });
  await Promise.resolve();
  assert.ok(settled);
  await assert.rejects(producer.drain(-1), { code: 'ERR_LANE_INVALID_ARGUMENT' });
});

redisTest('a handler registered after start reaches the worker registration at once', async (t, queue) => {
  const worker = lane([{ laneId: 'q', minConcurrency: 0, maxConcurrency: 2 }], { redis: server.url, queue });
  worker.start();
  worker.registerHandler('late', (n) => n * 2);
  const deadline = Date.now() + 5000;
  while (!worker.stats().workers[0].types.includes('late')) {
    assert.ok(Date.now() < deadline, 'the handler never reached the registration');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(await within(worker.run('q', 'late', 21)), 42);
});

redisTest('a lane config that differs from the stored one names the field; nothing half-written', async (t, queue) => {
  lane([{ laneId: 'high', priority: 0, minConcurrency: 1, maxConcurrency: 4 }], { redis: server.url, queue }).start({ worker: false });
  const clash = lane([{ laneId: 'extra', priority: 3, minConcurrency: 0, maxConcurrency: 1 },
    { laneId: 'high', priority: 0, minConcurrency: 1, maxConcurrency: 3 }], { redis: server.url, queue });
  assert.throws(() => clash.start({ worker: false }), (error) => {
    assert.equal(error.code, 'ERR_LANE_CONFIG_CONFLICT');
    assert.match(error.message, /"high": max is 4 in Redis, 3 here/);
    return true;
  });
  const stored = lane([{ laneId: 'high', priority: 0, minConcurrency: 1, maxConcurrency: 4 }], { redis: server.url, queue });
  assert.deepEqual(stored.stats().lanes.map((l) => l.laneId), ['high']);
});

redisTest('invalid options are LaneErrors naming the option', () => {
  const bad = [
    [{ redis: 42 }, /redis must be a Redis URL string/],
    [{ redis: 'http://x:1/0' }, /must start with redis:\/\//],
    [{ redis: 'not a url' }, /is not a URL/],
    [{ redis: 'redis://h:1/x' }, /database number/],
    [{ redis: server.url, queue: 'a{b}' }, /queue "a\{b\}" cannot be a Redis hash tag/],
    [{ redis: server.url, queue: '' }, /queue must be a non-empty string/],
    [{ redis: server.url, queue: 'x'.repeat(200) }, /queue must be at most 128/],
    [{ redis: server.url, leaseMs: 10 }, /leaseMs must be a number of milliseconds, at least 300/],
    [{ queue: 'orphan' }, /queue is an option of Redis mode: give redis/],
    [{ leaseMs: 1000 }, /leaseMs is an option of Redis mode/],
    [{ redis: server.url, lanes: [{ laneId: 'bad\nlane' }] }, /laneId "bad\\nlane" cannot be part of a Redis key/],
    [{ redis: server.url, lanes: [{ laneId: 'a' }, { laneId: 'a' }] }, /duplicate lane id 'a'/],
    [{ redis: server.url, frobnicate: 1 }, /unknown option 'frobnicate'/],
    [{ lanes: [{ laneId: 'a', timeoutMs: 5 }] }, /timeoutMs of lane 'a' is an option of Redis mode/],
    [{ redis: server.url, lanes: [{ laneId: 'a', retry: { maxRetries: 1, initialDelayMs: 10, maxDelayMs: 5 } }] },
      /retry\.maxDelayMs \(5\) is below retry\.initialDelayMs \(10\) of lane 'a'/],
    [{ redis: server.url, lanes: [{ laneId: 'a', rateLimit: { maxCommands: 1 } }] }, /rateLimit\.windowMs of lane 'a'/],
    [{ redis: server.url, lanes: [{ laneId: 'a', priorityBoost: { deadlineMs: 0 } }] }, /priorityBoost\.deadlineMs .* greater than 0/],
  ];
  for (const [options, message] of bad) {
    assert.throws(() => new Lane(options), (error) => {
      assert.ok(error instanceof LaneError, `${JSON.stringify(options)}: ${error}`);
      assert.equal(error.code, 'ERR_LANE_INVALID_CONFIG');
      assert.match(error.message, message);
      return true;
    });
  }
  const ok = new Lane({ redis: server.url, queue: 'fine' });
  assert.throws(() => ok.start({ workers: true }), { code: 'ERR_LANE_INVALID_ARGUMENT', message: /unknown option 'workers'/ });
  assert.throws(() => ok.start({ worker: 'yes' }), { code: 'ERR_LANE_INVALID_ARGUMENT', message: /worker must be a boolean/ });
  assert.throws(() => ok.submit('system', 'x', '1'), { code: 'ERR_LANE_NOT_STARTED' });
});

redisTest('an unreachable Redis fails start() within the connect timeout, naming the URL without its password', async () => {
  const port = await freePort();
  const url = `redis://:secret@127.0.0.1:${port}/0`;
  const began = Date.now();
  assert.throws(() => new Lane({ redis: url, queue: 'q' }).start(), (error) => {
    assert.equal(error.code, 'ERR_LANE_REDIS_UNREACHABLE');
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.doesNotMatch(error.message, /secret/);
    return true;
  });
  assert.ok(Date.now() - began < 5000);
  // The promise API says the same, without throwing.
  await assert.rejects(new Lane({ redis: url, queue: 'q' }).run('system', 'x', 1), { code: 'ERR_LANE_REDIS_UNREACHABLE' });
});

redisTest('a server that accepts but never answers fails within the connect timeout', async () => {
  const silent = net.createServer(() => {});
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const url = `redis://127.0.0.1:${silent.address().port}/0`;
  const began = Date.now();
  try {
    assert.throws(() => new Lane({ redis: url, queue: 'q' }).start(), { code: 'ERR_LANE_REDIS_UNREACHABLE', message: /unreachable/ });
    assert.ok(Date.now() - began < 5000, `${Date.now() - began} ms`);
  } finally {
    silent.close();
  }
});

redisTest('the library version in Redis is checked: newer refused, older compatible replaced', async (t, queue) => {
  const own = await new RedisServer().start();
  try {
    const { librarySource } = require('../lib/redis/connection');
    const redis = require('redis');
    const admin = redis.createClient({ url: own.url, RESP: 2 });
    await admin.connect();
    try {
      const version = Number(/local VERSION = (\d+)\n/.exec(librarySource())[1]);
      await admin.sendCommand(['FUNCTION', 'LOAD', librarySource().replace(`local VERSION = ${version}\n`, 'local VERSION = 999\n')]);
      assert.throws(() => new Lane({ redis: own.url, queue }).start({ worker: false }), (error) => {
        assert.equal(error.code, 'ERR_LANE_LIBRARY_VERSION');
        assert.match(error.message, new RegExp(`version 999, this package needs version ${version} `));
        return true;
      });
      // An older compatible one is replaced in place: version 0 in Redis, and
      // this package's text declaring COMPATIBLE_FROM 0.
      await admin.sendCommand(['FUNCTION', 'LOAD', 'REPLACE', librarySource().replace(`local VERSION = ${version}\n`, 'local VERSION = 0\n')]);
      const { ensureLibrary } = require('../lib/redis/connection');
      const ours = librarySource().replace('local COMPATIBLE_FROM = 1', 'local COMPATIBLE_FROM = 0');
      assert.equal(await ensureLibrary(admin, own.url, ours), version);
      assert.equal(Number(await admin.sendCommand(['FCALL_RO', 'a3s_version', '0'])), version);
    } finally {
      admin.destroy();
    }
  } finally {
    await own.stop();
  }
});

test('without the redis package, Redis mode is a clear LaneError (and in-process needs nothing)', { timeout: 20_000 }, () => {
  const block = `
    const Module = require('node:module');
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      if (request === 'redis') { const e = new Error("Cannot find module 'redis'"); e.code = 'MODULE_NOT_FOUND'; throw e; }
      return resolve.call(this, request, ...rest);
    };
    const { Lane } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const local = new Lane();
    local.start();
    console.log(local.submit('system', 'x', '1'));
    try { new Lane({ redis: 'redis://127.0.0.1:1/0', queue: 'q' }); } catch (e) { console.log(e.code, e.message); }`;
  const run = spawnSync(process.execPath, ['-e', block], { encoding: 'utf8', timeout: 15_000 });
  assert.equal(run.status, 0, run.stderr);
  const [first, second] = run.stdout.trim().split('\n');
  assert.equal(first, '1');
  assert.match(second, /^ERR_LANE_REDIS_CLIENT_MISSING Redis mode needs the "redis" package .*npm install redis$/);
});

redisTest("the README's Redis example runs and prints what it says", async (t, queue) => {
  const readme = require('node:fs').readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Across machines: Redis'));
  const code = /```js\n([\s\S]*?)```/.exec(section)[1];
  assert.ok(code.includes("{ redis: 'redis://localhost:6379/0', queue: 'agents' }"));
  const expected = [...code.matchAll(/^\s*\/\/ -> (.*)$/gm)].map((m) => m[1]);
  const run = spawnSync(process.execPath, ['-e', code.replace('redis://localhost:6379/0', server.url)
    .replace("queue: 'agents'", `queue: '${queue}'`)], { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 20_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(run.stdout.trim().split('\n'), expected);
});

redisTest('an idle worker keeps the process alive only with { keepAlive: true }', async (t, queue) => {
  const script = (keepAlive) => `
    const { Lane } = require('@a3s-lab/lane');
    const lane = new Lane({ redis: ${JSON.stringify(server.url)}, queue: ${JSON.stringify(queue)} });
    lane.start({ keepAlive: ${keepAlive} });
    // An unref'd timer fires only if something else keeps the process running.
    setTimeout(() => { console.log('still running'); lane.close(); }, 300).unref();`;
  for (const [keepAlive, expected] of [[false, ''], [true, 'still running']]) {
    const run = spawnSync(process.execPath, ['-e', script(keepAlive)], { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), expected, `keepAlive ${keepAlive}`);
  }
});

redisTest('a Lane may leave out lanes other processes registered and still submit to them', async (t, queue) => {
  const owner = lane([{ laneId: 'theirs', priority: 0, minConcurrency: 0, maxConcurrency: 1 }], { redis: server.url, queue });
  owner.registerHandler('triple', (n) => n * 3);
  owner.start();
  const other = lane([{ laneId: 'mine', priority: 1, minConcurrency: 0, maxConcurrency: 1 }], { redis: server.url, queue });
  other.start({ worker: false });
  assert.equal(await within(other.run('theirs', 'triple', 7)), 21);
  assert.deepEqual(other.stats().lanes.map((l) => l.laneId), ['theirs', 'mine']);
  assert.deepEqual(other.laneIds, ['mine']);
});

redisTest('lanes with a timeout, retries and a rate limit (Redis mode lane options), enforced here', async (t, queue) => {
  const lanes = [
    { laneId: 'api', priority: 0, minConcurrency: 0, maxConcurrency: 2, retry: { maxRetries: 2, initialDelayMs: 150 } },
    { laneId: 'slow', priority: 1, minConcurrency: 0, maxConcurrency: 1, timeoutMs: 150 },
    { laneId: 'limited', priority: 2, minConcurrency: 0, maxConcurrency: 8, rateLimit: { maxCommands: 3, windowMs: 300 } },
  ];
  const worker = lane(lanes, { redis: server.url, queue });
  const attempts = [];
  let flaky = 0;
  let aborted = null;
  const starts = [];
  worker.registerHandler('broken', () => {
    attempts.push(Date.now());
    throw new Error('down');
  });
  worker.registerHandler('flaky', () => {
    flaky++;
    if (flaky < 3) throw new Error('try again');
    return 'ok';
  });
  worker.registerHandler('spin', (p, ctx) => new Promise((resolve) => {
    const timer = setTimeout(resolve, 2000);
    ctx.signal.addEventListener('abort', () => {
      aborted = ctx.signal.reason.code;
      clearTimeout(timer);
    });
  }));
  worker.registerHandler('tick', () => starts.push(Date.now()));
  worker.start();
  const events = [];
  worker.subscribeFiltered(['queue.command.retry', 'queue.command.dead_lettered', 'queue.command.timeout'],
    (err, e) => events.push(e.key));
  const broken = worker.run('api', 'broken', { n: 1 });
  await assert.rejects(within(broken), { code: 'ERR_LANE_COMMAND_FAILED', message: 'Error: down' });
  assert.equal(attempts.length, 3);
  for (let i = 1; i < 3; i++) assert.ok(attempts[i] - attempts[i - 1] >= 140, `gap ${attempts[i] - attempts[i - 1]} ms`);
  assert.equal(await within(worker.run('api', 'flaky', null)), 'ok');
  const letters = await worker.deadLetters();
  assert.deepEqual(letters.map((d) => [d.commandId, d.commandType, d.laneId, d.attempts, d.error, d.payload]),
    [[broken.commandId, 'broken', 'api', 3, 'Error: down', '{"n":1}']]);
  let began = Date.now();
  await assert.rejects(within(worker.run('slow', 'spin', null)), { code: 'ERR_LANE_COMMAND_TIMEOUT', message: /timed out after 150ms/ });
  assert.ok(Date.now() - began < 1500);
  assert.equal(aborted, 'ERR_LANE_COMMAND_TIMEOUT');
  began = Date.now();
  await within(Promise.all(Array.from({ length: 6 }, () => worker.run('limited', 'tick', null))));
  const offsets = starts.map((s) => s - began).sort((a, b) => a - b);
  assert.ok(offsets[2] < 90, `the burst: ${offsets}`);
  for (const n of [3, 4, 5]) assert.ok(offsets[n] >= 100 * (n - 2) - 10, `one per token: ${offsets}`);
  const stats = worker.stats();
  const by = Object.fromEntries(stats.lanes.map((l) => [l.laneId, l]));
  assert.deepEqual([by.api.retried, by.api.deadLettered, by.slow.timedOut, by.limited.completed], [4, 1, 1, 6]);
  await new Promise((resolve) => setTimeout(resolve, 20));
  for (const key of ['queue.command.retry', 'queue.command.dead_lettered', 'queue.command.timeout']) {
    assert.ok(events.includes(key), `${key} in ${events}`);
  }
});

redisTest('an idle worker, subscriber and result waiter send Redis nothing (no polling)', async (t, queue) => {
  const own = await new RedisServer().start();
  const redis = require('redis');
  const admin = redis.createClient({ url: own.url, RESP: 2 });
  await admin.connect();
  const worker = Lane.withLanes([{ laneId: 'q', minConcurrency: 0, maxConcurrency: 4 }], { redis: own.url, queue, leaseMs: 30_000 });
  try {
    worker.start();
    const seen = [];
    worker.subscribe((err, e) => seen.push(e.key));
    assert.equal(await within(worker.run('q', 'echo', 1)), 1);
    const processed = async () => {
      const info = String(await admin.sendCommand(['INFO', 'stats']));
      return Number(/total_commands_processed:(\d+)/.exec(info)[1]);
    };
    await new Promise((resolve) => setTimeout(resolve, 200)); // the slots that just finished block again
    const before = await processed();
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the window: no traffic
    assert.ok((await processed()) - before <= 1, 'only the INFO call itself'); // heartbeats: every 10 s
    assert.ok(seen.includes('queue.command.completed'));
  } finally {
    await worker.close();
    admin.destroy();
    await own.stop();
  }
});
