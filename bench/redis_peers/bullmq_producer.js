'use strict';
// BullMQ producer process for bench/bench_redis.py, speaking the protocol
// of producer_common.py (JSON lines on stdin, one answer line each).
// "bulk" uses queue.addBulk in chunks of 1,000 (BullMQ's bulk add, one
// pipeline per chunk); "probes" and "each" use queue.add, one at a time.
// Times: process.hrtime.bigint() (CLOCK_MONOTONIC), ns.
const readline = require('node:readline');
const { Queue } = require('bullmq');
const { QUEUE, connectionOf, priorityOf } = require('./bullmq_common');

const queue = new Queue(QUEUE, { connection: connectionOf(process.argv[2]) });
const now = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const CHUNK = 1000;

// producer_common.spread_sleep: from half to one and a half times the sleep
function spreadSleep(sleepMs, i) {
  return Math.round(sleepMs * (0.5 + ((i * 7919) % 1000) / 1000) * 1000) / 1000;
}

function payload(kind, tag, sleepMs) {
  const job = { k: kind, g: tag };
  if (sleepMs) job.s = sleepMs;
  return job;
}

async function handle(request) {
  if (request.op === 'bulk') {
    const levels = request.levels || 1;
    const jobs = [];
    for (let i = 0; i < request.n; i += 1) {
      const level = request.level !== null && request.level !== undefined ? request.level : i % levels;
      const sleepMs = request.spread ? spreadSleep(request.sleep || 0, i) : request.sleep || 0;
      jobs.push({ name: 'job', data: payload(request.kind, `${request.tag}${i}`, sleepMs),
        opts: { priority: priorityOf(level) } });
    }
    const t0 = now();
    for (let i = 0; i < jobs.length; i += CHUNK) await queue.addBulk(jobs.slice(i, i + CHUNK));
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
      await queue.add('job', payload('r', tag, request.sleep || 0), { priority: priorityOf(level) });
      probes.push([tag, String(t0), String(now())]);
    }
    return { probes };
  }
  if (request.op === 'each') {
    const returned = [];
    for (const [tag, level, kind, sleepMs] of request.jobs) {
      await queue.add('job', payload(kind, tag, sleepMs), { priority: priorityOf(level) });
      returned.push(String(now()));
    }
    return { t1: returned };
  }
  return { error: `unknown op ${request.op}` };
}

async function main() {
  await queue.waitUntilReady();
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
