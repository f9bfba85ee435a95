'use strict';
// BullMQ worker process for bench/bench_redis.py:
//
//     node bench/redis_peers/bullmq_worker.js URL [CONCURRENCY]
//
// One Worker, concurrency 10, default options. The job body is jobs.py's,
// in Node: "n" counts itself done, "r" reads CLOCK_MONOTONIC first thing
// (process.hrtime), sleeps s ms and keeps "tag start_ns end_ns", "g" is a
// gate (INCR bench:gates, BLPOP bench:gate on a connection of its own).
// A 2 ms interval flushes the done count and the records in one pipeline.
// Prints "ready", runs until stdin closes or it is killed.
const { Worker } = require('bullmq');
const IORedis = require('ioredis');
const { QUEUE, connectionOf } = require('./bullmq_common');
const { recorder } = require('./worker_common');

const url = process.argv[2];
const concurrency = Number(process.argv[3] || 10);
const connection = connectionOf(url);
const flusher = new IORedis(connection);
const jobs = recorder((batch, count) => {
  const pipe = flusher.pipeline();
  if (batch.length) pipe.rpush('bench:rec', ...batch);
  if (count) pipe.incrby('bench:done', count);
  return pipe.exec();
});

async function processor(job) {
  const start = process.hrtime.bigint();
  const payload = job.data;
  if (payload.k === 'n') {
    jobs.done();
    return null;
  }
  if (payload.k === 'g') {
    const client = new IORedis(connection);
    try {
      await client.incr('bench:gates');
      await client.blpop('bench:gate', 60);
    } finally {
      client.disconnect();
    }
    jobs.done();
    return null;
  }
  return jobs.record(start, payload);
}

const worker = new Worker(QUEUE, processor, { connection, concurrency });
worker.on('error', (error) => console.error('worker error:', error.message));
worker.waitUntilReady().then(() => console.log('ready'));
process.stdin.on('end', () => {
  worker.close().finally(() => process.exit(0));
});
process.stdin.resume();
