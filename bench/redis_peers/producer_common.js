'use strict';
// The producer side of bench/bench_redis.py for the Node systems, as
// producer_common.py is for the Python ones: JSON lines on stdin, one answer
// line each on stdout (the protocol is described there). A producer gives
// serve() how to submit one job and how to submit a bulk of them; the
// timing, the probes' open loop and the payloads are the same for all.
// Times: process.hrtime.bigint() (CLOCK_MONOTONIC), ns.
const readline = require('node:readline');

const now = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// producer_common.spread_sleep: from half to one and a half times the sleep
function spreadSleep(sleepMs, i) {
  return Math.round(sleepMs * (0.5 + ((i * 7919) % 1000) / 1000) * 1000) / 1000;
}

function payload(kind, tag, sleepMs) {
  const job = { k: kind, g: tag };
  if (sleepMs) job.s = sleepMs;
  return job;
}

/**
 * submit(level, payload): one job, resolved once it is queued.
 * bulk(jobs): many, resolved once all are queued; jobs are
 * [[level, payload], ...], or what prepare(those) made of them before the
 * clock started (a system's own job objects, built outside the timing).
 */
async function handle(request, { submit, bulk, prepare = (jobs) => jobs }) {
  if (request.op === 'bulk') {
    const levels = request.levels || 1;
    const jobs = [];
    for (let i = 0; i < request.n; i += 1) {
      const level = request.level !== null && request.level !== undefined ? request.level : i % levels;
      const sleepMs = request.spread ? spreadSleep(request.sleep || 0, i) : request.sleep || 0;
      jobs.push([level, payload(request.kind, `${request.tag}${i}`, sleepMs)]);
    }
    const prepared = prepare(jobs);
    const t0 = now();
    await bulk(prepared);
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
      await submit(level, payload('r', tag, request.sleep || 0));
      probes.push([tag, String(t0), String(now())]);
    }
    return { probes };
  }
  if (request.op === 'each') {
    const returned = [];
    for (const [tag, level, kind, sleepMs] of request.jobs) {
      await submit(level, payload(kind, tag, sleepMs));
      returned.push(String(now()));
    }
    return { t1: returned };
  }
  return { error: `unknown op ${request.op}` };
}

/** Answers requests until "quit" or the end of stdin, then close(). */
async function serve(producer) {
  console.log(JSON.stringify({ ready: true }));
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const request = JSON.parse(line);
    if (request.op === 'quit') break;
    console.log(JSON.stringify(await handle(request, producer)));
  }
  await producer.close();
  process.exit(0);
}

module.exports = { serve };
