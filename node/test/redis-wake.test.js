'use strict';
// The worker's wake path in Redis mode: a command submitted to an idle
// worker is leased to it by the submit itself (the worker joined as
// "direct"), its record comes back on the worker's blocking read, and it
// starts with no claim round trip in between. A redis-server of this
// file's own runs on a free port; every wait is bounded.

const { before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { Lane } = require('@a3s-lab/lane');
const { RedisServer, skipReason, uniqueQueue } = require('./redis-server');
const { within, deferred } = require('./helpers');

const skip = skipReason();
let server;

before(async () => {
  if (!skip) server = await new RedisServer().start();
});

after(async () => {
  if (server) await server.stop();
});

/** A MONITOR connection: `lines` (the commands, in the order Redis ran them) and `waitFor(pred)`. */
async function monitor(port) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  const lines = [];
  const waiters = [];
  let buffered = '';
  socket.on('data', (chunk) => {
    buffered += chunk;
    let at;
    while ((at = buffered.indexOf('\r\n')) >= 0) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 2);
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.pred(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  socket.on('error', () => {});
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const ok = new Promise((resolve) => waiters.push({ pred: (line) => line === '+OK', resolve }));
  socket.write('MONITOR\r\n');
  await within(ok, 5000, 'MONITOR');
  return {
    lines,
    waitFor(pred, what) {
      const found = lines.find(pred);
      if (found !== undefined) return Promise.resolve(found);
      const d = deferred();
      waiters.push({ pred, resolve: d.resolve });
      return within(d.promise, 10_000, what);
    },
    close: () => socket.destroy(),
  };
}

const LANES = [{ laneId: 'work', priority: 0, minConcurrency: 0, maxConcurrency: 2 }];

test('a command submitted to an idle worker is leased to it by the submit and starts with no claim in between', { skip, timeout: 30_000 }, async () => {
  const { Functions } = require('../lib/redis/connection');
  const realClaim = Functions.prototype.claim;
  const claims = [];
  Functions.prototype.claim = function timedClaim(...args) {
    claims.push(performance.now());
    return realClaim.apply(this, args);
  };
  const queue = uniqueQueue('wake direct');
  const watch = await monitor(server.port);
  const worker = Lane.withLanes(LANES, { redis: server.url, queue, maxWorkers: 2 });
  const producer = Lane.withLanes(LANES, { redis: server.url, queue });
  try {
    const started = [];
    worker.registerHandler('job', (payload) => {
      started.push(performance.now());
      return payload.n + 1;
    });
    worker.start();
    const wakeKey = `wake:${worker._redis.worker.id}`;
    const blmpop = (line) => line.includes('"BLMPOP"') && line.includes(wakeKey);
    // The worker is idle: its claim found nothing and its wake reader blocks.
    await watch.waitFor(blmpop, 'the wake reader blocking');
    producer.start({ worker: false });
    // One command first: the worker's first claim (made at start) is behind it.
    assert.equal(await within(producer.run('work', 'job', { n: -1 }), 10_000, 'the first command'), 0);
    for (let n = 0; n < 5; n++) {
      const submitted = performance.now();
      assert.equal(await within(producer.run('work', 'job', { n }), 10_000, 'the command'), n + 1);
      const between = claims.filter((at) => at > submitted && at < started[started.length - 1]);
      assert.deepEqual(between, [], `command ${n} started only after a claim`);
    }
    // The records came through the wake list: Redis leased them at the submit.
    assert.ok(watch.lines.some((line) => line.includes('"RPUSH"') && line.includes(wakeKey) &&
      line.includes('\\"lease\\"')), 'a command record was pushed to the wake list');
  } finally {
    Functions.prototype.claim = realClaim;
    watch.close();
    await producer.close().catch(() => {});
    await worker.close().catch(() => {});
  }
});
