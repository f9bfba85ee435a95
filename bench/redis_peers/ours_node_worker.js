'use strict';
// a3s-lane (Node) worker process for bench/bench_redis.py:
//
//     node bench/redis_peers/ours_node_worker.js URL SLOTS [reserve]
//
// Joins the Redis queue with SLOTS slots (one process: Node runs its
// handlers on one thread, as BullMQ's worker does) and runs the job body of
// bullmq_worker.js / jobs.py for the command type "job": "n" counts itself
// done (a synchronous handler), "r" reads CLOCK_MONOTONIC first thing
// (process.hrtime), sleeps s ms and keeps "tag start_ns end_ns", "g" is a
// gate (INCR bench:gates, BLPOP bench:gate on a connection of its own). A
// 2 ms interval flushes the done count and the records in one pipeline.
// Prints "ready", runs until stdin closes or it is killed.
const { lane, redisPackage } = require('./ours_node_common');
const { recorder } = require('./worker_common');

const url = process.argv[2];
const slots = Number(process.argv[3] || 10);
const reserve = process.argv.slice(4).includes('reserve');
const { createClient } = redisPackage();

const flusher = createClient({ url });
flusher.on('error', () => {});
const jobs = recorder((batch, count) => {
  const multi = flusher.multi();
  if (batch.length) multi.rPush('bench:rec', batch);
  if (count) multi.incrBy('bench:done', count);
  return multi.execAsPipeline();
});

async function gate() {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.incr('bench:gates');
    await client.sendCommand(['BLPOP', 'bench:gate', '60']);
  } finally {
    client.destroy();
  }
  jobs.done();
  return null;
}

function job(payload) {
  const start = process.hrtime.bigint();
  if (payload.k === 'n') {
    jobs.done();
    return null;
  }
  if (payload.k === 'g') return gate();
  return jobs.record(start, payload);
}

async function main() {
  await flusher.connect();
  const queue = lane(url, { maxWorkers: slots, reserve });
  queue.registerHandler('job', job);
  queue.start({ keepAlive: true });
  console.log('ready');
  process.stdin.on('end', () => {
    queue.close().finally(() => process.exit(0));
  });
  process.stdin.resume();
  // Stopped by the bench with SIGTERM: exit (and write a --cpu-prof profile).
  process.on('SIGTERM', () => process.exit(0));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
