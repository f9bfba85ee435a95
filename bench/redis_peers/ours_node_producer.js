'use strict';
// a3s-lane (Node) producer process for bench/bench_redis.py, speaking the
// protocol of producer_common.py through producer_common.js. Joins the queue as a producer only (start({ worker: false })).
// "bulk" uses lane.runMany(lane, commands, { results: false }) per lane
// (one a3s_submit_many call per 500 commands, reply-to "": fire and
// forget, as the Python producer's submit_many(results=False) and as
// BullMQ's addBulk, which waits for no result either), for each chunk of
// 1,000 jobs as BullMQ's addBulk gets them: nothing is tracked here and
// Redis delivers no result to this process. "probes" and "each" submit
// one command at a time (runMany of one: its promise resolves once the
// command is queued, as BullMQ's queue.add); their result promises resolve
// in the background (the results reader), nobody waits on them here.
// Times: process.hrtime.bigint(), ns.
//
//     node bench/redis_peers/ours_node_producer.js URL [reserve]
const { lane, LEVELS } = require('./ours_node_common');
const { serve } = require('./producer_common');

const queue = lane(process.argv[2], { reserve: process.argv.slice(3).includes('reserve') });
const lanes = Array.from({ length: LEVELS }, (_, level) => `p${level}`);
const CHUNK = 1000;
const ignore = () => {};

// Queues the commands of one lane; resolves once they are in Redis.
async function submitMany(level, commands) {
  const promises = await queue.runMany(lanes[level], commands);
  for (const promise of promises) promise.catch(ignore);
}

// The same, fire and forget: no result comes back (the bulks).
function submitBulk(level, commands) {
  return queue.runMany(lanes[level], commands, { results: false });
}

async function main() {
  // Stopped by the bench with SIGTERM: exit (and write a --cpu-prof profile).
  process.on('SIGTERM', () => process.exit(0));
  queue.start({ worker: false });
  await serve({
    submit: (level, job) => submitMany(level, [['job', job]]),
    async bulk(jobs) {
      for (let start = 0; start < jobs.length; start += CHUNK) {
        const byLevel = new Map();
        for (const [level, job] of jobs.slice(start, start + CHUNK)) {
          if (!byLevel.has(level)) byLevel.set(level, []);
          byLevel.get(level).push(['job', job]);
        }
        for (const level of [...byLevel.keys()].sort()) await submitBulk(level, byLevel.get(level));
      }
    },
    close: () => queue.close(),
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
