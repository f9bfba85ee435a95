'use strict';
// BullMQ producer process for bench/bench_redis.py (producer_common.js).
// "bulk" uses queue.addBulk in chunks of 1,000 (BullMQ's bulk add, one
// pipeline per chunk); "probes" and "each" use queue.add, one at a time.
const { Queue } = require('bullmq');
const { QUEUE, connectionOf, priorityOf } = require('./bullmq_common');
const { serve } = require('./producer_common');

const queue = new Queue(QUEUE, { connection: connectionOf(process.argv[2]) });
const CHUNK = 1000;

async function main() {
  await queue.waitUntilReady();
  await serve({
    submit: (level, job) => queue.add('job', job, { priority: priorityOf(level) }),
    prepare: (jobs) => jobs.map(([level, job]) => ({ name: 'job', data: job,
      opts: { priority: priorityOf(level) } })),
    async bulk(added) {
      for (let i = 0; i < added.length; i += CHUNK) await queue.addBulk(added.slice(i, i + CHUNK));
    },
    close: () => queue.close(),
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
