'use strict';
// The worker's wake path in Redis mode, as Redis sees it (MONITOR): a
// command submitted to an idle worker wakes its blocking read, and the
// claim that the wake-up starts goes out before the wake reader's next
// blocking read, which waits for that claim's reply (one write to Redis,
// not two, between the wake-up and the command's start). A redis-server of
// this file's own runs on a free port; every wait is bounded.

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

test("a wake-up's claim goes out before the wake reader's next blocking read", { skip, timeout: 30_000 }, async () => {
  const queue = uniqueQueue('wake order');
  const watch = await monitor(server.port);
  const worker = Lane.withLanes(LANES, { redis: server.url, queue, maxWorkers: 2 });
  const producer = Lane.withLanes(LANES, { redis: server.url, queue });
  try {
    worker.registerHandler('job', (payload) => payload.n + 1);
    worker.start();
    const wakeKey = `wake:${worker._redis.worker.id}`;
    const blmpop = (line) => line.includes('"BLMPOP"') && line.includes(wakeKey);
    // The worker is idle: its claim found nothing and its wake reader blocks.
    await watch.waitFor(blmpop, 'the wake reader blocking');
    producer.start({ worker: false });
    assert.equal(await within(producer.run('work', 'job', { n: 41 }), 10_000, 'the command'), 42);
    const submitted = watch.lines.findIndex((line) => line.includes('"FCALL" "a3s_submit"'));
    assert.ok(submitted >= 0, 'the submit is seen');
    // The blocking read after the wake-up (it comes once the claim is answered).
    await watch.waitFor((line) => blmpop(line) && watch.lines.indexOf(line) > submitted, 'the next blocking read');
    const after = watch.lines.slice(submitted + 1);
    const claim = after.findIndex((line) => line.includes('"FCALL" "a3s_claim"'));
    const read = after.findIndex(blmpop);
    assert.ok(claim >= 0, 'the claim is seen');
    assert.ok(claim < read, `the claim comes before the next blocking read:\n${after.slice(0, 12).join('\n')}`);
  } finally {
    watch.close();
    await producer.close().catch(() => {});
    await worker.close().catch(() => {});
  }
});
