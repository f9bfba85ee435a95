'use strict';
// a3s-lane (Node) producer process for bench/bench_redis.py, speaking the
// protocol of producer_common.py (JSON lines on stdin, one answer line
// each). Joins the queue as a producer only (start({ worker: false })).
// "bulk" uses lane.runMany per lane (one a3s_submit_many call per 500
// commands), for each chunk of 1,000 jobs as BullMQ's addBulk gets them;
// "probes" and "each" submit one command at a time (runMany of one: its
// promise resolves once the command is queued, as BullMQ's queue.add).
// The result promises resolve in the background (the results reader);
// nobody waits on them here. Times: process.hrtime.bigint(), ns.
//
//     node bench/redis_peers/ours_node_producer.js URL [reserve]
const readline = require('node:readline');
const { lane, LEVELS } = require('./ours_node_common');

const queue = lane(process.argv[2], { reserve: process.argv.slice(3).includes('reserve') });
const lanes = Array.from({ length: LEVELS }, (_, level) => `p${level}`);
const now = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const CHUNK = 1000;
const ignore = () => {};

// producer_common.spread_sleep: from half to one and a half times the sleep
function spreadSleep(sleepMs, i) {
  return Math.round(sleepMs * (0.5 + ((i * 7919) % 1000) / 1000) * 1000) / 1000;
}

function payload(kind, tag, sleepMs) {
  const job = { k: kind, g: tag };
  if (sleepMs) job.s = sleepMs;
  return job;
}

// Queues the commands of one lane; resolves once they are in Redis.
async function submitMany(level, commands) {
  const promises = await queue.runMany(lanes[level], commands);
  for (const promise of promises) promise.catch(ignore);
}

async function handle(request) {
  if (request.op === 'bulk') {
    const levels = request.levels || 1;
    const jobs = [];
    for (let i = 0; i < request.n; i += 1) {
      const level = request.level !== null && request.level !== undefined ? request.level : i % levels;
      const sleepMs = request.spread ? spreadSleep(request.sleep || 0, i) : request.sleep || 0;
      jobs.push([level, payload(request.kind, `${request.tag}${i}`, sleepMs)]);
    }
    const t0 = now();
    for (let start = 0; start < jobs.length; start += CHUNK) {
      const byLevel = new Map();
      for (const [level, job] of jobs.slice(start, start + CHUNK)) {
        if (!byLevel.has(level)) byLevel.set(level, []);
        byLevel.get(level).push(['job', job]);
      }
      for (const level of [...byLevel.keys()].sort()) await submitMany(level, byLevel.get(level));
    }
    return { t0: String(t0), t1: String(now()) };
  }
  if (request.op === 'probes') {
    const level = request.level || 0;
    const probes = [];
    const began = performance.now();
    for (let k = 0; k < request.offsets_ms.length; k += 1) {
      const delay = began + request.offsets_ms[k] - performance.now();
      if (delay > 0) await sleep(delay);
      const tag = `u${k}`;
      const t0 = now();
      await submitMany(level, [['job', payload('r', tag, request.sleep || 0)]]);
      probes.push([tag, String(t0), String(now())]);
    }
    return { probes };
  }
  if (request.op === 'each') {
    const returned = [];
    for (const [tag, level, kind, sleepMs] of request.jobs) {
      await submitMany(level, [['job', payload(kind, tag, sleepMs)]]);
      returned.push(String(now()));
    }
    return { t1: returned };
  }
  return { error: `unknown op ${request.op}` };
}

async function main() {
  // Stopped by the bench with SIGTERM: exit (and write a --cpu-prof profile).
  process.on('SIGTERM', () => process.exit(0));
  queue.start({ worker: false });
  console.log(JSON.stringify({ ready: true }));
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const request = JSON.parse(line);
    if (request.op === 'quit') break;
    console.log(JSON.stringify(await handle(request)));
  }
  await queue.close();
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
