'use strict';
// Redis mode on a Redis Cluster (redis+cluster://host:port), as
// ../tests/test_redis_cluster.py checks it for Python: every key of a queue
// carries its hash tag, so a queue lives on one shard; queues on different
// shards both work (workers, results, stats, events, the synchronous
// submit); every key the queue leaves is in the queue's slot and no
// function may touch two; an unreachable cluster fails start() fast, naming
// the URL without its password. The cluster (3 primaries on free loopback
// ports, joined by redis-cli --cluster create) is this file's own, stopped
// by PID; every wait is bounded.

const { before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { Lane, LaneError } = require('@a3s-lab/lane');
const { RedisCluster, clusterSkipReason, uniqueQueue, freePort } = require('./redis-server');
const { within, collect } = require('./helpers');
const { baseKey, librarySource } = require('../lib/redis/connection');

const skip = clusterSkipReason();
let cluster;
const made = [];
const plain = new Map(); // port -> a plain client of that node (for the checks)

before(async () => {
  if (skip) return;
  cluster = await new RedisCluster(3).start();
  const { createClient } = require('redis');
  for (const node of cluster.nodes) {
    const client = createClient({ url: node.url.replace(/\/0$/, ''), RESP: 2 });
    client.on('error', () => {});
    await client.connect();
    plain.set(node.port, client);
  }
});

after(async () => {
  for (const lane of made) await lane.close().catch(() => {});
  for (const client of plain.values()) client.destroy();
  if (cluster) await cluster.stop();
});

const JOBS = [{ laneId: 'jobs', priority: 0, minConcurrency: 0, maxConcurrency: 2 }];

function lane(configs, options) {
  const one = Lane.withLanes(configs, options);
  made.push(one);
  return one;
}

function clusterTest(name, fn) {
  test(name, { skip, timeout: 60_000 }, (t) => fn(t, uniqueQueue(name)));
}

async function slotOf(key) {
  return Number(await plain.get(cluster.nodes[0].port).sendCommand(['CLUSTER', 'KEYSLOT', key]));
}

/** A queue name per node: its hash tag lands in a slot that node holds. */
async function queuesOnEachNode(prefix) {
  const ranges = await plain.get(cluster.nodes[0].port).sendCommand(['CLUSTER', 'SLOTS']);
  const owner = (slot) => {
    const range = ranges.find(([from, to]) => Number(from) <= slot && slot <= Number(to));
    return Number(range[2][1]);
  };
  const found = new Map();
  for (let n = 0; n < 1000 && found.size < cluster.nodes.length; n++) {
    const name = `${prefix}-${n}`;
    const port = owner(await slotOf(name));
    if (!found.has(port)) found.set(port, name);
  }
  assert.equal(found.size, cluster.nodes.length, 'no queue name for some node');
  return found;
}

/** Every key of the queue (its hash tag) on each node, by port. */
async function taggedKeys(queue) {
  const tag = `{${queue}}`;
  const out = new Map();
  for (const [port, client] of plain) {
    const keys = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.sendCommand(['SCAN', cursor, 'MATCH', `*${tag.replace(/[{}]/g, '\\$&')}*`, 'COUNT', '1000']);
      cursor = String(next);
      keys.push(...batch.map(String));
    } while (cursor !== '0');
    out.set(port, keys);
  }
  return out;
}

clusterTest('two queues whose hash tags land on different shards both work: workers, results, stats, events', async (t, prefix) => {
  const placed = [...(await queuesOnEachNode(prefix)).entries()].slice(0, 2);
  assert.notEqual(placed[0][0], placed[1][0]);
  for (const [, queue] of placed) {
    const worker = lane(JOBS, { redis: cluster.url, queue });
    worker.registerHandler('where', (n) => `${queue}:${n}`);
    worker.start();
    const producer = lane(JOBS, { redis: cluster.url, queue });
    producer.start({ worker: false });
    const seen = collect(producer);
    const results = await within(Promise.all([0, 1, 2, 3, 4].map((n) => producer.run('jobs', 'where', n))));
    assert.deepEqual(results, [0, 1, 2, 3, 4].map((n) => `${queue}:${n}`));
    await seen.waitFor((e) => e.key === 'queue.command.submitted');
    const jobs = producer.stats().lanes.find((l) => l.laneId === 'jobs');
    assert.deepEqual([jobs.submitted, jobs.completed], [5, 5]);
    assert.deepEqual(producer.stats().workers.map((w) => w.workerId), [worker.workerId]);
  }
  // The synchronous submit (its own thread, its own clients) on a third queue:
  // this process's worker has no handlers, so the bridge echoes for it.
  const third = (await queuesOnEachNode(`${prefix}-sync`)).get(placed[1][0]);
  const echo = lane(JOBS, { redis: cluster.url, queue: third });
  echo.start();
  assert.equal(echo.submit('jobs', 'anything', '{"k":1}'), '{"k":1}');
  // Each queue's keys are on its node only.
  for (const [port, queue] of [...placed, [placed[1][0], third]]) {
    const keys = await taggedKeys(queue);
    assert.ok(keys.get(port).length > 0, `queue ${queue} has no keys on its node ${port}`);
    for (const [other, found] of keys) if (other !== port) assert.deepEqual(found, [], `queue ${queue} has keys on ${other}`);
  }
});

clusterTest('subscribe sees every event of a command run on another Lane', async (t, queue) => {
  const worker = lane(JOBS, { redis: cluster.url, queue });
  worker.registerHandler('twice', (n) => 2 * n);
  worker.start();
  const watcher = lane(JOBS, { redis: cluster.url, queue });
  watcher.start({ worker: false });
  const seen = collect(watcher, ['queue.command.submitted', 'queue.command.started', 'queue.command.completed']);
  const job = watcher.run('jobs', 'twice', 21);
  assert.equal(await within(job), 42);
  const mine = (key) => (e) => e.key === key && JSON.parse(e.payload).command_id === job.commandId;
  await seen.waitFor(mine('queue.command.completed'));
  for (const key of ['queue.command.submitted', 'queue.command.started']) await seen.waitFor(mine(key));
  const started = JSON.parse(seen.events.find(mine('queue.command.started')).payload);
  assert.equal(started.worker_id, worker.workerId);
});

clusterTest("every key of a queue is in the queue's slot; no function may touch two slots", async (t, prefix) => {
  // A queue on the second node (not the URL's), with every function used:
  // register, join, heartbeat, submit, claim, ack, retry, dead letter,
  // pause, cancel, resume, stats, leave.
  const queue = (await queuesOnEachNode(prefix)).get(cluster.nodes[1].port);
  const worker = lane([
    { laneId: 'jobs', priority: 0, minConcurrency: 0, maxConcurrency: 2, retry: { maxRetries: 1, initialDelayMs: 10 } },
    { laneId: 'held', priority: 1, minConcurrency: 0, maxConcurrency: 1 },
  ], { redis: cluster.url, queue });
  worker.registerHandler('fail', () => {
    throw new Error('no');
  });
  worker.start();
  const submitted = collect(worker, ['queue.command.submitted']);
  assert.equal(await within(worker.run('jobs', 'echo', 1)), 1);
  await assert.rejects(within(worker.run('jobs', 'fail', 2)), /no/);
  worker.pauseLane('held');
  const waiting = worker.run('held', 'echo', 3);
  await submitted.waitFor((e) => JSON.parse(e.payload).command_id === waiting.commandId);
  assert.equal(worker.cancel(waiting.commandId), true);
  await assert.rejects(waiting, { code: 'ERR_LANE_CANCELLED' });
  worker.resumeLane('held');
  assert.equal((await worker.deadLetters()).length, 1);
  const stats = worker.stats();
  assert.equal(stats.lanes.find((l) => l.laneId === 'jobs').retried, 1);
  assert.equal(stats.workers.length, 1);
  worker.shutdown();
  await within(worker.drain(10_000), 15_000, 'drain');

  const slot = await slotOf(baseKey(queue));
  const found = await taggedKeys(queue);
  const left = [...found.values()].flat();
  const suffixes = new Set(left.map((key) => key.split('}:')[1]));
  for (const suffix of ['meta', 'lanes', 'config', 'lane:jobs', 'events', 'dead']) {
    assert.ok(suffixes.has(suffix), `no key ${suffix} among ${[...suffixes]}`);
  }
  assert.deepEqual(new Set(await Promise.all(left.map(slotOf))), new Set([slot]));
  assert.ok(found.get(cluster.nodes[1].port).length === left.length, 'a key of the queue is on another node');
  // The key list in lanes.lua's header, its placeholders filled in.
  const header = librarySource().split(']]')[0];
  const scheme = [...header.matchAll(/^\s+<base>(:\S+)/gm)].map((m) => m[1]);
  assert.ok(scheme.length >= 15, "lanes.lua's key list changed shape");
  const names = scheme.map((suffix) => baseKey(queue) + suffix.replace(/<[^>]+>/g, 'x'));
  assert.deepEqual(new Set(await Promise.all(names.map(slotOf))), new Set([slot]));
  // The cluster refuses a function that touches two slots...
  const node = plain.get(cluster.nodes[1].port);
  const probe = "#!lua name=a3s_probe\nredis.register_function('a3s_probe_two', function(keys, args) " +
    "redis.call('GET', keys[1]); return redis.call('GET', args[1]) end)";
  await node.sendCommand(['FUNCTION', 'LOAD', 'REPLACE', probe]);
  const mine = await node.sendCommand(['CLUSTER', 'SLOTS']);
  const owned = (s) => mine.some(([from, to, primary]) => Number(primary[1]) === cluster.nodes[1].port &&
    Number(from) <= s && s <= Number(to));
  let other = null;
  for (let n = 0; other === null && n < 10_000; n++) {
    const s = await slotOf(`k${n}`);
    if (s !== slot && owned(s)) other = `k${n}`;
  }
  assert.ok(other !== null);
  await assert.rejects(node.sendCommand(['FCALL', 'a3s_probe_two', '1', baseKey(queue), other]),
    /do not hash to the same slot/);
  await node.sendCommand(['FUNCTION', 'DELETE', 'a3s_probe']);
  // ... unless flagged, and none of ours is. The library is on every primary.
  for (const client of plain.values()) {
    const [library] = await client.sendCommand(['FUNCTION', 'LIST', 'LIBRARYNAME', 'a3s_lane']);
    const fields = Object.fromEntries(library.reduce((acc, v, i) => (i % 2 ? acc[acc.length - 1].push(v) : acc.push([String(v)]), acc), []));
    const flags = fields.functions.map((f) => f[f.findIndex((x) => String(x) === 'flags') + 1].map(String));
    assert.ok(flags.length >= 12);
    assert.ok(!flags.some((f) => f.includes('allow-cross-slot-keys')), JSON.stringify(flags));
  }
});

test('an unreachable cluster fails start() fast, naming the URL without its password', { skip, timeout: 30_000 }, async () => {
  const port = await freePort(); // nobody listens there
  const url = `redis+cluster://user:secret@127.0.0.1:${port}`;
  let began = Date.now();
  assert.throws(() => lane(JOBS, { redis: url, queue: 'unreachable' }).start(), (error) => {
    assert.ok(error instanceof LaneError);
    assert.equal(error.code, 'ERR_LANE_REDIS_UNREACHABLE');
    assert.ok(error.message.includes(`redis+cluster://user:***@127.0.0.1:${port} is unreachable`), error.message);
    assert.ok(!error.message.includes('secret'));
    return true;
  });
  assert.ok(Date.now() - began < 5000, `took ${Date.now() - began} ms`);
  // An address that accepts and never answers: the bounded connect timeout.
  const accepted = new Set();
  const silent = net.createServer((socket) => {
    accepted.add(socket);
    socket.on('error', () => {});
  });
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    const silentUrl = `rediss+cluster://127.0.0.1:${silent.address().port}`;
    began = Date.now();
    await assert.rejects(within(lane(JOBS, { redis: silentUrl, queue: 'silent' }).statsAsync(), 10_000, 'statsAsync'),
      { code: 'ERR_LANE_REDIS_UNREACHABLE', message: new RegExp(`rediss\\+cluster://127\\.0\\.0\\.1:${silent.address().port} is unreachable`) });
    assert.ok(Date.now() - began < 6000, `took ${Date.now() - began} ms`);
  } finally {
    for (const socket of accepted) socket.destroy();
    silent.close();
  }
  // A cluster has only database 0.
  assert.throws(() => new Lane({ redis: 'redis+cluster://127.0.0.1:7000/2' }), { code: 'ERR_LANE_INVALID_CONFIG', message: /only database 0/ });
  assert.doesNotThrow(() => new Lane({ redis: 'rediss+cluster://127.0.0.1:7000/0' }));
});
