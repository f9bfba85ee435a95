'use strict';
// Redis mode under faults: Redis lost mid-run and back (workers retry with
// back-off and say so in local events; requests meanwhile fail at once,
// naming the URL, and write nothing), a pending promise whose command Redis
// lost (it restarted without its data) rejects clearly, and a SIGKILLed
// Node worker's commands go back to the front of their lane and run on
// another Node process. Each test has a redis-server of its own.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const { Lane } = require('@a3s-lab/lane');
const { RedisServer, skipReason, uniqueQueue } = require('./redis-server');
const { within, collect, streamEvents } = require('./helpers');

const skip = skipReason();
const TWO_LANES = [
  { laneId: 'high', priority: 0, minConcurrency: 1, maxConcurrency: 4 },
  { laneId: 'low', priority: 1, minConcurrency: 1, maxConcurrency: 2 },
];

test('Redis lost mid-run: workers retry and say so; requests fail at once, naming the URL; nothing half-written',
  { skip, timeout: 40_000 }, async () => {
    const server = await new RedisServer(['--appendonly', 'yes', '--appendfsync', 'always']).start();
    const lane = Lane.withLanes(TWO_LANES, { redis: server.url, queue: uniqueQueue('lost') });
    try {
      lane.start();
      assert.equal(await within(lane.run('high', 'echo', 1)), 1);
      const outage = collect(lane, ['queue.redis.disconnected', 'queue.redis.reconnected']);
      await server.kill();
      // Idle slots were blocked in Redis: they notice at once.
      const down = await outage.waitFor((e) => e.key === 'queue.redis.disconnected', 10_000);
      assert.match(JSON.parse(down.payload).url, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
      let began = Date.now();
      await assert.rejects(lane.run('high', 'echo', 2), (error) => {
        assert.equal(error.code, 'ERR_LANE_REDIS_UNREACHABLE');
        assert.match(error.message, new RegExp(`Redis at redis://127\\.0\\.0\\.1:${server.port}/0 is unreachable`));
        return true;
      });
      assert.ok(Date.now() - began < 5000, `${Date.now() - began} ms`);
      began = Date.now();
      assert.throws(() => lane.stats(), { code: 'ERR_LANE_REDIS_UNREACHABLE' });
      assert.ok(Date.now() - began < 5000, `${Date.now() - began} ms`);
      await server.restart();
      await outage.waitFor((e) => e.key === 'queue.redis.reconnected', 15_000);
      assert.equal(await within(lane.run('high', 'echo', 3)), 3);
      const high = lane.stats().lanes.find((l) => l.laneId === 'high');
      assert.deepEqual([high.submitted, high.completed], [2, 2]); // the failed submit left nothing
    } finally {
      await lane.close();
      await server.stop();
    }
  });

test('a pending promise whose command Redis lost (a restart without its data) rejects, saying so',
  { skip, timeout: 40_000 }, async () => {
    const server = await new RedisServer().start();
    const producer = Lane.withLanes(TWO_LANES, { redis: server.url, queue: uniqueQueue('forgot') });
    try {
      producer.start({ worker: false });
      const waiting = producer.run('low', 'echo', 'never'); // no worker anywhere: it waits
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(producer.stats().lanes.find((l) => l.laneId === 'low').pending, 1);
      await server.kill();
      await server.restart(); // no AOF: the queue is gone
      await assert.rejects(within(waiting, 20_000, 'the rejection'), (error) => {
        assert.equal(error.code, 'ERR_LANE_REDIS');
        assert.match(error.message, new RegExp(`lost command ${waiting.commandId} \\(it restarted without its data\\)`));
        return true;
      });
      // The library and the lanes come back by themselves.
      assert.equal(await within(new Promise((resolve, reject) => {
        const helper = Lane.withLanes(TWO_LANES, { redis: server.url, queue: producer.redis.queue });
        helper.start();
        producer.run('low', 'echo', 'again').then(resolve, reject).finally(() => helper.close());
      })), 'again');
    } finally {
      await producer.close();
      await server.stop();
    }
  });

test('a SIGKILLed Node worker: its commands go back to the front and run on another Node process',
  { skip, timeout: 40_000 }, async () => {
    const server = await new RedisServer().start();
    const queue = uniqueQueue('killed');
    const lanes = [['jobs', 0, 0, 2]];
    const agent = spawn(process.execPath, [path.join(__dirname, 'redis-agent.js'), server.url, queue, '2', '1000',
      JSON.stringify(lanes)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const redis = require('redis');
    const store = redis.createClient({ url: server.url, RESP: 2 });
    await store.connect();
    const rescuer = Lane.withLanes([{ laneId: 'jobs', priority: 0, minConcurrency: 0, maxConcurrency: 2 }],
      { redis: server.url, queue, leaseMs: 1000 });
    try {
      const ready = await within(new Promise((resolve) => {
        readline.createInterface({ input: agent.stdout }).once('line', (line) => resolve(JSON.parse(line)));
      }), 20_000, 'the agent');
      const events = collect(rescuer, ['queue.command.requeued', 'queue.worker.lost']);
      const jobs = [1, 2, 3, 4].map((n) => rescuer.run('jobs', 'record', { tag: `c${n}`, lane: 'jobs', hold: true }));
      const deadline = Date.now() + 10_000;
      while (Number(await store.sendCommand(['LLEN', `test:${queue}:order`])) < 2) {
        assert.ok(Date.now() < deadline, 'c1 and c2 never started on the agent');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      agent.kill('SIGKILL');
      rescuer.registerHandler('record', (p) => ({ tag: p.tag, pid: process.pid }));
      const began = Date.now();
      rescuer.start();
      const results = await within(Promise.all(jobs), 15_000, 'the re-runs');
      assert.ok(Date.now() - began < 6000);
      assert.deepEqual(results.map((r) => [r.tag, r.pid]), [1, 2, 3, 4].map((n) => [`c${n}`, process.pid]));
      await events.waitFor((e) => e.key === 'queue.worker.lost' && JSON.parse(e.payload).worker_id === ready.ready);
      const requeued = events.events.filter((e) => e.key === 'queue.command.requeued').map((e) => JSON.parse(e.payload).command_id);
      assert.deepEqual(requeued.sort(), [jobs[0].commandId, jobs[1].commandId].sort());
      // The order Redis handed them out: c1 and c2 again, then c3 and c4.
      const started = streamEvents(await store.sendCommand(['XRANGE', `a3s:{${queue}}:events`, '-', '+']))
        .filter((e) => e.key === 'queue.command.started')
        .map((e) => e.data.command_id);
      const names = new Map(jobs.map((j, i) => [j.commandId, `c${i + 1}`]));
      assert.deepEqual(started.map((id) => names.get(id)), ['c1', 'c2', 'c1', 'c2', 'c3', 'c4']);
      const stats = rescuer.stats();
      assert.deepEqual([stats.lanes[0].requeued, stats.lanes[0].completed], [2, 4]);
      assert.deepEqual(stats.workers.map((w) => w.workerId), [rescuer.workerId]);
    } finally {
      if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
      await rescuer.close();
      store.destroy();
      await server.stop();
    }
  });

test('a dead Node worker is reaped at its lease expiry, not up to a beat interval later',
  { skip, timeout: 40_000 }, async () => {
    const server = await new RedisServer().start();
    const queue = uniqueQueue('reap-at-expiry');
    const leaseMs = 3000; // beats every 1 s: a reap at the next beat could come 1 s late
    const agent = spawn(process.execPath, [path.join(__dirname, 'redis-agent.js'), server.url, queue, '1',
      String(leaseMs), JSON.stringify([['jobs', 0, 0, 2]])], { stdio: ['pipe', 'pipe', 'inherit'] });
    const redis = require('redis');
    const store = redis.createClient({ url: server.url, RESP: 2 });
    await store.connect();
    const survivor = Lane.withLanes([{ laneId: 'jobs', priority: 0, minConcurrency: 0, maxConcurrency: 2 }],
      { redis: server.url, queue, leaseMs });
    try {
      const ready = await within(new Promise((resolve) => {
        readline.createInterface({ input: agent.stdout }).once('line', (line) => resolve(JSON.parse(line)));
      }), 20_000, 'the agent');
      // Half a beat interval out of step with the agent's beats: a reap at
      // the survivor's next regular beat would come ~500 ms late.
      await new Promise((resolve) => setTimeout(resolve, 500));
      survivor.start();
      const events = collect(survivor, ['queue.worker.lost']);
      // Let the survivor beat a few times, then kill the agent after its own beat.
      await new Promise((resolve) => setTimeout(resolve, 1200));
      agent.kill('SIGKILL');
      await new Promise((resolve) => agent.once('exit', resolve));
      const workers = `a3s:{${queue}}:workers`;
      // Its lease's end as Redis holds it (it can beat no more).
      const expiry = Number(await store.sendCommand(['ZSCORE', workers, ready.ready]));
      await events.waitFor((e) => e.key === 'queue.worker.lost' && JSON.parse(e.payload).worker_id === ready.ready,
        leaseMs + 5000);
      const entries = await store.sendCommand(['XRANGE', `a3s:{${queue}}:events`, '-', '+']);
      const lostAt = entries.map(([id, fields]) => [Number(String(id).split('-')[0]), streamEvents([[id, fields]])])
        .find(([, evs]) => evs.some((e) => e.key === 'queue.worker.lost'))[0];
      const late = lostAt - expiry;
      assert.ok(expiry > 0 && late >= 0 && late < 150, `reaped ${late} ms after its lease ran out`);
      assert.equal(Number(await store.sendCommand(['ZCARD', workers])), 1);
    } finally {
      if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
      await survivor.close();
      store.destroy();
      await server.stop();
    }
  });
