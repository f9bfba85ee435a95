'use strict';
// The seed's synchronous submit() in Redis mode. It waits (a worker thread
// does the round trips, this thread sleeps in Atomics.wait) only when no JS
// code of this process can be involved: this process's workers on the
// queue have no handlers and run nothing. Then whatever they would get is
// echoed on their behalf by that thread, their leases are kept alive, and a
// claim they sent before the wait is answered for them. Otherwise it throws
// ERR_LANE_WOULD_BLOCK, never a deadlock. Scenarios that could hang run in a
// child process with a timeout.

const { before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const { Lane } = require('@a3s-lab/lane');
const { RedisServer, skipReason, uniqueQueue } = require('./redis-server');
const { within, streamEvents } = require('./helpers');

const skip = skipReason();
const PACKAGE = path.join(__dirname, '..');
let server;
const closeLater = [];

before(async () => {
  if (!skip) server = await new RedisServer().start();
});

after(async () => {
  for (const item of closeLater) await item();
  if (server) await server.stop();
});

function agent(queue, lanes, leaseMs = 10_000) {
  const child = spawn(process.execPath, [path.join(__dirname, 'redis-agent.js'), server.url, queue, '2', String(leaseMs),
    JSON.stringify(lanes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  closeLater.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  });
  return within(new Promise((resolve) => {
    readline.createInterface({ input: child.stdout }).once('line', (line) => resolve({ child, ...JSON.parse(line) }));
  }), 20_000, 'the agent');
}

/** Runs `code` in a child node (Lane and the server URL in scope); its stdout lines. */
function child(code, timeout = 20_000) {
  const script = `const { Lane } = require(${JSON.stringify(PACKAGE)});\nconst url = ${JSON.stringify(server.url)};\n` +
    `(async () => {\n${code}\n})().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout });
  assert.equal(run.error, undefined, `the child did not finish within ${timeout} ms (a deadlock?)\n${run.stdout}${run.stderr}`);
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  return run.stdout.trim().split('\n');
}

const LANES = [['jobs', 0, 0, 2]];
const JOBS = [{ laneId: 'jobs', priority: 0, minConcurrency: 0, maxConcurrency: 2 }];

test('a worker without handlers submits synchronously; another process with the handler runs it', { skip, timeout: 40_000 }, async () => {
  const queue = uniqueQueue('sync-remote');
  const remote = await agent(queue, LANES);
  const lane = Lane.withLanes(JOBS, { redis: server.url, queue });
  closeLater.push(() => lane.close());
  lane.start();
  assert.equal(lane.submit('jobs', 'whoami', null), String(remote.pid));
  // A type nobody handles: this process's own worker echoes it (through the bridge).
  assert.equal(lane.submit('jobs', 'nobody', '{"a":[1]}'), '{"a":[1]}');
  // Its failure is a LaneError with the remote error text.
  assert.throws(() => lane.submit('jobs', 'record', '{}'), { code: 'ERR_LANE_COMMAND_FAILED', message: /TypeError/ });
  assert.throws(() => lane.submit('nope', 'x', '1'), { code: 'ERR_LANE_NOT_FOUND' });
  assert.throws(() => lane.submit('jobs', 'x', '{bad'), { code: 'ERR_LANE_INVALID_PAYLOAD' });
});

test('any JS handler or running command of this process on the queue: ERR_LANE_WOULD_BLOCK, not a wait', { skip, timeout: 30_000 }, async () => {
  const queue = uniqueQueue('sync-refused');
  const plain = Lane.withLanes(JOBS, { redis: server.url, queue });
  const handling = Lane.withLanes(JOBS, { redis: server.url, queue });
  closeLater.push(() => plain.close(), () => handling.close());
  plain.start();
  handling.start();
  assert.equal(plain.submit('jobs', 'echo', '1'), '1');
  handling.registerHandler('slow', () => new Promise((resolve) => setTimeout(() => resolve('done'), 200)));
  // `plain` has no handler, but `handling` (this process, same queue) has one.
  assert.throws(() => plain.submit('jobs', 'echo', '2'), { code: 'ERR_LANE_WOULD_BLOCK', message: /use submitAsync/ });
  handling.unregisterHandler('slow');
  const running = handling.add('jobs', () => new Promise((resolve) => setTimeout(() => resolve('fn'), 100)));
  assert.throws(() => plain.submit('jobs', 'echo', '3'), { code: 'ERR_LANE_WOULD_BLOCK' });
  assert.equal(await within(running), 'fn');
  // A producer-only Lane in a process without workers on the queue waits.
  const other = uniqueQueue('sync-producer');
  const lines = child(`
    const worker = Lane.withLanes(${JSON.stringify(JOBS)}, { redis: url, queue: ${JSON.stringify(other)} });
    worker.registerHandler('double', async (n) => n * 2);
    const producer = Lane.withLanes(${JSON.stringify(JOBS)}, { redis: url, queue: ${JSON.stringify(other)} });
    producer.start({ worker: false });
    worker.start();
    try { producer.submit('jobs', 'double', '21'); } catch (e) { console.log(e.code); }
    console.log(await producer.submitAsync('jobs', 'double', '21'));
    await worker.close(); await producer.close();`);
  assert.deepEqual(lines, ['ERR_LANE_WOULD_BLOCK', '42']);
});

test('a long synchronous wait keeps this process\'s worker leases alive', { skip, timeout: 40_000 }, async () => {
  const queue = uniqueQueue('sync-lease');
  const remote = await agent(queue, LANES);
  const lines = child(`
    const lane = Lane.withLanes(${JSON.stringify(JOBS)}, { redis: url, queue: ${JSON.stringify(queue)}, leaseMs: 400 });
    lane.start();
    const began = Date.now();
    const result = JSON.parse(lane.submit('jobs', 'record', JSON.stringify({ tag: 'slow', lane: 'jobs', sleep: 1.5 })));
    console.log(result.pid, Date.now() - began >= 1400);
    const stats = lane.stats();
    console.log(stats.workers.some((w) => w.workerId === lane.workerId));
    await lane.close();`);
  assert.deepEqual(lines, [`${remote.pid} true`, 'true']);
  // No worker of that process was ever reaped.
  const redis = require('redis');
  const store = redis.createClient({ url: server.url, RESP: 2 });
  await store.connect();
  const keys = streamEvents(await store.sendCommand(['XRANGE', `a3s:{${queue}}:events`, '-', '+'])).map((e) => e.key);
  store.destroy();
  assert.ok(!keys.includes('queue.worker.lost'), keys.join(' '));
});

test('a claim this thread sent just before the wait is answered for it: no deadlock', { skip, timeout: 40_000 }, async () => {
  const queue = uniqueQueue('sync-inflight');
  const lines = child(`
    const { setImmediate: turn } = require('node:timers/promises');
    const lanes = [{ laneId: 'one', priority: 0, minConcurrency: 0, maxConcurrency: 1 }];
    const w = Lane.withLanes(lanes, { redis: url, queue: ${JSON.stringify(queue)}, maxWorkers: 1 });
    const p = Lane.withLanes(lanes, { redis: url, queue: ${JSON.stringify(queue)} });
    w.start();
    p.start({ worker: false });
    p.pauseLane('one');
    const x = p.run('one', 'echo', 'x');
    while (p.stats().lanes[0].pending !== 1) await turn();
    // As a slot would: a claim for w's worker, sent (written) but its reply
    // not read before this thread blocks in the synchronous submit below.
    const fns = await w._redis.functions();
    await fns.resume('one');
    const inflight = fns.claim(w.workerId, 1, []);
    await turn();
    await turn();
    // 'one' runs at most 1: y waits for x, which that claim may hold.
    console.log(w.submit('one', 'echo', '"y"'));
    const reply = await inflight;
    const held = reply.claimed.map((c) => c.id);
    console.log(held.every((id) => w._redis.worker.skip.has(id)));
    console.log(await x);
    await w.close(); await p.close();`);
  assert.deepEqual(lines, ['"y"', 'true', 'x']);
});
